"""cocotb bench of `engine_harness` (sim/engine_harness.py: the engine and the Verilog memory model in one toplevel).

Per run: the memory image goes in as mem_in.hex (`mem_load`), the engine is reset, PROGRAM_ADDR and START are
written over AXI4-Lite (sim.tb.common.axil_write: no coroutine runs between transactions), the bench waits for `irq` (DONE), reads STATUS and CYCLES,
dumps the memory (`mem_dump` -> mem_out.hex) and compares the run's maps. Parameters: ``npz`` (sim.tb.engine_maps'
stimulus), ``runs``, ``word_bytes``, ``depth`` (log2 words of the model), ``stall`` (0..255: pause probability
/256 on every AXI channel; or one per run), ``max_cycles``, ``result_json``. Every run is checked (a failing run does
not stop the others); the test fails at the end if any did."""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer

from sim.runner import bench_params
from sim.tb.common import axil_read, axil_write
from sim.tb.engine_maps import compare_maps, run_data

STATUS, PROGRAM_ADDR, CTRL, CYCLES = 0x0C, 0x10, 0x08, 0x14
BUSY, DONE, ERROR, RANGE = 1, 2, 4, 16


def write_hex(path: str, image: bytes, word_bytes: int) -> None:
    """One word a line, most significant digit first ($readmemh)."""
    pad = (-len(image)) % word_bytes
    words = np.frombuffer(image + bytes(pad), dtype=np.uint8).reshape(-1, word_bytes)[:, ::-1]
    with open(path, "w") as f:
        f.write("\n".join(bytes(w).hex() for w in words))
        f.write("\n")


def read_hex(path: str, nbytes: int, word_bytes: int) -> bytes:
    out = bytearray()
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("//"):
                continue
            out += bytes.fromhex(line.replace("x", "0").replace("X", "0").zfill(2 * word_bytes))[::-1]
            if len(out) >= nbytes:
                break
    return bytes(out[:nbytes])


@cocotb.test()
async def test_runs(dut):
    p = bench_params()
    data = np.load(p["npz"])
    wb = int(p["word_bytes"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
        getattr(dut, f"s_axil__{name}").value = 0
    dut.mem_load.value = 0
    dut.mem_dump.value = 0
    stalls = p.get("stall", 0)
    res = {"cycles": [], "compared": [], "mismatches": [], "report": [], "wall_seconds": 0.0}
    t0 = time.time()

    def save():
        res["wall_seconds"] = round(time.time() - t0, 2)
        with open(p["result_json"], "w") as f:
            json.dump(res, f)

    async def reg(addr, value=None):
        if value is None:
            return await axil_read(dut, addr)
        assert await axil_write(dut, addr, value) == 0, f"register {addr:#x}: write answered with an error"

    for run in range(int(p["runs"])):
        image, program, checks = run_data(data, p, run)
        dut.stall.value = int(stalls[run] if isinstance(stalls, list) else stalls)
        write_hex(os.path.join(os.getcwd(), "mem_in.hex"), image, wb)
        dut.rst.value = 1
        dut.mem_load.value = 1
        await RisingEdge(dut.clk)
        dut.mem_load.value = 0
        await ClockCycles(dut.clk, 2)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        await reg(PROGRAM_ADDR, program)
        done = RisingEdge(dut.irq)
        await reg(CTRL, 1)
        fired = await First(done, Timer(int(p["max_cycles"]) * 10, unit="ns"))
        status = await reg(STATUS)
        if fired is not done or not status & DONE:
            res["report"].append(f"run {run}: the engine did not finish within {p['max_cycles']} cycles")
        if status & (ERROR | RANGE):
            res["report"].append(f"run {run}: STATUS {status:#x} (error flag)")
        if int(dut.mem_fault.value):
            res["report"].append(f"run {run}: an access outside the memory model or not a full-width INCR burst")
        res["cycles"].append(await reg(CYCLES))
        dut.mem_dump.value = 1
        await RisingEdge(dut.clk)
        dut.mem_dump.value = 0
        await RisingEdge(dut.clk)
        memory = read_hex(os.path.join(os.getcwd(), "mem_out.hex"), len(image), wb)
        compared, bad, report = compare_maps(memory, checks, run, wb)
        res["compared"].append(compared)
        res["mismatches"].append(bad)
        res["report"] += report
        dut._log.info("run %d: %d codes compared, %d mismatching, %d cycles", run, compared, bad, res["cycles"][-1])
        save()
    save()
    assert not res["report"], "\n".join(res["report"])
