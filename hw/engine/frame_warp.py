"""The decoder engine's frame warp: motion compensation of a packed frame in memory (`quant.codec.int_codec.warp_int`
on the planes of `pack_planes`), with three `WarpUnit`s (Y, U, V) and a block buffer.

A packed frame map (hw.engine.program's map words: channels 0-3 the 2x2 luma sub-pixels, 4 U, 5 V, padded with zero
channels to K words a pixel) of fh x fw pixels holds a luma plane of 2fh x 2fw and chroma planes of fh x fw. Block b
(raster order, fh/8 x fw/8 of them) is the 16 x 16 luma block, the 8 x 8 chroma blocks and the 8 x 8 packed pixels
at (8 bx, 8 by). Per block: read its vector (one word, dx in the low 16 bits, dy in the next 16, quarter luma
pixels), give it to the Y unit, then U, then V; each unit's window requests become one-word reads of the reference
map (the pixel's lane: Y (x, y) -> packed pixel (x/2, y/2), channel 2 (y mod 2) + x mod 2), its output pixels go to
their lanes of the block buffer (8 x 8 packed pixels, written with a lane's granularity); then the block's 8 rows of
the warped map are written (8 K words each, zero channels zero). Every plane is clamped at its own border, as the
units do. On-chip memory: the block buffer (64 pixels x channels x 8 bits), whatever the frame.

Cost (reads of one word, one outstanding: a memory round trip per window pixel): about (17^2 + 2 * 9^2) reads and
8 write commands a block; the window rows as bursts would cut it (not done).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.engine.axi_dma import command_signature
from hw.engine.warp_unit import COORD_BITS, WarpUnit

PIXEL_BITS = 8


class FrameWarp(wiring.Component):
    """Warp of a packed frame map (module docstring). `lanes` codes of `lane_bits` a word, `channels` (a multiple of
    lanes, >= 6) a packed pixel."""

    def __init__(self, *, lanes: int, lane_bits: int, word_bits: int, channels: int, addr_bits: int = 32):
        if channels < 6 or channels % lanes or lane_bits < PIXEL_BITS + 1 or lanes & (lanes - 1):
            raise ValueError(f"frame warp: {channels} channels in words of {lanes} lanes (a power of two) of "
                             f"{lane_bits} bits")
        self.lanes, self.lane_bits, self.word_bits, self.channels, self.addr_bits = (lanes, lane_bits, word_bits,
                                                                                     channels, addr_bits)
        word = stream.Signature(word_bits)
        super().__init__({
            "height": In(16), "width": In(16), "ref": In(addr_bits), "out": In(addr_bits), "mv": In(addr_bits),
            "start": In(1), "done": Out(1),
            "rd_cmd": Out(command_signature(addr_bits)), "rd_data": In(word),
            "wr_cmd": Out(command_signature(addr_bits)), "wr_data": Out(word),
        })

    def elaborate(self, platform):
        m = Module()
        AB, P, lb, C = self.addr_bits, self.lanes, self.lane_bits, self.channels
        K = C // P
        wb = self.word_bits // 8
        units = [WarpUnit(pixel_bits=PIXEL_BITS) for _ in range(3)]
        for name, u in zip(("warp_y", "warp_u", "warp_v"), units):
            m.submodules[name] = u
        fh, fw = Signal(16), Signal(16)
        ref, out, mv_addr = Signal(AB), Signal(AB), Signal(AB)
        bx, by = Signal(16), Signal(16)
        plane = Signal(2)
        mv = Signal(32)
        count = Signal(9)                       # output pixels of the active unit in this block
        row = Signal(4)                         # block row being written
        kp = Signal(4)                          # pixel of the row being written
        ks = Signal(range(max(K, 2)))           # its word
        lg = (P - 1).bit_length()               # log2(lanes)

        for i, u in enumerate(units):
            # the units sample their plane's size with `start`, in the cycle fh and fw take it
            m.d.comb += [u.height.eq(self.height << 1 if i == 0 else self.height),
                         u.width.eq(self.width << 1 if i == 0 else self.width),
                         u.chroma.eq(int(i != 0)), u.mv.payload.eq(mv)]

        # ---- the block buffer: one word of C 8-bit lanes a packed pixel, written a lane at a time
        m.submodules.buf = buf = Memory(shape=C * PIXEL_BITS, depth=64, init=[])
        bw = buf.write_port(granularity=PIXEL_BITS)
        br = buf.read_port(domain="comb")

        # ---- requests of the active unit -> one-word reads; the response's lane back to the unit
        req = [u.req for u in units]
        rx = Mux(plane == 0, req[0].payload[:COORD_BITS], Mux(plane == 1, req[1].payload[:COORD_BITS],
                                                                 req[2].payload[:COORD_BITS]))
        ry = Mux(plane == 0, req[0].payload[COORD_BITS:], Mux(plane == 1, req[1].payload[COORD_BITS:],
                                                                 req[2].payload[COORD_BITS:]))
        r_valid = Mux(plane == 0, req[0].valid, Mux(plane == 1, req[1].valid, req[2].valid))
        px = Mux(plane == 0, rx >> 1, rx)
        py = Mux(plane == 0, ry >> 1, ry)
        ch = Mux(plane == 0, Cat(rx[0], ry[0]), Mux(plane == 1, 4, 5))
        word = (py * fw + px) * K + (ch >> lg)
        lane = Signal(range(P))
        addr = Signal(AB)
        m.d.comb += addr.eq(ref + (word * wb)[:AB])

        # output pixel of the active unit -> its lane of the block buffer
        o = [u.o for u in units]
        o_valid = Mux(plane == 0, o[0].valid, Mux(plane == 1, o[1].valid, o[2].valid))
        o_pix = Mux(plane == 0, o[0].payload, Mux(plane == 1, o[1].payload, o[2].payload))
        yy = Mux(plane == 0, count[4:8], count[3:6])
        xx = Mux(plane == 0, count[:4], count[:3])
        bpix = Mux(plane == 0, Cat(xx[1:4], yy[1:4]), Cat(xx[:3], yy[:3]))
        bch = Mux(plane == 0, Cat(xx[0], yy[0]), Mux(plane == 1, 4, 5))
        m.d.comb += [bw.addr.eq(bpix), bw.data.eq(o_pix.replicate(C))]
        for c in range(C):
            m.d.comb += bw.en[c].eq(0)

        # the block's rows out: word k of row r = lanes of packed pixel (r, k // K), words k mod K
        m.d.comb += br.addr.eq(Cat(kp[:3], row[:3]))
        lanes_out = []
        for j in range(P):
            v = Signal(lb, name=f"wl{j}")
            m.d.comb += v.eq(br.data.word_select(ks * P + j, PIXEL_BITS))
            lanes_out.append(v)
        m.d.comb += self.wr_data.payload.eq(Cat(*lanes_out))
        run_words = 8 * K

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [fh.eq(self.height), fw.eq(self.width), ref.eq(self.ref), out.eq(self.out),
                                 mv_addr.eq(self.mv), bx.eq(0), by.eq(0)]
                    for u in units:
                        m.d.comb += u.start.eq(1)
                    m.next = "MV_CMD"
            with m.State("MV_CMD"):
                m.d.comb += [self.rd_cmd.valid.eq(1), self.rd_cmd.payload.eq(mv_addr | (1 << AB))]
                with m.If(self.rd_cmd.ready):
                    m.next = "MV"
            with m.State("MV"):
                m.d.comb += self.rd_data.ready.eq(1)
                with m.If(self.rd_data.valid):
                    m.d.sync += [mv.eq(self.rd_data.payload[:32]), plane.eq(0), mv_addr.eq(mv_addr + wb)]
                    m.next = "FEED"
            with m.State("FEED"):
                for i, u in enumerate(units):
                    m.d.comb += u.mv.valid.eq(plane == i)
                with m.If(Mux(plane == 0, units[0].mv.ready, Mux(plane == 1, units[1].mv.ready, units[2].mv.ready))):
                    m.d.sync += count.eq(0)
                    m.next = "REQ"
            with m.State("REQ"):
                # one request at a time: read its word, hand the lane to the unit, collect output pixels
                with m.If(r_valid):
                    m.d.comb += [self.rd_cmd.valid.eq(1), self.rd_cmd.payload.eq(addr | (1 << AB))]
                    with m.If(self.rd_cmd.ready):
                        for i, r in enumerate(req):
                            m.d.comb += r.ready.eq(plane == i)
                        m.d.sync += lane.eq(ch[:lg] if lg else 0)
                        m.next = "RSP"
                with m.Elif(count == Mux(plane == 0, 256, 64)):
                    with m.If(plane == 2):
                        m.d.sync += [row.eq(0), kp.eq(0), ks.eq(0)]
                        m.next = "WRITE_CMD"
                    with m.Else():
                        m.d.sync += plane.eq(plane + 1)
                        m.next = "FEED"
            with m.State("RSP"):
                rsp = [u.rsp for u in units]
                for i, r in enumerate(rsp):
                    m.d.comb += [r.valid.eq(self.rd_data.valid & (plane == i)),
                                 r.payload.eq(self.rd_data.payload.word_select(lane, lb)[:PIXEL_BITS])]
                m.d.comb += self.rd_data.ready.eq(Mux(plane == 0, rsp[0].ready, Mux(plane == 1, rsp[1].ready,
                                                                                      rsp[2].ready)))
                with m.If(self.rd_data.valid & self.rd_data.ready):
                    m.next = "REQ"
            with m.State("WRITE_CMD"):
                waddr = out + ((((by << 3) + row) * fw + (bx << 3)) * K * wb)[:AB]
                m.d.comb += [self.wr_cmd.valid.eq(1), self.wr_cmd.payload.eq(waddr[:AB] | (run_words << AB))]
                with m.If(self.wr_cmd.ready):
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += self.wr_data.valid.eq(1)
                with m.If(self.wr_data.ready):
                    with m.If(ks == K - 1):
                        m.d.sync += [ks.eq(0), kp.eq(kp + 1)]
                    with m.Else():
                        m.d.sync += ks.eq(ks + 1)
                    with m.If((ks == K - 1) & (kp == 7)):
                        m.d.sync += kp.eq(0)
                        with m.If(row == 7):
                            with m.If((bx << 3) + 8 >= fw):
                                m.d.sync += bx.eq(0)
                                with m.If((by << 3) + 8 >= fh):
                                    m.next = "DONE"
                                with m.Else():
                                    m.d.sync += by.eq(by + 1)
                                    m.next = "MV_CMD"
                            with m.Else():
                                m.d.sync += bx.eq(bx + 1)
                                m.next = "MV_CMD"
                        with m.Else():
                            m.d.sync += row.eq(row + 1)
                            m.next = "WRITE_CMD"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"

        # output pixels of the active unit (any state: the units run on while requests are served)
        for i, oo in enumerate(o):
            m.d.comb += oo.ready.eq(plane == i)
        with m.If(o_valid):
            m.d.sync += count.eq(count + 1)
            for c in range(C):
                m.d.comb += bw.en[c].eq(bch == c)
        return m
