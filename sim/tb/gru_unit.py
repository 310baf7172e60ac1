"""cocotb bench of hw.engine.gru_unit.GruUnit (Verilog toplevel `gru_unit`).

Parameters (`sim.runner.bench_params()`): ``npz`` with ``x`` (T, H*W*K) input words of each step, ``h0`` (H*W*K)
words of h before the first step, ``sums0`` (C,) its pool sums, ``expected`` (T, H*W*K) words of h_t and
``expected_sums`` (T, C); ``seed``, ``idle`` (probability the source skips a cycle), ``backpressure``
(probability `o` or `s_out` is not ready), ``cycles_json``.

As a memory would, one source sends the words in the order the engine reads them: x row 0, h row 0, x row 1,
h row 1, ...; h_{t-1} of each step is what the unit wrote in the step before, and its sums are what `s_out` gave.
Every word of h_t and every sum is compared; a mismatch names the step, pixel and channel.
"""

from __future__ import annotations

import json
import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.clock import Clock

from sim.runner import bench_params
from sim.tb.common import collect_stream, drive_stream

MASK32 = (1 << 32) - 1


@cocotb.test()
async def test_steps(dut):
    p = bench_params()
    d = np.load(p["npz"])
    rng = random.Random(int(p.get("seed", 0)))
    idle, bp = float(p.get("idle", 0)), float(p.get("backpressure", 0))
    xs, want, want_sums = d["x"], d["expected"], d["expected_sums"]
    height, width = int(d["height"]), int(d["width"])
    k = xs.shape[1] // (height * width)                 # words a pixel
    row = width * k
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for s in ("x__valid", "h__valid", "s_in__valid", "o__ready", "s_out__ready", "start"):
        getattr(dut, s).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    h_prev, sums = [int(v) for v in d["h0"]], [int(v) & MASK32 for v in d["sums0"]]
    errors, cycles = [], []
    for t in range(xs.shape[0]):
        await drive_stream(dut, sums, rng, idle, port="s_in")
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0

        async def source():
            for r in range(height):
                await drive_stream(dut, xs[t][r * row:(r + 1) * row], rng, idle, port="x")
                await drive_stream(dut, h_prev[r * row:(r + 1) * row], rng, idle, port="h")

        src = cocotb.start_soon(source())
        out, new_sums = [], []
        await collect_stream(dut, xs.shape[1], out, rng, bp, watchdog=100000, what="words of h_t")
        await src
        await collect_stream(dut, len(sums), new_sums, rng, bp, watchdog=100000, what="sums", port="s_out")
        cycles.append(int(dut.step_cycles.value))
        lanes = d["lanes"].item()
        bits = d["lane_bits"].item()
        for i, (g, e) in enumerate(zip(out, want[t])):
            if g != int(e):
                for j in range(lanes):
                    gj, ej = (g >> (j * bits)) & ((1 << bits) - 1), (int(e) >> (j * bits)) & ((1 << bits) - 1)
                    if gj != ej and len(errors) < 12:
                        pix, w = divmod(i, k)
                        errors.append(f"step {t} pixel (y={pix // width}, x={pix % width}) channel {w * lanes + j}: "
                                      f"rtl {gj} expected {ej}")
        for c, (g, e) in enumerate(zip(new_sums, want_sums[t])):
            if (g & MASK32) != (int(e) & MASK32) and len(errors) < 12:
                errors.append(f"step {t} pool sum of channel {c}: rtl {g & MASK32} expected {int(e) & MASK32}")
        h_prev, sums = out, [s & MASK32 for s in new_sums]
    if p.get("cycles_json"):
        with open(p["cycles_json"], "w") as f:
            json.dump(cycles, f)
    assert not errors, "GRU unit mismatches:\n" + "\n".join(errors)
