"""cocotb bench of hw.engine.regs.RegisterBlock (toplevel `regs`, the engine's map) with cocotbext-axi's
AxiLiteMaster: byte strobes, read-only and unmapped addresses (SLVERR), single-pulse fields, lock and rejected."""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster
from cocotbext.axi.constants import AxiResp

PROGRAM_ADDR, CTRL, ID, STATUS = 0x10, 0x08, 0x00, 0x0C


@cocotb.test()
async def test_register_block(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.lock.value = 0
    dut.STATUS_BUSY.value = 1
    dut.STATUS_DONE.value = 0
    dut.STATUS_ERROR.value = 1
    dut.STATUS_REJECTED.value = 0
    dut.STATUS_RANGE.value = 0
    bus = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    assert int.from_bytes(await bus.read(ID, 4), "little") == 0xEC0D0001
    assert int.from_bytes(await bus.read(STATUS, 4), "little") == 0b101
    await bus.write(PROGRAM_ADDR, (0x12345678).to_bytes(4, "little"))
    await bus.write(PROGRAM_ADDR + 1, b"\xab")                       # one byte lane
    assert int.from_bytes(await bus.read(PROGRAM_ADDR, 4), "little") == 0x1234AB78
    resp = await bus.write(ID, b"\x00\x00\x00\x00")
    assert resp.resp == AxiResp.SLVERR, "a write to a read-only register must answer SLVERR"
    resp = await bus.read(0x1C, 4)
    assert resp.resp == AxiResp.SLVERR, "a read of an unmapped address must answer SLVERR"
    pulses = []

    async def watch():
        while True:
            await ReadOnly()
            pulses.append(int(dut.CTRL_START.value))
            await RisingEdge(dut.clk)
    cocotb.start_soon(watch())
    await bus.write(CTRL, b"\x01\x00\x00\x00")
    await ClockCycles(dut.clk, 4)
    assert sum(pulses) == 1, f"START must pulse once, saw {pulses}"
    dut.lock.value = 1
    rejected, clears = [], []

    async def watch_rejected():
        while True:
            await ReadOnly()
            rejected.append(int(dut.rejected.value))
            clears.append(int(dut.CTRL_CLEAR.value))
            await RisingEdge(dut.clk)
    cocotb.start_soon(watch_rejected())
    await bus.write(PROGRAM_ADDR, (0x1000).to_bytes(4, "little"))
    await bus.write(CTRL, b"\x02\x00\x00\x00")                       # CLEAR is not lockable
    await ClockCycles(dut.clk, 2)
    assert int.from_bytes(await bus.read(PROGRAM_ADDR, 4), "little") == 0x1234AB78, "a locked write went through"
    assert sum(rejected) == 1, f"one rejected write expected, saw {sum(rejected)}"
    assert sum(pulses) == 1, "START pulsed for a CLEAR write"
    assert sum(clears) == 1, "CLEAR must work while locked"
