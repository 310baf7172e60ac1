"""FPGA top level: the ASE-GRU cell behind a narrow, fully registered byte-stream interface.

The cell's own ports are one pixel word (C*A bits) in and out per beat, plus 48 status bits: over 300 pins,
more than a CABGA256/381 ECP5 or an iCE40 UP5K package has. `FpgaTop` puts the cell behind

* ``i`` : In(stream(bus_bits)) -- pixel words cut into ceil(C*A / bus_bits) beats, least significant beat first
  (beat k carries word bits [k*bus_bits, (k+1)*bus_bits); padding bits of the last beat are ignored),
* ``o`` : Out(stream(bus_bits)) -- the h_t words in the same format (padding bits are zero),

so the top-level I/O is clk + rst + 2*(bus_bits + 2) pins (22 for the default 8-bit bus).

Every pin is registered: each stream goes through a skid buffer whose ``valid``/``payload`` towards the pins and
whose ``ready`` towards the pins all come straight from flip-flops, and the reset pin is registered once before
it reaches the core (``core`` clock domain: same clock, registered reset). Incoming ``valid``/``payload`` and the
outgoing side's ``ready`` pin feed at most one level of logic before the first flip-flop, so nextpnr's Fmax is
set by the datapath, not by pin-to-register paths. Latency is a few cycles per direction; throughput is one
beat per cycle in each direction (a word of N beats every N cycles), so with 8-bit beats a C=16, A=8 pixel takes
16 cycles in and 16 out, about the cell's own compute rate (~16 cycles per pixel with PE=SIMD=4).
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.config import HwConfig
from base.errors import EdgecodecError
from quant.cell.params import CellParams

TOP_NAME = "ase_gru_fpga"
BUS_BITS = (1, 2, 4, 8, 16, 32)


def io_bits(bus_bits: int) -> int:
    """Top-level pins of `FpgaTop`: clk, rst and both streams (payload + valid + ready)."""
    return 2 + 2 * (bus_bits + 2)


class SkidBuffer(wiring.Component):
    """Two-entry pipeline register: ``o.valid``, ``o.payload`` and ``i.ready`` are flip-flop outputs.

    Full throughput (one beat per cycle) while the downstream side is ready; when it stalls, the one beat that
    was accepted under the registered ``i.ready`` goes into the skid register.
    """

    def __init__(self, width: int):
        self.width = width
        super().__init__({"i": In(stream.Signature(unsigned(width))), "o": Out(stream.Signature(unsigned(width)))})

    def elaborate(self, platform):
        m = Module()
        main_v, main_d = Signal(), Signal(self.width)
        skid_v, skid_d = Signal(), Signal(self.width)
        ready = Signal()                        # == ~skid_v after reset; 0 while in reset
        m.d.comb += [self.o.valid.eq(main_v), self.o.payload.eq(main_d), self.i.ready.eq(ready)]
        take = self.i.valid & ready
        with m.If(~main_v | self.o.ready):      # the main register frees (or is empty)
            with m.If(skid_v):
                m.d.sync += [main_v.eq(1), main_d.eq(skid_d), skid_v.eq(0), ready.eq(1)]
            with m.Else():
                m.d.sync += [main_v.eq(take), main_d.eq(self.i.payload), ready.eq(1)]
        with m.Else():                          # main stalled: a beat accepted now goes to the skid register
            with m.If(take):
                m.d.sync += [skid_v.eq(1), skid_d.eq(self.i.payload), ready.eq(0)]
            with m.Else():
                m.d.sync += ready.eq(~skid_v)
        return m


class Upsizer(wiring.Component):
    """`beats` narrow beats (least significant first) -> one word; collects the next word while one waits."""

    def __init__(self, bus_bits: int, word_bits: int):
        self.bus_bits, self.word_bits = bus_bits, word_bits
        self.beats = -(-word_bits // bus_bits)
        super().__init__({"i": In(stream.Signature(unsigned(bus_bits))),
                          "o": Out(stream.Signature(unsigned(word_bits)))})

    def elaborate(self, platform):
        m = Module()
        b, n = self.bus_bits, self.beats
        acc = Signal(b * n)
        count = Signal(range(n))
        word, word_v = Signal(self.word_bits), Signal()
        last = count == n - 1
        m.d.comb += [self.o.valid.eq(word_v), self.o.payload.eq(word),
                     self.i.ready.eq(~last | ~word_v | self.o.ready)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += word_v.eq(0)
        with m.If(self.i.valid & self.i.ready):
            shifted = Signal(b * n)
            m.d.comb += shifted.eq(acc[b:] | (self.i.payload << (b * (n - 1))))
            m.d.sync += acc.eq(shifted)
            with m.If(last):
                m.d.sync += [word.eq(shifted[:self.word_bits]), word_v.eq(1), count.eq(0)]
            with m.Else():
                m.d.sync += count.eq(count + 1)
        return m


class Downsizer(wiring.Component):
    """One word -> `beats` narrow beats, least significant first; padding bits of the last beat are zero."""

    def __init__(self, bus_bits: int, word_bits: int):
        self.bus_bits, self.word_bits = bus_bits, word_bits
        self.beats = -(-word_bits // bus_bits)
        super().__init__({"i": In(stream.Signature(unsigned(word_bits))),
                          "o": Out(stream.Signature(unsigned(bus_bits)))})

    def elaborate(self, platform):
        m = Module()
        b, n = self.bus_bits, self.beats
        sh = Signal(b * n)
        count = Signal(range(n))
        full = Signal()
        out_fire = self.o.valid & self.o.ready
        m.d.comb += [self.o.valid.eq(full), self.o.payload.eq(sh[:b]),
                     self.i.ready.eq(~full | (out_fire & (count == n - 1)))]
        with m.If(out_fire):
            m.d.sync += [sh.eq(sh >> b), count.eq(count + 1)]
            with m.If(count == n - 1):
                m.d.sync += [full.eq(0), count.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [sh.eq(self.i.payload), full.eq(1), count.eq(0)]
        return m


class FpgaTop(wiring.Component):
    """`CellTop` behind registered `bus_bits`-wide input and output streams (see the module docstring).

    Ports (Verilog): clk, rst, i__payload[bus_bits], i__valid, i__ready, o__payload[bus_bits], o__valid, o__ready.
    """

    def __init__(self, params: CellParams, height: int, width: int, hw: HwConfig, bus_bits: int = 8):
        if bus_bits not in BUS_BITS:
            raise EdgecodecError(f"unsupported bus_bits={bus_bits!r}; choose one of {', '.join(map(str, BUS_BITS))}")
        from hw.rtl.emit import build_top
        self.cell = build_top(params, height, width, hw)
        self.bus_bits = bus_bits
        self.word_bits = params.channels * params.act_bits
        self.beats = -(-self.word_bits // bus_bits)
        super().__init__({"i": In(stream.Signature(unsigned(bus_bits))),
                          "o": Out(stream.Signature(unsigned(bus_bits)))})

    def io_bits(self) -> int:
        """Top-level pins: clk, rst and both streams (payload + valid + ready)."""
        return io_bits(self.bus_bits)

    def elaborate(self, platform):
        m = Module()
        # Registered reset: the pin drives one flip-flop; everything else is reset from that flip-flop.
        rst_q = Signal(init=1, reset_less=True)
        m.d.sync += rst_q.eq(ResetSignal("sync"))
        m.domains.core = core = ClockDomain("core", local=True)
        m.d.comb += [core.clk.eq(ClockSignal("sync")), core.rst.eq(rst_q)]
        to_core = DomainRenamer("core")
        m.submodules.in_reg = in_reg = to_core(SkidBuffer(self.bus_bits))
        m.submodules.upsize = up = to_core(Upsizer(self.bus_bits, self.word_bits))
        m.submodules.cell = cell = to_core(self.cell)
        m.submodules.downsize = down = to_core(Downsizer(self.bus_bits, self.word_bits))
        m.submodules.out_reg = out_reg = to_core(SkidBuffer(self.bus_bits))
        wiring.connect(m, wiring.flipped(self.i), in_reg.i)
        wiring.connect(m, in_reg.o, up.i)
        wiring.connect(m, up.o, cell.i)
        wiring.connect(m, cell.o, down.i)
        wiring.connect(m, down.o, out_reg.i)
        wiring.connect(m, out_reg.o, wiring.flipped(self.o))
        return m


def build_fpga_top(params: CellParams, height: int, width: int, hw: HwConfig, bus_bits: int = 8) -> FpgaTop:
    return FpgaTop(params, height, width, hw, bus_bits)


def write_fpga_verilog(params: CellParams, height: int, width: int, hw: HwConfig, path, bus_bits: int = 8):
    """Verilog of `FpgaTop` (module `ase_gru_fpga`), written atomically."""
    from hw.rtl.emit import write_component_verilog
    return write_component_verilog(build_fpga_top(params, height, width, hw, bus_bits), TOP_NAME, path)
