"""Random-initialised cells through the real QAT path, and input codes, for the hardware tests.

`random_params` = from_float -> extract of a seeded float ASEGRUCell; `random_inputs` = N(0, std) codes with
saturated extremes in every run.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from quant.config import QuantConfig
from model.cell.ase_gru import ASEGRUCell
from quant import fixed_point as fp
from quant.cell.params import CellParams, extract
from quant.cell.qat import CellFracs, from_float

FRACS = {8: CellFracs(x=6, xp=5, s1=5, p=5), 6: CellFracs(x=4, xp=3, s1=3, p=3)}


@functools.lru_cache(maxsize=None)
def random_params(C: int, r: int, k: int, bits: int = 8, seed: int = 0, q: QuantConfig | None = None,
            fr: CellFracs | None = None, gain: float = 1.0) -> CellParams:
    """Integer parameters of a random-init cell through the real QAT path (from_float -> extract)."""
    torch.manual_seed(seed)
    cell = ASEGRUCell(C, r, 1, k)
    if gain != 1.0:
        with torch.no_grad():
            for prm in cell.parameters():
                prm.mul_(gain)
    q = q or QuantConfig(act_bits=bits, weight_bits=bits)
    return extract(from_float(cell, q, fr or FRACS[q.act_bits], r).double().eval())


def random_inputs(p: CellParams, T: int, H: int, W: int, seed: int, std: float = 0.7) -> np.ndarray:
    """Input codes (T, C, H, W): real-valued N(0, std) on the x grid, with saturated extremes in every run."""
    rng = np.random.default_rng(seed)
    x = np.clip(np.round(rng.normal(0, std, size=(T, p.channels, H, W)) * 2.0 ** p.f_x), *fp.srange(p.act_bits))
    x = x.astype(np.int64)
    lo, hi = fp.srange(p.act_bits)
    x[0, :, 0, 0], x[0, :, -1, -1] = lo, hi
    return x
