"""The decoder engine's convolution unit: one k x k convolution layer (stride 1 or 2, zero padding k//2), any
C_in / C_out up to the generated maxima, configured at run time, PE x SIMD folded.

It computes, for every output pixel (oy, ox) and output channel c (docs/numerics.md, "conv stacks"):

    acc = (sum_{ky,kx,ci} w[c,ci,ky,kx] * x[ci, s*oy+ky-pad, s*ox+kx-pad]) << pre[c]  +  b[c]
    out = clamp(round_half_even(acc * 2^-shift), lo, hi)

with x = 0 outside the frame. `pre[c]` aligns the per-output-channel power-of-two weight grids of
`quant.codec.intnet` (its weights are stored there already shifted: (w << pre) * x = (w * x) << pre); [lo, hi]
folds the requantisation's saturation and a following ReLU / Hardtanh into one clamp. A PixelShuffle after the
convolution is an ordering of the output channels, left to whoever writes the output (the engine's DMA).

Interfaces
----------
- configuration (`cin_groups` = C_in/SIMD, `cout_groups` = C_out/PE, `height`, `width` of the input, `stride2`,
  `shift`, `lo`, `hi`): sampled on `start`, held by the unit for the whole layer;
- `load` (pulse): the weight and bias streams restart at address 0;
- `w` stream: the layer's weights, PE*SIMD codes a beat (lane p*SIMD + j = output channel og*PE + p, input
  channel ig*SIMD + j), beats ordered (og, ky, kx, ig);
- `b` stream: per output group one beat, lane p = (bias, pre) of output channel og*PE + p;
- `i` stream: the input map, SIMD channel codes a beat, raster order, channel group innermost;
- `o` stream: the output map, PE channel codes a beat, raster order, channel group innermost;
- `start` (pulse while idle), `busy`, `done` (one-cycle pulse when the last output beat has been taken).

Architecture
------------
A line buffer of `row_slots` = 2^ceil(log2(k+1)) input rows (4 for k = 3; slot = row mod row_slots; each `max_width * max_cin/SIMD` words of SIMD codes) and a
weight buffer of `max_cout/PE * k^2 * max_cin/SIMD` words of PE*SIMD codes, both `Memory`s. The issue stage
walks (oy, ox, og, ky, kx, ig) and issues one step a cycle when the input rows of output row oy are in the
buffer: PE*SIMD multiplies, summed into PE accumulators; the last step of a group adds the bias and requantises.
Pipeline: memory read, the read words registered, products, accumulate, pre-shift and bias, requantise, clamp into
the output register: no stage holds more than one multiplier or one carry chain after another (the clock).
Input row r may enter the buffer while r <= s*oy - pad + row_slots - 1 (the slot it overwrites held row
r - row_slots, no longer read), so loading overlaps computing. A full output register stalls the whole pipeline (memory read ports included).

Cycle cost without stalls (`layer_cycles`): one cycle per step, Ho*Wo*C_out/PE*k^2*C_in/SIMD, plus the wait for
the first rows, plus, at stride 2, the wait for one row per output row that could not be loaded ahead, plus
`PIPELINE` cycles to drain.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

def _pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(n)))


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


PIPELINE = 8         # cycles from a layer's last issued step to `done` (memory read, its register, multiply,
                     # sum, pre-shift and bias, requantisation, output)


def layer_cycles(*, cin_groups: int, cout_groups: int, height: int, width: int, stride: int, kernel: int = 3,
                 row_slots: int = 4, row_gap: int = 0, pixel_gap: int = 0) -> int:
    """Cycles from `start` to `done` of one layer when the output is always ready and the input stream delivers a
    beat a cycle, with `row_gap` idle cycles after each row before the next row's first beat (0: always valid; the
    engine's one read command a row adds its memory latency) and `pixel_gap` idle cycles inside a row per input
    pixel (a concatenated input: two read commands a pixel): the schedule of the line buffer and the issue stage,
    row by row (module docstring)."""
    pad = kernel // 2
    ho, wo = (height - 1) // stride + 1, (width - 1) // stride + 1
    load = width * cin_groups + (width - 1) * pixel_gap     # cycles to load one input row
    compute = wo * cout_groups * kernel * kernel * cin_groups
    issue_end = []                                  # first cycle after the last step of each output row
    row_done = []                                   # cycle from which each input row counts as loaded

    def reached(oy: int) -> int:                    # cycle from which the issue stage is at output row oy
        return 0 if oy == 0 else issue_end[oy - 1]

    for oy in range(ho):
        last_row = min(stride * oy + pad, height - 1)
        while len(row_done) <= last_row:
            r = len(row_done)
            free_at = -(-(r + pad - row_slots + 1) // stride)      # issue row from which slot r is free
            begin = max(row_done[-1] + row_gap if row_done else 0, reached(max(0, free_at)))
            row_done.append(begin + load)
        issue_end.append(max(reached(oy), row_done[last_row]) + compute)
    return issue_end[-1] + PIPELINE


def shift_round_var(v, shift, max_shift: int):
    """v * 2^-shift rounded half to even, shift a run-time unsigned value in [0, max_shift]."""
    v = v.as_signed()
    n = len(v)
    q = v >> shift
    ones = Const((1 << (max_shift + 1)) - 1, unsigned(max_shift + 1))
    mask = (~(ones << shift))[:max_shift + 1]          # the low `shift` bits
    rem = (v.as_unsigned() & mask)[:max_shift + 1]
    half = (Const(1, unsigned(max_shift + 1)) << shift) >> 1
    up = (shift != 0) & ((rem > half) | ((rem == half) & q[0]))
    return (q + up)[:n + 1].as_signed()


class ConvUnit(wiring.Component):
    """Run-time configured k x k convolution (module docstring).

    Parameters
    ----------
    pe, simd : output channels and input channels per cycle.
    max_width, max_cin, max_cout : largest input width and channel counts a layer may have (C_in a multiple of
        SIMD, C_out of PE).
    kernel : k (odd).
    act_bits : width of the input and output codes (signed).
    weight_bits : width of the weight codes (signed).
    bias_bits : width of the bias codes (signed); pre_bits : width of the per-channel pre-shift (unsigned).
    max_shift : largest requantisation shift.
    """

    def __init__(self, *, pe: int, simd: int, max_width: int, max_cin: int, max_cout: int, kernel: int = 3,
                 act_bits: int = 12, weight_bits: int = 8, bias_bits: int = 24, pre_bits: int = 3,
                 max_shift: int = 23):
        self.pe, self.simd = _positive("pe", pe), _positive("simd", simd)
        self.max_width = _positive("max_width", max_width)
        self.max_cin, self.max_cout = _positive("max_cin", max_cin), _positive("max_cout", max_cout)
        self.kernel = _positive("kernel", kernel)
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {kernel}")
        if max_cin % simd or max_cout % pe:
            raise ValueError(f"max_cin ({max_cin}) must be a multiple of simd ({simd}) and max_cout ({max_cout}) "
                             f"of pe ({pe})")
        self.act_bits, self.weight_bits = _positive("act_bits", act_bits), _positive("weight_bits", weight_bits)
        self.bias_bits, self.pre_bits = _positive("bias_bits", bias_bits), _positive("pre_bits", pre_bits)
        self.max_shift = _positive("max_shift", max_shift)
        k2 = kernel * kernel
        self.max_cin_groups, self.max_cout_groups = max_cin // simd, max_cout // pe
        self.row_slots = _pow2(kernel + 1)      # k rows in use by the window, at least one loading ahead
        self.line_words = self.row_slots * _pow2(max_width) * _pow2(self.max_cin_groups)
        self.weight_words = self.max_cout_groups * k2 * self.max_cin_groups
        prod = weight_bits + act_bits
        self.acc_bits = prod + math.ceil(math.log2(k2 * max_cin)) + 1
        self.fin_bits = max(self.acc_bits + (1 << pre_bits) - 1, bias_bits) + 1
        A = act_bits
        super().__init__({
            "cin_groups": In(range(1, self.max_cin_groups + 1)),
            "cout_groups": In(range(1, self.max_cout_groups + 1)),
            "height": In(range(1, 1 << 16)),
            "width": In(range(1, max_width + 1)),
            "stride2": In(1),
            "shift": In(range(max_shift + 1)),
            "lo": In(signed(A + 1)),
            "hi": In(signed(A + 1)),
            "load": In(1),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "w": In(stream.Signature(unsigned(pe * simd * weight_bits))),
            "b": In(stream.Signature(unsigned(pe * (bias_bits + pre_bits)))),
            "i": In(stream.Signature(unsigned(simd * A))),
            "o": Out(stream.Signature(unsigned(pe * A))),
        })

    def elaborate(self, platform):
        m = Module()
        PE, SIMD, k, A, Wb = self.pe, self.simd, self.kernel, self.act_bits, self.weight_bits
        pad = k // 2
        wcols, wcg = _pow2(self.max_width), _pow2(self.max_cin_groups)

        # ---- layer configuration, latched on start
        cig = Signal.like(self.cin_groups)
        cog = Signal.like(self.cout_groups)
        H = Signal.like(self.height)
        W = Signal.like(self.width)
        s2 = Signal()
        shift = Signal.like(self.shift)
        lo, hi = Signal.like(self.lo), Signal.like(self.hi)
        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        Ho = Mux(s2, (H + 1) >> 1, H)
        Wo = Mux(s2, (W + 1) >> 1, W)

        # ---- weight and bias loading
        m.submodules.wmem = wmem = Memory(shape=unsigned(PE * SIMD * Wb), depth=self.weight_words, init=[])
        m.submodules.bmem = bmem = Memory(shape=unsigned(PE * (self.bias_bits + self.pre_bits)),
                                          depth=self.max_cout_groups, init=[])
        wwr, bwr = wmem.write_port(), bmem.write_port()
        waddr = Signal(range(self.weight_words + 1))
        baddr = Signal(range(self.max_cout_groups + 1))
        m.d.comb += [
            self.w.ready.eq(~busy & (waddr < self.weight_words)),
            wwr.addr.eq(waddr), wwr.data.eq(self.w.payload), wwr.en.eq(self.w.valid & self.w.ready),
            self.b.ready.eq(~busy & (baddr < self.max_cout_groups)),
            bwr.addr.eq(baddr), bwr.data.eq(self.b.payload), bwr.en.eq(self.b.valid & self.b.ready),
        ]
        with m.If(self.load):
            m.d.sync += [waddr.eq(0), baddr.eq(0)]
        with m.Else():
            with m.If(wwr.en):
                m.d.sync += waddr.eq(waddr + 1)
            with m.If(bwr.en):
                m.d.sync += baddr.eq(baddr + 1)

        # ---- input rows into the line buffer
        m.submodules.lmem = lmem = Memory(shape=unsigned(SIMD * A), depth=self.line_words, init=[])
        lwr = lmem.write_port()
        lrow = Signal(16)                      # rows loaded so far
        lcol = Signal(range(max(self.max_width, 2)))
        lcg = Signal(range(max(self.max_cin_groups, 2)))
        oy = Signal(16)
        slot_bits = self.row_slots.bit_length() - 1
        room = (lrow < H) & (lrow + pad <= Mux(s2, oy << 1, oy) + self.row_slots - 1)
        m.d.comb += [
            self.i.ready.eq(busy & room),
            lwr.addr.eq(Cat(lcg[:max(1, wcg.bit_length() - 1)] if wcg > 1 else Const(0, 0),
                            lcol[:max(1, wcols.bit_length() - 1)] if wcols > 1 else Const(0, 0),
                            lrow[:slot_bits])),
            lwr.data.eq(self.i.payload),
            lwr.en.eq(self.i.valid & self.i.ready),
        ]
        with m.If(lwr.en):
            with m.If(lcg == cig - 1):
                m.d.sync += lcg.eq(0)
                with m.If(lcol == W - 1):
                    m.d.sync += [lcol.eq(0), lrow.eq(lrow + 1)]
                with m.Else():
                    m.d.sync += lcol.eq(lcol + 1)
            with m.Else():
                m.d.sync += lcg.eq(lcg + 1)

        # ---- issue stage: (oy, ox, og, ky, kx, ig)
        out_free = ~self.o.valid | self.o.ready
        en = out_free                          # the whole pipeline moves together
        ox = Signal(16)
        og = Signal(range(max(self.max_cout_groups, 2)))
        ky = Signal(range(max(k, 2)))
        kx = Signal(range(max(k, 2)))
        ig = Signal(range(max(self.max_cin_groups, 2)))
        issuing = Signal()                     # the issue stage has steps left in this layer
        wptr = Signal(range(self.weight_words + 1))   # weights are stored in step order: one pointer per pixel
        need = Mux(s2, oy << 1, oy) + (pad + 1)
        rows_in = (lrow >= need) | (lrow == H)
        step = issuing & rows_in & en
        last_ig, last_kx, last_ky = ig == cig - 1, kx == k - 1, ky == k - 1
        last_og, last_ox, last_oy = og == cog - 1, ox == Wo - 1, oy == Ho - 1
        with m.If(step):
            m.d.sync += wptr.eq(Mux(last_ig & last_kx & last_ky & last_og, 0, wptr + 1))
            m.d.sync += ig.eq(Mux(last_ig, 0, ig + 1))
            with m.If(last_ig):
                m.d.sync += kx.eq(Mux(last_kx, 0, kx + 1))
                with m.If(last_kx):
                    m.d.sync += ky.eq(Mux(last_ky, 0, ky + 1))
                    with m.If(last_ky):
                        m.d.sync += og.eq(Mux(last_og, 0, og + 1))
                        with m.If(last_og):
                            m.d.sync += ox.eq(Mux(last_ox, 0, ox + 1))
                            with m.If(last_ox):
                                m.d.sync += oy.eq(oy + 1)
                                with m.If(last_oy):
                                    m.d.sync += issuing.eq(0)

        iy = Signal(signed(18))
        ixx = Signal(signed(18))
        m.d.comb += [
            iy.eq(Mux(s2, oy << 1, oy) + ky - pad),
            ixx.eq(Mux(s2, ox << 1, ox) + kx - pad),
        ]
        inside = (iy >= 0) & (iy < H) & (ixx >= 0) & (ixx < W)
        lrd = lmem.read_port(domain="sync")
        wrd = wmem.read_port(domain="sync")
        brd = bmem.read_port(domain="sync")
        m.d.comb += [
            lrd.addr.eq(Cat(ig[:max(1, wcg.bit_length() - 1)] if wcg > 1 else Const(0, 0),
                            ixx[:max(1, wcols.bit_length() - 1)] if wcols > 1 else Const(0, 0),
                            iy[:slot_bits])),
            lrd.en.eq(en), wrd.addr.eq(wptr), wrd.en.eq(en), brd.addr.eq(og), brd.en.eq(en),
        ]
        first = (ig == 0) & (kx == 0) & (ky == 0)
        last = last_ig & last_kx & last_ky

        # ---- stage 1: memory words arrive
        v1, first1, last1, in1 = Signal(), Signal(), Signal(), Signal()
        with m.If(en):
            m.d.sync += [v1.eq(step), first1.eq(first), last1.eq(last), in1.eq(inside)]

        # ---- stage 1r: the memory words registered (a weight buffer deeper than one block RAM reads through a
        # multiplexer: registering here keeps it out of the multipliers' path)
        v1r, first1r, last1r, in1r = Signal(), Signal(), Signal(), Signal()
        wq, xq, bq = Signal.like(wrd.data), Signal.like(lrd.data), Signal.like(brd.data)
        with m.If(en):
            m.d.sync += [v1r.eq(v1), first1r.eq(first1), last1r.eq(last1), in1r.eq(in1), wq.eq(wrd.data),
                         xq.eq(lrd.data), bq.eq(brd.data)]

        # ---- stage 2: PE x SIMD products
        v2, first2, last2 = Signal(), Signal(), Signal()
        bw = self.bias_bits + self.pre_bits
        bias2 = Signal(PE * bw)
        prods = [[Signal(signed(Wb + A), name=f"prod_{p}_{j}") for j in range(SIMD)] for p in range(PE)]
        with m.If(en):
            m.d.sync += [v2.eq(v1r), first2.eq(first1r), last2.eq(last1r), bias2.eq(bq)]
            for p in range(PE):
                for j in range(SIMD):
                    wv = wq[(p * SIMD + j) * Wb:(p * SIMD + j + 1) * Wb].as_signed()
                    xv = xq[j * A:(j + 1) * A].as_signed()
                    m.d.sync += prods[p][j].eq(Mux(in1r, wv * xv, 0))

        # ---- stage 3: accumulate (the last step of a group leaves the group's sum in `acc`)
        accs = [Signal(signed(self.acc_bits), name=f"acc_{p}") for p in range(PE)]
        va = Signal()
        bias3 = Signal(PE * bw)
        with m.If(en):
            m.d.sync += [va.eq(v2 & last2), bias3.eq(bias2)]
            for p in range(PE):
                total = Mux(first2, 0, accs[p]) + sum(prods[p][1:], prods[p][0])
                with m.If(v2):
                    m.d.sync += accs[p].eq(total)

        # ---- stage 4: a finished sum's pre-shift and bias (`acc` still holds it: the next group's first step
        # replaces it at this same edge)
        fins = [Signal(signed(self.fin_bits), name=f"fin_{p}") for p in range(PE)]
        vf = Signal()
        with m.If(en):
            m.d.sync += vf.eq(va)
            for p in range(PE):
                lane = bias3[p * bw:(p + 1) * bw]
                b = lane[:self.bias_bits].as_signed()
                pre = lane[self.bias_bits:]
                m.d.sync += fins[p].eq((accs[p].as_signed() << pre) + b)

        # ---- stage 5: requantise
        qs = [Signal(signed(self.fin_bits + 1), name=f"q_{p}") for p in range(PE)]
        vq = Signal()
        with m.If(en):
            m.d.sync += vq.eq(vf)
            for p in range(PE):
                m.d.sync += qs[p].eq(shift_round_var(fins[p], shift, self.max_shift))

        # ---- output: clamp
        outs = [Mux(q < lo, lo, Mux(q > hi, hi, q))[:A] for q in qs]
        with m.If(en):
            m.d.sync += self.o.valid.eq(vq)
            with m.If(vq):
                m.d.sync += self.o.payload.eq(Cat(*outs))

        # ---- start / done
        draining = busy & ~issuing & ~v1 & ~v1r & ~v2 & ~va & ~vf & ~vq & ~self.o.valid
        m.d.comb += self.done.eq(draining)
        with m.If(draining):
            m.d.sync += busy.eq(0)
        with m.If(self.start & ~busy):
            m.d.sync += [
                busy.eq(1), issuing.eq(1), cig.eq(self.cin_groups), cog.eq(self.cout_groups), H.eq(self.height),
                W.eq(self.width), s2.eq(self.stride2), shift.eq(self.shift), lo.eq(self.lo), hi.eq(self.hi),
                oy.eq(0), ox.eq(0), og.eq(0), wptr.eq(0), ky.eq(0), kx.eq(0), ig.eq(0), lrow.eq(0), lcol.eq(0), lcg.eq(0),
            ]
        return m
