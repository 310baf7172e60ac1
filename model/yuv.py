"""4:2:0 frames as network tensors: luma space-to-depth (2x2 -> 4 channels) next to U and V, at half resolution.

Values are code / 256 (a power-of-two scale, so packing and unpacking are exact in float32).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from base.errors import EdgecodecError

SCALE = 256.0


def _tensor(a, name: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8:
        raise EdgecodecError(f"pack420: {name} must be a uint8 numpy array or tensor, got "
                        f"{getattr(t, 'dtype', type(t).__name__)}")
    return t


def pack420(y, u, v) -> torch.Tensor:
    """uint8 y (..., H, W), u/v (..., H/2, W/2) with H, W even -> float32 (..., 6, H/2, W/2).

    Channels 0-3 are pixel_unshuffle(y, 2) (torch's order: y[0::2,0::2], y[0::2,1::2], y[1::2,0::2],
    y[1::2,1::2]), then u, v; values are code / 256.
    """
    y, u, v = _tensor(y, "y"), _tensor(u, "u"), _tensor(v, "v")
    if y.ndim < 2:
        raise EdgecodecError(f"pack420: y must be (..., H, W), got shape {tuple(y.shape)}")
    h, w = y.shape[-2:]
    if h % 2 or w % 2 or h == 0 or w == 0:
        raise EdgecodecError(f"pack420: frame size {w}x{h} must be even and non-zero (use pad_to_multiple first)")
    want = (*y.shape[:-2], h // 2, w // 2)
    if tuple(u.shape) != want or tuple(v.shape) != want:
        raise EdgecodecError(f"pack420: chroma must be {want} for y {tuple(y.shape)}, got {tuple(u.shape)} "
                        f"and {tuple(v.shape)}")
    lead = y.shape[:-2]
    luma = F.pixel_unshuffle(y.reshape(-1, 1, h, w).float(), 2).reshape(*lead, 4, h // 2, w // 2)
    out = torch.cat([luma, u.float().unsqueeze(-3), v.float().unsqueeze(-3)], dim=-3)
    return out / SCALE


def unpack420(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of pack420's layout: (..., 6, h, w) -> float y (..., 2h, 2w), u, v (..., h, w), same scale as t."""
    if not isinstance(t, torch.Tensor) or t.ndim < 3 or t.shape[-3] != 6:
        raise EdgecodecError(f"unpack420: expected a tensor (..., 6, h, w), got {getattr(t, 'shape', type(t).__name__)}")
    lead, (h, w) = t.shape[:-3], t.shape[-2:]
    y = F.pixel_shuffle(t[..., :4, :, :].reshape(-1, 4, h, w), 2).reshape(*lead, 2 * h, 2 * w)
    return y, t[..., 4, :, :], t[..., 5, :, :]


def to_codes(t) -> torch.Tensor:
    """Network-scale values -> uint8 codes: t * 256 clamped to [0, 255], rounded half-to-even."""
    t = torch.as_tensor(t)
    if t.is_floating_point() and torch.isnan(t).any():
        raise EdgecodecError("to_codes: the tensor holds NaN values")
    return torch.round((t.double() * SCALE).clamp(0.0, 255.0)).to(torch.uint8)


def _index(like, n: int, size: int):
    idx = np.minimum(np.arange(size), n - 1)
    return torch.from_numpy(idx).to(like.device) if isinstance(like, torch.Tensor) else idx


def _check(y, u, v, who: str) -> tuple[int, int]:
    if y.ndim < 2 or 0 in y.shape[-2:]:
        raise EdgecodecError(f"{who}: y must be (..., H, W) with H, W > 0, got shape {tuple(y.shape)}")
    h, w = y.shape[-2:]
    want = (*y.shape[:-2], (h + 1) // 2, (w + 1) // 2)
    if tuple(u.shape) != want or tuple(v.shape) != want:
        raise EdgecodecError(f"{who}: chroma must be {want} (ceil(H/2) x ceil(W/2)) for y {tuple(y.shape)}, "
                        f"got {tuple(u.shape)} and {tuple(v.shape)}")
    return h, w


def pad_to_multiple(y, u, v, multiple: int):
    """Edge-replicate y (..., H, W) to multiples of `multiple` (even) and u/v to multiple/2.

    Works for odd H, W (chroma ceil(H/2) x ceil(W/2)); numpy or torch in, same type out.
    Returns (y, u, v, (H, W)) with the original size for crop().
    """
    if not isinstance(multiple, int) or multiple < 2 or multiple % 2:
        raise EdgecodecError(f"pad_to_multiple: multiple={multiple!r} must be an even integer >= 2")
    h, w = _check(y, u, v, "pad_to_multiple")
    hp, wp = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    ch, cw = u.shape[-2:]
    y = y[..., _index(y, h, hp), :][..., _index(y, w, wp)]
    u, v = (c[..., _index(c, ch, hp // 2), :][..., _index(c, cw, wp // 2)] for c in (u, v))
    return y, u, v, (h, w)


def crop(y, u, v, h: int, w: int):
    """Inverse of pad_to_multiple: y to (..., h, w), u/v to (..., ceil(h/2), ceil(w/2))."""
    if y.shape[-2] < h or y.shape[-1] < w or h < 1 or w < 1:
        raise EdgecodecError(f"crop: cannot crop {tuple(y.shape)} to {h}x{w}")
    ch, cw = (h + 1) // 2, (w + 1) // 2
    return y[..., :h, :w], u[..., :ch, :cw], v[..., :ch, :cw]
