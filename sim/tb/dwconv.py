"""cocotb bench of hw.rtl.dwconv.DWConvResidual (Verilog toplevel `dwconv`).

Parameters come from `sim.runner.bench_params()`:

- ``npz``: path of an ``.npz`` with ``x`` (frames, C, H, W) input codes and ``expected`` (frames, C, H, W)
  reference codes (`quant.cell.golden_dwconv.dwconv_reference`, computed by the caller);
- ``act_bits``: A;
- ``seed``: seed of the stall pattern;
- ``idle``: probability that the source inserts an idle cycle before a beat;
- ``backpressure``: probability that the sink holds ``o.ready`` low in a cycle;
- ``expect_cycles`` (optional): cycles per frame the block must reach when ``idle`` and ``backpressure``
  are 0 (the figure of the `hw.rtl.dwconv` docstring);
- ``reset_after`` (optional): input beats of the first frame after which `test_reset_midstream` resets.

Every output code is compared with the reference; a mismatch fails with frame, pixel and channel.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from quant.fixed_point import pack_codes, unpack_codes
from sim.runner import bench_params
from sim.tb.common import reset_stream_dut

MAX_REPORTED = 12


class TB:
    """Clock, reset, a source with idle cycles and a sink with backpressure, all in one per-cycle loop."""

    def __init__(self, dut):
        self.dut = dut
        self.params = bench_params()
        data = np.load(self.params["npz"])
        self.x = data["x"].astype(np.int64)
        self.expected = data["expected"].astype(np.int64)
        self.frames, self.channels, self.height, self.width = self.x.shape
        self.bits = int(self.params["act_bits"])
        self.idle = float(self.params.get("idle", 0.0))
        self.backpressure = float(self.params.get("backpressure", 0.0))
        self.rng = random.Random(int(self.params.get("seed", 0)))
        self.log = dut._log
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.i__valid.value = 0
        dut.i__payload.value = 0
        dut.o__ready.value = 0

    async def reset(self, cycles: int = 3) -> None:
        await reset_stream_dut(self.dut, cycles)

    def beats(self, frames: range) -> list[int]:
        return [pack_codes(self.x[f, :, y, xx], self.bits)
                for f in frames for y in range(self.height) for xx in range(self.width)]

    async def stream(self, beats: list[int], outputs: int, max_cycles: int) -> tuple[list[int], list[int]]:
        """Drive `beats` and collect `outputs` output words; returns them and the cycle of each output."""
        dut = self.dut
        got, when = [], []
        sent, cycle, presented = 0, 0, False
        while len(got) < outputs:
            if cycle >= max_cycles:
                raise AssertionError(f"timeout after {cycle} cycles: {len(got)} of {outputs} outputs, "
                                     f"{sent} of {len(beats)} inputs accepted")
            # Source: hold a presented beat until it is taken (AXI rule), otherwise maybe idle.
            if not presented and sent < len(beats) and self.rng.random() >= self.idle:
                presented = True
                dut.i__payload.value = beats[sent]
            dut.i__valid.value = int(presented)
            ready = int(self.rng.random() >= self.backpressure)
            dut.o__ready.value = ready
            await ReadOnly()
            if presented and int(dut.i__ready.value):
                sent += 1
                presented = False
            if ready and int(dut.o__valid.value):
                got.append(int(dut.o__payload.value))
                when.append(cycle)
            await RisingEdge(dut.clk)
            cycle += 1
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        return got, when

    def check(self, got: list[int], frames: range, what: str) -> None:
        pixels = self.height * self.width
        bad = []
        for n, word in enumerate(got):
            f, rest = divmod(n, pixels)
            y, xx = divmod(rest, self.width)
            codes = unpack_codes(word, self.channels, self.bits)
            for c, code in enumerate(codes):
                want = int(self.expected[frames[f], c, y, xx])
                if code != want:
                    bad.append(f"frame {f} pixel (y={y}, x={xx}) channel {c}: got {code}, expected {want}")
        if bad:
            shown = "\n  ".join(bad[:MAX_REPORTED])
            more = f"\n  ... and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
            raise AssertionError(f"{what}: {len(bad)} mismatching output codes of "
                                 f"{len(got) * self.channels}:\n  {shown}{more}")
        self.log.info("%s: %d pixels x %d channels bit-exact", what, len(got), self.channels)

    def cycles_per_frame(self, when: list[int]) -> list[int]:
        pixels = self.height * self.width
        ends = [when[(f + 1) * pixels - 1] for f in range(len(when) // pixels)]
        return [b - a for a, b in zip(ends, ends[1:])]

    def max_cycles(self, frames: int) -> int:
        # Generous: every cycle may stall at idle/backpressure; the padding and C/P groups are at most C cycles.
        k_pad = 8
        per_frame = (self.height + k_pad) * (self.width + k_pad) * (self.channels + 1)
        stall = 1.0 / max(1e-3, (1 - self.idle) * (1 - self.backpressure))
        return int(frames * per_frame * stall * 4) + 200


@cocotb.test()
async def test_stream(dut):
    """All frames back to back under idle cycles and backpressure; every code checked; cycles per frame."""
    tb = TB(dut)
    await tb.reset()
    frames = range(tb.frames)
    got, when = await tb.stream(tb.beats(frames), tb.frames * tb.height * tb.width, tb.max_cycles(tb.frames))
    tb.check(got, frames, "stream")
    per_frame = tb.cycles_per_frame(when)
    if per_frame:
        tb.log.info("dw cycles per frame: %s (mean %.1f; C=%d H=%d W=%d idle=%.2f backpressure=%.2f)",
                    per_frame, sum(per_frame) / len(per_frame), tb.channels, tb.height, tb.width,
                    tb.idle, tb.backpressure)
    expect = tb.params.get("expect_cycles")
    if expect is not None and tb.idle == 0 and tb.backpressure == 0:
        assert per_frame and all(n == int(expect) for n in per_frame), \
            f"cycles per frame {per_frame}, expected {expect}"


@cocotb.test()
async def test_reset_midstream(dut):
    """Reset in the middle of a frame (with an output pending), then fresh frames must be exact."""
    tb = TB(dut)
    await tb.reset()
    pixels = tb.height * tb.width
    cut = int(tb.params.get("reset_after", pixels // 2 + 1))
    # Feed part of a frame with the sink stalled so the block holds state (window, output) when reset hits.
    beats = tb.beats(range(1))[:cut]
    dut.o__ready.value = 0
    sent = 0
    for _ in range(4 * cut + 50):
        if sent >= len(beats):
            break
        dut.i__valid.value = 1
        dut.i__payload.value = beats[sent]
        await ReadOnly()
        fire = int(dut.i__ready.value)
        await RisingEdge(dut.clk)
        sent += fire
        dut.o__ready.value = int(tb.rng.random() >= 0.5)
    dut.i__valid.value = 0
    await RisingEdge(dut.clk)
    tb.log.info("reset after %d of %d input beats of a frame", sent, pixels)
    dut.rst.value = 1
    dut.i__valid.value = 0
    await ClockCycles(dut.clk, 3)
    await ReadOnly()
    assert int(dut.o__valid.value) == 0, "o.valid must be low during reset"
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    frames = range(1, tb.frames) if tb.frames > 1 else range(1)
    got, _ = await tb.stream(tb.beats(frames), len(frames) * pixels, tb.max_cycles(len(frames)))
    tb.check(got, frames, "after reset")
