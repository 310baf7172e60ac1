"""hw.engine.fpga_top: the on-chip RAM stand-in behind the engine's AXI4 port (place and route only) stores and
returns bursts with byte strobes, under random valid/ready pauses; the stand-in top exposes only the register port."""

from __future__ import annotations

import gc
import random

import pytest
from amaranth.sim import Simulator

from hw.engine.fpga_top import AxiRamStandIn, EngineFpgaTop, io_pins
from hw.engine.program import EngineShape


def test_the_ram_stand_in_writes_and_reads_bursts_under_pauses():
    ram = AxiRamStandIn(addr_bits=16, data_bits=32, depth=16)
    a = ram.s_axi
    rng = random.Random(3)
    words = {5: 0x11223344, 6: 0x55667788, 7: 0x99AABBCC}
    got = []

    async def bench(ctx):
        async def pause():
            while rng.random() < 0.3:
                await ctx.tick()
        # a burst of three words from word 5, the middle one with two byte lanes only
        await pause()
        ctx.set(a.awaddr, 5 * 4)
        ctx.set(a.awlen, 2)
        ctx.set(a.awvalid, 1)
        await ctx.tick().until(a.awready)
        ctx.set(a.awvalid, 0)
        for n, (_, w) in enumerate(words.items()):
            await pause()
            ctx.set(a.wdata, w)
            ctx.set(a.wstrb, 0b0101 if n == 1 else 0b1111)
            ctx.set(a.wlast, n == 2)
            ctx.set(a.wvalid, 1)
            await ctx.tick().until(a.wready)
            ctx.set(a.wvalid, 0)
        ctx.set(a.bready, 1)
        await ctx.tick().until(a.bvalid)
        ctx.set(a.bready, 0)
        ctx.set(a.araddr, 4 * 4)
        ctx.set(a.arlen, 3)
        ctx.set(a.arvalid, 1)
        await ctx.tick().until(a.arready)
        ctx.set(a.arvalid, 0)
        while len(got) < 4:
            ready = rng.random() >= 0.3
            ctx.set(a.rready, ready)
            _, _, valid, data, last = await ctx.tick().sample(a.rvalid, a.rdata, a.rlast)
            if ready and valid:
                got.append((data, last))

    sim = Simulator(ram)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [(0, 0), (0x11223344, 0), (0x00660088, 0), (0x99AABBCC, 1)]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")   # built to look at, not elaborated
def test_the_fpga_top_brings_out_the_register_port_only():
    top = EngineFpgaTop(EngineShape(pe=2, simd=2, data_bits=64, max_width=8, max_cin=64, max_cout=256))
    assert set(top.signature.members) == {"s_axil", "irq"}
    assert io_pins(top) == 98 + 2              # AXI4-Lite with a 5-bit address (98 bits), irq, rst
    del top
    gc.collect()                               # dropped here, inside the warning filter


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_a_bad_depth_is_refused():
    with pytest.raises(ValueError, match="power of two"):
        AxiRamStandIn(16, 32, depth=24)
    gc.collect()
