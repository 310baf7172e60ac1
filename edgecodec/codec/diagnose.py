"""Per-part diagnosis of the ASE-GRU codec (bench/codec_diagnose.py): intra, motion and residual, per frame.

Nothing here changes the codec. `TracingCoder` is the project's `Coder` with one hook: every call of its
motion-compensation step `_warp(ref, m_hat)` (encoder and decoder alike) is recorded, so a decode of a real
stream yields, per P-frame, the padded reference (previous reconstruction), the Delta codes read from the
stream and the warped frame the decoder built. Optionally the encoder's block search is replaced by any
function (e.g. another search): the decoder and the bitstream stay the shipped ones.

Measuring functions:
- `block_match`: full search (+-R integer pels, SAD on luma, one vector per `block` x `block` block, the codec's
  16x16 grid), then half- and quarter-pel refinement with the codec's own bilinear sampler; vectors in the
  codec's units (quarter luma pels), clamped to the coded symbol range;
- `warp_field`: the codec's warp (`quant.codec.int_codec.warp_int`, block-constant since stream version 3);
- `motion_bits` / `symbol_bits`: ideal code lengths (-log2 p) of symbols under the checkpoint's integer tables;
- `intra_transforms`: an I-frame through the float intra codec, with the latent rounded and not quantized at all.
"""

from __future__ import annotations

import numpy as np
import torch

from model.codec.motion import predict_median
from model.codec.network import MOTION_STRIDE, MOTION_UNITS, IntraCodec
from model.yuv import pack420, pad_to_multiple
from quant.codec.int_codec import pack_planes, sample_int, unpack_planes, warp_int

from edgecodec.codec.coder import MAX_SYMBOL, PAD, Coder


# ------------------------------------------------------------------------------------------- the hook ----

