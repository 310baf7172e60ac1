"""Streaming k x k depth-wise convolution with residual add and requantization (step 1 of docs/numerics.md).

`x'[c] = requant(sum_{dy,dx} w[c,dy,dx] * x[c, y+dy-pad, x+dx-pad] + b[c] + (x[c] << f_w), s, A signed)`
with zero padding outside the frame; `quant.cell.golden_dwconv.dwconv_reference` is the integer reference.

Architecture
------------
Pixels arrive one per beat in raster order, all C channels of a pixel in one beat. The block walks the
*extended* positions ``(iy, ix)`` in ``[0, H+pad) x [0, W+pad)`` (``pad = k//2``). A position inside the
frame consumes one input beat; the others (the right and bottom padding) are generated internally. At each
position one column of ``k`` pixels is shifted into a ``k x k`` window of registers: ``k-1`` pixels come from
a line buffer (one `Memory` of ``W`` words, each word the ``k-1`` previous rows of that column) and one from
the input. Every pixel entering the window is masked to zero when its row or column lies outside the frame,
and the window columns left of column 0 are cleared at the start of each row, so stale line-buffer contents
(previous frame, reset) never reach an output; `LineBuffer` builds the buffer and the masks. When ``iy >= pad``
and ``ix >= pad`` the window is centred on output pixel ``(iy-pad, ix-pad)``; its C channels are computed ``P``
at a time with ``k*k*P`` constant-weight multipliers, so an output pixel takes ``C/P`` cycles, the last of
which already shifts in the next column.

Cycle cost
----------
With a source that is always valid and a sink that is always ready, frames follow each other without a gap
and one frame takes exactly

    cycles_per_frame = (H + pad) * (W + pad) + H * W * (C/P - 1)

cycles: one cycle per extended position plus ``C/P - 1`` more per output pixel. For ``C/P = 1`` this is
``(H+pad)(W+pad)``, i.e. one pixel per cycle plus the padding positions.

Pipeline: a group's ``k*k*P`` products (and its bias and residual) are registered when the group issues;
the next cycle sums, requantizes and stores them (staging register, or the output register for the last
group), so a multiplier never feeds the adder tree in the same cycle. This adds one cycle of latency, not
of throughput: a group issues every cycle unless the output register is full.

Handshakes: ``o.valid`` and ``o.payload`` are registers; ``i.ready`` depends combinationally on ``o.ready``
(the output register may be refilled in the cycle it is emptied), never on ``i.valid``. A reset drops the
frame in progress; the next beat after reset is pixel (0, 0) of a new frame.

Accumulators are sized from the exact bound ``sum|w| * 2^(A-1) + |b| + 2^(A-1) * 2^f_w`` of the weight
codes, so none can wrap; requantization is `hw.rtl.fixed.requant`.
"""

from __future__ import annotations

import numbers

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.rtl.fixed import requant, rom
from quant.fixed_point import bits_for, srange


