"""The decoder engine's element-wise unit: out = clamp(a + b + k, lo, hi) on every lane of two maps' words
(docs/numerics.md, "Reconstruction"): the P-frame's reconstruction (residual + warped frame, clamped to 0..255) and
the context input (warped frame - 128) without a second map (b = 0).

`a` and `b` take words of `lanes` codes of `lane_bits` bits (two's complement; hw.engine.program's map words), in the
same order; `o` gives one word a pair. The sequencer reads the two maps in alternating chunks of at most `CHUNK`
words, so `a` waits in a FIFO of `FIFO_DEPTH` words. `one_input` (sampled with each word) makes b = 0: words of `a`
go straight through. Configuration (`k`, `lo`, `hi`, `one_input`) is held by the sequencer during a map.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

CHUNK = 16               # words of a map read by one command
FIFO_DEPTH = 2 * CHUNK   # a's FIFO: a whole chunk waits while the matching chunk of b is read


class AddUnit(wiring.Component):
    """clamp(a + b + k, lo, hi) lane by lane (module docstring)."""

    def __init__(self, *, lanes: int, lane_bits: int, word_bits: int):
        if lanes < 1 or lane_bits < 2 or lanes * lane_bits > word_bits:
            raise ValueError(f"add unit: {lanes} lanes of {lane_bits} bits do not fit a {word_bits}-bit word")
        self.lanes, self.lane_bits, self.word_bits = lanes, lane_bits, word_bits
        word = stream.Signature(word_bits)
        super().__init__({
            "a": In(word), "b": In(word), "o": Out(word),
            "k": In(signed(32)), "lo": In(signed(32)), "hi": In(signed(32)), "one_input": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, lb = self.lanes, self.lane_bits
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=n * lb, depth=FIFO_DEPTH)
        m.d.comb += [fifo.w_data.eq(self.a.payload[:n * lb]), fifo.w_en.eq(self.a.valid),
                     self.a.ready.eq(fifo.w_rdy)]
        b_ok = self.one_input | self.b.valid
        m.d.comb += [self.o.valid.eq(fifo.r_rdy & b_ok), fifo.r_en.eq(b_ok & self.o.ready),
                     self.b.ready.eq(~self.one_input & fifo.r_rdy & self.o.ready)]
        lanes = []
        for j in range(n):
            a = fifo.r_data[j * lb:(j + 1) * lb].as_signed()
            b = Mux(self.one_input, 0, self.b.payload[j * lb:(j + 1) * lb].as_signed())
            total = Signal(signed(34), name=f"sum{j}")
            out = Signal(signed(lb), name=f"out{j}")
            m.d.comb += [total.eq(a + b + self.k),
                         out.eq(Mux(total < self.lo, self.lo, Mux(total > self.hi, self.hi, total)))]
            lanes.append(out)
        m.d.comb += self.o.payload.eq(Cat(*lanes))
        return m
