"""Brevitas QAT version of the ASE-GRU cell (SE, projector, gates), step by step as docs/numerics.md.

Built from Brevitas quant layers (there is no QuantGRU upstream). Submodule names match the float
`model.cell.ase_gru.ASEGRUCell`, so float weights load directly. Run in float64 for bit-exact verification.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from torch import nn

from quant.config import QuantConfig

from quant import fixed_point as fp
from quant.lut import LutActivation
from quant.quantizers import act_quant, bias_quant, weight_quant


@dataclass(frozen=True)
class CellFracs:
    """Calibrated fractional bits of the cell's activations (the rest are fixed by the contract)."""

    x: int     # cell input
    xp: int    # projector output x' (and x~)
    s1: int    # SE hidden after ReLU
    p: int     # U h~ requantized

    def to_dict(self) -> dict:
        return asdict(self)


class _SqueezeExciteQ(nn.Module):
    def __init__(self, channels: int, hidden: int, q: QuantConfig, fr: CellFracs):
        super().__init__()
        a = q.act_bits
        self.fc1 = QuantLinear(channels, hidden, bias=True, weight_quant=weight_quant(q.weight_bits),
                               bias_quant=bias_quant(q.bias_bits))
        self.relu_q = QuantReLU(act_quant=act_quant(a, fr.s1, signed=False), return_quant_tensor=True)
        self.fc2 = QuantLinear(hidden, channels, bias=True, weight_quant=weight_quant(q.weight_bits),
                               bias_quant=bias_quant(q.bias_bits))
        self.lut_in = QuantIdentity(act_quant=act_quant(q.lut_bits, q.lut_frac), return_quant_tensor=False)
        self.sigmoid = LutActivation("sigmoid", q.lut_bits, q.lut_frac, a)
        self.mean_q = QuantIdentity(act_quant=act_quant(a, a - 1), return_quant_tensor=True)
        self.sigma_q = QuantIdentity(act_quant=act_quant(a, a, signed=False), return_quant_tensor=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n = int(h.shape[2]) * int(h.shape[3])  # a constant of the exported graph
        r, k = fp.mean_reciprocal(n)
        m = self.mean_q(h.sum(dim=(2, 3)) * (r * 2.0 ** -k))    # exact product, then round half even
        s1 = self.relu_q(self.fc1(m))
        return self.sigma_q(self.sigmoid(self.lut_in(self.fc2(s1))))


class _ProjectorQ(nn.Module):
    def __init__(self, channels: int, kernel: int, q: QuantConfig, fr: CellFracs):
        super().__init__()
        self.conv = QuantConv2d(channels, channels, kernel, padding=kernel // 2, groups=channels, bias=True,
                                weight_quant=weight_quant(q.weight_bits), bias_quant=bias_quant(q.bias_bits))
        self.out_q = QuantIdentity(act_quant=act_quant(q.act_bits, fr.xp), return_quant_tensor=True)

    def forward(self, xq):
        return self.out_q(self.conv(xq) + xq.value)


class QuantASEGRUCell(nn.Module):
    """Fixed-point ASE-GRU step: (x, h_{t-1}) real tensors on their grids -> h_t on the grid 2^-(A-1)."""

    GATES = ("z", "r", "n")

    def __init__(self, channels: int, reduction: int, dw_kernel: int, gate_kernel: int, q: QuantConfig,
                 fracs: CellFracs, se_hidden: int | None = None):
        super().__init__()
        a = q.act_bits
        self.channels, self.qcfg, self.fracs = channels, q, fracs
        self.x_q = QuantIdentity(act_quant=act_quant(a, fracs.x), return_quant_tensor=True)
        self.h_q = QuantIdentity(act_quant=act_quant(a, a - 1), return_quant_tensor=True)
        self.proj = _ProjectorQ(channels, dw_kernel, q, fracs)
        # se_hidden: a pruned cell keeps its SE bottleneck while C narrows (model/codec/prune.py)
        self.se = _SqueezeExciteQ(channels, channels // reduction if se_hidden is None else se_hidden, q, fracs)
        self.xt_q = QuantIdentity(act_quant=act_quant(a, fracs.xp), return_quant_tensor=True)
        self.ht_q = QuantIdentity(act_quant=act_quant(a, a - 1), return_quant_tensor=True)
        pad = gate_kernel // 2
        wq, bq = weight_quant(q.weight_bits), bias_quant(q.bias_bits)
        self.w = nn.ModuleDict({g: QuantConv2d(channels, channels, gate_kernel, padding=pad, bias=True,
                                               weight_quant=wq, bias_quant=bq) for g in self.GATES})
        self.u = nn.ModuleDict({g: QuantConv2d(channels, channels, gate_kernel, padding=pad, bias=False,
                                               weight_quant=wq) for g in self.GATES})
        self.lut_in = nn.ModuleDict({g: QuantIdentity(act_quant=act_quant(q.lut_bits, q.lut_frac)) for g in self.GATES})
        self.sigmoid = LutActivation("sigmoid", q.lut_bits, q.lut_frac, a)
        self.tanh = LutActivation("tanh", q.lut_bits, q.lut_frac, a)
        self.gate_q = QuantIdentity(act_quant=act_quant(a, a, signed=False))
        self.p_q = QuantIdentity(act_quant=act_quant(a, fracs.p))
        self.cand_q = QuantIdentity(act_quant=act_quant(a, a - 1))
        self.out_q = QuantIdentity(act_quant=act_quant(a, a - 1))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        xq, hq = self.x_q(x), self.h_q(h)
        xp = self.proj(xq)
        sigma = self.se(hq.value)[:, :, None, None]
        xt = self.xt_q(sigma * xp.value)
        ht = self.ht_q(sigma * hq.value)
        z = self.gate_q(self.sigmoid(self.lut_in["z"](self.w["z"](xt) + self.u["z"](ht))))
        r = self.gate_q(self.sigmoid(self.lut_in["r"](self.w["r"](xt) + self.u["r"](ht))))
        p = self.p_q(self.u["n"](ht))
        cand = self.cand_q(self.tanh(self.lut_in["n"](self.w["n"](xt) + r * p)))
        return self.out_q((1 - z) * hq.value + z * cand)


def from_float(cell: nn.Module, q: QuantConfig, fracs: CellFracs, reduction: int) -> QuantASEGRUCell:
    """QAT cell with the float cell's weights (same submodule names)."""
    qc = QuantASEGRUCell(cell.channels, reduction, cell.proj.conv.kernel_size[0], cell.w["z"].kernel_size[0], q, fracs,
                         se_hidden=cell.se.fc1.out_features)
    missing, unexpected = qc.load_state_dict(cell.state_dict(), strict=False)
    weights = [k for k in missing if k.endswith(("weight", "bias"))]
    if weights or unexpected:
        raise RuntimeError(f"float -> QAT weight transfer failed: missing {weights}, unexpected {unexpected}")
    return qc
