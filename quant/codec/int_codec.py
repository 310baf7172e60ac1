"""Hardware-exact decoder of the ASE-GRU codec: everything that shapes a reconstructed frame is integer.

- motion compensation: `warp_int`, block-constant quarter-pel vectors (16x16 luma, 8x8 chroma blocks) and
  bilinear sampling in exact integer arithmetic (power-of-two denominators, one round-half-to-even at the end);
- the synthesis, context and hyper-synthesis stacks: `quant.codec.intnet.IntSequential` (calibrated
  power-of-two grids); the P synthesis reads the decoder's ASE-GRU output and the context features of the warped
  frame, both on the cells' output grid, concatenated;
- the decoder's ASE-GRU layers: the integer golden model of the vertical slice (`quant.cell.golden.cell_step`,
  the same codes as the RTL), parameters extracted from Brevitas QAT cells built from the float cells with
  calibrated fractional bits;
- the entropy model: integer probability tables (edgecodec/entropy.py) and integer thresholds that turn the
  hyper-synthesis output codes into table rows.

The integer model is built once, when a checkpoint is exported, and stored in it; a decoder only reads ints.
The encoder's analysis (its ASE-GRU stack included) stays float: it only chooses the symbols.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from quant.config import QuantConfig
from model.codec.motion import block_search, expand, luma_codes
from model.codec.network import MOTION_STRIDE, MOTION_UNITS, SCALE_LEVELS, SCALE_MAX, SCALE_MIN, VideoCodec

from quant import fixed_point as fp
from quant.cell.calibrate import cells_fracs
from quant.cell.golden import cell_step
from quant.codec.intnet import IntSequential, convert, shift_round_t
from quant.cell.params import CellParams, extract
from quant.cell.qat import from_float

LATENT_BITS = 9       # coded symbols are clamped to +-255


# ---------------------------------------------------------------- motion compensation ----

def sample_int(plane: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, log_d: int) -> torch.Tensor:
    """Bilinear backward warp of integer codes: out(p) = plane(p + d), d = (dx, dy) / 2^log_d pixels, border
    clamping; result rounded half to even to integer codes."""
    h, w = plane.shape
    d = 1 << log_d
    ys = torch.arange(h, dtype=torch.int64)[:, None]
    xs = torch.arange(w, dtype=torch.int64)[None, :]
    px, py = xs * d + dx, ys * d + dy
    x0, y0 = px >> log_d, py >> log_d
    fx, fy = px - (x0 << log_d), py - (y0 << log_d)
    xa, xb = x0.clamp(0, w - 1), (x0 + 1).clamp(0, w - 1)
    ya, yb = y0.clamp(0, h - 1), (y0 + 1).clamp(0, h - 1)
    acc = plane[ya, xa] * (d - fx) * (d - fy) + plane[ya, xb] * fx * (d - fy) + \
        plane[yb, xa] * (d - fx) * fy + plane[yb, xb] * fx * fy
    return shift_round_t(acc, 2 * log_d)


def warp_int(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, motion: torch.Tensor):
    """Warp integer planes Y (H, W), U, V (H/2, W/2) by block vectors (2, H/16, W/16) in quarter luma pixels:
    every pixel of a 16x16 luma block (8x8 chroma block) moves by its block's vector, luma at quarter pel,
    chroma by half the vector at eighth pel."""
    s = MOTION_STRIDE
    m = motion.to(torch.int64)[None]
    d = expand(m, s)[0]
    yw = sample_int(y.to(torch.int64), d[0], d[1], int(math.log2(MOTION_UNITS)))
    d = expand(m, s // 2)[0]
    log_c = int(math.log2(2 * MOTION_UNITS))
    uw = sample_int(u.to(torch.int64), d[0], d[1], log_c)
    vw = sample_int(v.to(torch.int64), d[0], d[1], log_c)
    return yw, uw, vw


def pack_planes(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Integer planes -> packed (1, 6, H/2, W/2) int64 codes (frac 8)."""
    luma = torch.nn.functional.pixel_unshuffle(y[None, None].double(), 2).to(torch.int64)
    return torch.cat([luma, u[None, None], v[None, None]], dim=1)


def unpack_planes(p: torch.Tensor):
    y = torch.nn.functional.pixel_shuffle(p[:, :4].double(), 2).to(torch.int64)[0, 0]
    return y, p[0, 4], p[0, 5]


# ---------------------------------------------------------------- entropy-model rows ----

def log_scale_levels() -> np.ndarray:
    return np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS)


def row_thresholds(frac: int) -> np.ndarray:
    """Integer thresholds T_i: row = #{i : code >= T_i} is the nearest table level of log sigma = code 2^-frac."""
    lv = log_scale_levels()
    mids = (lv[:-1] + lv[1:]) / 2
    return np.ceil(mids * 2.0 ** frac).astype(np.int64)


def rows_from_codes(codes: torch.Tensor, thresholds) -> torch.Tensor:
    return torch.searchsorted(torch.as_tensor(thresholds, dtype=torch.int64), codes.contiguous(), right=True)


def rows_from_float(log_scale: torch.Tensor) -> torch.Tensor:
    lv = log_scale_levels()
    mids = torch.as_tensor((lv[:-1] + lv[1:]) / 2, dtype=log_scale.dtype)
    return torch.searchsorted(mids, log_scale.contiguous(), right=True)


def nearest_rows(log_scale: torch.Tensor) -> list[int]:
    """Table rows of per-channel learned scales (factorized priors of z and Delta_t)."""
    return rows_from_float(log_scale.detach().double().clamp(math.log(SCALE_MIN), math.log(SCALE_MAX))).tolist()


