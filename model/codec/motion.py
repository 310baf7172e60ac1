"""Block motion of the ASE-GRU codec: the encoder's search, the vectors' prediction, block-constant compensation.

The decoder needs only Delta_t: one vector per 16x16 luma block (8x8 chroma) in quarter luma pixels. Every pixel
of a block is moved by its block's vector (block-constant motion compensation, as H.264 does; the bilinear
up-sampling of the vector field that version 1 and 2 streams used smeared motion boundaries and lost 1.0-2.6 dB
against it, docs/codec.md). Sampling is bilinear with border clamping: luma at quarter pel, chroma (half size,
half the displacement) at eighth pel.

The encoder finds Delta_t by a rate-constrained block search on luma codes, all in integer arithmetic (the same
vectors on every machine):
1. full search of integer vectors within +-radius pixels, cost = SSE + lam * bits(v), v against the zero vector;
2. the same candidates again, bits counted against the median of the first pass's neighbours (the predictor
   the stream codes against);
3. half-pel, then quarter-pel refinement around the best vector (8 neighbours each), same cost.
bits(d) is the exp-Golomb length of each component of d in quarter pels: a cheap, integer stand-in for the
entropy coder's cost that makes smooth fields cheap (the smoothness term L_S of seed 000 section 3.5 in the form
a search uses).

Vectors are coded as differences from the median predictor (`predict_median`): left, top, top-right neighbour
(top-left where there is no top-right), the left neighbour alone on the first row, the top one in the first
column, zero for the first block.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

BLOCK = 16          # luma pixels per block side
UNITS = 4           # quarter luma pixels
_BIG = 1 << 62


def search_lambda(motion_lambda: float, lmbda: float) -> int:
    """The block search's SSE per bit of vector cost for a codec trained at `lmbda` (integer, >= 1)."""
    return max(1, round(motion_lambda * lmbda))


def expand(motion: torch.Tensor, block: int) -> torch.Tensor:
    """(N, 2, hb, wb) block vectors -> (N, 2, hb*block, wb*block), every pixel its block's vector."""
    return motion.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)


def golomb_bits(d: torch.Tensor) -> torch.Tensor:
    """Length of the signed exp-Golomb code of each integer in d (int64): 1, 3, 3, 5, 5, 5, 5, ..."""
    m = torch.where(d > 0, 2 * d - 1, -2 * d) + 1               # zig-zag + 1 >= 1
    return 2 * _floor_log2(m) + 1


def _floor_log2(m: torch.Tensor) -> torch.Tensor:
    """floor(log2 m) of positive int64 values, exactly (no float)."""
    n = torch.zeros_like(m)
    for s in (32, 16, 8, 4, 2, 1):
        big = m >= (1 << s)
        n = n + big.to(torch.int64) * s
        m = torch.where(big, m >> s, m)
    return n


def predict_median(mv: torch.Tensor) -> torch.Tensor:
    """Median predictor of every block from its final neighbours; mv (N, 2, hb, wb) int64 -> same shape.

    (The decoder rebuilds vectors in raster order with `rebuild_from_differences`, which uses the same rule.)
    """
    n, _, hb, wb = mv.shape
    pred = torch.zeros_like(mv)
    if wb > 1:
        pred[:, :, 0, 1:] = mv[:, :, 0, :-1]
    if hb > 1:
        left = torch.cat([mv[:, :, 1:, :1], mv[:, :, 1:, :-1]], dim=3)     # column 0: the top neighbour
        left[:, :, :, 0] = mv[:, :, :-1, 0]
        top = mv[:, :, :-1, :]
        if wb > 1:
            tr = torch.cat([mv[:, :, :-1, 1:], mv[:, :, :-1, -2:-1]], dim=3)   # last column: top-left
        else:
            tr = top
        pred[:, :, 1:, :] = torch.median(torch.stack([left, top, tr]), dim=0).values
    return pred


