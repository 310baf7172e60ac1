"""Brevitas quantizers of the contract: power-of-two scales, constant for activations (calibrated on real
frames), max-based power-of-two for weights, bias scale = input scale x weight scale."""

from __future__ import annotations

from functools import lru_cache

from brevitas.inject.enum import ScalingImplType
from brevitas.quant import (Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int32Bias,
                            Uint8ActPerTensorFixedPoint)


@lru_cache(maxsize=None)
def act_quant(bits: int, frac: int, signed: bool = True):
    """Constant power-of-two activation quantizer: codes of `bits` bits, scale 2^-frac, saturating."""
    base = Int8ActPerTensorFixedPoint if signed else Uint8ActPerTensorFixedPoint
    threshold = 2.0 ** ((bits - 1 if signed else bits) - frac)
    name = f"Act{'S' if signed else 'U'}{bits}F{frac}".replace("-", "m")
    return type(name, (base,), dict(bit_width=bits, scaling_impl_type=ScalingImplType.CONST,
                                    scaling_const=threshold, max_val=threshold,
                                    min_val=-threshold if signed else 0.0))


@lru_cache(maxsize=None)
def weight_quant(bits: int):
    """Per-tensor power-of-two weight quantizer (scale from the max |w|, rounded up to a power of two)."""
    return type(f"WeightS{bits}PoT", (Int8WeightPerTensorFixedPoint,), dict(bit_width=bits))


@lru_cache(maxsize=None)
def bias_quant(bits: int):
    """Bias codes of `bits` bits on the accumulator grid (input scale x weight scale)."""
    return type(f"BiasS{bits}", (Int32Bias,), dict(bit_width=bits))
