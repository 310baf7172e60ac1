"""cocotb bench of hw.engine.engine.ConvEngine (Verilog toplevel `conv_engine`) on cocotbext-axi's AxiRam.

Parameters (`sim.runner.bench_params()`): ``npz`` with ``image`` (the memory image, uint8) and ``expected`` (C, H, W
codes of the last layer's map), ``program_addr``, ``output_addr``, ``lanes``, ``act_bits``, ``word_bytes``,
``seed``, ``idle`` (pause probability on every AXI channel), ``runs`` (how many times the program runs back to
back), ``cycles_json``.
"""

from __future__ import annotations

import json
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiRam

from hw.engine.program import read_map
from sim.runner import bench_params

MAX_REPORTED = 12


def pauses(rng: random.Random, p: float):
    while True:
        yield rng.random() < p


@cocotb.test()
async def test_program(dut):
    p = bench_params()
    data = np.load(p["npz"])
    image, expected = data["image"].tobytes(), data["expected"]
    rng = random.Random(int(p.get("seed", 0)))
    idle = float(p.get("idle", 0))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.start.value = 0
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=len(image) + 4096)
    if idle:
        for ch in (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                   ram.read_if.ar_channel, ram.read_if.r_channel):
            ch.set_pause_generator(pauses(random.Random(rng.random()), idle))
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    cycles = []
    for run in range(int(p.get("runs", 1))):
        ram.write(0, image)
        dut.program_addr.value = int(p["program_addr"])
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        n = 0
        while True:
            await ReadOnly()
            if int(dut.done.value):
                break
            await RisingEdge(dut.clk)
            n += 1
            assert n < int(p.get("max_cycles", 50_000_000)), "timeout: the engine never finished"
        assert not int(dut.error.value), "the engine flagged an AXI error"
        cycles.append(int(dut.cycles.value))
        await RisingEdge(dut.clk)
        got = read_map(ram.read(0, len(image)), int(p["output_addr"]), expected.shape, int(p["lanes"]),
                       int(p["act_bits"]), int(p["word_bytes"]))
        bad = np.argwhere(got != expected)
        if len(bad):
            lines = [f"run {run} channel {c} pixel (y={y}, x={x}): got {got[c, y, x]}, expected {expected[c, y, x]}"
                     for c, y, x in bad[:MAX_REPORTED]]
            raise AssertionError(f"{len(bad)} mismatching codes of {expected.size}:\n  " + "\n  ".join(lines))
        dut._log.info("run %d: %s map bit-exact, %d cycles", run, expected.shape, cycles[-1])
    if p.get("cycles_json"):
        with open(p["cycles_json"], "w") as f:
            json.dump(cycles, f)
