"""Proxy task that exercises the recurrence: predict frame t+1 (luma) from frames <= t.

encoder (strided convs) -> stacked ASE-GRU cells -> decoder (upsampling convs) -> residual on frame t.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from model.cell.ase_gru import ASEGRUStack


class NextFramePredictor(nn.Module):
    def __init__(self, channels: int = 16, layers: int = 2, reduction: int = 4, gate_kernel: int = 1,
                 dw_kernel: int = 3, downsample: int = 8):
        super().__init__()
        stages = int(math.log2(downsample))
        enc, ch = [], 1
        for i in range(stages):
            out = channels if i == stages - 1 else max(8, channels // 2)
            enc += [nn.Conv2d(ch, out, 3, stride=2, padding=1), nn.ReLU()]
            ch = out
        enc += [nn.Conv2d(ch, channels, 3, padding=1), nn.Hardtanh(-2.0, 2.0)]
        self.encoder = nn.Sequential(*enc)
        self.rnn = ASEGRUStack(channels, layers, reduction, gate_kernel, dw_kernel)
        dec, ch = [], channels
        for i in range(stages):
            out = max(8, channels // 2)
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, out, 3, padding=1), nn.ReLU()]
            ch = out
        head = nn.Conv2d(ch, 1, 3, padding=1)
        # Start at "repeat the previous frame": training learns a correction instead of first undoing noise.
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        dec += [head]
        self.decoder = nn.Sequential(*dec)

    def features(self, frame: torch.Tensor) -> torch.Tensor:
        """Cell-input features of one luma frame in [0, 1] (N, 1, H, W) -> (N, C, H/d, W/d)."""
        return self.encoder(frame - 0.5)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (N, T, 1, H, W) -> predictions of frames 1..T-1 (N, T-1, 1, H, W)."""
        preds, state = [], None
        for t in range(frames.shape[1] - 1):
            x = self.features(frames[:, t])
            if state is None:
                state = self.rnn.init_state(x)
            y, state = self.rnn(x, state)
            preds.append(frames[:, t] + self.decoder(y))
        return torch.stack(preds, dim=1)
