"""cocotb bench of hw.engine.warp_unit.WarpUnit (Verilog toplevel `warp_unit`).

Parameters (`sim.runner.bench_params()`): ``npz`` (planes ``P{n}_ref`` (H, W) codes, ``P{n}_mv`` (H/B, W/B, 2)
block vectors, ``P{n}_expected`` (H, W), ``P{n}_chroma``), ``pixel_bits``, ``seed``, ``idle`` (probability the
vector source and the memory skip a cycle), ``backpressure`` (probability `req` or `o` is not ready), ``latency``
(memory response latency, cycles), ``cycles_json``.

The memory model answers every request from the reference plane after `latency` cycles (more under idle); every
output code is compared with `warp_int`'s and a mismatch names the plane, pixel and block.
"""

from __future__ import annotations

import json
import random
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from sim.runner import bench_params

MAX_REPORTED = 12
MASK16 = (1 << 16) - 1


@cocotb.test()
async def test_planes(dut):
    p = bench_params()
    data = np.load(p["npz"])
    rng = random.Random(int(p.get("seed", 0)))
    idle, bp, latency = float(p.get("idle", 0)), float(p.get("backpressure", 0)), int(p.get("latency", 1))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for s in ("mv__valid", "rsp__valid", "req__ready", "o__ready", "start"):
        getattr(dut, s).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    planes = len([k for k in data.files if k.endswith("_ref")])
    all_cycles = []
    for n in range(planes):
        ref, mv, want = data[f"P{n}_ref"], data[f"P{n}_mv"], data[f"P{n}_expected"]
        chroma = bool(data[f"P{n}_chroma"])
        b = 8 if chroma else 16
        h, w = ref.shape
        mvs = [(int(mv[by, bx, 0]) & MASK16) | ((int(mv[by, bx, 1]) & MASK16) << 16)
               for by in range(h // b) for bx in range(w // b)]
        dut.height.value, dut.width.value, dut.chroma.value = h, w, int(chroma)
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        pending = deque()          # (cycle the answer is due, code)
        got, sent, shown, cycle, done = [], 0, False, 0, False
        rsp_shown = None
        while not done:
            if not shown and sent < len(mvs) and rng.random() >= idle:
                shown = True
                dut.mv__payload.value = mvs[sent]
            dut.mv__valid.value = int(shown)
            if rsp_shown is None and pending and pending[0][0] <= cycle and rng.random() >= idle:
                rsp_shown = pending.popleft()[1]
                dut.rsp__payload.value = rsp_shown
            dut.rsp__valid.value = int(rsp_shown is not None)
            req_ready = int(rng.random() >= bp)
            o_ready = int(rng.random() >= bp)
            dut.req__ready.value, dut.o__ready.value = req_ready, o_ready
            await ReadOnly()
            if shown and int(dut.mv__ready.value):
                sent, shown = sent + 1, False
            if rsp_shown is not None and int(dut.rsp__ready.value):
                rsp_shown = None
            if req_ready and int(dut.req__valid.value):
                word = int(dut.req__payload.value)
                x, y = word & MASK16, word >> 16
                assert 0 <= x < w and 0 <= y < h, f"plane {n}: request ({x}, {y}) outside the {w}x{h} plane"
                pending.append((cycle + latency, int(ref[y, x])))
            if o_ready and int(dut.o__valid.value):
                got.append(int(dut.o__payload.value))
            done = bool(int(dut.done.value))
            await RisingEdge(dut.clk)
            cycle += 1
            assert cycle < 100 * h * w + 1000, f"plane {n}: timeout, {len(got)} of {h * w} outputs"
        dut.mv__valid.value = dut.rsp__valid.value = 0
        assert len(got) == h * w, f"plane {n}: {len(got)} outputs, expected {h * w}"
        bad = []
        for i, code in enumerate(got):
            blk, r = divmod(i, b * b)
            by, bx = divmod(blk, w // b)
            y, x = by * b + r // b, bx * b + r % b
            if code != int(want[y, x]):
                bad.append(f"plane {n} pixel (y={y}, x={x}) block ({by}, {bx}): got {code}, expected {int(want[y, x])}")
        if bad:
            raise AssertionError(f"{len(bad)} mismatching codes:\n  " + "\n  ".join(bad[:MAX_REPORTED]))
        dut._log.info("plane %d: %dx%d %s bit-exact, %d cycles", n, w, h, "chroma" if chroma else "luma", cycle)
        all_cycles.append(cycle)
    if p.get("cycles_json"):
        with open(p["cycles_json"], "w") as f:
            json.dump(all_cycles, f)
