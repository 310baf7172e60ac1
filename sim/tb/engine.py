"""cocotb bench of hw.engine.engine.EngineTop (Verilog toplevel `engine_top`): memory is cocotbext-axi's AxiRam,
control is cocotbext-axi's AxiLiteMaster on the register map (docs/engine_regs.md), as a host's driver would do it.

Parameters (`sim.runner.bench_params()`): ``npz`` (the stimulus of sim.tb.engine_maps), ``program_addr``, ``output_addr``, ``lanes``, ``act_bits``, ``word_bytes``,
``seed``, ``idle`` (pause probability on every AXI channel), ``runs`` (how many times the program runs back to
back; the device is reset between runs), ``clean_last`` (the last run without pauses), ``cycles_json``, ``mem_limit`` (optional: MEM_LIMIT is set to it and
the run must stop with STATUS.RANGE, nothing written at or beyond the limit, the descriptors before it run). Every run also writes START and PROGRAM_ADDR while the
engine is busy and checks that both are dropped and flagged in STATUS.REJECTED.
"""

from __future__ import annotations

import json
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from sim.runner import bench_params
from sim.tb.common import pause_ram
from sim.tb.engine_maps import compare_maps, run_data

ID, SHAPE, CTRL, STATUS, PROGRAM_ADDR, CYCLES, MEM_LIMIT = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18
BUSY, DONE, ERROR, REJECTED, RANGE = 1, 2, 4, 8, 16


async def read32(regs: AxiLiteMaster, addr: int) -> int:
    return int.from_bytes(await regs.read(addr, 4), "little")


async def write32(regs: AxiLiteMaster, addr: int, value: int) -> None:
    await regs.write(addr, value.to_bytes(4, "little"))


@cocotb.test()
async def test_program(dut):
    p = bench_params()
    data = np.load(p["npz"])
    image = run_data(data, p, 0)[0]
    rng = random.Random(int(p.get("seed", 0)))
    idle = float(p.get("idle", 0))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=len(image) + 4096)
    regs = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
    if idle:
        pause_ram(ram, rng, idle)
    cycles = []
    for run in range(int(p.get("runs", 1))):
        dut.rst.value = 1                       # a reset between two sequences, as a host may do
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        assert await read32(regs, ID) == 0xEC0D0001, "ID register"
        assert await read32(regs, STATUS) == 0, "STATUS after reset"
        image, program, checks = run_data(data, p, run)
        if idle and p.get("clean_last") and run == int(p.get("runs", 1)) - 1:
            pause_ram(ram, rng, 0)              # the last run without pauses: its cycles are the model's
        ram.write(0, image)
        if "mem_limit" in p:
            await write32(regs, MEM_LIMIT, int(p["mem_limit"]))
            await write32(regs, PROGRAM_ADDR, int(p["program_addr"]))
            await write32(regs, CTRL, 1)
            status = await read32(regs, STATUS)
            for _ in range(10000):
                if status & DONE:
                    break
                await ClockCycles(dut.clk, 20)
                status = await read32(regs, STATUS)
            assert status & DONE and status & RANGE and not status & BUSY, f"STATUS {status:#x}: no RANGE stop"
            limit = int(p["mem_limit"])
            assert ram.read(limit, 4096) == bytes(4096), "the engine wrote at or beyond MEM_LIMIT"
            assert ram.read(0, len(image)) != image, "the descriptors before the bad one should have run"
            dut._log.info("run %d: stopped by MEM_LIMIT %#x, STATUS %#x, %d cycles", run, limit, status,
                          await read32(regs, CYCLES))
            continue
        await write32(regs, PROGRAM_ADDR, program)
        await write32(regs, CTRL, 1)
        assert await read32(regs, STATUS) & BUSY, "not busy after START"
        await write32(regs, PROGRAM_ADDR, program + 4096)      # both dropped: the engine is busy
        await write32(regs, CTRL, 1)
        status = await read32(regs, STATUS)
        assert status & REJECTED, f"STATUS {status:#x}: writes while busy not flagged"
        assert await read32(regs, PROGRAM_ADDR) == program, "PROGRAM_ADDR changed while busy"
        polls = 0
        while not (status & DONE):
            await ClockCycles(dut.clk, 200)
            status = await read32(regs, STATUS)
            polls += 1
            assert polls < int(p.get("max_cycles", 50_000_000)) // 200, "timeout: the engine never finished"
        assert not status & ERROR, "the engine flagged an AXI error"
        assert not status & BUSY
        cycles.append(await read32(regs, CYCLES))
        await write32(regs, CTRL, 2)                           # CLEAR
        assert await read32(regs, STATUS) == 0, "STATUS after CLEAR"
        memory = ram.read(0, len(image))
        _, _, report = compare_maps(memory, checks, run, int(p["word_bytes"]))
        assert not report, "\n".join(report)
        dut._log.info("run %d: %d map(s) bit-exact, %d cycles", run, len(checks), cycles[-1])
    if p.get("cycles_json"):
        with open(p["cycles_json"], "w") as f:
            json.dump(cycles, f)
