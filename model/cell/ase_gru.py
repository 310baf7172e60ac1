"""ASE-GRU cell, depth-wise residual projector and layer stack (seed 000, sections 3.1-3.3)."""

from __future__ import annotations

import torch
from torch import nn

from model.cell.se import SqueezeExcite


class DWResidualProjector(nn.Module):
    """x' = DWConv_k(x) + x (eq. 5), zero padding keeps the size."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"DWResidualProjector: kernel must be odd, got {kernel}")
        self.conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x


class ASEGRUCell(nn.Module):
    """Convolutional GRU whose input and hidden state are scaled per channel by SE(h_{t-1}) (eqs. 1-4).

    Parameters
    ----------
    channels : C; input and hidden channels are equal because sigma scales both.
    reduction : SE reduction ratio r.
    gate_kernel : kernel of W and U (1 = per pixel).
    dw_kernel : kernel of the depth-wise residual projector on the input.
    """

    GATES = ("z", "r", "n")

    def __init__(self, channels: int, reduction: int = 16, gate_kernel: int = 1, dw_kernel: int = 3):
        super().__init__()
        if gate_kernel < 1 or gate_kernel % 2 == 0:
            raise ValueError(f"ASEGRUCell: gate_kernel must be odd, got {gate_kernel}")
        self.channels = channels
        self.proj = DWResidualProjector(channels, dw_kernel)
        self.se = SqueezeExcite(channels, reduction)
        pad = gate_kernel // 2
        self.w = nn.ModuleDict({g: nn.Conv2d(channels, channels, gate_kernel, padding=pad) for g in self.GATES})
        self.u = nn.ModuleDict({g: nn.Conv2d(channels, channels, gate_kernel, padding=pad, bias=False)
                                for g in self.GATES})

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        xp = self.proj(x)
        s = self.se(h)[:, :, None, None]
        xt, ht = s * xp, s * h
        z = torch.sigmoid(self.w["z"](xt) + self.u["z"](ht))
        r = torch.sigmoid(self.w["r"](xt) + self.u["r"](ht))
        n = torch.tanh(self.w["n"](xt) + r * self.u["n"](ht))
        return (1 - z) * h + z * n


class ASEGRUStack(nn.Module):
    """Stacked cells; layer l+1 takes layer l's new hidden state as input."""

    def __init__(self, channels: int, layers: int, reduction: int, gate_kernel: int = 1, dw_kernel: int = 3):
        super().__init__()
        self.cells = nn.ModuleList(ASEGRUCell(channels, reduction, gate_kernel, dw_kernel) for _ in range(layers))

    def init_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.zeros_like(x) for _ in self.cells]

    def forward(self, x: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        new = []
        for cell, h in zip(self.cells, state):
            x = cell(x, h)
            new.append(x)
        return x, new
