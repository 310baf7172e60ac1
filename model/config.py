"""The `model` section: sizes of the ASE-GRU cell and of the proxy next-frame predictor."""

from __future__ import annotations

from dataclasses import dataclass

from base.errors import check_config as _check


@dataclass(frozen=True)
class ModelConfig:
    """Float model of the proxy task (next-frame prediction through stacked ASE-GRU cells).

    Parameters
    ----------
    channels : feature channels C of every ASE-GRU layer (input = hidden, seed eq. 3.1 scales both by sigma).
    layers : number of stacked ASE-GRU layers.
    se_reduction : SE reduction ratio r (C/r hidden units, must be >= 1).
    gate_kernel : kernel of the gate convolutions W, U (1 = per-pixel GRU, odd k for k x k).
    dw_kernel : kernel of the depth-wise residual projector (seed eq. 5, k = 3).
    downsample : spatial reduction of the feature extractor (power of two).
    """

    channels: int = 16
    layers: int = 2
    se_reduction: int = 4
    gate_kernel: int = 1
    dw_kernel: int = 3
    downsample: int = 8

    def validate(self) -> None:
        _check(self.channels >= 2, "model.channels must be >= 2")
        _check(self.layers >= 1, "model.layers must be >= 1")
        _check(self.se_reduction >= 1, "model.se_reduction must be >= 1")
        _check(self.channels // self.se_reduction >= 1,
               f"model.se_reduction={self.se_reduction} leaves C/r < 1 for channels={self.channels}")
        _check(self.channels % self.se_reduction == 0,
               f"model.se_reduction={self.se_reduction} must divide channels={self.channels}")
        _check(self.gate_kernel >= 1 and self.gate_kernel % 2 == 1, "model.gate_kernel must be odd and >= 1")
        _check(self.dw_kernel >= 1 and self.dw_kernel % 2 == 1, "model.dw_kernel must be odd and >= 1")
        _check(self.downsample in (1, 2, 4, 8, 16), "model.downsample must be one of 1, 2, 4, 8, 16")

    @property
    def se_hidden(self) -> int:
        return self.channels // self.se_reduction
