"""Integer parameters of one QAT cell: weight/bias codes, fractional bits, LUTs and the derived shifts.

This is what the golden model and the RTL generators read; nothing downstream touches Brevitas.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from base.errors import EdgecodecError

from quant import fixed_point as fp

GATES = ("z", "r", "n")


@dataclass
class CellParams:
    channels: int
    se_hidden: int
    dw_kernel: int
    act_bits: int
    weight_bits: int
    lut_bits: int
    lut_frac: int
    bias_bits: int
    f_x: int
    f_xp: int
    f_s1: int
    f_p: int
    dw_w: np.ndarray            # (C, k, k)
    dw_b: np.ndarray            # (C,)
    f_dw: int
    fc1_w: np.ndarray           # (C/r, C)
    fc1_b: np.ndarray
    f_fc1: int
    fc2_w: np.ndarray           # (C, C/r)
    fc2_b: np.ndarray
    f_fc2: int
    w: dict = field(default_factory=dict)     # gate -> (C, C) codes of W
    b: dict = field(default_factory=dict)     # gate -> (C,) bias codes (grid f_w + f_xp)
    f_w: dict = field(default_factory=dict)
    u: dict = field(default_factory=dict)     # gate -> (C, C) codes of U
    f_u: dict = field(default_factory=dict)

    # ---- derived quantities of the contract (docs/numerics.md) ----
    @property
    def f_h(self) -> int:
        return self.act_bits - 1

    @property
    def sig_lut(self) -> np.ndarray:
        return fp.sigmoid_lut(self.lut_bits, self.lut_frac, self.act_bits)

    @property
    def tanh_lut(self) -> np.ndarray:
        return fp.tanh_lut(self.lut_bits, self.lut_frac, self.act_bits)

    def gate_grid(self, g: str) -> int:
        """Frac bits of the aligned gate accumulator (finer of the two grids)."""
        if g == "n":
            return max(self.f_w["n"] + self.f_xp, self.act_bits + self.f_p)
        return max(self.f_w[g] + self.f_xp, self.f_u[g] + self.f_h)

    @property
    def dw_shift(self) -> int:
        return self.f_dw + self.f_x - self.f_xp

    @property
    def fc1_shift(self) -> int:
        return self.f_fc1 + self.f_h - self.f_s1

    @property
    def fc2_shift(self) -> int:
        return self.f_fc2 + self.f_s1 - self.lut_frac

    @property
    def p_shift(self) -> int:
        return self.f_u["n"] + self.f_h - self.f_p

    # ---- persistence ----
    def to_json(self) -> dict:
        out = {}
        for k, v in self.__dict__.items():
            if isinstance(v, np.ndarray):
                out[k] = v.astype(int).tolist()
            elif isinstance(v, dict):
                out[k] = {g: (a.astype(int).tolist() if isinstance(a, np.ndarray) else int(a)) for g, a in v.items()}
            else:
                out[k] = v
        return out

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), sort_keys=True))

    @classmethod
    def from_json(cls, data: dict) -> "CellParams":
        arrays = {"dw_w", "dw_b", "fc1_w", "fc1_b", "fc2_w", "fc2_b"}
        kw = {}
        for k, v in data.items():
            if k in arrays:
                kw[k] = np.asarray(v, dtype=np.int64)
            elif k in ("w", "b", "u"):
                kw[k] = {g: np.asarray(a, dtype=np.int64) for g, a in v.items()}
            else:
                kw[k] = v
        return cls(**kw)

    @classmethod
    def load(cls, path: Path) -> "CellParams":
        path = Path(path)
        if not path.is_file():
            raise EdgecodecError(f"cell parameter file not found: {path}")
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError) as exc:
            raise EdgecodecError(f"cell parameter file {path} is corrupt: {exc}") from None


def _pot_frac(scale) -> int:
    s = float(scale.detach()) if hasattr(scale, "detach") else float(scale)
    f = -math.log2(s)
    if abs(f - round(f)) > 1e-12:
        raise EdgecodecError(f"scale {s} is not a power of two; the contract needs power-of-two scales")
    return int(round(f))


def _weight(layer) -> tuple[np.ndarray, int]:
    qw = layer.quant_weight()
    return qw.int().detach().cpu().numpy().astype(np.int64), _pot_frac(qw.scale)


def _bias(layer, frac: int, bits: int) -> np.ndarray:
    b = layer.bias.detach().double().cpu().numpy() * 2.0 ** frac
    return np.clip(np.round(b), *fp.srange(bits)).astype(np.int64)


def extract(qcell) -> CellParams:
    """Read the integer parameters of a `quant.cell.qat.QuantASEGRUCell`."""
    q, fr = qcell.qcfg, qcell.fracs
    f_h = q.act_bits - 1
    dw_w, f_dw = _weight(qcell.proj.conv)
    fc1_w, f_fc1 = _weight(qcell.se.fc1)
    fc2_w, f_fc2 = _weight(qcell.se.fc2)
    p = CellParams(
        channels=qcell.channels, se_hidden=fc1_w.shape[0], dw_kernel=dw_w.shape[-1], act_bits=q.act_bits,
        weight_bits=q.weight_bits, lut_bits=q.lut_bits, lut_frac=q.lut_frac, bias_bits=q.bias_bits,
        f_x=fr.x, f_xp=fr.xp, f_s1=fr.s1, f_p=fr.p,
        dw_w=dw_w[:, 0], dw_b=_bias(qcell.proj.conv, f_dw + fr.x, q.bias_bits), f_dw=f_dw,
        fc1_w=fc1_w, fc1_b=_bias(qcell.se.fc1, f_fc1 + f_h, q.bias_bits), f_fc1=f_fc1,
        fc2_w=fc2_w, fc2_b=_bias(qcell.se.fc2, f_fc2 + fr.s1, q.bias_bits), f_fc2=f_fc2,
    )
    for g in GATES:
        w, fw = _weight(qcell.w[g])
        u, fu = _weight(qcell.u[g])
        if w.shape[-1] != 1:
            raise EdgecodecError(f"gate kernel {w.shape[-1]}x{w.shape[-1]}: the integer model and RTL support 1x1 gates only")
        p.w[g], p.f_w[g], p.u[g], p.f_u[g] = w[:, :, 0, 0], fw, u[:, :, 0, 0], fu
        p.b[g] = _bias(qcell.w[g], fw + fr.xp, q.bias_bits)
    return p
