"""Integer golden model of the ASE-GRU cell: numpy int64 only, step by step as docs/numerics.md.

It reproduces the Brevitas QAT cell (in float64) bit-exactly and is the reference the RTL is checked against.
"""

from __future__ import annotations

import numpy as np

from quant import fixed_point as fp
from quant.cell.golden_dwconv import dwconv_reference
from quant.cell.params import CellParams


def se_sigma(p: CellParams, h: np.ndarray) -> np.ndarray:
    """sigma codes (C,) from h_{t-1} codes (C, H, W)."""
    a = p.act_bits
    r, k = fp.mean_reciprocal(h.shape[1] * h.shape[2])
    s = h.reshape(h.shape[0], -1).sum(axis=1)
    m = fp.requant(s * r, k, *fp.srange(a))
    s1 = fp.requant(p.fc1_w @ m + p.fc1_b, p.fc1_shift, *fp.urange(a))
    c = fp.requant(p.fc2_w @ s1 + p.fc2_b, p.fc2_shift, *fp.srange(p.lut_bits))
    return p.sig_lut[fp.lut_address(c, p.lut_bits)]


def gates(p: CellParams, xt: np.ndarray, ht: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Per-pixel gate datapath on (C, N) code matrices -> h_t codes (C, N)."""
    a, L = p.act_bits, p.lut_bits
    lut_rng = fp.srange(L)
    out = {}
    for g in ("z", "r"):
        grid = p.gate_grid(g)
        acc = fp.align(p.w[g] @ xt + p.b[g][:, None], p.f_w[g] + p.f_xp, grid) + \
            fp.align(p.u[g] @ ht, p.f_u[g] + p.f_h, grid)
        out[g] = p.sig_lut[fp.lut_address(fp.requant(acc, grid - p.lut_frac, *lut_rng), L)]
    pn = fp.requant(p.u["n"] @ ht, p.p_shift, *fp.srange(a))
    grid = p.gate_grid("n")
    acc = fp.align(p.w["n"] @ xt + p.b["n"][:, None], p.f_w["n"] + p.f_xp, grid) + \
        fp.align(out["r"] * pn, a + p.f_p, grid)
    cand = p.tanh_lut[fp.lut_address(fp.requant(acc, grid - p.lut_frac, *lut_rng), L)]
    z = out["z"]
    return fp.requant(((1 << a) - z) * h + z * cand, a, *fp.srange(a))


def cell_step(p: CellParams, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """One step: x codes (C, H, W) on grid f_x, h_{t-1} codes (C, H, W) -> h_t codes (C, H, W)."""
    a = p.act_bits
    x = np.asarray(x, dtype=np.int64)
    h = np.asarray(h, dtype=np.int64)
    c, hh, ww = x.shape
    xp = dwconv_reference(x, p.dw_w, p.dw_b, p.f_dw, p.dw_shift, a)
    sigma = se_sigma(p, h)[:, None]
    xt = fp.requant(sigma * xp.reshape(c, -1), a, *fp.srange(a))
    ht = fp.requant(sigma * h.reshape(c, -1), a, *fp.srange(a))
    return gates(p, xt, ht, h.reshape(c, -1)).reshape(c, hh, ww)


def run_sequence(p: CellParams, xs: np.ndarray) -> np.ndarray:
    """Hidden states (T, C, H, W) over a sequence of inputs (T, C, H, W), starting from h = 0."""
    h = np.zeros_like(np.asarray(xs[0], dtype=np.int64))
    out = []
    for x in xs:
        h = cell_step(p, x, h)
        out.append(h)
    return np.stack(out)
