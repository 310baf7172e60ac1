"""Squeeze-excitation of the hidden state (seed 000, section 3.1)."""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """sigma_t = sigmoid(W2 ReLU(W1 avgpool(h_{t-1}) + b1) + b2), one scale per channel.

    Parameters
    ----------
    channels : C, the channels of h (and of x, which sigma also scales).
    reduction : r; the bottleneck has C // r units and must keep at least one.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        if channels // reduction < 1:
            raise ValueError(f"SqueezeExcite: channels={channels} // reduction={reduction} < 1")
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        m = h.mean(dim=(2, 3))
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(m))))