class TracingCoder(Coder):
    """`Coder` that records (reference, Delta codes, warped frame) of every motion compensation it runs."""

    def __init__(self, ck: dict, mode: str = "int", entropy: str = "ans", motion_fn=None):
        super().__init__(ck, mode, entropy)
        self.records: list[dict] = []
        self.motion_fn = motion_fn

    def _search(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        if self.motion_fn is None:
            return super()._search(x, ref)
        return self.motion_fn(x.to(torch.int64), ref.to(torch.int64)).to(torch.int64)

    def _warp(self, ref: torch.Tensor, m_hat: torch.Tensor) -> torch.Tensor:
        warped = super()._warp(ref, m_hat)
        self.records.append({"ref": ref.clone(), "motion": m_hat.clone(), "warped": warped.clone()})
        return warped


# ------------------------------------------------------------------------------------------- planes ----

def padded_frame(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[torch.Tensor, ...]:
    """One frame's planes edge-padded exactly as the coder pads them (int64 tensors)."""
    yp, up_, vp, _ = pad_to_multiple(y, u, v, PAD)
    return tuple(torch.from_numpy(np.ascontiguousarray(p)).to(torch.int64) for p in (yp, up_, vp))


def crop_planes(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, h: int, w: int):
    """Padded int planes -> uint8 numpy planes of the original size."""
    ch, cw = (h + 1) // 2, (w + 1) // 2
    return (y[:h, :w].numpy().astype(np.uint8), u[:ch, :cw].numpy().astype(np.uint8),
            v[:ch, :cw].numpy().astype(np.uint8))


# ------------------------------------------------------------------------------------------- warps ----

def warp_field(ref_planes, motion: torch.Tensor):
    """The codec's motion compensation, motion (2, h, w) codes: block-constant since stream version 3 (H.264-style
    16x16 motion compensation with the codec's bilinear sampler); versions 1 and 2 up-sampled the vector field
    bilinearly, which the diagnosis compared against block-constant compensation."""
    return warp_int(*ref_planes, motion)


# ------------------------------------------------------------------------------------------- search ----

def _block_sum(a: torch.Tensor, block: int) -> torch.Tensor:
    h, w = a.shape
    return a.reshape(h // block, block, w // block, block).sum(dim=(1, 3))


def block_match(cur: torch.Tensor, ref: torch.Tensor, radius: int = 32, block: int = MOTION_STRIDE,
                subpel: bool = True, mv_penalty: float = 2.0) -> torch.Tensor:
    """Full-search block matching of luma `cur` against luma `ref` (int (H, W), H and W multiples of `block`).

    Integer search over +-radius pels with the reference edge-replicated (the codec's border clamping); cost =
    SAD + mv_penalty * (|dx| + |dy|) in pels (a mild bias towards short vectors; ties go to the shorter one).
    Then, with `subpel`, half-pel and quarter-pel refinement (8 neighbours each) by the codec's bilinear sampler.
    Returns (2, H/block, W/block) int64 codes in quarter pels (dx, dy), clamped to +-MAX_SYMBOL.
    """
    h, w = cur.shape
    cur32, r = cur.to(torch.int32), radius
    refp = torch.nn.functional.pad(ref.to(torch.float32)[None, None], (r, r, r, r), mode="replicate")[0, 0]
    refp = refp.to(torch.int32)
    hb, wb = h // block, w // block
    best = torch.full((hb, wb), float("inf"), dtype=torch.float64)
    bdx = torch.zeros((hb, wb), dtype=torch.int64)
    bdy = torch.zeros_like(bdx)
    dxs = sorted(range(-r, r + 1), key=lambda d: (abs(d), d))      # argmin keeps the first: shortest dx
    for dy in sorted(range(-r, r + 1), key=lambda d: (abs(d), d)):
        rows = refp[r + dy:r + dy + h]
        sad = torch.stack([_block_sum((cur32 - rows[:, r + dx:r + dx + w]).abs(), block) for dx in dxs])
        cost = sad.to(torch.float64) + mv_penalty * (torch.tensor([abs(d) for d in dxs], dtype=torch.float64)
                                                      + abs(dy))[:, None, None]
        c, i = cost.min(dim=0)
        better = c < best
        best = torch.where(better, c, best)
        bdx = torch.where(better, torch.tensor(dxs)[i], bdx)
        bdy = torch.where(better, torch.full_like(bdy, dy), bdy)
    m = torch.stack([bdx, bdy]) * MOTION_UNITS
    if subpel:
        for step in (2, 1):                                   # half pel, then quarter pel (in codes)
            m = _refine(cur, ref, m, step, block, mv_penalty)
    return m.clamp(-MAX_SYMBOL, MAX_SYMBOL)


def _refine(cur, ref, m, step, block, mv_penalty):
    def cost_of(mm):
        ml = mm.repeat_interleave(block, 1).repeat_interleave(block, 2)
        pred = sample_int(ref.to(torch.int64), ml[0], ml[1], 2)
        sad = _block_sum((cur.to(torch.int64) - pred).abs(), block).to(torch.float64)
        return sad + mv_penalty * (mm.abs().sum(0).to(torch.float64) / MOTION_UNITS)

    best, bm = cost_of(m), m.clone()
    for ddy in (-step, 0, step):
        for ddx in (-step, 0, step):
            if ddx == 0 and ddy == 0:
                continue
            cand = m + torch.tensor([ddx, ddy], dtype=torch.int64)[:, None, None]
            c = cost_of(cand)
            better = c < best
            best = torch.where(better, c, best)
            bm = torch.where(better[None], cand, bm)
    return bm


def motion_search_fn(radius: int = 32, subpel: bool = True, mv_penalty: float = 16.0):
    """A motion function for `TracingCoder(motion_fn=...)`: block matching of the packed frame's luma (a larger
    vector penalty than the analysis search: the vectors are coded, about 4 bits per pel under the shipped
    Delta tables)."""
    def fn(cur_packed: torch.Tensor, ref_packed: torch.Tensor) -> torch.Tensor:
        cy = unpack_planes(cur_packed)[0]
        ry = unpack_planes(ref_packed)[0]
        return block_match(cy, ry, radius, MOTION_STRIDE, subpel, mv_penalty)[None].to(torch.float32)
    return fn


# ------------------------------------------------------------------------------------------- bits ----

def symbol_bits(tables: np.ndarray, symbols: np.ndarray, rows: np.ndarray) -> float:
    """Ideal code length -log2 p (bits) of integer symbols under integer table rows (broadcast like the coder)."""
    t = np.asarray(tables, dtype=np.float64)
    total = t.sum(axis=1)
    s = np.clip(np.asarray(symbols, dtype=np.int64), -MAX_SYMBOL, MAX_SYMBOL) + (t.shape[1] - 1) // 2
    r = np.broadcast_to(np.asarray(rows, dtype=np.int64), s.shape)
    return float(-np.log2(t[r, s] / total[r]).sum())


def motion_bits(coder: Coder, motion: torch.Tensor) -> float:
    """Ideal bits of Delta codes (1, 2, h, w) or (2, h, w) as the coder sends them: differences from the median
    predictor under the rows it picks, plus the two side symbols that name the rows."""
    m = motion.reshape(1, 2, *motion.shape[-2:]).to(torch.int64)
    mvd = (m - predict_median(m)).numpy()
    rows = coder.motion_rows(mvd)
    side = symbol_bits(coder.tables, (rows - coder.rows_m).reshape(1, 2), np.full((1, 2), coder.side_row))
    return side + symbol_bits(coder.tables, mvd, rows[None, :, None, None])


__all__ = ["TracingCoder", "padded_frame", "crop_planes", "warp_field", "block_match",
           "motion_search_fn", "motion_bits", "symbol_bits", "pack_planes"]


# ------------------------------------------------------------------------------------------- intra ----

@torch.no_grad()
def intra_transforms(intra: IntraCodec, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> dict:
    """One frame (uint8 planes) through the float intra codec, padded as the coder pads it: PSNR Y on the original
    size of the decoded frame (latent rounded), of the transforms alone (g_s(g_a(x)), latent not quantized: what
    no rate can beat) and the bits the hyperprior estimates for the rounded latents (z and y) per pixel."""
    h, w = y.shape
    x = pack420(*pad_to_multiple(y, u, v, PAD)[:3])[None]
    target = torch.from_numpy(y.astype(np.float64))

    def psnr(rec: torch.Tensor) -> float:
        ry = torch.nn.functional.pixel_shuffle(rec[:, :4].clamp(0, 1), 2)[0, 0, :h, :w].double()
        ry = (ry * 256).round().clamp(0, 255)
        return float(10 * torch.log10(255.0 ** 2 / torch.mean((ry - target) ** 2)))

    out = intra(x)
    return {"psnr_y": psnr(out["recon"]), "ceiling_psnr_y": psnr(intra.g_s(intra.g_a(x - 0.5)) + 0.5),
            "bpp": float(out["bits"]) / (h * w)}


HELDOUT_I_FRAMES = (0, 8)      # the frames a GOP of 8 codes as I-frames


def heldout_i_frames() -> dict[str, list]:
    """{clip name: [(y, u, v) uint8 planes of each of HELDOUT_I_FRAMES]} of the held-out clips
    (edgecodec.codec.evaluate.HELDOUT)."""
    from base.paths import resolve
    from edgecodec.codec.evaluate import HELDOUT, load_clip
    out = {}
    for name, path, box in HELDOUT:
        y, u, v, _ = load_clip(resolve(path), max(HELDOUT_I_FRAMES) + 1, box)
        out[name] = [(y[t], u[t], v[t]) for t in HELDOUT_I_FRAMES]
    return out


def heldout_intra(intra: IntraCodec, clips: dict[str, list]) -> dict[str, dict]:
    """`intra_transforms` of every frame of `clips` (heldout_i_frames()): per clip the means over its frames and,
    under "frames", each frame's values."""
    res = {}
    for name, frames in clips.items():
        pts = [intra_transforms(intra, *f) for f in frames]
        res[name] = {**{k: float(np.mean([p[k] for p in pts])) for k in pts[0]}, "frames": pts}
    return res
