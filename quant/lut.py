"""LUT activations for the QAT model: the forward pass gathers from the contract's tables, so software and
hardware cannot round differently; training gets the real function's gradient (straight-through)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from quant import fixed_point as fp


class LutActivation(nn.Module):
    """y = TABLE[code(v)] for v on the LUT-input grid (L bits, scale 2^-lut_frac).

    Parameters
    ----------
    kind : "sigmoid" (unsigned out_bits codes, scale 2^-out_bits) or "tanh" (signed, scale 2^-(out_bits-1)).
    """

    def __init__(self, kind: str, lut_bits: int, lut_frac: int, out_bits: int):
        super().__init__()
        if kind == "sigmoid":
            codes, out_frac, self.fn = fp.sigmoid_lut(lut_bits, lut_frac, out_bits), out_bits, torch.sigmoid
        elif kind == "tanh":
            codes, out_frac, self.fn = fp.tanh_lut(lut_bits, lut_frac, out_bits), out_bits - 1, torch.tanh
        else:
            raise ValueError(f"LutActivation: unknown kind {kind!r}")
        self.kind, self.lut_bits, self.lut_frac = kind, lut_bits, lut_frac
        self.register_buffer("table", torch.tensor(codes.astype(np.float64) * 2.0 ** -out_frac), persistent=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        code = torch.round(v * 2.0 ** self.lut_frac)           # exact: v is already on the LUT-input grid
        addr = torch.remainder(code, 2 ** self.lut_bits).long()  # two's-complement pattern
        out = self.table.to(v.dtype)[addr]
        if self.training:
            s = self.fn(v)
            out = out + (s - s.detach())                         # adds exactly 0.0 forward, d fn / dv backward
        return out