def cycles_per_frame(channels: int, height: int, width: int, kernel: int, parallel: int) -> int:
    """Cycles of one frame without stalls (module docstring): one per extended position, C/P - 1 more per pixel."""
    pad = kernel // 2
    return (height + pad) * (width + pad) + height * width * (channels // parallel - 1)


def _check_int(name: str, value, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_codes(name: str, value, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an array of integer codes, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr.astype(np.int64)


class LineBuffer:
    """Line buffer of the window: the column of k pixels at extended position (iy, ix), zero outside the frame.

    One `Memory` ``linebuf`` of W words keeps, per column, the k-1 rows above the current one; with the newest
    pixel from the input they form the column, oldest row first. Each pixel is then masked to zero when its row
    ``iy - (k-1) + j`` lies outside ``[0, H)`` or ``ix`` outside ``[0, W)``, so padding and stale rows (previous
    frame, reset) read as zero. ``k = 1`` needs no memory.

    A plain builder, not an Amaranth component: `build` adds its memory and logic to the caller's Module, so
    the convolution's Verilog gets no extra level of hierarchy.

    Parameters
    ----------
    height, width : int
        Frame size H x W.
    kernel : int
        Kernel size k (odd); positions run over ``[0, H + k//2) x [0, W + k//2)``.
    pixel_bits : int
        Width of one pixel word (C*A).
    """

    def __init__(self, *, height: int, width: int, kernel: int, pixel_bits: int):
        self.height, self.width, self.kernel, self.pixel_bits = height, width, kernel, pixel_bits

    def build(self, m: Module, *, iy, ix, ix_next, advance, new_px) -> list:
        """Add the line buffer to `m`; returns the masked column, k pixel words, oldest row first.

        Parameters
        ----------
        m : Module
            Module that receives the logic.
        iy, ix : Value
            Extended position of the column; its newest pixel is row iy of column ix.
        ix_next : Value
            Column of the next position (0 after the last one of a row).
        advance : Value
            The column shifts into the window this cycle (the buffer stores it and reads ahead).
        new_px : Value
            The input pixel at (iy, ix), 0 outside the frame.
        """
        W, k, pix = self.width, self.kernel, self.pixel_bits
        # Raw column of k pixels, oldest row first: k-1 from the line buffer, the newest from the input.
        if k > 1:
            m.submodules.linebuf = linebuf = Memory(shape=unsigned((k - 1) * pix), depth=W, init=[])
            rd = linebuf.read_port()
            wr = linebuf.write_port()
            # Synchronous read: present the column of the *next* position while advancing.
            m.d.comb += rd.addr.eq(Mux(advance, ix_next, ix))
            raw = [rd.data[j * pix:(j + 1) * pix] for j in range(k - 1)] + [new_px]
            m.d.comb += [
                wr.addr.eq(ix),
                wr.data.eq(Cat(*raw[1:])),
                wr.en.eq(advance & (ix < W)),
            ]
        else:
            raw = [new_px]
        return self.mask_column(raw, iy=iy, ix=ix)

    def mask_column(self, raw: list, *, iy, ix) -> list:
        """The raw column with every pixel outside the frame replaced by 0.

        Parameters
        ----------
        raw : list of Value
            k pixel words, oldest row first (row ``iy - (k-1) + j`` for entry j).
        iy, ix : Value
            Extended position of the column.
        """
        H, W, k = self.height, self.width, self.kernel
        pad = k // 2
        # Masks: row iy-(k-1)+j must lie in [0, H), the column ix in [0, W).
        col = []
        for j in range(k):
            back = k - 1 - j
            ok = ix < W
            if back:                             # (a comparison with 0 would be constant; lint flags it)
                ok &= iy >= back
            if H + back < H + pad:
                ok &= iy < H + back
            col.append(Mux(ok, raw[j], 0))
        return col


class DWConvResidual(wiring.Component):
    """Streaming depth-wise k x k convolution + bias + residual, requantized to signed A-bit codes.

    Parameters
    ----------
    channels : int
        Number of channels C.
    height, width : int
        Frame size H x W (fixed at generation).
    kernel : int
        Kernel size k, odd and >= 1; zero padding of ``k//2`` on every side.
    act_bits : int
        Width A of the signed input and output codes.
    weights : array of int, shape (C, k, k)
        Signed weight codes, each in the range of ``weight_bits``.
    weight_bits : int
        Width of the weight codes.
    bias : array of int, shape (C,)
        Bias codes (grid of the product, ``f_x + f_w``).
    residual_shift : int
        ``f_w``: the residual input is added as ``x << f_w``; >= 0.
    out_shift : int
        Requantization shift ``s`` (round half to even, saturate to A bits); ``s <= 0`` is an exact left shift.
    parallel : int
        P, channels computed per cycle; must divide C.

    Attributes
    ----------
    i : In(stream.Signature(unsigned(C*A)))
        One input pixel per beat, raster order; channel c in bits ``[c*A, (c+1)*A)``, two's complement.
    o : Out(stream.Signature(unsigned(C*A)))
        One output pixel per beat, raster order, same layout.
    pad : int
        ``k // 2``.
    groups : int
        ``C / P``, cycles per output pixel.
    acc_bits : int
        Width of the signed accumulators.
    cycles_per_frame : int
        Cycles per frame without stalls: ``(H+pad)*(W+pad) + H*W*(C/P - 1)``.
    """

    def __init__(self, *, channels: int, height: int, width: int, kernel: int, act_bits: int, weights,
                 weight_bits: int, bias, residual_shift: int, out_shift: int, parallel: int):
        self.channels = _check_int("channels", channels, 1)
        self.height = _check_int("height", height, 1)
        self.width = _check_int("width", width, 1)
        self.kernel = _check_int("kernel", kernel, 1)
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {self.kernel}")
        self.act_bits = _check_int("act_bits", act_bits, 2)
        self.weight_bits = _check_int("weight_bits", weight_bits, 2)
        self.residual_shift = _check_int("residual_shift", residual_shift, 0)
        self.out_shift = _check_int("out_shift", out_shift)
        self.parallel = _check_int("parallel", parallel, 1)
        if self.channels % self.parallel:
            raise ValueError(f"parallel ({self.parallel}) must divide channels ({self.channels})")
        c, k = self.channels, self.kernel
        self.weights = _check_codes("weights", weights, (c, k, k))
        lo, hi = srange(self.weight_bits)
        if self.weights.min() < lo or self.weights.max() > hi:
            raise ValueError(f"weight codes must lie in [{lo}, {hi}] for weight_bits={self.weight_bits}, "
                             f"got [{self.weights.min()}, {self.weights.max()}]")
        self.bias = _check_codes("bias", bias, (c,))
        self.pad = k // 2
        self.groups = c // self.parallel
        xmax = 1 << (self.act_bits - 1)
        bound = max(int(np.abs(self.weights[ch]).sum()) * xmax + abs(int(self.bias[ch]))
                    + (xmax << self.residual_shift) for ch in range(c))
        if bound >= 1 << 62:
            raise ValueError(f"accumulator bound {bound} does not fit the int64 reference")
        self.acc_bits = bits_for(-bound, bound)
        self.weights.setflags(write=False)
        self.bias.setflags(write=False)
        super().__init__({
            "i": In(stream.Signature(unsigned(c * self.act_bits))),
            "o": Out(stream.Signature(unsigned(c * self.act_bits))),
        })

    @property
    def cycles_per_frame(self) -> int:
        return cycles_per_frame(self.channels, self.height, self.width, self.kernel, self.parallel)

    def elaborate(self, platform):
        m = Module()
        C, H, W, k, pad = self.channels, self.height, self.width, self.kernel, self.pad
        A, P, G = self.act_bits, self.parallel, self.groups
        pix = C * A

        # Position (iy, ix) of the next column to shift in, over the extended grid [0, H+pad) x [0, W+pad).
        iy = Signal(range(max(H + pad, 2)))
        ix = Signal(range(max(W + pad, 2)))
        ix_last = ix == W + pad - 1
        ix_next = Mux(ix_last, 0, ix + 1)
        pending = Signal()                       # the window holds an output pixel still to be computed
        g = Signal(range(max(G, 2)))             # channel group being computed
        last_group = g == G - 1

        # Two-stage group pipeline: S1 registers the k*k*P products of group g (issue), S2 sums, requantizes
        # and shifts the result into the staging register or, for the last group, into the output register.
        out_free = ~self.o.valid | self.o.ready
        s1_valid = Signal()                      # S1 holds the products of one group
        s1_last = Signal()                       # ... the last group of its pixel
        s1_moves = ~s1_valid | ~s1_last | out_free
        issue = pending & s1_moves
        complete = issue & last_group            # the window's pixel is fully issued: it may shift
        slot_free = ~pending | complete
        need_input = (iy < H) & (ix < W)
        advance = slot_free & (~need_input | self.i.valid)
        m.d.comb += self.i.ready.eq(slot_free & need_input)

        # Column of k pixels entering the window, oldest row first, zero outside the frame.
        new_px = Mux(need_input, self.i.payload, 0)
        col = LineBuffer(height=H, width=W, kernel=k, pixel_bits=pix).build(
            m, iy=iy, ix=ix, ix_next=ix_next, advance=advance, new_px=new_px)

        window = [[Signal(pix, name=f"win_{dy}_{dx}") for dx in range(k)] for dy in range(k)]
        with m.If(advance):
            for dy in range(k):
                for dx in range(k - 1):
                    m.d.sync += window[dy][dx].eq(Mux(ix == 0, 0, window[dy][dx + 1]))
                m.d.sync += window[dy][k - 1].eq(col[dy])
            m.d.sync += [
                ix.eq(ix_next),
                pending.eq(((iy >= pad) & (ix >= pad)) if pad else 1),
            ]
            with m.If(ix_last):
                m.d.sync += iy.eq(Mux(iy == H + pad - 1, 0, iy + 1))
        with m.Elif(complete):
            m.d.sync += pending.eq(0)

        with m.If(issue & ~last_group):
            m.d.sync += g.eq(g + 1)
        with m.Elif(complete):
            m.d.sync += g.eq(0)
        with m.If(issue):
            m.d.sync += [s1_valid.eq(1), s1_last.eq(last_group)]
        with m.Elif(s1_moves):
            m.d.sync += s1_valid.eq(0)

        # Compute the P channels g*P .. g*P+P-1 of the pixel in the window.
        def lane(value, p):
            group = value if G == 1 else value.word_select(g, P * A)
            return group[p * A:(p + 1) * A].as_signed()

        def constant(values, bits):
            """Per-group constant: a literal when all groups share it, else a table indexed by g."""
            if all(v == values[0] for v in values):
                return Const(int(values[0]), signed(bits))
            return rom(values, bits, g)

        results = []
        for p in range(P):
            chans = [gi * P + p for gi in range(G)]
            terms = []
            for dy in range(k):
                for dx in range(k):
                    wv = [self.weights[ch, dy, dx] for ch in chans]
                    if any(wv):
                        prod = constant(wv, self.weight_bits) * lane(window[dy][dx], p)
                        reg = Signal(signed(self.weight_bits + A), name=f"prod_{p}_{dy}_{dx}")
                        with m.If(issue):
                            m.d.sync += reg.eq(prod)
                        terms.append(reg)
            bv = [self.bias[ch] for ch in chans]
            if any(bv):
                breg = Signal(signed(bits_for(int(min(bv)), int(max(bv)))), name=f"bias_{p}")
                with m.If(issue):
                    m.d.sync += breg.eq(constant(bv, len(breg)))
                terms.append(breg)
            res = Signal(signed(A), name=f"res_{p}")
            with m.If(issue):
                m.d.sync += res.eq(lane(window[pad][pad], p))
            terms.append(res << self.residual_shift)
            acc = Signal(signed(self.acc_bits), name=f"acc_{p}")
            m.d.comb += acc.eq(sum(terms[1:], terms[0]))
            results.append(requant(acc, self.out_shift, *srange(A))[:A])
        group_result = Cat(*results)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        if G > 1:
            # Groups 0 .. G-2 shift in from the top; after G-1 of them group 0 sits in the low bits.
            staging = Signal((G - 1) * P * A)
            with m.If(s1_valid & ~s1_last):
                m.d.sync += staging.eq(Cat(staging[P * A:], group_result))
            out_word = Cat(staging, group_result)
        else:
            out_word = group_result
        with m.If(s1_valid & s1_last & out_free):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(out_word)]
        return m
