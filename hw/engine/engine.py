"""The decoder engine's top (first step: convolution stacks): a sequencer that runs a layer program from memory on
the convolution unit, through the AXI4 master.

For each descriptor (hw.engine.program): fetch it, stream the layer's weights and biases into the unit, start it,
stream the input rows in (one read command a row: a descriptor may cover a vertical strip of the map, with a halo
column on each inner side) and the output out (one write command a row for a plain map, two runs of words per
input pixel when the output is PixelShuffled; the halo columns' outputs are dropped), wait until the unit is done
and every write is acknowledged, go on until the descriptor flagged last. `start` (with `program_addr`) runs a
program; `busy`, `done` (one-cycle pulse), `error` (an AXI error response; sticky until the next start) and
`cycles` (clock cycles of the last program) report. `EngineTop` puts it behind the AXI4-Lite register map.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from base.errors import EdgecodecError
from hw.engine.add_unit import CHUNK, AddUnit
from hw.engine.axi_dma import AxiDma, axi4_signature
from hw.engine.frame_warp import FrameWarp
from hw.engine.conv_unit import ConvUnit
from hw.engine.gru_unit import gru_unit
from hw.engine.program import (DESC_WORDS, FLAG_ADD, FLAG_CONCAT, FLAG_GRU, FLAG_WARP, frame_channels, FLAG_LAST, FLAG_ONE_INPUT, FLAG_SHUFFLE, FLAG_STRIDE2,
                               EngineShape)
from hw.engine.regs import RegisterBlock, axil_signature


def staged_end(m: Module, name: str, base, *terms) -> Signal:
    """base + terms in three register stages: the end of a region a descriptor names, ready three cycles after its
    fields (the sequencer's CHECK_OPERANDS, CHECK_PRODUCTS and CHECK_SUMS states). A term is a value or a pair of
    factors (a, b): the factors are registered first (so no carry chain of a field's arithmetic sits before a
    multiplier), then their product, then the sum; no multiplier and no adder chain sits between two of them."""
    widths = [Value.cast(base).shape().width]
    prods = []
    for i, t in enumerate(terms):
        factors = t if isinstance(t, tuple) else (t,)
        regs = []
        for j, v in enumerate(factors):
            r = Signal(Value.cast(v).shape(), name=f"{name}_o{i}{'ab'[j]}")
            m.d.sync += r.eq(v)
            regs.append(r)
        prod = regs[0] if len(regs) == 1 else regs[0] * regs[1]
        widths.append(Value.cast(prod).shape().width)
        prods.append(prod)
    width = max(widths) + 2
    total = base
    for i, prod in enumerate(prods):
        r = Signal(width, name=f"{name}_p{i}")
        m.d.sync += r.eq(prod)
        total = total + r
    out = Signal(width, name=name)
    m.d.sync += out.eq(total)
    return out


class ConvEngine(wiring.Component):
    """Sequencer + convolution unit + AXI4 master (module docstring), generated for `shape`."""

    def __init__(self, shape: EngineShape, addr_bits: int = 32, max_burst: int = 16, grus: tuple = ()):
        shape.check()
        self.shape, self.addr_bits, self.max_burst = shape, addr_bits, max_burst
        self.grus = [gru_unit(shape, g) for g in grus]
        if self.grus and shape.data_bits < 64:
            raise EdgecodecError(f"engine: a P-frame engine (with GRU units) needs a bus of at least 64 bits, got "
                                 f"{shape.data_bits}")
        super().__init__({
            "m_axi": Out(axi4_signature(addr_bits, shape.data_bits)),
            "start": In(1), "program_addr": In(addr_bits), "mem_limit": In(addr_bits),
            "busy": Out(1), "done": Out(1), "error": Out(1), "range_error": Out(1), "cycles": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        s, AB = self.shape, self.addr_bits
        word_bytes = s.data_bits // 8
        m.submodules.dma = dma = AxiDma(addr_bits=AB, data_bits=s.data_bits, max_burst=self.max_burst)
        m.submodules.conv = conv = ConvUnit(pe=s.pe, simd=s.simd, max_width=s.max_width, max_cin=s.max_cin,
                                            max_cout=s.max_cout, act_bits=s.act_bits, weight_bits=s.weight_bits,
                                            bias_bits=s.bias_bits, pre_bits=s.pre_bits, max_shift=s.max_shift)
        wiring.connect(m, wiring.flipped(self.m_axi), dma.m_axi)

        f = [Signal(32, name=f"desc_{i}") for i in range(DESC_WORDS)]
        flags, cig, cog, H, W = f[0], f[1], f[2], f[3], f[4]
        shuffle, stride2, last = flags[1], flags[2], flags[0]
        assert (FLAG_LAST, FLAG_SHUFFLE, FLAG_STRIDE2) == (1, 2, 4)
        Ho = Mux(stride2, (H[:16] + 1) >> 1, H[:16])
        Wo = Mux(stride2, (W[:16] + 1) >> 1, W[:16])
        m.d.comb += [
            conv.cin_groups.eq(cig), conv.cout_groups.eq(cog), conv.height.eq(H), conv.width.eq(W),
            conv.stride2.eq(stride2), conv.shift.eq(f[5]), conv.lo.eq(f[6]), conv.hi.eq(f[7]),
        ]
        desc_addr = Signal(AB)
        k = Signal(range(DESC_WORDS + 1))
        busy, error = Signal(), Signal()
        cycles = Signal(32)
        conv_done = Signal()
        m.d.comb += [self.busy.eq(busy), self.error.eq(error | dma.error), self.cycles.eq(cycles)]
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)
        with m.If(conv.done):
            m.d.sync += conv_done.eq(1)

        # ---- output beats: the unit's halo columns of a strip are dropped, the others go to memory
        ld, rd = f[15][:8], f[15][8:16]           # output pixels dropped at the left / right of each row
        keep_w = Wo - ld - rd                     # output pixels kept per row
        opx = Signal(16)
        og = Signal.like(cog)
        keep = (opx >= ld) & (opx < Wo - rd)
        o_fire = conv.o.valid & conv.o.ready
        with m.If(o_fire):
            with m.If(og == cog - 1):
                m.d.sync += [og.eq(0), opx.eq(Mux(opx == Wo - 1, 0, opx + 1))]
            with m.Else():
                m.d.sync += og.eq(og + 1)

        # ---- write commands: one a row for a plain map, two per kept input pixel when shuffled
        wy, wx, half = Signal(16), Signal(16), Signal()
        w_left = Signal()                        # write commands still to issue
        row_addr = Signal(AB)                    # the output row's address (plain) / row 2y's (shuffled)
        gq = cog[2:18]                           # words of one output pixel after the shuffle (C_out/4/PE)
        wx_off = Signal(AB)                      # wx * gq words, kept as a sum (no multiplier on the command path)
        shuf_addr = row_addr + Mux(half, f[14], 0) + wx_off
        wr_addr = Mux(shuffle, shuf_addr, row_addr)
        wr_beats = Signal(24)                    # registered: the descriptor's fields hold still from CHECK on
        m.d.sync += wr_beats.eq(Mux(shuffle, gq << 1, keep_w * cog))
        m.d.comb += dma.wr_cmd.payload.eq(wr_addr[:AB] | (wr_beats << AB))

        # ---- the regions a descriptor names, checked against the memory limit before a layer starts
        limit = Signal(AB)
        range_error = Signal()
        m.d.comb += self.range_error.eq(range_error)
        in_end = staged_end(m, "in_end", f[11], (H[:16] - 1, f[13]), (W[:16], cig[:8] * word_bytes))
        out_end = staged_end(m, "out_end", f[12], (Mux(shuffle, (Ho << 1) - 1, Ho - 1), f[14]),
                             (keep_w, Mux(shuffle, gq << 1, cog[:16]) * word_bytes))
        out_of_range = ((f[8] + f[9] * word_bytes > limit) | (f[10] + cog * word_bytes > limit) |
                        (in_end > limit) | (out_end > limit) | (H[:16] == 0) | (W[:16] == 0))

        # ---- input rows: one read command a row of the strip
        r_left = Signal(16)
        r_addr = Signal(AB)
        row_beats = Signal(24)

        def rd_cmd(addr, beats):
            m.d.comb += [dma.rd_cmd.valid.eq(1), dma.rd_cmd.payload.eq(addr[:AB] | (beats << AB))]

        def route(sink):
            m.d.comb += [sink.valid.eq(dma.rd_data.valid), sink.payload.eq(dma.rd_data.payload),
                         dma.rd_data.ready.eq(sink.ready)]

        if self.grus:
            f_hi = {11: Signal(32, name="desc_11_hi"), 13: Signal(32, name="desc_13_hi")}
            in_run = Signal()
            concat, concat_bad, concat_reads = self._concat(m, f, f_hi, dma, conv, r_left, in_run, limit, word_bytes)
            is_gru, gru_bad, gru_states, gru_writes = self._gru(m, f, dma, rd_cmd, route, limit, word_bytes)
            is_add, add_bad, add_start, add_states, add_writes = self._add(m, f, dma, rd_cmd, limit, word_bytes)
            # the frame warp (FLAG_WARP; layout: hw.engine.program.warp_descriptor)
            m.submodules.frame_warp = fwarp = FrameWarp(lanes=s.pe, lane_bits=s.act_bits, word_bits=s.data_bits,
                                                        channels=frame_channels(s), addr_bits=AB)
            is_warp = f[0][7]
            assert FLAG_WARP == 128
            fh, fw_ = f[3][:16], f[4][:16]
            m.d.comb += [fwarp.height.eq(fh), fwarp.width.eq(fw_), fwarp.ref.eq(f[11]), fwarp.out.eq(f[12]),
                         fwarp.mv.eq(f[9])]
            frame_bytes = (fh, fw_ * (frame_channels(s) // s.pe * word_bytes))
            warp_ends = [staged_end(m, "warp_end0", f[11], frame_bytes), staged_end(m, "warp_end1", f[12], frame_bytes),
                         staged_end(m, "warp_end2", f[9], (fh >> 3, (fw_ >> 3) * word_bytes))]
            warp_bad = ((fh == 0) | (fw_ == 0) | (fh[:3] != 0) | (fw_[:3] != 0) | (warp_ends[0] > limit) |
                        (warp_ends[1] > limit) | (warp_ends[2] > limit))
            warp_done, warp_running = Signal(), Signal()
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [desc_addr.eq(self.program_addr), busy.eq(1), cycles.eq(0), error.eq(0),
                                 range_error.eq(0), limit.eq(self.mem_limit)]
                    m.d.comb += dma.clear.eq(1)
                    m.next = "FETCH_CMD"
            with m.State("FETCH_CMD"):
                with m.If(desc_addr + DESC_WORDS * word_bytes > limit):
                    m.d.sync += range_error.eq(1)
                    m.next = "RANGE"
                with m.Else():
                    rd_cmd(desc_addr, DESC_WORDS)
                    with m.If(dma.rd_cmd.ready):
                        m.d.sync += k.eq(0)
                        m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += dma.rd_data.ready.eq(1)
                with m.If(dma.rd_data.valid):
                    with m.Switch(k):
                        for i in range(DESC_WORDS):
                            with m.Case(i):
                                m.d.sync += f[i].eq(dma.rd_data.payload[:32])
                                if self.grus and i in (11, 13):
                                    m.d.sync += f_hi[i].eq(dma.rd_data.payload[32:64])
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == DESC_WORDS - 1):
                        m.next = "CHECK_OPERANDS"
            # the regions' ends go through three register stages (staged_end): operands, products, sums
            with m.State("CHECK_OPERANDS"):
                m.next = "CHECK_PRODUCTS"
            with m.State("CHECK_PRODUCTS"):
                m.next = "CHECK_SUMS"
            with m.State("CHECK_SUMS"):
                m.next = "CHECK"
            with m.State("CHECK"):
                # every region the descriptor names must end inside memory, or the program stops here
                bad = out_of_range
                if self.grus:
                    bad = Mux(is_gru, gru_bad, Mux(is_warp, warp_bad, Mux(is_add, add_bad,
                                                                          out_of_range | (concat & concat_bad))))
                with m.If(bad):
                    m.d.sync += range_error.eq(1)
                    m.next = "RANGE"
                if self.grus:
                    with m.Elif(is_gru):
                        m.next = "GRU_SUMS_CMD"
                    with m.Elif(is_warp):
                        m.d.comb += fwarp.start.eq(1)
                        m.d.sync += warp_done.eq(0)
                        m.next = "WARP_RUN"
                    with m.Elif(is_add):
                        add_start()
                        m.next = "ADD_RUN"
                with m.Else():
                    m.next = "LOADW_CMD"
            if self.grus:
                gru_states()
                add_states()
                with m.State("WARP_RUN"):
                    m.d.comb += warp_running.eq(1)
                    m.d.comb += [dma.rd_cmd.valid.eq(fwarp.rd_cmd.valid), dma.rd_cmd.payload.eq(fwarp.rd_cmd.payload),
                                 fwarp.rd_cmd.ready.eq(dma.rd_cmd.ready),
                                 fwarp.rd_data.valid.eq(dma.rd_data.valid),
                                 fwarp.rd_data.payload.eq(dma.rd_data.payload),
                                 dma.rd_data.ready.eq(fwarp.rd_data.ready),
                                 dma.wr_data.valid.eq(fwarp.wr_data.valid),
                                 dma.wr_data.payload.eq(fwarp.wr_data.payload),
                                 fwarp.wr_data.ready.eq(dma.wr_data.ready)]
                    with m.If(fwarp.done):
                        m.d.sync += warp_done.eq(1)
                    with m.If(warp_done & ~dma.rd_busy & ~dma.wr_busy):
                        m.next = "NEXT"
            with m.State("RANGE"):
                m.d.sync += busy.eq(0)
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
            with m.State("LOADW_CMD"):
                m.d.comb += conv.load.eq(1)
                m.d.sync += row_beats.eq(W[:16] * cig[:8])
                rd_cmd(f[8], f[9])
                with m.If(dma.rd_cmd.ready):
                    m.next = "LOADW"
            with m.State("LOADW"):
                route(conv.w)
                with m.If(~dma.rd_busy):
                    m.next = "LOADB_CMD"
            with m.State("LOADB_CMD"):
                rd_cmd(f[10], cog)
                with m.If(dma.rd_cmd.ready):
                    m.next = "LOADB"
            with m.State("LOADB"):
                route(conv.b)
                with m.If(~dma.rd_busy):
                    m.d.comb += conv.start.eq(1)
                    m.d.sync += [conv_done.eq(0), wy.eq(0), wx.eq(0), wx_off.eq(0), half.eq(0), w_left.eq(1), opx.eq(0),
                                 og.eq(0), row_addr.eq(f[12]), r_left.eq(H[:16]), r_addr.eq(f[11])]
                    m.next = "RUN"
            with m.State("RUN"):
                if self.grus:
                    m.d.comb += in_run.eq(1)
                route(conv.i)
                m.d.comb += [dma.rd_cmd.valid.eq(r_left != 0),
                             dma.rd_cmd.payload.eq(r_addr | (row_beats << AB)),
                             dma.wr_data.valid.eq(conv.o.valid & keep), dma.wr_data.payload.eq(conv.o.payload),
                             conv.o.ready.eq(~keep | dma.wr_data.ready)]
                with m.If(dma.rd_cmd.valid & dma.rd_cmd.ready):
                    m.d.sync += [r_left.eq(r_left - 1), r_addr.eq(r_addr + f[13])]
                with m.If(conv_done & ~w_left & ~dma.wr_busy & ~dma.rd_busy & (r_left == 0)):
                    m.next = "NEXT"
            with m.State("NEXT"):
                with m.If(last):
                    m.d.sync += busy.eq(0)
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += desc_addr.eq(desc_addr + DESC_WORDS * word_bytes)
                    m.next = "FETCH_CMD"

        # the write-command generator runs beside the RUN state's data path
        m.d.comb += dma.wr_cmd.valid.eq(w_left & busy & (keep_w != 0))
        with m.If(dma.wr_cmd.valid & dma.wr_cmd.ready):
            with m.If(~shuffle):
                m.d.sync += row_addr.eq(row_addr + f[14])
                with m.If(wy == Ho - 1):
                    m.d.sync += w_left.eq(0)
                with m.Else():
                    m.d.sync += wy.eq(wy + 1)
            with m.Else():
                m.d.sync += half.eq(~half)
                with m.If(half):
                    with m.If(wx == keep_w - 1):
                        m.d.sync += [wx.eq(0), wx_off.eq(0), row_addr.eq(row_addr + (f[14] << 1))]
                        with m.If(wy == Ho - 1):
                            m.d.sync += w_left.eq(0)
                        with m.Else():
                            m.d.sync += wy.eq(wy + 1)
                    with m.Else():
                        m.d.sync += [wx.eq(wx + 1), wx_off.eq(wx_off + gq * (2 * word_bytes))]
        if self.grus:
            gru_writes()
            add_writes()
            concat_reads()
            with m.If(warp_running):
                m.d.comb += [dma.wr_cmd.valid.eq(fwarp.wr_cmd.valid), dma.wr_cmd.payload.eq(fwarp.wr_cmd.payload),
                             fwarp.wr_cmd.ready.eq(dma.wr_cmd.ready)]
        with m.If(dma.error):
            m.d.sync += error.eq(1)
        return m

    def _concat(self, m: Module, f: list, f_hi: dict, dma, conv, r_left, in_run, limit, word_bytes: int):
        """Convolutions whose input is the concatenation of two maps along channels (FLAG_CONCAT; p_synth reads
        h_t and the context): per input pixel one read command for map a's C_a/SIMD words (field 11, row pitch
        13), one for map b's (address and row pitch in bits 32-63 of words 11 and 13); C_a/SIMD in bits 16-23 of
        field 15. The unit sees the words of a pixel in channel order, as from one map. Returns (is concat,
        map b out of memory, a function adding the read commands; called after the RUN state's, which it
        overrides)."""
        AB = self.addr_bits
        concat = f[0][6]
        assert FLAG_CONCAT == 64
        H, W, cig = f[3][:16], f[4][:16], f[1][:8]
        ga = f[15][16:24]
        gb = Signal(8)
        m.d.comb += gb.eq(cig - ga)
        b_end = staged_end(m, "cat_b_end", f_hi[11], (H - 1, f_hi[13]), (W, gb * word_bytes))
        bad = (b_end > limit) | (ga == 0) | (ga >= cig)
        a_row, b_row, a_px, b_px = (Signal(AB, name=n) for n in ("cat_a_row", "cat_b_row", "cat_a_px", "cat_b_px"))
        cx = Signal(16)
        cb = Signal()

        def reads():
            with m.If(conv.start):
                m.d.sync += [a_row.eq(f[11]), a_px.eq(f[11]), b_row.eq(f_hi[11]), b_px.eq(f_hi[11]), cx.eq(0),
                             cb.eq(0)]
            with m.If(in_run & concat & (r_left != 0)):
                m.d.comb += [dma.rd_cmd.valid.eq(1),
                             dma.rd_cmd.payload.eq(Mux(cb, b_px, a_px)[:AB] | (Mux(cb, gb, ga) << AB))]
                m.d.sync += r_left.eq(r_left)
                with m.If(dma.rd_cmd.ready):
                    m.d.sync += cb.eq(~cb)
                    with m.If(~cb):
                        m.d.sync += a_px.eq(a_px + ga * word_bytes)
                    with m.Elif(cx == W - 1):
                        m.d.sync += [cx.eq(0), r_left.eq(r_left - 1), a_row.eq(a_row + f[13]),
                                     b_row.eq(b_row + f_hi[13]), a_px.eq(a_row + f[13]), b_px.eq(b_row + f_hi[13])]
                    with m.Else():
                        m.d.sync += [cx.eq(cx + 1), b_px.eq(b_px + gb * word_bytes)]

        return concat, bad, reads

    def _add(self, m: Module, f: list, dma, rd_cmd, limit, word_bytes: int):
        """The element-wise descriptors (hw.engine.add_unit; layout: hw.engine.program.add_descriptor): read a and
        b in alternating chunks (only a with FLAG_ONE_INPUT), write the results as one run."""
        AB = self.addr_bits
        m.submodules.add = unit = AddUnit(lanes=self.shape.pe, lane_bits=self.shape.act_bits,
                                          word_bits=self.shape.data_bits)
        flags, total = f[0], f[1][:24]
        is_add, one = flags[4], flags[5]
        assert (FLAG_ADD, FLAG_ONE_INPUT) == (16, 32)
        m.d.comb += [unit.k.eq(f[5]), unit.lo.eq(f[6]), unit.hi.eq(f[7]), unit.one_input.eq(one)]
        run_bytes = total * word_bytes
        ends = [staged_end(m, f"add_end{i}", base, run_bytes) for i, base in enumerate((f[11], f[9], f[12]))]
        bad = (total == 0) | (ends[0] > limit) | (~one & (ends[1] > limit)) | (ends[2] > limit)
        c_rem, rt_rem = Signal(24), Signal(24)          # words of a still to request / to route
        c_b, rt_b = Signal(), Signal()                  # the next command / the beats now routed are b's
        rt_k = Signal(range(CHUNK + 1))
        a_addr, b_addr = Signal(AB), Signal(AB)
        written = Signal(24)
        w_cmd, running = Signal(), Signal()
        c_len = Mux(c_rem > CHUNK, CHUNK, c_rem)
        rt_len = Mux(rt_rem > CHUNK, CHUNK, rt_rem)

        def start():
            m.d.sync += [c_rem.eq(total), rt_rem.eq(total), c_b.eq(0), rt_b.eq(0), rt_k.eq(0), a_addr.eq(f[11]),
                         b_addr.eq(f[9]), written.eq(0), w_cmd.eq(1)]

        def states():
            with m.State("ADD_RUN"):
                m.d.comb += running.eq(1)
                with m.If(c_rem != 0):
                    rd_cmd(Mux(c_b, b_addr, a_addr), c_len)
                    with m.If(dma.rd_cmd.ready):
                        with m.If(c_b | one):
                            m.d.sync += [c_rem.eq(c_rem - c_len), c_b.eq(0)]
                        with m.Else():
                            m.d.sync += c_b.eq(1)
                        with m.If(c_b):
                            m.d.sync += b_addr.eq(b_addr + c_len * word_bytes)
                        with m.Else():
                            m.d.sync += a_addr.eq(a_addr + c_len * word_bytes)
                m.d.comb += [unit.a.payload.eq(dma.rd_data.payload), unit.b.payload.eq(dma.rd_data.payload),
                             unit.a.valid.eq(dma.rd_data.valid & ~rt_b), unit.b.valid.eq(dma.rd_data.valid & rt_b),
                             dma.rd_data.ready.eq(Mux(rt_b, unit.b.ready, unit.a.ready))]
                with m.If(dma.rd_data.valid & dma.rd_data.ready):
                    with m.If(rt_k == rt_len - 1):
                        m.d.sync += rt_k.eq(0)
                        with m.If(rt_b | one):
                            m.d.sync += [rt_rem.eq(rt_rem - rt_len), rt_b.eq(0)]
                        with m.Else():
                            m.d.sync += rt_b.eq(1)
                    with m.Else():
                        m.d.sync += rt_k.eq(rt_k + 1)
                m.d.comb += [dma.wr_data.valid.eq(unit.o.valid), dma.wr_data.payload.eq(unit.o.payload),
                             unit.o.ready.eq(dma.wr_data.ready)]
                with m.If(unit.o.valid & unit.o.ready):
                    m.d.sync += written.eq(written + 1)
                with m.If((written == total) & ~w_cmd & (c_rem == 0) & ~dma.rd_busy & ~dma.wr_busy):
                    m.next = "NEXT"

        def write_commands():
            with m.If(running & w_cmd):
                m.d.comb += [dma.wr_cmd.valid.eq(1), dma.wr_cmd.payload.eq(f[12][:AB] | (total << AB))]
                with m.If(dma.wr_cmd.ready):
                    m.d.sync += w_cmd.eq(0)

        return is_add, bad, start, states, write_commands

    def _gru(self, m: Module, f: list, dma, rd_cmd, route, limit, word_bytes: int):
        """The ASE-GRU layers' part of the sequencer (descriptor layout: hw.engine.program.gru_descriptor).

        Per GRU descriptor: read the C pool sums of h_{t-1} into the unit and start it; read x row 0, h_{t-1}
        row 0, x row 1, h_{t-1} row 1, ... (the unit's projector needs x row r+1 to finish row r, its h FIFO holds
        one row), write h_t row by row; then write the C sums of h_t. Returns (is_gru, bad descriptor, a function
        adding the FSM states; called inside the FSM)."""
        AB, units = self.addr_bits, self.grus
        for i, u in enumerate(units):
            m.submodules[f"gru{i}"] = u
        flags, sel, H, W = f[0], f[1], f[3][:16], f[4][:16]
        is_gru = flags[3]
        assert FLAG_GRU == 8
        n = len(units)
        chans = Signal(16)           # C of the selected unit
        kpx = Signal(8)              # words a pixel
        size_ok = Signal()

        def pick(value):
            """value(unit) of the selected unit, as a chain of multiplexers (not a `case` block: Icarus 11 would
            not evaluate one whose select keeps its initial value)."""
            out = value(units[0])
            for i, u in enumerate(units[1:], 1):
                out = Mux(sel == i, value(u), out)
            return out

        m.d.comb += [chans.eq(pick(lambda u: u.params.channels)), kpx.eq(pick(lambda u: u.words_per_pixel)),
                     size_ok.eq(pick(lambda u: (H == u.height) & (W == u.width)))]
        row_words = Signal(24)               # registered: the descriptor's fields hold still from CHECK on
        m.d.sync += row_words.eq(W * kpx)
        end_sigs = [staged_end(m, "gru_end0", f[8], chans * word_bytes),
                    staged_end(m, "gru_end1", f[10], chans * word_bytes)] + [
            staged_end(m, f"gru_end{i}", base, (H - 1, pitch), (W, kpx * word_bytes))
            for i, (base, pitch) in enumerate(((f[11], f[13]), (f[9], f[14]), (f[12], f[14])), 2)]
        bad = (sel >= n) | ~size_ok
        for e in end_sigs:
            bad = bad | (e > limit)

        def each(fn):
            with m.Switch(sel):
                for i, u in enumerate(units):
                    with m.Case(i):
                        fn(u)

        # read commands: x row r, h row r, alternately; the router sends each row's beats to its port
        r_left, w_left = Signal(17), Signal(16)
        x_addr, h_addr, o_addr = Signal(AB), Signal(AB), Signal(AB)
        r_is_h = Signal()
        rt_h, rt_k = Signal(), Signal(24)
        unit_done = Signal()
        running, sums_cmd = Signal(), Signal()

        def states():
            with m.State("GRU_SUMS_CMD"):
                rd_cmd(f[8], chans)
                with m.If(dma.rd_cmd.ready):
                    m.next = "GRU_SUMS"
            with m.State("GRU_SUMS"):
                each(lambda u: route(u.s_in))
                with m.If(~dma.rd_busy):
                    for i, u in enumerate(units):
                        m.d.comb += u.start.eq(sel == i)
                    m.d.sync += [r_left.eq(H << 1), w_left.eq(H), x_addr.eq(f[11]), h_addr.eq(f[9]),
                                 o_addr.eq(f[12]), r_is_h.eq(0), rt_h.eq(0), rt_k.eq(0), unit_done.eq(0)]
                    m.next = "GRU_RUN"
            with m.State("GRU_RUN"):
                m.d.comb += running.eq(1)
                with m.If(r_left != 0):
                    rd_cmd(Mux(r_is_h, h_addr, x_addr), row_words)
                    with m.If(dma.rd_cmd.ready):
                        m.d.sync += [r_left.eq(r_left - 1), r_is_h.eq(~r_is_h)]
                        with m.If(r_is_h):
                            m.d.sync += h_addr.eq(h_addr + f[14])
                        with m.Else():
                            m.d.sync += x_addr.eq(x_addr + f[13])
                for i, u in enumerate(units):
                    mine = sel == i
                    m.d.comb += [u.x.payload.eq(dma.rd_data.payload), u.h.payload.eq(dma.rd_data.payload),
                                 u.x.valid.eq(mine & dma.rd_data.valid & ~rt_h),
                                 u.h.valid.eq(mine & dma.rd_data.valid & rt_h)]
                    with m.If(mine):
                        m.d.comb += dma.rd_data.ready.eq(Mux(rt_h, u.h.ready, u.x.ready))
                with m.If(dma.rd_data.valid & dma.rd_data.ready):
                    with m.If(rt_k == row_words - 1):
                        m.d.sync += [rt_k.eq(0), rt_h.eq(~rt_h)]
                    with m.Else():
                        m.d.sync += rt_k.eq(rt_k + 1)
                for i, u in enumerate(units):
                    with m.If(sel == i):
                        m.d.comb += [dma.wr_data.valid.eq(u.o.valid), dma.wr_data.payload.eq(u.o.payload),
                                     u.o.ready.eq(dma.wr_data.ready)]
                        with m.If(u.done):
                            m.d.sync += unit_done.eq(1)
                with m.If(unit_done & (w_left == 0) & (r_left == 0) & ~dma.rd_busy & ~dma.wr_busy):
                    m.next = "GRU_SUMS_WR_CMD"
            with m.State("GRU_SUMS_WR_CMD"):
                m.d.comb += sums_cmd.eq(1)
                with m.If(dma.wr_cmd.ready):
                    m.next = "GRU_SUMS_WR"
            with m.State("GRU_SUMS_WR"):
                s_left = Signal()
                for i, u in enumerate(units):
                    with m.If(sel == i):
                        m.d.comb += [dma.wr_data.valid.eq(u.s_out.valid), dma.wr_data.payload.eq(u.s_out.payload),
                                     u.s_out.ready.eq(dma.wr_data.ready), s_left.eq(u.s_out.valid)]
                with m.If(~s_left & ~dma.wr_busy):
                    m.next = "NEXT"

        def write_commands():
            """h_t's write commands (one a row, beside GRU_RUN's data path) and the sums' one; added after the
            convolution's write-command generator, whose assignments they override."""
            with m.If(running & (w_left != 0)):
                m.d.comb += [dma.wr_cmd.valid.eq(1), dma.wr_cmd.payload.eq(o_addr | (row_words << AB))]
                with m.If(dma.wr_cmd.ready):
                    m.d.sync += [w_left.eq(w_left - 1), o_addr.eq(o_addr + f[14])]
            with m.If(sums_cmd):
                m.d.comb += [dma.wr_cmd.valid.eq(1), dma.wr_cmd.payload.eq(f[10][:AB] | (chans << AB))]
        return is_gru, bad, states, write_commands