# ---------------------------------------------------------------- the integer model ----

class IntCodec:
    """Integer decoder state of one quality (see module docstring)."""

    def __init__(self, state: dict):
        self.state = state
        self.nets = {k: IntSequential.from_state(v) for k, v in state["nets"].items()}
        self.dec_cells = [CellParams.from_json(c) for c in state["dec_cells"]]
        self.trace = None     # a list to record (cells, layer, x codes, h codes) of every golden step

    # --- ASE-GRU layers through the golden model
    def run_cells(self, cells: list[CellParams], x: torch.Tensor, hs: list) -> tuple[torch.Tensor, list]:
        """x codes (1, C, h, w) on cells[0].f_x -> last layer's h codes (grid A-1); hs = previous h codes."""
        new, inp = [], x[0].numpy()
        for i, p in enumerate(cells):
            h_prev = hs[i] if hs is not None else np.zeros_like(inp)
            h = cell_step(p, inp, h_prev)
            if self.trace is not None:
                self.trace.append((cells is self.dec_cells, i, inp, h))
            new.append(h)
            if i + 1 < len(cells):
                inp = fp.requant(h, p.f_h - cells[i + 1].f_x, *fp.srange(cells[i + 1].act_bits))
        return torch.from_numpy(new[-1])[None], new

    # --- decoder pieces
    def y_rows(self, prefix: str, z_hat: torch.Tensor) -> torch.Tensor:
        codes = self.nets[f"{prefix}_h_s"].run(z_hat)
        return rows_from_codes(codes, self.state["thresholds"][prefix])

    def intra_recon(self, y_hat: torch.Tensor) -> torch.Tensor:
        """Packed pixel codes (1, 6, h, w) of an I-frame."""
        return (self.nets["intra_g_s"].run(y_hat) + 128).clamp(0, 255)

    def inter_residual(self, y_hat: torch.Tensor, warped: torch.Tensor, hs: list) -> tuple[torch.Tensor, list]:
        """Residual codes (1, 6, h, w) of a P-frame from y_hat and the warped frame's pixel codes."""
        x = self.nets["p_from_latent"].run(y_hat)
        h, new = self.run_cells(self.dec_cells, x, hs)
        ctx = self.nets["p_context"].run(warped - 128)
        return self.nets["p_synth"].run(torch.cat([h, ctx], dim=1)), new


def _qat_params(cells, fracs, q: QuantConfig, reduction: int) -> list[dict]:
    return [extract(from_float(c, q, fr, reduction)).to_json() for c, fr in zip(cells, fracs)]


@torch.no_grad()
def build(codec: VideoCodec, calib: torch.Tensor, q: QuantConfig, act_bits: int, weight_bits: int,
          search_range: int = 8, search_lam: int = 256) -> dict:
    """Calibrate the integer model of a trained codec on packed sequences `calib` (N, T, 6, h, w); P-frames
    take their motion from the block search (range in pixels, SSE per bit)."""
    codec.eval()
    captured = {k: [] for k in ("intra_h_s", "intra_g_s", "p_h_s", "p_from_latent", "p_context", "p_synth")}
    mods = {"intra_h_s": codec.intra.hyper.h_s, "intra_g_s": codec.intra.g_s, "p_h_s": codec.inter.hyper.h_s,
            "p_from_latent": codec.inter.from_latent, "p_context": codec.inter.context, "p_synth": codec.inter.synth}
    hooks = [m.register_forward_pre_hook(lambda _m, a, k=k: captured[k].append(a[0].detach().clone()))
             for k, m in mods.items()]

    def run():
        ref = codec.intra(calib[:, 0])["recon"].clamp(0, 1)
        state = codec.inter.init_state(ref)
        for t in range(1, calib.shape[1]):
            motion = block_search(luma_codes(calib[:, t]), luma_codes(ref), search_range, search_lam)
            out = codec.inter(calib[:, t], ref, state, motion)
            ref, state = out["recon"].clamp(0, 1), out["state"]

    try:
        dec_fr = cells_fracs(list(codec.inter.dec_rnn.cells), run, q.act_bits)
    finally:
        for h in hooks:
            h.remove()
    a = act_bits
    red = codec.shape.reduction
    dec_cells = _qat_params(codec.inter.dec_rnn.cells, dec_fr, q, red)
    nets = {
        "intra_h_s": convert(mods["intra_h_s"], captured["intra_h_s"], 0, LATENT_BITS, a, weight_bits),
        "intra_g_s": convert(mods["intra_g_s"], captured["intra_g_s"], 0, LATENT_BITS, a, weight_bits,
                             out_frac=8, out_bits=10),
        "p_h_s": convert(mods["p_h_s"], captured["p_h_s"], 0, LATENT_BITS, a, weight_bits),
        "p_from_latent": convert(mods["p_from_latent"], captured["p_from_latent"], 0, LATENT_BITS, a, weight_bits,
                                 out_frac=dec_fr[0].x, out_bits=q.act_bits),
        "p_context": convert(mods["p_context"], captured["p_context"], 8, 9, a, weight_bits,
                             out_frac=q.act_bits - 1, out_bits=q.act_bits),
        "p_synth": convert(mods["p_synth"], captured["p_synth"], q.act_bits - 1, q.act_bits, a, weight_bits,
                           out_frac=8, out_bits=10),
    }
    return {
        "nets": {k: n.to_state() for k, n in nets.items()},
        "dec_cells": dec_cells,
        "thresholds": {"intra": row_thresholds(nets["intra_h_s"].f_out).tolist(),
                       "p": row_thresholds(nets["p_h_s"].f_out).tolist()},
        "act_bits": a, "weight_bits": weight_bits,
    }
