"""cocotb bench of the ASE-GRU cell RTL (GRUDatapath or CellTop: same ports i, o, step_cycles, step_count).

Parameters (sim.runner.bench_params): `data` = .npz with `inputs` (T, P) and `expected` (T, P) packed pixel
words (object arrays of Python ints), `result` = JSON path written with the comparison, `idle` and
`backpressure` probabilities, `seed`, `reset_mid` (bool: reset in mid-stream, then rerun from h = 0),
`max_report` mismatches to list. Every output code is compared; a mismatch fails the test.
"""

from __future__ import annotations

import json
import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from sim.runner import bench_params
from sim.tb.common import collect_stream, compare_pixels, drive_stream, reset_stream_dut


class TB:
    def __init__(self, dut, prm: dict):
        self.dut, self.prm = dut, prm
        self.rng = random.Random(prm.get("seed", 0))
        d = np.load(prm["data"], allow_pickle=True)
        self.inputs, self.expected = d["inputs"], d["expected"]
        self.channels, self.bits = int(d["channels"]), int(d["bits"])
        self.stop = False

    async def reset(self, cycles: int = 3) -> None:
        await reset_stream_dut(self.dut, cycles)

    async def source(self, beats):
        await drive_stream(self.dut, beats, self.rng, self.prm.get("idle", 0.0), lambda: self.stop)

    async def sink(self, count: int, out: list):
        await collect_stream(self.dut, count, out, self.rng, self.prm.get("backpressure", 0.0),
                             self.prm.get("watchdog", 200000), lambda: self.stop, "pixels")

    async def run_sequence(self, steps: int) -> tuple[list, list]:
        beats = [w for t in range(steps) for w in self.inputs[t]]
        out: list = []
        cycles = []
        watcher_done = False

        async def watch():
            last = int(self.dut.step_count.value)
            while not watcher_done:
                await RisingEdge(self.dut.clk)
                now = int(self.dut.step_count.value)
                if now != last:
                    cycles.append(int(self.dut.step_cycles.value))
                    last = now

        w = cocotb.start_soon(watch())
        src = cocotb.start_soon(self.source(beats))
        await self.sink(steps * self.inputs.shape[1], out)
        await src
        await ClockCycles(self.dut.clk, 2)
        watcher_done = True
        await w
        return out, cycles


@cocotb.test()
async def cell_matches_golden(dut):
    prm = bench_params()
    tb = TB(dut, prm)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await tb.reset()
    steps = tb.inputs.shape[0]
    t0 = time.time()
    if prm.get("reset_mid"):
        # Run into the second frame, reset in mid-stream, then the whole sequence must restart from h = 0.
        half = [w for t in range(min(2, steps)) for w in tb.inputs[t]][: tb.inputs.shape[1] * 3 // 2]
        src = cocotb.start_soon(tb.source(half))
        junk: list = []
        snk = cocotb.start_soon(tb.sink(len(half), junk))
        await ClockCycles(dut.clk, tb.inputs.shape[1] * 3 // 2 * 4)
        tb.stop = True
        await src
        await snk
        tb.stop = False
        await tb.reset(4)
    out, cycles = await tb.run_sequence(steps)
    wall = time.time() - t0
    compared, mismatches, report = compare_pixels(out, tb.expected, tb.channels, tb.bits, prm.get("max_report", 10))
    missing = steps * tb.inputs.shape[1] - len(out)
    sim_cycles = int(cocotb.utils.get_sim_time("ns") // 10)
    result = {"outputs_compared": compared, "mismatches": mismatches + missing * tb.channels,
              "missing_pixels": missing, "first_mismatches": report, "cycles_per_step": cycles,
              "sim_cycles": sim_cycles, "wall_s": wall, "sim_cycles_per_s": sim_cycles / max(wall, 1e-9)}
    with open(prm["result"], "w") as f:
        json.dump(result, f)
    dut._log.info("compared %d codes, %d mismatches, cycles/step %s", compared, result["mismatches"], cycles)
    assert result["mismatches"] == 0, f"RTL differs from the golden model: {report}"
