"""cocotb bench of hw.engine.axi_dma.AxiDma (Verilog toplevel `axi_dma`) against cocotbext-axi's AxiRam.

Parameters (`sim.runner.bench_params()`): ``data_bits``, ``addr_bits``, ``seed``, ``idle`` (probability a stream
source skips a cycle, and the RAM's pause probability on every AXI channel), ``backpressure`` (probability
`rd_data` is not ready), ``reads`` / ``writes``: lists of [byte address, beats].

Reads and writes run concurrently; every read word is compared with the RAM, and after `wr_busy` falls every
written byte is read back from the RAM model.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiRam

from sim.runner import bench_params
from sim.tb.common import pause_ram

RAM_BYTES = 1 << 16


async def drive(dut, name: str, words, rng, idle: float) -> None:
    valid, payload, ready = (getattr(dut, f"{name}__{s}") for s in ("valid", "payload", "ready"))
    for word in words:
        while rng.random() < idle:
            valid.value = 0
            await RisingEdge(dut.clk)
        valid.value = 1
        payload.value = word
        while True:
            await ReadOnly()
            fired = int(ready.value)
            await RisingEdge(dut.clk)
            if fired:
                break
    valid.value = 0


@cocotb.test()
async def test_dma(dut):
    p = bench_params()
    rng = random.Random(int(p.get("seed", 0)))
    db, ab = int(p["data_bits"]), int(p["addr_bits"])
    bb = db // 8
    idle, bp = float(p.get("idle", 0)), float(p.get("backpressure", 0))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for s in ("rd_cmd__valid", "wr_cmd__valid", "wr_data__valid", "rd_data__ready", "clear"):
        getattr(dut, s).value = 0
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=RAM_BYTES)
    pause_ram(ram, rng, idle)
    content = bytes(rng.getrandbits(8) for _ in range(RAM_BYTES))
    ram.write(0, content)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    reads = [tuple(r) for r in p.get("reads", [])]
    writes = [tuple(w) for w in p.get("writes", [])]
    wr_words = [[rng.getrandbits(db) for _ in range(n)] for _, n in writes]

    async def reader():
        got = []
        cocotb.start_soon(drive(dut, "rd_cmd", [a | (n << ab) for a, n in reads], rng, idle))
        want = sum(n for _, n in reads)
        cycles = 0
        while len(got) < want:
            ready = int(rng.random() >= bp)
            dut.rd_data__ready.value = ready
            await ReadOnly()
            if ready and int(dut.rd_data__valid.value):
                got.append(int(dut.rd_data__payload.value))
            await RisingEdge(dut.clk)
            cycles += 1
            assert cycles < 200 * want + 1000, f"read timeout: {len(got)} of {want} beats"
        dut.rd_data__ready.value = 0
        i = 0
        for a, n in reads:
            for k in range(n):
                addr = a + k * bb
                word = int.from_bytes(content[addr:addr + bb], "little")
                assert got[i] == word, f"read beat {k} of command at {a:#x}: got {got[i]:#x}, expected {word:#x}"
                i += 1

    async def writer():
        for (a, n), words in zip(writes, wr_words):
            cmd = cocotb.start_soon(drive(dut, "wr_cmd", [a | (n << ab)], rng, idle))
            await drive(dut, "wr_data", words, rng, idle)
            await cmd
            for _ in range(100000):
                await ReadOnly()
                if not int(dut.wr_busy.value):
                    break
                await RisingEdge(dut.clk)
            await RisingEdge(dut.clk)
            back = ram.read(a, n * bb)
            for k, word in enumerate(words):
                got = int.from_bytes(back[k * bb:(k + 1) * bb], "little")
                assert got == word, f"write beat {k} of command at {a:#x}: RAM holds {got:#x}, expected {word:#x}"

    rd = cocotb.start_soon(reader())
    await writer()
    await rd
    await ReadOnly()
    assert not int(dut.rd_busy.value) and not int(dut.wr_busy.value) and not int(dut.error.value)
    dut._log.info("%d reads, %d writes exact", len(reads), len(writes))
