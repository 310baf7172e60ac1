"""The `quant` section: fixed-point widths of the cell (docs/numerics.md)."""

from __future__ import annotations

from dataclasses import dataclass

from base.errors import check_config as _check


@dataclass(frozen=True)
class QuantConfig:
    """Fixed-point widths (docs/numerics.md).

    Parameters
    ----------
    act_bits : width A of activation codes (x, x', x~, h, p signed; sigma, z, r, SE hidden unsigned).
    weight_bits : width of weight codes (signed, per-tensor power-of-two scale).
    lut_bits : width L of the sigmoid/tanh LUT input code (2^L entries).
    lut_frac : fractional bits of the LUT input code (input range [-2^(L-1-f), 2^(L-1-f))).
    bias_bits : width of bias codes (scale = input scale x weight scale).
    """

    act_bits: int = 8
    weight_bits: int = 8
    lut_bits: int = 8
    lut_frac: int = 4
    bias_bits: int = 24

    def validate(self) -> None:
        _check(2 <= self.act_bits <= 12, "quant.act_bits must be in [2, 12]")
        _check(2 <= self.weight_bits <= 12, "quant.weight_bits must be in [2, 12]")
        _check(4 <= self.lut_bits <= 12, "quant.lut_bits must be in [4, 12]")
        _check(0 <= self.lut_frac <= self.lut_bits - 1, "quant.lut_frac must be in [0, lut_bits - 1]")
        _check(8 <= self.bias_bits <= 32, "quant.bias_bits must be in [8, 32]")
