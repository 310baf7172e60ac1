"""Requantization in hardware: the round-half-even shift and saturation of docs/numerics.md.

These build combinational Amaranth expressions; `quant.fixed_point` is their integer reference.
"""

from __future__ import annotations

from amaranth.hdl import Const, Mux, Value, signed

from quant.fixed_point import pack_codes


def shift_round(acc: Value, shift: int) -> Value:
    """acc * 2^-shift, rounded half to even (shift > 0), or the exact left shift (shift <= 0)."""
    acc = acc.as_signed()
    if shift <= 0:
        return acc << (-shift)
    if len(acc) < shift + 2:
        # Sign-extend first: the remainder slice and q[0] need shift + 1 real bits.
        acc = acc + Const(0, signed(shift + 2))
    q = acc >> shift                         # arithmetic: floor
    rem = acc.as_unsigned()[:shift]          # acc - (q << shift), always in [0, 2^shift)
    half = 1 << (shift - 1)
    up = (rem > half) | ((rem == half) & q[0])
    return q + up


def saturate(value: Value, lo: int, hi: int) -> Value:
    """Clamp a signed value to [lo, hi]."""
    value = value.as_signed()
    shape = signed(max(lo.bit_length(), hi.bit_length()) + 1)
    return Mux(value < lo, Const(lo, shape), Mux(value > hi, Const(hi, shape), value))


def rom(values, bits: int, index: Value, signed_out: bool = True) -> Value:
    """Constant table lookup as a slice of one packed word.

    Not an `Array` of constants: Yosys writes that as an `always @*` case which Icarus 11 never evaluates
    while the index keeps its reset value.
    """
    word = Const(pack_codes(values, bits), len(values) * bits).word_select(index, bits)
    return word.as_signed() if signed_out else word


def requant(acc: Value, shift: int, lo: int, hi: int) -> Value:
    """clamp(round_half_even(acc * 2^-shift), lo, hi)."""
    return saturate(shift_round(acc, shift), lo, hi)