def rebuild_from_differences(mvd: np.ndarray) -> np.ndarray:
    """Vectors from coded differences (2, hb, wb) int64 numpy, in raster order with the median predictor."""
    _, hb, wb = mvd.shape
    mv = np.zeros_like(mvd)
    mv[:, 0] = np.cumsum(mvd[:, 0], axis=1)                      # first row: left neighbour
    for r in range(1, hb):
        top = mv[:, r - 1]
        tr = np.concatenate([top[:, 1:], top[:, -2:-1] if wb > 1 else top], axis=1)   # last column: top-left
        lo, hi = np.minimum(top, tr), np.maximum(top, tr)                # median(left, top, tr) =
        left = top[:, 0]                                                 # clamp(left, min(top,tr), max(top,tr))
        for c in range(wb):
            left = mvd[:, r, c] + np.minimum(np.maximum(left, lo[:, c]), hi[:, c])
            mv[:, r, c] = left
    return mv


def _block_sse(cur: torch.Tensor, pred: torch.Tensor, block: int) -> torch.Tensor:
    n, h, w = cur.shape
    d = (cur - pred) ** 2
    return d.view(n, h // block, block, w // block, block).sum(dim=(2, 4))


def _shifted(refpad: torch.Tensor, pad: int, iy: torch.Tensor, ix: torch.Tensor, block: int) -> torch.Tensor:
    """Per-block integer shift (iy, ix) of (N, hb, wb) applied to the padded plane -> (N, H, W)."""
    n, hp, wp = refpad.shape
    hb, wb = iy.shape[1:]
    yy = torch.arange(hb * block).view(1, hb * block, 1) + expand(iy[:, None], block)[:, 0] + pad
    xx = torch.arange(wb * block).view(1, 1, wb * block) + expand(ix[:, None], block)[:, 0] + pad
    flat = refpad.reshape(n, -1)
    return flat.gather(1, (yy * wp + xx).reshape(n, -1)).view(n, hb * block, wb * block)


def _predict_block(refpad: torch.Tensor, pad: int, mv: torch.Tensor, block: int) -> torch.Tensor:
    """Block-constant bilinear prediction of luma codes (rounded half up), mv (N, 2, hb, wb) quarter pels."""
    dx, dy = mv[:, 0], mv[:, 1]
    ix, iy, fx, fy = dx >> 2, dy >> 2, expand((dx & 3)[:, None], block)[:, 0], expand((dy & 3)[:, None], block)[:, 0]
    a = _shifted(refpad, pad, iy, ix, block)
    b = _shifted(refpad, pad, iy, ix + 1, block)
    c = _shifted(refpad, pad, iy + 1, ix, block)
    d = _shifted(refpad, pad, iy + 1, ix + 1, block)
    acc = a * (4 - fx) * (4 - fy) + b * fx * (4 - fy) + c * (4 - fx) * fy + d * fx * fy
    return (acc + 8) >> 4


@torch.no_grad()
def block_search(cur: torch.Tensor, ref: torch.Tensor, radius: int, lam: int, block: int = BLOCK,
                 subpel: bool = True) -> torch.Tensor:
    """Rate-constrained block search on luma codes (see module docstring).

    cur, ref : (N, H, W) int64 luma codes, H and W multiples of `block`; radius : integer search range (pixels);
    lam : SSE per bit of the vector cost (integer); subpel : False stops after the integer passes (full-pel
    vectors: a probe of the encoder, bench/fullpel_probe.py). Returns (N, 2, H/block, W/block) int64 vectors
    (dx, dy) in quarter pels, |component| <= 4 * radius + 3.
    """
    n, h, w = cur.shape
    hb, wb = h // block, w // block
    pad = radius + 2
    refpad = F.pad(ref[:, None].double(), (pad, pad, pad, pad), mode="replicate")[:, 0].to(torch.int64)
    # integer stage in float32: codes < 2^8, a block's SSE <= 256 * 255^2 < 2^24, so every partial sum is an
    # exact float32 integer whatever the summation order
    if block > 16:
        raise ValueError("block_search: blocks above 16x16 would overflow the exact float32 SSE")
    cur32, ref32 = cur.float(), refpad.float()
    k = 2 * radius + 1
    sses = []
    for dy in range(-radius, radius + 1):
        rows = ref32[:, pad + dy:pad + dy + h, 2:2 + w + 2 * radius].unfold(2, w, 1)   # (N, h, k, w): all dx
        d = (rows - cur32[:, :, None, :]) ** 2
        sses.append(d.view(n, hb, block, k, wb, block).sum(dim=(2, 5)).permute(0, 2, 1, 3))   # (N, k, hb, wb)
    sse = torch.cat(sses, dim=1).to(torch.int64)                               # (N, K, hb, wb), dx fastest
    cands = [(dx * UNITS, dy * UNITS) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    cand = torch.tensor(cands, dtype=torch.int64).T[None, :, :, None, None]   # (1, 2, K, 1, 1)

    def pick(pred: torch.Tensor) -> torch.Tensor:
        bits = golomb_bits(cand - pred[:, :, None]).sum(dim=1)                 # (N, K, hb, wb)
        k = torch.argmin(sse + lam * bits, dim=1)                             # first minimum: deterministic
        return cand[0, :, :, 0, 0][:, k].permute(1, 0, 2, 3)                  # (N, 2, hb, wb)

    zero = torch.zeros(n, 2, hb, wb, dtype=torch.int64)
    mv = pick(zero)
    pred = predict_median(mv)
    mv = pick(pred)
    if not subpel:
        return mv
    best = _block_sse(cur, _predict_block(refpad, pad, mv, block), block) + \
        lam * golomb_bits(mv - pred).sum(dim=1)
    limit = radius * UNITS + 3
    for step in (2, 1):
        center = mv.clone()
        for oy in (-step, 0, step):
            for ox in (-step, 0, step):
                if ox == 0 and oy == 0:
                    continue
                c = center + torch.tensor([ox, oy]).view(1, 2, 1, 1)
                c = c.clamp(-limit, limit)
                cost = _block_sse(cur, _predict_block(refpad, pad, c, block), block) + \
                    lam * golomb_bits(c - pred).sum(dim=1)
                better = cost < best
                best = torch.where(better, cost, best)
                mv = torch.where(better[:, None], c, mv)
    return mv


def luma_codes(packed: torch.Tensor) -> torch.Tensor:
    """(N, 6, H/2, W/2) packed frames on 0..1 -> (N, H, W) int64 luma codes (x 256, rounded, clamped)."""
    y = F.pixel_shuffle(packed[:, :4].detach().float(), 2)[:, 0]
    return torch.round(y * 256).clamp(0, 255).to(torch.int64).cpu()


def warp_plane(plane: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """Bilinear backward warp with border clamping: out(p) = plane(p + disp(p)); plane (N,1,H,W), disp (N,2,H,W)
    in pixels of that plane (dx, dy)."""
    n, _, h, w = plane.shape
    ys = torch.arange(h, dtype=plane.dtype, device=plane.device)[:, None]
    xs = torch.arange(w, dtype=plane.dtype, device=plane.device)[None, :]
    gx = (2 * (xs + disp[:, 0]) + 1) / w - 1
    gy = (2 * (ys + disp[:, 1]) + 1) / h - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(plane, grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp_packed(ref: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    """Block-constant warp of a packed 4:2:0 frame (N, 6, H/2, W/2) by block vectors (N, 2, H/16, W/16) in
    quarter luma pixels (float model; the integer twin is quant.codec.int_codec.warp_int)."""
    luma = F.pixel_shuffle(ref[:, :4], 2)
    m = motion.to(ref.dtype)
    y = warp_plane(luma, expand(m, BLOCK) / UNITS)
    d_chroma = expand(m, BLOCK // 2) / (2 * UNITS)
    uv = torch.cat([warp_plane(ref[:, c:c + 1], d_chroma) for c in (4, 5)], dim=1)
    return torch.cat([F.pixel_unshuffle(y, 2), uv], dim=1)