class EngineTop(wiring.Component):
    """The engine as an IP block: `ConvEngine` behind the AXI4-Lite register map of hw/engine/rdl/engine_regs.rdl
    (docs/engine_regs.md) and its AXI4 master. START, PROGRAM_ADDR and MEM_LIMIT writes while busy are dropped and
    flagged (STATUS.REJECTED); DONE, ERROR and RANGE (a descriptor naming memory beyond MEM_LIMIT: the program stops
    before that layer) are sticky until CLEAR or the next START."""

    def __init__(self, shape: EngineShape, addr_bits: int = 32, max_burst: int = 16, grus: tuple = ()):
        self.shape, self.addr_bits, self.max_burst, self.gru_specs = shape, addr_bits, max_burst, tuple(grus)
        self.regs = RegisterBlock(lockable=("CTRL.START", "PROGRAM_ADDR.ADDR", "MEM_LIMIT.ADDR"))
        super().__init__({
            "m_axi": Out(axi4_signature(addr_bits, shape.data_bits)),
            "s_axil": Out(axil_signature(self.regs.addr_bits)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.shape
        m.submodules.regs = regs = self.regs
        m.submodules.engine = eng = ConvEngine(s, self.addr_bits, self.max_burst, self.gru_specs)
        wiring.connect(m, wiring.flipped(self.m_axi), eng.m_axi)
        wiring.connect(m, wiring.flipped(self.s_axil), regs.s_axil)
        done, error, rejected, out_of_range = Signal(), Signal(), Signal(), Signal()
        clear = regs.CTRL_CLEAR
        m.d.comb += [
            regs.SHAPE_PE.eq(s.pe), regs.SHAPE_BUS_BYTES.eq(s.data_bits // 8), regs.SHAPE_MAX_WIDTH.eq(s.max_width),
            regs.lock.eq(eng.busy),
            eng.start.eq(regs.CTRL_START), eng.program_addr.eq(regs.PROGRAM_ADDR_ADDR),
            eng.mem_limit.eq(regs.MEM_LIMIT_ADDR), regs.STATUS_RANGE.eq(out_of_range),
            regs.STATUS_BUSY.eq(eng.busy), regs.STATUS_DONE.eq(done), regs.STATUS_ERROR.eq(error),
            regs.STATUS_REJECTED.eq(rejected), regs.CYCLES_COUNT.eq(eng.cycles),
            self.irq.eq(done),
        ]
        with m.If(clear | regs.CTRL_START):
            m.d.sync += [done.eq(0), error.eq(0), out_of_range.eq(0)]
        with m.If(eng.done & eng.range_error):
            m.d.sync += out_of_range.eq(1)
        with m.If(clear):
            m.d.sync += rejected.eq(0)
        with m.If(eng.done):
            m.d.sync += done.eq(1)
        with m.If(eng.error):
            m.d.sync += error.eq(1)
        with m.If(regs.rejected):
            m.d.sync += rejected.eq(1)
        return m
