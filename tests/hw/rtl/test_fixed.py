"""hw.rtl.fixed (the RTL requantizer and constant tables) against quant.fixed_point, in Amaranth's simulator."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.rtl.fixed import requant, rom
from quant import fixed_point as fp


def _simulate(build, values):
    """Drive `inp` with each value, read `out` combinationally; returns the outputs."""
    m, inp, out = build()
    sim = Simulator(m)
    got = []

    async def tb(ctx):
        for v in values:
            ctx.set(inp, int(v))
            got.append(ctx.get(out))

    sim.add_testbench(tb)
    sim.run()
    return np.array(got, dtype=np.int64)


@pytest.mark.parametrize("acc_bits, shift, out_bits", [
    (18, 5, 8), (18, 1, 8), (12, 0, 8), (10, -2, 8),   # ordinary, minimal, none, left shift
    (18, 17, 8), (18, 18, 8), (18, 24, 8),              # shift at and beyond the accumulator width
    (30, 13, 6),
])
def test_requant_matches_reference(acc_bits, shift, out_bits):
    lo, hi = fp.srange(out_bits)

    def build():
        m = Module()
        inp = Signal(signed(acc_bits))
        out = Signal(signed(out_bits))
        m.d.comb += out.eq(requant(inp, shift, lo, hi))
        return m, inp, out

    rng = np.random.default_rng(acc_bits * 100 + shift)
    amin, amax = fp.srange(acc_bits)
    values = list(rng.integers(amin, amax + 1, size=300)) + [amin, amax, 0, -1, 1]
    if shift > 0:  # exact halves, both parities, both signs
        half = 1 << (shift - 1)
        values += [v for q in (-3, -2, -1, 0, 1, 2) for v in (q * (1 << shift) + half,) if amin <= v <= amax]
    got = _simulate(build, values)
    assert np.array_equal(got, fp.requant(np.array(values, dtype=np.int64), shift, lo, hi))


def test_rom_reads_every_entry():
    table = [5, -3, 0, 7, -8, 1]

    def build():
        m = Module()
        idx = Signal(unsigned(3))
        out = Signal(signed(4))
        m.d.comb += out.eq(rom(table, 4, idx))
        return m, idx, out

    assert list(_simulate(build, range(len(table)))) == table
