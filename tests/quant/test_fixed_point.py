"""quant.fixed_point: the integer primitives of docs/numerics.md (rounding, saturation, LUTs, pool reciprocal)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from quant import fixed_point as fp


def _rhe(num: int, den: int) -> int:
    """Exact round half to even of num / den (Python's round on a Fraction is banker's rounding)."""
    return round(Fraction(int(num), int(den)))


# ---- shift_round / requant / align ------------------------------------------------------------------------------

@pytest.mark.parametrize("shift", [1, 2, 3, 7, 12, 20, 33])
def test_shift_round_is_round_half_even(shift):
    rng = np.random.default_rng(shift)
    big = rng.integers(-(1 << 60), 1 << 60, size=2000, dtype=np.int64)
    small = rng.integers(-(1 << 12), 1 << 12, size=2000, dtype=np.int64)
    k = rng.integers(-(1 << 20), 1 << 20, size=500, dtype=np.int64)
    halves = (2 * k + 1) << (shift - 1)                    # exact ties, odd and even quotients, both signs
    edges = np.array([0, 1, -1, (1 << shift) - 1, -(1 << shift) + 1, 1 << (shift - 1), -(1 << (shift - 1)),
                      (1 << 62) - 1, -(1 << 62)], dtype=np.int64)
    acc = np.concatenate([big, small, halves, edges])
    got = fp.shift_round(acc, shift)
    assert got.dtype == np.int64 and got.shape == acc.shape
    assert got.tolist() == [_rhe(a, 1 << shift) for a in acc.tolist()]
    # the same as numpy's round-half-even wherever float64 holds acc exactly (|acc| < 2^53)
    exact = np.abs(acc) < (1 << 53)
    np.testing.assert_array_equal(got[exact], np.round(acc[exact] / 2.0 ** shift).astype(np.int64))
    # ties really go to the even neighbour
    tie = fp.shift_round(halves, shift)
    assert (tie % 2 == 0).all()
    assert (np.abs(tie * (1 << shift) - halves) == 1 << (shift - 1)).all()


def test_shift_round_known_values():
    assert fp.shift_round(np.array([1, 3, 5, -1, -3, -5, 2, -2]), 1).tolist() == [0, 2, 2, 0, -2, -2, 1, -1]
    assert fp.shift_round(np.array([6, 10, -6, -10, 7, -7]), 2).tolist() == [2, 2, -2, -2, 2, -2]
    assert int(fp.shift_round(5, 1)) == 2                                   # scalars work too


@pytest.mark.parametrize("shift", [0, -1, -5, -20])
def test_shift_round_left_shift_is_exact(shift):
    rng = np.random.default_rng(-shift)
    acc = rng.integers(-(1 << 40), 1 << 40, size=1000, dtype=np.int64)
    got = fp.shift_round(acc, shift)
    assert got.tolist() == [a * (1 << -shift) for a in acc.tolist()]


def test_requant_saturates():
    lo, hi = fp.srange(8)
    assert (lo, hi) == (-128, 127) and fp.urange(8) == (0, 255) and fp.srange(6) == (-32, 31)
    acc = np.array([-(1 << 40), -129 * 16, -128 * 16 - 8, -128 * 16 - 9, 0, 127 * 16 + 7, 127 * 16 + 8,
                    127 * 16 + 9, 1 << 40])
    got = fp.requant(acc, 4, lo, hi)
    assert got.tolist() == [-128, -128, -128, -128, 0, 127, 127, 127, 127]
    # unsigned range: ReLU-like clamp of negatives, saturation at 2^A - 1
    got = fp.requant(np.array([-100, 0, 254 * 4, 256 * 4, 10 ** 9]), 2, *fp.urange(8))
    assert got.tolist() == [0, 0, 254, 255, 255]
    # left shift then saturation
    assert fp.requant(np.array([3, 40, -40, -16]), -2, lo, hi).tolist() == [12, 127, -128, -64]
    rng = np.random.default_rng(0)
    acc = rng.integers(-(1 << 30), 1 << 30, size=5000)
    got = fp.requant(acc, 9, lo, hi)
    assert got.min() == lo and got.max() == hi
    np.testing.assert_array_equal(got, np.clip(fp.shift_round(acc, 9), lo, hi))


def test_align_and_bits_for():
    assert fp.align(np.array([3, -5]), 4, 7).tolist() == [24, -40]
    assert fp.align(np.array([3]), 4, 4).tolist() == [3]
    with pytest.raises(ValueError, match="frac_to >= frac_from"):
        fp.align(np.array([1]), 5, 4)
    assert fp.bits_for(-128, 127) == 8 and fp.bits_for(-129, 0) == 9 and fp.bits_for(0, 128) == 9
    assert fp.bits_for(0, 0) == 1 and fp.bits_for(-1, 0) == 1 and fp.bits_for(0, 1) == 2
    for lo, hi in [(-1000, 1000), (-(1 << 40), 5), (0, (1 << 33) - 1)]:
        n = fp.bits_for(lo, hi)
        assert fp.srange(n)[0] <= lo and hi <= fp.srange(n)[1]
        assert not (fp.srange(n - 1)[0] <= lo and hi <= fp.srange(n - 1)[1])


# ---- LUTs ------------------------------------------------------------------------------------------------------

def _by_input(table: np.ndarray, lut_bits: int) -> np.ndarray:
    """Table entries in increasing input order (address = two's-complement pattern of the input code)."""
    codes = np.arange(-(1 << (lut_bits - 1)), 1 << (lut_bits - 1))
    return table[fp.lut_address(codes, lut_bits)]


@pytest.mark.parametrize("lut_bits, lut_frac, out_bits", [(8, 4, 8), (8, 4, 6), (6, 2, 8), (10, 6, 10), (4, 0, 4)])
def test_sigmoid_lut(lut_bits, lut_frac, out_bits):
    t = fp.sigmoid_lut(lut_bits, lut_frac, out_bits)
    assert t.shape == (1 << lut_bits,) and t.dtype == np.int64
    assert t.min() >= 0 and t.max() <= (1 << out_bits) - 1
    ordered = _by_input(t, lut_bits)
    assert (np.diff(ordered) >= 0).all(), "sigmoid LUT must be monotonic in its input"
    assert t[0] == 1 << (out_bits - 1)                               # sigmoid(0) = 1/2
    grid = fp.lut_grid(lut_bits, lut_frac)
    assert grid[0] == 0 and grid[(1 << (lut_bits - 1))] == -(2.0 ** (lut_bits - 1 - lut_frac))
    ref = np.clip(np.round(2.0 ** out_bits / (1 + np.exp(-grid))), 0, (1 << out_bits) - 1)
    np.testing.assert_array_equal(t, ref)
    # symmetry sigma(-v) = 1 - sigma(v), up to one code (the top code 2^A is saturated)
    codes = np.arange(1, 1 << (lut_bits - 1))
    pos, neg = t[fp.lut_address(codes, lut_bits)], t[fp.lut_address(-codes, lut_bits)]
    assert (np.abs(pos + neg - (1 << out_bits)) <= 1).all()


@pytest.mark.parametrize("lut_bits, lut_frac, out_bits", [(8, 4, 8), (8, 4, 6), (6, 2, 8), (10, 6, 10), (4, 0, 4)])
def test_tanh_lut(lut_bits, lut_frac, out_bits):
    t = fp.tanh_lut(lut_bits, lut_frac, out_bits)
    lo, hi = fp.srange(out_bits)
    assert t.shape == (1 << lut_bits,) and t.dtype == np.int64
    assert t.min() >= lo and t.max() <= hi
    ordered = _by_input(t, lut_bits)
    assert (np.diff(ordered) >= 0).all(), "tanh LUT must be monotonic in its input"
    assert t[0] == 0
    codes = np.arange(1, 1 << (lut_bits - 1))
    pos, neg = t[fp.lut_address(codes, lut_bits)], t[fp.lut_address(-codes, lut_bits)]
    # odd function: exact where +v does not saturate at 2^(A-1) - 1 (round half even is symmetric)
    free = pos < hi
    np.testing.assert_array_equal(neg[free], -pos[free])
    assert (neg[~free] >= lo).all()
    if lut_bits - 1 - lut_frac >= 3:                                # input range reaches |v| >= 4: saturated ends
        assert ordered[0] == lo and ordered[-1] == hi


def test_lut_address_is_twos_complement():
    assert fp.lut_address(np.array([0, 1, 127, -128, -1, -2]), 8).tolist() == [0, 1, 127, 128, 255, 254]
    assert fp.lut_address(np.array([-8, 7]), 4).tolist() == [8, 7]


# ---- SE pool reciprocal ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 4, 16, 64, 256, 1024, 4096])
def test_mean_reciprocal_power_of_two_is_exact(n):
    r, k = fp.mean_reciprocal(n)
    assert k == int(math.log2(n)) + 16
    assert r * n == 1 << k                                             # R is an exact power of two
    rng = np.random.default_rng(n)
    amax = 1 << 11                                                      # |h| <= 2^(A-1) with A up to 12
    sums = np.concatenate([rng.integers(-amax * n, amax * n + 1, size=3000),
                           (2 * rng.integers(-amax, amax, size=500) + 1) * n // 2 if n > 1 else np.array([0]),
                           np.array([0, n // 2, -(n // 2), amax * n, -amax * n])])
    got = fp.shift_round(sums * r, k)
    assert got.tolist() == [_rhe(s, n) for s in sums.tolist()]
    np.testing.assert_array_equal(got, fp.shift_round(sums, int(math.log2(n))))


@pytest.mark.parametrize("n", [3, 5, 6, 7, 12, 20, 35, 96, 240, 1000, 15360])
def test_mean_reciprocal_other_counts_within_one_code(n):
    r, k = fp.mean_reciprocal(n)
    assert k == math.ceil(math.log2(n)) + 16 and r == round(2 ** k / n)
    rng = np.random.default_rng(n)
    amax = 1 << 7
    sums = np.concatenate([rng.integers(-amax * n, amax * n + 1, size=4000), np.array([0, amax * n, -amax * n])])
    got = fp.shift_round(sums * r, k)
    ref = np.array([_rhe(s, n) for s in sums.tolist()])
    assert np.abs(got - ref).max() <= 1
    # |sum * R / 2^K - sum / n| <= |sum| / 2^(K+1) <= 2^-10 here, while a non-tie sum / n is at least 1/(2n) from
    # x.5: so for n < 512 the only misses are exact ties of sum / n (R rounds 2^K / n, so a tie can fall either way)
    miss = got != ref
    if n < 512:
        assert ((2 * sums[miss]) % n == 0).all(), sums[miss][:10]
    assert miss.mean() < 0.1
    # means of a constant frame are exact: the reciprocal error is far below half a code
    for v in (-128, -3, 0, 1, 127):
        assert int(fp.shift_round(np.int64(v * n * r), k)) == v


def test_mean_reciprocal_rejects_empty():
    with pytest.raises(ValueError, match="count >= 1"):
        fp.mean_reciprocal(0)


# ---- calibration fractional bits --------------------------------------------------------------------------------

@pytest.mark.parametrize("bits, signed", [(8, True), (6, True), (8, False), (4, False)])
def test_frac_for_range(bits, signed):
    mag = bits - 1 if signed else bits
    assert fp.frac_for_range(1.0, 8) == 7 and fp.frac_for_range(0.9, 8) == 7 and fp.frac_for_range(1.01, 8) == 6
    assert fp.frac_for_range(2.0, 8) == 6 and fp.frac_for_range(0.2, 8) == 9 and fp.frac_for_range(100.0, 8) == 0
    assert fp.frac_for_range(1.0, 8, signed=False) == 8 and fp.frac_for_range(300.0, 8, signed=False) == -1
    assert fp.frac_for_range(0.0, bits, signed) == mag and fp.frac_for_range(-1.0, bits, signed) == mag
    rng = np.random.default_rng(bits)
    for v in np.exp(rng.uniform(-12, 12, size=500)):
        f = fp.frac_for_range(float(v), bits, signed)
        # the code range 2^(mag - f) reaches max_abs, half of it does not: the finest power-of-two scale
        assert v <= 2.0 ** (mag - f)
        assert v > 2.0 ** (mag - f - 1)
    # Note: at an exact power of two the positive end saturates by one code (1.0 at f = 7 -> 127/128): that is the
    # contract's formula f = (bits-1) - ceil(log2 max|v|), so it is pinned here rather than called a bug.
    assert fp.requant(np.array([128]), 0, *fp.srange(8)).tolist() == [127]
