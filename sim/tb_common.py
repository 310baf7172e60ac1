"""Pieces shared by the cocotb benches (stream ports i/o, clock clk, synchronous reset rst)."""

from __future__ import annotations

from cocotb.triggers import ClockCycles, RisingEdge


async def reset_stream_dut(dut, cycles: int = 3) -> None:
    """Hold rst for `cycles` clocks with the source idle and the sink not ready, then release it."""
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
