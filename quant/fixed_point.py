"""Integer primitives of the numeric contract (docs/numerics.md), in numpy int64.

Everything here is exact integer arithmetic; the Brevitas QAT model and the Amaranth RTL implement the
same functions (round half to even, saturation, power-of-two scales, LUT activations).
"""

from __future__ import annotations

import math

import numpy as np


def srange(bits: int) -> tuple[int, int]:
    """Range of a signed two's-complement code of `bits` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def urange(bits: int) -> tuple[int, int]:
    """Range of an unsigned code of `bits` bits."""
    return 0, (1 << bits) - 1


def shift_round(acc, shift: int):
    """acc * 2^-shift rounded half to even (shift > 0), or acc * 2^-shift exactly (shift <= 0).

    This is the one rounding mode of the contract: it equals torch.round (Brevitas' RoundSte) applied to a
    value that float64 holds exactly.
    """
    acc = np.asarray(acc, dtype=np.int64)
    if shift <= 0:
        return acc << (-shift)
    q = acc >> shift  # arithmetic shift = floor
    rem = acc - (q << shift)
    half = np.int64(1) << (shift - 1)
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    return q + up.astype(np.int64)


def requant(acc, shift: int, lo: int, hi: int):
    """Requantize: round-half-even shift, then saturate to [lo, hi]."""
    return np.clip(shift_round(acc, shift), lo, hi)


def align(acc, frac_from: int, frac_to: int):
    """Exact move of an accumulator to a finer grid (frac_to >= frac_from) by a left shift."""
    if frac_to < frac_from:
        raise ValueError(f"align needs frac_to >= frac_from, got {frac_from} -> {frac_to}")
    return np.asarray(acc, dtype=np.int64) << (frac_to - frac_from)


def lut_grid(lut_bits: int, lut_frac: int) -> np.ndarray:
    """Real input values of every LUT address, address order = two's-complement code as unsigned."""
    lo, hi = srange(lut_bits)
    codes = np.arange(1 << lut_bits, dtype=np.int64)
    codes = np.where(codes > hi, codes - (1 << lut_bits), codes)
    return codes.astype(np.float64) * 2.0 ** (-lut_frac)


def sigmoid_lut(lut_bits: int, lut_frac: int, out_bits: int) -> np.ndarray:
    """sigma(v) as unsigned codes with scale 2^-out_bits, indexed by the LUT address."""
    v = lut_grid(lut_bits, lut_frac)
    y = 1.0 / (1.0 + np.exp(-v))
    return np.clip(np.round(y * 2.0 ** out_bits), *urange(out_bits)).astype(np.int64)


def tanh_lut(lut_bits: int, lut_frac: int, out_bits: int) -> np.ndarray:
    """tanh(v) as signed codes with scale 2^-(out_bits-1), indexed by the LUT address."""
    v = lut_grid(lut_bits, lut_frac)
    y = np.tanh(v)
    return np.clip(np.round(y * 2.0 ** (out_bits - 1)), *srange(out_bits)).astype(np.int64)


def lut_address(code, lut_bits: int):
    """LUT address of a signed LUT-input code (its two's-complement bit pattern)."""
    return np.asarray(code, dtype=np.int64) & ((1 << lut_bits) - 1)


def mean_reciprocal(count: int, acc_bits: int = 16) -> tuple[int, int]:
    """Fixed-point reciprocal (R, K) for the SE average pool: mean = shift_round(sum * R, K).

    R = round(2^K / count) with K = ceil(log2(count)) + acc_bits. For a power-of-two count R is a power of two,
    so the product-and-shift is exactly a shift of the sum by log2(count).
    """
    if count < 1:
        raise ValueError("mean_reciprocal needs count >= 1")
    k = max(0, math.ceil(math.log2(count))) + acc_bits
    r = int(round(2 ** k / count))
    return r, k


def frac_for_range(max_abs: float, bits: int, signed: bool = True) -> int:
    """Fractional bits of the power-of-two scale that covers |v| <= max_abs without saturation."""
    mag_bits = bits - 1 if signed else bits
    if max_abs <= 0:
        return mag_bits
    return mag_bits - math.ceil(math.log2(max_abs))


def bits_for(lo: int, hi: int) -> int:
    """Width of the smallest signed two's-complement word that holds [lo, hi]."""
    n = 1
    while not (-(1 << (n - 1)) <= lo and hi <= (1 << (n - 1)) - 1):
        n += 1
    return n


def pack_codes(codes, bits: int) -> int:
    """Codes into one word, code i at bits [i*bits, (i+1)*bits) in two's complement (a pixel beat, a ROM word)."""
    word = 0
    for i, v in enumerate(codes):
        word |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return word


def unpack_codes(word: int, count: int, bits: int, signed: bool = True) -> list[int]:
    """Inverse of pack_codes."""
    mask = (1 << bits) - 1
    vals = [(int(word) >> (i * bits)) & mask for i in range(count)]
    if signed:
        vals = [v - (1 << bits) if v >> (bits - 1) else v for v in vals]
    return vals


def pack_pixels(codes: np.ndarray, bits: int) -> np.ndarray:
    """(T, C, H, W) signed codes -> (T, H*W) object array of pixel words (channel c at bits [c*bits, ...))."""
    t, c, h, w = codes.shape
    flat = codes.reshape(t, c, h * w).transpose(0, 2, 1)
    out = np.empty((t, h * w), dtype=object)
    for ti in range(t):
        for pi in range(h * w):
            out[ti, pi] = pack_codes(flat[ti, pi], bits)
    return out


def unpack_pixels(words: np.ndarray, channels: int, height: int, width: int, bits: int) -> np.ndarray:
    """Inverse of pack_pixels: (T, H*W) words -> (T, C, H, W) signed codes."""
    codes = np.array([[unpack_codes(v, channels, bits) for v in step] for step in words], dtype=np.int64)
    return codes.transpose(0, 2, 1).reshape(len(words), channels, height, width)
