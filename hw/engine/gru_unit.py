"""The decoder engine's ASE-GRU layer: the cell's depth-wise projector and SE-gated GRU datapath
(`hw.rtl.dwconv`, `hw.rtl.gru_datapath`) with x and h_{t-1} streamed in from memory and h_t streamed out.

One layer step (`quant.cell.golden.cell_step`, docs/numerics.md steps 1-8) over an H x W map:

- `s_in` takes the C pool sums of h_{t-1} (one a beat, signed, low 32 bits), then `start` runs the step: the SE
  block computes sigma from them, the pixels follow;
- `x` and `h` take the engine's map words (`hw.engine.program`: a pixel is C/n words of n lanes of `lane_bits`,
  n = `lanes`); x is requantized on entry by `x_shift` (the grid step between the previous layer's h and this
  layer's x, 0 when they match, < 0 a left shift), goes through the depth-wise projector, and meets h_{t-1} of the same pixel at the
  gate datapath. h_{t-1} waits in a FIFO of one row and a few pixels, so a memory that sends x row r+1 after h row r
  (the projector needs row r+1 to finish row r) never stalls;
- `o` gives h_t in the same word format (lanes sign-extended), raster order;
- after `done`, `s_out` gives the C pool sums of h_t (the next step's `s_in`), one a beat.

The weights, LUTs and the frame size are fixed at generation (the cell's generators build them as constants): a unit
serves one layer of one checkpoint at one map size. On-chip memory: the projector's line buffer (k-1 rows) and the
h FIFO (one row): it grows with the width only.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from base.errors import EdgecodecError
from quant import fixed_point as fp
from quant.cell.params import CellParams

from hw.rtl.dwconv import DWConvResidual
from hw.rtl.fixed import requant
from hw.rtl.gru_datapath import GRUDatapath

SUM_BITS = 32                      # a pool sum as stored in memory (one bus word, low 32 bits)
H_FIFO_SLACK = 8                   # pixels of the h FIFO beyond one row


@dataclass(frozen=True)
class GruSpec:
    """An ASE-GRU layer an engine is generated with: its parameters, its map size and the shift of its input."""

    params: CellParams
    height: int
    width: int
    x_shift: int = 0


def gru_unit(shape, spec: GruSpec) -> "GruUnit":
    """The unit of `spec` for an engine of `shape` (hw.engine.program.EngineShape): its map words, its folding."""
    return GruUnit(spec.params, spec.height, spec.width, lanes=shape.pe, lane_bits=shape.act_bits,
                   word_bits=shape.data_bits, pe=shape.gru_fold, simd=shape.gru_fold, dw_parallel=shape.gru_fold,
                   x_shift=spec.x_shift)


class _WordsToPixel:
    """Builder: C/n words of n lanes (lane_bits each, two's complement) -> one pixel of C codes of A bits."""

    def __init__(self, m: Module, name: str, *, channels: int, lanes: int, lane_bits: int, act_bits: int,
                 word_bits: int):
        self.words = channels // lanes
        self.i = stream.Signature(word_bits).flip().create(path=(name,))
        self.o = stream.Signature(channels * act_bits).create(path=(f"{name}_px",))
        k = Signal(range(max(self.words, 2)), name=f"{name}_k")
        parts = [Signal(lanes * act_bits, name=f"{name}_w{j}") for j in range(self.words - 1)]
        lanes_a = Cat(*[self.i.payload[j * lane_bits:j * lane_bits + act_bits] for j in range(lanes)])
        m.d.comb += [self.o.payload.eq(Cat(*parts, lanes_a)),
                     self.o.valid.eq(self.i.valid & (k == self.words - 1)),
                     self.i.ready.eq((k != self.words - 1) | self.o.ready)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += k.eq(0 if self.words == 1 else (k + 1) % self.words)
            for j in range(self.words - 1):
                with m.If(k == j):
                    m.d.sync += parts[j].eq(lanes_a)


class GruUnit(wiring.Component):
    """One ASE-GRU layer on an H x W map with its state in memory (module docstring).

    Parameters
    ----------
    params : the layer's integer parameters.
    height, width : map size.
    lanes, lane_bits, word_bits : the engine's map words (lanes codes of lane_bits in the low bits of a word).
    pe, simd, dw_parallel : folding of the gate array and the projector (divisors of C).
    x_shift : requantization of x on entry: round half to even and saturate (> 0), or an exact left shift and
        saturate (< 0: the next layer's x on a finer grid than this one's h, as the calibration of a pruned
        checkpoint can give; `fixed.requant`, the integer model's `fp.requant`).
    """

    def __init__(self, params: CellParams, height: int, width: int, *, lanes: int, lane_bits: int,
                 word_bits: int, pe: int, simd: int, dw_parallel: int, x_shift: int = 0):
        c, a = params.channels, params.act_bits
        if c % lanes:
            raise EdgecodecError(f"engine: {lanes} lanes a word must divide the GRU's {c} channels")
        if lane_bits < a or lanes * lane_bits > word_bits:
            raise EdgecodecError(f"engine: a word of {lanes} x {lane_bits} bits in {word_bits} cannot carry the "
                                 f"GRU's {a}-bit codes")
        for name, v in (("pe", pe), ("simd", simd), ("dw_parallel", dw_parallel)):
            if v < 1 or c % v:
                raise EdgecodecError(f"engine: GRU unit: {name}={v} must divide channels={c}")
        self.params, self.height, self.width = params, height, width
        self.lanes, self.lane_bits, self.word_bits, self.x_shift = lanes, lane_bits, word_bits, x_shift
        try:
            self.dw = DWConvResidual(channels=c, height=height, width=width, kernel=params.dw_kernel, act_bits=a,
                                     weights=params.dw_w, weight_bits=params.weight_bits, bias=params.dw_b,
                                     residual_shift=params.f_dw, out_shift=params.dw_shift, parallel=dw_parallel)
            self.gru = GRUDatapath(params, height, width, pe, simd, external_state=True)
        except ValueError as exc:
            raise EdgecodecError(f"engine: GRU unit: {exc}") from None
        if self.gru.sum_bits > SUM_BITS:
            raise EdgecodecError(f"engine: a {height}x{width} map's pool sums need {self.gru.sum_bits} bits "
                                 f"(> {SUM_BITS})")
        word = stream.Signature(word_bits)
        super().__init__({
            "x": In(word), "h": In(word), "o": Out(word), "s_in": In(word), "s_out": Out(word),
            "start": In(1), "done": Out(1), "step_cycles": Out(32),
        })

    @property
    def words_per_pixel(self) -> int:
        return self.params.channels // self.lanes

    def elaborate(self, platform):
        m = Module()
        c, a = self.params.channels, self.params.act_bits
        n, lb = self.lanes, self.lane_bits
        m.submodules.dw = dw = self.dw
        m.submodules.gru = gru = self.gru
        m.d.comb += self.step_cycles.eq(gru.step_cycles)

        # ---- pool sums in (a shift register of C words) and out (after done)
        sums = [Signal(signed(SUM_BITS), name=f"sum{i}") for i in range(c)]
        for i in range(c):
            m.d.comb += gru.sums_in[i].eq(sums[i])
        m.d.comb += self.s_in.ready.eq(1)
        with m.If(self.s_in.valid):
            m.d.sync += [sums[i].eq(sums[i + 1]) for i in range(c - 1)] + [sums[c - 1].eq(self.s_in.payload[:32])]
        m.d.comb += gru.start.eq(self.start)
        out_k = Signal(range(c + 1), init=c)
        sums_out = Signal(c * SUM_BITS)
        m.d.comb += [self.s_out.valid.eq(out_k != c),
                     self.s_out.payload.eq(sums_out.word_select(out_k[:max(1, (c - 1).bit_length())], SUM_BITS))]
        wide = [Signal(signed(SUM_BITS), name=f"sum_out{i}") for i in range(c)]
        m.d.comb += [wide[i].eq(gru.sums_out[i]) for i in range(c)]
        done = Signal()                  # the cycle after the last pixel's store: its sums are in
        m.d.sync += done.eq(gru.done)
        m.d.comb += self.done.eq(done)
        with m.If(done):
            m.d.sync += [out_k.eq(0), sums_out.eq(Cat(*wide))]
        with m.If(self.s_out.valid & self.s_out.ready):
            m.d.sync += out_k.eq(out_k + 1)

        # ---- x: words -> pixel, requantized, -> projector
        xw = _WordsToPixel(m, "xw", channels=c, lanes=n, lane_bits=lb, act_bits=lb, word_bits=self.word_bits)
        wiring.connect(m, wiring.flipped(self.x), xw.i)
        lo, hi = fp.srange(a)
        xq = Cat(*[requant(xw.o.payload[i * lb:(i + 1) * lb].as_signed(), self.x_shift, lo, hi)[:a]
                   for i in range(c)])
        m.d.comb += [dw.i.valid.eq(xw.o.valid), dw.i.payload.eq(xq), xw.o.ready.eq(dw.i.ready)]

        # ---- h_{t-1}: words -> pixel -> FIFO of one row
        hw_ = _WordsToPixel(m, "hw", channels=c, lanes=n, lane_bits=lb, act_bits=a, word_bits=self.word_bits)
        wiring.connect(m, wiring.flipped(self.h), hw_.i)
        m.submodules.hfifo = hfifo = SyncFIFOBuffered(width=c * a, depth=self.width + H_FIFO_SLACK)
        m.d.comb += [hfifo.w_data.eq(hw_.o.payload), hfifo.w_en.eq(hw_.o.valid), hw_.o.ready.eq(hfifo.w_rdy)]

        # ---- x' and h_{t-1} of a pixel together into the gate datapath
        both = dw.o.valid & hfifo.r_rdy
        m.d.comb += [gru.i.valid.eq(both), gru.i.payload.eq(Cat(dw.o.payload, hfifo.r_data)),
                     dw.o.ready.eq(gru.i.ready & hfifo.r_rdy), hfifo.r_en.eq(gru.i.ready & dw.o.valid)]

        # ---- h_t: pixel -> C/n words, lanes sign-extended
        words = self.words_per_pixel
        ok = Signal(range(max(words, 2)))
        lane_vals = [Signal(signed(lb), name=f"h_lane{i}") for i in range(c)]
        m.d.comb += [lane_vals[i].eq(gru.o.payload[i * a:(i + 1) * a].as_signed()) for i in range(c)]
        word_vals = [Cat(*lane_vals[w * n:(w + 1) * n]) for w in range(words)]
        cur = Signal(self.word_bits)
        with m.Switch(ok):
            for w in range(words):
                with m.Case(w):
                    m.d.comb += cur.eq(word_vals[w])
        m.d.comb += [self.o.valid.eq(gru.o.valid), self.o.payload.eq(cur),
                     gru.o.ready.eq(self.o.ready & (ok == words - 1))]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += ok.eq(0 if words == 1 else Mux(ok == words - 1, 0, ok + 1))
        return m
