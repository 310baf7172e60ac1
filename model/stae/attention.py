"""STAE semantic encoder (seed 001, section III-A): frame attention (eq. 6), spatial attention (eq. 7) and the
budgeted selections of frames and pixels. Clips are float tensors (N, F, C, H, W) (RGB, values in [0, 1)).

Selection rules (exact counts, ties): the alpha most important frames are kept - equal scores go to the earlier
frame - and returned in time order; in every kept frame exactly round(beta * H * W) pixels are kept - equal
scores go to the earlier pixel in raster order. The kept values are the input values themselves; in training
the attention maps get their gradient through a straight-through factor 1 + (m - m.detach()), which is
exactly 1 in the forward pass.
"""

from __future__ import annotations

import torch
from torch import nn

FRAME_BUDGETS = (1, 2, 4, 8, 16)
SPATIAL_BUDGETS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)


class FrameAttention(nn.Module):
    """M_FA = sigmoid(MLP(avgpool(X)) + MLP(maxpool(X))), one score per frame; pools over (C, H, W)."""

    def __init__(self, frames: int, reduction: int = 2):
        super().__init__()
        hidden = max(1, frames // reduction)
        self.frames = frames
        self.mlp = nn.Sequential(nn.Linear(frames, hidden), nn.ReLU(), nn.Linear(hidden, frames))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x.mean(dim=(2, 3, 4))) + self.mlp(x.amax(dim=(2, 3, 4)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


class SpatialAttention(nn.Module):
    """M_SA = sigmoid(conv3x3([mean_C(X'); max_C(X')])), one score per pixel of every kept frame."""

    def __init__(self, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        n, a, c, h, w = x.shape
        f = x.reshape(n * a, c, h, w)
        return self.conv(torch.cat([f.mean(dim=1, keepdim=True), f.amax(dim=1, keepdim=True)], dim=1)).reshape(n, a, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


def top_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest entries along the last axis; ties go to the lower index; result sorted."""
    n = scores.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"cannot keep {k} of {n}")
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices   # stable: ties keep index order
    return torch.sort(order[..., :k], dim=-1).values


def pixel_count(beta: float, height: int, width: int) -> int:
    return max(1, int(round(beta * height * width)))


def select_frames(x: torch.Tensor, m_fa: torch.Tensor, alpha: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(X' (N, alpha, C, H, W), kept frame indices (N, alpha), time order)."""
    idx = top_indices(m_fa.detach(), alpha)
    kept = torch.gather(x, 1, idx[:, :, None, None, None].expand(-1, -1, *x.shape[2:]))
    w = torch.gather(m_fa, 1, idx)
    return kept * (1 + (w - w.detach()))[:, :, None, None, None], idx


def select_pixels(x: torch.Tensor, m_sa: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(X'' zero-filled (N, A, C, H, W), mask (N, A, 1, H, W) with exactly round(beta H W) ones per frame)."""
    n, a, c, h, w = x.shape
    k = pixel_count(beta, h, w)
    flat = m_sa.reshape(n, a, h * w)
    idx = top_indices(flat.detach(), k)
    mask = torch.zeros_like(flat).scatter_(2, idx, 1.0).reshape(n, a, 1, h, w)
    ste = (1 + (m_sa - m_sa.detach()))[:, :, None]
    return x * mask * ste, mask
