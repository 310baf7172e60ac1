"""Seeded training of the proxy task (next-frame luma prediction) on real footage, with a progress bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from base.errors import EdgecodecError

from model.video import read_luma


class ClipSampler:
    """Random (clip, start, crop) windows of `seq_len` luma frames in [0, 1], from a seeded generator."""

    def __init__(self, clips: list[str | Path], seq_len: int, crop: int, seed: int):
        self.clips = []
        for path in clips:
            frames = read_luma(path)
            if frames.shape[0] < seq_len:
                raise EdgecodecError(f"{path}: {frames.shape[0]} frames, fewer than seq_len={seq_len}")
            if min(frames.shape[1:]) < crop:
                raise EdgecodecError(f"{path}: frames {frames.shape[2]}x{frames.shape[1]} smaller than crop={crop}")
            self.clips.append(torch.from_numpy(frames.astype(np.float32) / 255.0))
        self.seq_len, self.crop = seq_len, crop
        self.gen = torch.Generator().manual_seed(seed)

    def _int(self, high: int) -> int:
        return int(torch.randint(0, high, (1,), generator=self.gen))

    def batch(self, n: int) -> torch.Tensor:
        out = []
        for _ in range(n):
            clip = self.clips[self._int(len(self.clips))]
            t0 = self._int(clip.shape[0] - self.seq_len + 1)
            y0 = self._int(clip.shape[1] - self.crop + 1)
            x0 = self._int(clip.shape[2] - self.crop + 1)
            out.append(clip[t0:t0 + self.seq_len, y0:y0 + self.crop, x0:x0 + self.crop])
        return torch.stack(out)[:, :, None]  # (N, T, 1, H, W)


def cosine_lr(lr: float, step: int, steps: int) -> float:
    """Cosine decay from lr to lr / 20 over `steps`, a pure function of the step (so resuming is exact).
    Evaluated in float32 torch arithmetic: the shipped codec checkpoints were trained with exactly these values."""
    return lr * (0.05 + 0.95 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * step / max(steps, 1)))).item())


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)


def fit(model: nn.Module, sampler: ClipSampler, steps: int, batch: int, lr: float, desc: str,
        progress: bool = True) -> list[float]:
    """Adam on the next-frame MSE; returns the loss per step."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    losses = []
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress, dynamic_ncols=True)
    for _ in bar:
        frames = sampler.batch(batch)
        pred = model(frames)
        loss = nn.functional.mse_loss(pred, frames[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.5f}")
    model.eval()
    return losses


@torch.no_grad()
def evaluate(model: nn.Module, frames: torch.Tensor) -> dict:
    """Next-frame PSNR (luma, dB) of the model against the copy-previous-frame baseline on (1, T, 1, H, W)."""
    model.eval()
    pred = model(frames).clamp(0, 1)
    mse = float(nn.functional.mse_loss(pred, frames[:, 1:]))
    mse_copy = float(nn.functional.mse_loss(frames[:, :-1], frames[:, 1:]))
    return {"psnr_db": float(10 * np.log10(1 / max(mse, 1e-12))),
            "copy_psnr_db": float(10 * np.log10(1 / max(mse_copy, 1e-12)))}
