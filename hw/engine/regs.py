"""An AXI4-Lite register block generated from a SystemRDL description (systemrdl-compiler), and its document.

Every field of the address map becomes a port named ``<REG>_<FIELD>``:
- software-writable, hardware-readable fields (``sw = rw`` or ``sw = w``; ``hw = r``) are stored here and drive an
  output; with ``singlepulse`` the output is high for the one cycle after the write;
- hardware-writable, software-readable fields (``sw = r; hw = w``) are inputs read over the bus;
- constants (``sw = r; hw = na``) read their reset value.
Byte strobes apply per byte. `lockable` names fields ("REG.FIELD") whose writes are dropped while the `lock`
input is high; a write that would change one of them (for a single-pulse field: writes a 1 to it) then pulses
`rejected`. A write to an unmapped or read-only register answers SLVERR, a read of an unmapped one SLVERR with 0.

`markdown(path)` is the register map's documentation (peakrdl-markdown), committed as docs/engine_regs.md.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from base.errors import EdgecodecError

OKAY, SLVERR = 0, 2
RDL = Path(__file__).resolve().parent / "rdl" / "engine_regs.rdl"


def axil_signature(addr_bits: int) -> wiring.Signature:
    """An AXI4-Lite subordinate port (the subordinate's view: use it as Out), 32-bit data."""
    return wiring.Signature({
        "awaddr": In(addr_bits), "awprot": In(3), "awvalid": In(1), "awready": Out(1),
        "wdata": In(32), "wstrb": In(4), "wvalid": In(1), "wready": Out(1),
        "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
        "araddr": In(addr_bits), "arprot": In(3), "arvalid": In(1), "arready": Out(1),
        "rdata": Out(32), "rresp": Out(2), "rvalid": Out(1), "rready": In(1),
    })


def compile_rdl(path: Path = RDL):
    from systemrdl import RDLCompileError, RDLCompiler
    rdlc = RDLCompiler()
    try:
        rdlc.compile_file(str(path))
        return rdlc.elaborate().top
    except RDLCompileError as exc:
        raise EdgecodecError(f"{path}: SystemRDL error ({exc})") from None


def markdown(path: Path = RDL) -> str:
    """The register map as Markdown (peakrdl-markdown)."""
    import tempfile
    from peakrdl_markdown import MarkdownExporter
    top = compile_rdl(path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "regs.md"
        MarkdownExporter().export(top, str(out), rename="edgecodec_engine")
        return out.read_text()


class RegisterBlock(wiring.Component):
    def __init__(self, path: Path = RDL, lockable: tuple[str, ...] = ()):
        self.top = compile_rdl(path)
        self.regs = list(self.top.registers())
        if any(r.get_property("regwidth") != 32 for r in self.regs):
            raise EdgecodecError(f"{path}: the AXI4-Lite block takes 32-bit registers only")
        span = max(r.absolute_address for r in self.regs) + 4
        self.addr_bits = max(4, (span - 1).bit_length())
        names = {f"{r.inst_name}.{f.inst_name}" for r in self.regs for f in r.fields()}
        unknown = set(lockable) - names
        if unknown:
            raise EdgecodecError(f"lockable fields {sorted(unknown)} are not in {path}")
        self.lockable = set(lockable)
        members = {"s_axil": Out(axil_signature(self.addr_bits)), "lock": In(1), "rejected": Out(1)}
        for r in self.regs:
            for f in r.fields():
                name = f"{r.inst_name}_{f.inst_name}"
                if f.is_sw_writable and f.is_hw_readable:
                    members[name] = Out(f.width)
                elif f.is_hw_writable:
                    members[name] = In(f.width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axil
        # ---- writes: AW and W together, one at a time
        take_w = bus.awvalid & bus.wvalid & ~bus.bvalid
        m.d.comb += [bus.awready.eq(take_w), bus.wready.eq(take_w)]
        word = bus.awaddr[2:]
        mask = Signal(32)
        m.d.comb += mask.eq(sum(((bus.wstrb[i]).replicate(8) << (8 * i)) for i in range(4)))
        resp = Signal(2)
        touched_locked = Signal()
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        with m.If(take_w):
            m.d.sync += [bus.bvalid.eq(1), bus.bresp.eq(resp)]
        m.d.comb += self.rejected.eq(take_w & touched_locked & self.lock)
        m.d.comb += resp.eq(SLVERR)
        for r in self.regs:
            hit = take_w & (word == r.absolute_address >> 2)
            writable = [f for f in r.fields() if f.is_sw_writable]
            if writable:
                with m.If(word == r.absolute_address >> 2):
                    m.d.comb += resp.eq(OKAY)
            for f in writable:
                port = getattr(self, f"{r.inst_name}_{f.inst_name}")
                locked = f"{r.inst_name}.{f.inst_name}" in self.lockable
                fmask = mask[f.lsb:f.msb + 1]
                new = bus.wdata[f.lsb:f.msb + 1]
                if locked:      # a write that would change the field (a pulse field: one that writes a 1 to it)
                    effect = (new & fmask) != 0 if f.get_property("singlepulse") else fmask != 0
                    with m.If((word == r.absolute_address >> 2) & effect):
                        m.d.comb += touched_locked.eq(1)
                allowed = hit & ~self.lock if locked else hit
                if f.get_property("singlepulse"):
                    m.d.sync += port.eq(0)
                    with m.If(allowed):
                        m.d.sync += port.eq(new & fmask)
                else:
                    store = Signal(f.width, name=f"{r.inst_name}_{f.inst_name}_q", init=f.get_property("reset") or 0)
                    m.d.comb += port.eq(store)
                    with m.If(allowed):
                        m.d.sync += store.eq((store & ~fmask) | (new & fmask))
        # ---- reads
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(0), bus.rresp.eq(SLVERR)]
            with m.Switch(bus.araddr[2:]):
                for r in self.regs:
                    with m.Case(r.absolute_address >> 2):
                        value = Const(0, 32)
                        for f in r.fields():
                            if f.is_sw_readable:
                                src = getattr(self, f"{r.inst_name}_{f.inst_name}") \
                                    if (f.is_hw_writable or f.is_sw_writable) \
                                    else Const(int(f.get_property("reset") or 0), f.width)
                                value = value | (src << f.lsb)
                        m.d.sync += [bus.rdata.eq(value), bus.rresp.eq(OKAY)]
        return m
