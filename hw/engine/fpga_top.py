"""The engine for place and route: `EngineTop` with its AXI4 master on an on-chip RAM stand-in, so the FPGA sees
only the AXI4-Lite register port, the interrupt, clock and reset (about 100 pins; the 128- to 512-bit AXI4 port
would need 300-1 100 pins).

The stand-in (`AxiRamStandIn`) is a block RAM behind a plain AXI4 slave (one read beat every three cycles, one burst at a
time; its read word registered): it exists so that synthesis keeps the engine whole and timing sees every path from and to the memory port
registered as it would be in front of a memory controller. Its depth is small (default 2 048 words); a board puts
the engine's port on its DDR controller instead (docs/engine.md, "Taking the engine to a board")."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.engine.axi_dma import axi4_signature
from hw.engine.engine import EngineTop
from hw.engine.program import EngineShape
from hw.engine.regs import axil_signature


class AxiRamStandIn(wiring.Component):
    """`depth` words of `data_bits` behind an AXI4 slave port (INCR bursts; the address wraps at the depth; a read
    beat every three cycles: address, block RAM read, its registered word)."""

    def __init__(self, addr_bits: int, data_bits: int, depth: int = 2048):
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"depth {depth} must be a power of two >= 2")
        self.addr_bits, self.data_bits, self.depth = addr_bits, data_bits, depth
        super().__init__({"s_axi": In(axi4_signature(addr_bits, data_bits))})

    def elaborate(self, platform):
        m = Module()
        a = self.s_axi
        shift, width = (self.data_bits // 8).bit_length() - 1, self.depth.bit_length() - 1
        m.submodules.mem = mem = Memory(shape=unsigned(self.data_bits), depth=self.depth, init=[])
        rd = mem.read_port()
        wr = mem.write_port(granularity=8)
        r_addr, r_left, w_addr = Signal(width), Signal(8), Signal(width)
        r_data = Signal(self.data_bits)          # the block RAM's read word, registered (as a memory port's would be)
        m.d.comb += [rd.addr.eq(r_addr), a.rdata.eq(r_data), a.rlast.eq(r_left == 0), a.rresp.eq(0),
                     a.rid.eq(0), a.bid.eq(0), a.bresp.eq(0)]
        with m.FSM(name="read"):
            with m.State("IDLE"):
                m.d.comb += a.arready.eq(1)
                with m.If(a.arvalid):
                    m.d.sync += [r_addr.eq(a.araddr[shift:shift + width]), r_left.eq(a.arlen)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += rd.en.eq(1)
                m.next = "HOLD"
            with m.State("HOLD"):
                m.d.sync += r_data.eq(rd.data)
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += a.rvalid.eq(1)
                with m.If(a.rready):
                    m.d.sync += [r_addr.eq(r_addr + 1), r_left.eq(r_left - 1)]
                    m.next = "NEXT"
            with m.State("NEXT"):
                with m.If(r_left == 0xFF):          # the last beat went: r_left wrapped
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += rd.en.eq(1)
                    m.next = "HOLD"
        with m.FSM(name="write"):
            with m.State("IDLE"):
                m.d.comb += a.awready.eq(1)
                with m.If(a.awvalid):
                    m.d.sync += w_addr.eq(a.awaddr[shift:shift + width])
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += [a.wready.eq(1), wr.addr.eq(w_addr), wr.data.eq(a.wdata)]
                with m.If(a.wvalid):
                    m.d.comb += wr.en.eq(a.wstrb)
                    m.d.sync += w_addr.eq(w_addr + 1)
                    with m.If(a.wlast):
                        m.next = "RESP"
            with m.State("RESP"):
                m.d.comb += a.bvalid.eq(1)
                with m.If(a.bready):
                    m.next = "IDLE"
        return m


class EngineFpgaTop(wiring.Component):
    """`EngineTop` (array `shape`, GRU units `grus`) with its memory port on `AxiRamStandIn`."""

    def __init__(self, shape: EngineShape, grus: tuple = (), depth: int = 2048):
        self.engine = EngineTop(shape, grus=grus)
        self.depth = depth
        super().__init__({"s_axil": Out(axil_signature(self.engine.regs.addr_bits)), "irq": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        m.submodules.ram = ram = AxiRamStandIn(eng.addr_bits, eng.shape.data_bits, self.depth)
        wiring.connect(m, eng.m_axi, ram.s_axi)
        wiring.connect(m, wiring.flipped(self.s_axil), eng.s_axil)
        m.d.comb += self.irq.eq(eng.irq)
        return m


def io_pins(top: EngineFpgaTop) -> int:
    """I/O bits of the top besides the clock: the AXI4-Lite port, irq and rst."""
    return sum(len(getattr(top.s_axil, name)) for name in top.s_axil.signature.members) + 2
