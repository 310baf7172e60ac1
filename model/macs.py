"""MAC and parameter counts per layer, from the modules and the feature-map size (used by every report)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from model.cell.ase_gru import ASEGRUCell


@dataclass(frozen=True)
class LayerCount:
    name: str
    macs: int          # multiply-accumulates of convolutions and fully connected layers
    elementwise: int   # element-wise products (SE scaling, r * U h, the update of eq. 4)
    params: int


def _conv_macs(conv: nn.Conv2d, h: int, w: int) -> int:
    k = conv.kernel_size[0] * conv.kernel_size[1]
    return conv.out_channels * (conv.in_channels // conv.groups) * k * h * w


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_cell(cell: ASEGRUCell, height: int, width: int) -> list[LayerCount]:
    """Per-block counts of one ASE-GRU cell step over an H x W feature map."""
    c, hw = cell.channels, height * width
    se = cell.se
    rows = [
        LayerCount("projector.dwconv", _conv_macs(cell.proj.conv, height, width), 0, _params(cell.proj)),
        LayerCount("se", se.fc1.in_features * se.fc1.out_features + se.fc2.in_features * se.fc2.out_features,
                   2 * c * hw, _params(se)),
    ]
    for g in cell.GATES:
        rows.append(LayerCount(f"gate.{g}", _conv_macs(cell.w[g], height, width) + _conv_macs(cell.u[g], height, width),
                               c * hw if g == "n" else 0, _params(cell.w[g]) + _params(cell.u[g])))
    rows.append(LayerCount("update", 0, 2 * c * hw, 0))
    return rows


def total(rows: list[LayerCount]) -> LayerCount:
    return LayerCount("total", sum(r.macs for r in rows), sum(r.elementwise for r in rows), sum(r.params for r in rows))
