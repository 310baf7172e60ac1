"""The decoder engine's memory port: an AXI4 master with one read and one write DMA channel.

Feature maps, hidden states, weights and frames live in external memory; the engine's units see streams. A read
command (byte address, number of beats) becomes INCR bursts on AR (at most `max_burst` beats, never across a 4 KB
boundary, as AXI4 requires) and the R beats come out of `rd_data` in order; a write command does the same on AW,
takes its beats from `wr_data` onto W (`wlast` at each burst's end) and counts the B responses. Addresses must be
aligned to the bus word. Several read bursts may be outstanding (R is back-pressured by `rd_data`); a write burst's
W beats follow its AW. A response other than OKAY sets the sticky `error` flag (cleared by `clear`). A new write command
is taken once the previous one's AW and W beats are out (its B responses may still be on their way), so short
commands follow each other closely.

AXI4 signal names follow the specification with the port prefix (`m_axi__araddr`, ...); ids are 0, size is the
bus width, burst INCR. The unit is complete when `rd_busy` and `wr_busy` are low: every read beat delivered, every
write response received.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

BEATS_BITS = 24
OKAY = 0


def axi4_signature(addr_bits: int, data_bits: int) -> wiring.Signature:
    """An AXI4 master port (the manager's view), INCR bursts, id width 1."""
    return wiring.Signature({
        "awid": Out(1), "awaddr": Out(addr_bits), "awlen": Out(8), "awsize": Out(3), "awburst": Out(2),
        "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wlast": Out(1), "wvalid": Out(1), "wready": In(1),
        "bid": In(1), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "arid": Out(1), "araddr": Out(addr_bits), "arlen": Out(8), "arsize": Out(3), "arburst": Out(2),
        "arvalid": Out(1), "arready": In(1),
        "rid": In(1), "rdata": In(data_bits), "rresp": In(2), "rlast": In(1), "rvalid": In(1), "rready": Out(1),
    })


def command_signature(addr_bits: int) -> stream.Signature:
    return stream.Signature(unsigned(addr_bits + BEATS_BITS))


class AxiDma(wiring.Component):
    """AXI4 master with a read and a write channel (module docstring).

    Parameters
    ----------
    addr_bits, data_bits : AXI address and data widths (data_bits a power of two >= 8).
    max_burst : beats per burst, 1 .. 256.

    Attributes
    ----------
    rd_cmd, wr_cmd : In(stream): payload = address (low addr_bits) | beats << addr_bits.
    rd_data : Out(stream), wr_data : In(stream): one bus word a beat.
    rd_busy, wr_busy, error : Out(1); clear : In(1).
    """

    def __init__(self, *, addr_bits: int = 32, data_bits: int = 64, max_burst: int = 16):
        if data_bits < 8 or data_bits & (data_bits - 1):
            raise ValueError(f"data_bits must be a power of two >= 8, got {data_bits}")
        if not 1 <= max_burst <= 256:
            raise ValueError(f"max_burst must be in 1 .. 256, got {max_burst}")
        if not 12 <= addr_bits <= 64:
            raise ValueError(f"addr_bits must be in 12 .. 64, got {addr_bits}")
        self.addr_bits, self.data_bits, self.max_burst = addr_bits, data_bits, max_burst
        self.beat_bytes = data_bits // 8
        super().__init__({
            "m_axi": Out(axi4_signature(addr_bits, data_bits)),
            "rd_cmd": In(command_signature(addr_bits)),
            "rd_data": Out(stream.Signature(unsigned(data_bits))),
            "wr_cmd": In(command_signature(addr_bits)),
            "wr_data": In(stream.Signature(unsigned(data_bits))),
            "rd_busy": Out(1), "wr_busy": Out(1), "error": Out(1), "clear": In(1),
        })

    def _burst(self, addr, left):
        """Beats of the next burst from `addr` with `left` beats to go: max_burst, the 4 KB boundary, the rest."""
        to_page = (4096 - addr[:12]) >> (self.beat_bytes.bit_length() - 1)
        n = Mux(left < self.max_burst, left, self.max_burst)
        return Mux(to_page < n, to_page, n)

    def elaborate(self, platform):
        m = Module()
        axi, AB, bb = self.m_axi, self.addr_bits, self.beat_bytes
        size = bb.bit_length() - 1
        error = Signal()
        m.d.comb += self.error.eq(error)
        with m.If(self.clear):
            m.d.sync += error.eq(0)

        # ---- read channel: AR bursts run ahead, R beats pass straight to rd_data
        r_addr, r_left, r_pending = Signal(AB), Signal(BEATS_BITS), Signal(BEATS_BITS + 1)
        r_active = Signal()
        r_n = Signal(9)
        m.d.comb += r_n.eq(self._burst(r_addr, r_left))
        m.d.comb += [
            self.rd_cmd.ready.eq(~r_active & (r_pending == 0)),
            axi.arid.eq(0), axi.araddr.eq(r_addr), axi.arlen.eq(r_n - 1), axi.arsize.eq(size), axi.arburst.eq(1),
            axi.arvalid.eq(r_active),
            self.rd_data.valid.eq(axi.rvalid), self.rd_data.payload.eq(axi.rdata), axi.rready.eq(self.rd_data.ready),
            self.rd_busy.eq(r_active | (r_pending != 0)),
        ]
        took_r = axi.rvalid & axi.rready
        with m.If(self.rd_cmd.valid & self.rd_cmd.ready):
            beats = self.rd_cmd.payload[AB:]
            m.d.sync += [r_addr.eq(self.rd_cmd.payload[:AB]), r_left.eq(beats), r_active.eq(beats != 0),
                         r_pending.eq(beats)]
        with m.Else():
            with m.If(axi.arvalid & axi.arready):
                m.d.sync += [r_addr.eq(r_addr + (r_n << size)), r_left.eq(r_left - r_n),
                             r_active.eq(r_left != r_n)]
            with m.If(took_r):
                m.d.sync += r_pending.eq(r_pending - 1)
        with m.If(took_r & (axi.rresp != OKAY)):
            m.d.sync += error.eq(1)

        # ---- write channel: AW bursts; W beats of a burst once its AW went out; B responses counted
        a_addr, a_left = Signal(AB), Signal(BEATS_BITS)
        a_active = Signal()
        a_n = Signal(9)
        w_addr, w_left, w_beat = Signal(AB), Signal(BEATS_BITS), Signal(9)
        w_n = Signal(9)
        bursts_out = Signal(BEATS_BITS)            # AW issued, W not finished
        b_wait = Signal(BEATS_BITS)                # AW issued, B not received
        m.d.comb += [a_n.eq(self._burst(a_addr, a_left)), w_n.eq(self._burst(w_addr, w_left))]
        w_ok = (bursts_out != 0) & (w_left != 0)
        m.d.comb += [
            self.wr_cmd.ready.eq(~a_active & (w_left == 0)),     # B responses may still be outstanding
            axi.awid.eq(0), axi.awaddr.eq(a_addr), axi.awlen.eq(a_n - 1), axi.awsize.eq(size), axi.awburst.eq(1),
            axi.awvalid.eq(a_active),
            axi.wdata.eq(self.wr_data.payload), axi.wstrb.eq((1 << bb) - 1), axi.wlast.eq(w_beat == w_n - 1),
            axi.wvalid.eq(w_ok & self.wr_data.valid), self.wr_data.ready.eq(w_ok & axi.wready),
            axi.bready.eq(1),
            self.wr_busy.eq(a_active | (w_left != 0) | (b_wait != 0)),
        ]
        aw_fire = axi.awvalid & axi.awready
        w_fire = axi.wvalid & axi.wready
        w_burst_end = w_fire & (w_beat == w_n - 1)
        b_fire = axi.bvalid & axi.bready
        with m.If(self.wr_cmd.valid & self.wr_cmd.ready):
            beats = self.wr_cmd.payload[AB:]
            addr = self.wr_cmd.payload[:AB]
            m.d.sync += [a_addr.eq(addr), a_left.eq(beats), a_active.eq(beats != 0), w_addr.eq(addr),
                         w_left.eq(beats), w_beat.eq(0)]
        with m.Else():
            with m.If(aw_fire):
                m.d.sync += [a_addr.eq(a_addr + (a_n << size)), a_left.eq(a_left - a_n), a_active.eq(a_left != a_n)]
            with m.If(w_fire):
                m.d.sync += w_beat.eq(Mux(w_burst_end, 0, w_beat + 1))
                with m.If(w_burst_end):
                    m.d.sync += [w_addr.eq(w_addr + (w_n << size)), w_left.eq(w_left - w_n)]
        m.d.sync += bursts_out.eq(bursts_out + aw_fire - w_burst_end)
        m.d.sync += b_wait.eq(b_wait + aw_fire - b_fire)
        with m.If(b_fire & (axi.bresp != OKAY)):
            m.d.sync += error.eq(1)
        return m
