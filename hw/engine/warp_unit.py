"""The decoder engine's motion-compensation unit: block-constant bilinear warp of one pixel plane, exactly
`quant.codec.int_codec.warp_int` (docs/numerics.md, "Motion compensation").

A plane (H x W codes) is warped block by block: B x B blocks (16 luma, 8 chroma), block raster order. For a block
with vector (dx, dy) (quarter luma pixels, i.e. units 2^-d of this plane's pixels: d = 2 luma, 3 chroma) every
output pixel (x, y) samples the reference at (x + dx/D, y + dy/D), D = 2^d, so the block reads one (B+1) x (B+1)
window at (bx*B + (dx >> d), by*B + (dy >> d)) with the same fractional weights everywhere:

    out = round_half_even((a (D-fx)(D-fy) + b fx (D-fy) + c (D-fx) fy + e fx fy) * 2^-2d)

a, b, c, e the window pixels above-left, above, left and at the current position, fx = dx mod D, fy = dy mod D.
Window coordinates are clamped to the plane (border clamping).

Interfaces
----------
- configuration (`height`, `width` of the plane, multiples of B; `chroma`: B = 8, d = 3, else B = 16, d = 2),
  sampled on `start`;
- `mv` stream: one vector a block (dx in the low 16 bits, dy in the high 16, two's complement);
- `req` stream (out): the window's pixel coordinates, clamped, raster order (x in the low 16 bits, y high);
- `rsp` stream: the reference pixel codes, in request order (any latency);
- `o` stream: output pixel codes, block raster order, raster order inside a block;
- `start`, `busy`, `done` as the convolution unit's.

One response is consumed a cycle ((B+1)^2 per block for B^2 outputs: 1.13 cycles per luma pixel, 1.27 chroma); a
delay line of B+2 pixels holds the left, above and above-left neighbours. The request side starts a block when the
datapath has taken the previous block's last response, so `warp_cycles` adds the memory latency once per block.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.rtl.fixed import shift_round

COORD_BITS = 16


def warp_cycles(*, height: int, width: int, chroma: bool, latency: int = 1) -> int:
    """Cycles from `start` to `done` for one plane when the memory answers every request after `latency` cycles
    and the output is always ready (module docstring)."""
    b = 8 if chroma else 16
    blocks = (height // b) * (width // b)
    return blocks * ((b + 1) ** 2 + latency + 1) + 2


class WarpUnit(wiring.Component):
    """Block-constant bilinear warp of one plane (module docstring). `pixel_bits`: width of the codes."""

    def __init__(self, *, pixel_bits: int = 8):
        if isinstance(pixel_bits, bool) or not isinstance(pixel_bits, int) or pixel_bits < 1:
            raise ValueError(f"pixel_bits must be a positive integer, got {pixel_bits!r}")
        self.pixel_bits = pixel_bits
        super().__init__({
            "height": In(COORD_BITS),
            "width": In(COORD_BITS),
            "chroma": In(1),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "mv": In(stream.Signature(unsigned(2 * COORD_BITS))),
            "req": Out(stream.Signature(unsigned(2 * COORD_BITS))),
            "rsp": In(stream.Signature(unsigned(pixel_bits))),
            "o": Out(stream.Signature(unsigned(pixel_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        PB = self.pixel_bits
        H, W = Signal(COORD_BITS), Signal(COORD_BITS)
        chroma = Signal()
        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        B = Mux(chroma, 8, 16)                        # block size
        span = Mux(chroma, 8, 16)                     # window rows / columns - 1

        # ---- block position and the block's vector (shared by the request side and the datapath)
        bx, by = Signal(COORD_BITS), Signal(COORD_BITS)
        fx, fy = Signal(3), Signal(3)
        x0, y0 = Signal(signed(COORD_BITS + 2)), Signal(signed(COORD_BITS + 2))
        in_block = Signal()                           # a block is being requested / consumed
        finished = Signal()                           # every block of the plane is done
        dx = self.mv.payload[:COORD_BITS].as_signed()
        dy = self.mv.payload[COORD_BITS:].as_signed()
        m.d.comb += self.mv.ready.eq(busy & ~in_block & ~finished)
        nx0 = Signal(signed(COORD_BITS + 2))
        ny0 = Signal(signed(COORD_BITS + 2))
        m.d.comb += [nx0.eq(bx + Mux(chroma, dx >> 3, dx >> 2)), ny0.eq(by + Mux(chroma, dy >> 3, dy >> 2))]
        with m.If(self.mv.valid & self.mv.ready):
            m.d.sync += [
                in_block.eq(1),
                x0.eq(nx0),
                y0.eq(ny0),
                fx.eq(Mux(chroma, dx[:3], dx[:2])),
                fy.eq(Mux(chroma, dy[:3], dy[:2])),
            ]

        # ---- requests: (span+1)^2 clamped coordinates. The coordinate of a request is a register, computed when
        # the previous one is taken (the block's first when its vector is), so the reader's address arithmetic
        # starts from a register, not from an adder and a clamp; the request order and timing are unchanged.
        rr, rc = Signal(5), Signal(5)
        req_left = Signal()
        cx, cy = Signal(COORD_BITS), Signal(COORD_BITS)

        def clamp(v, n):
            return Mux(v < 0, 0, Mux(v > n - 1, n - 1, v))[:COORD_BITS]

        with m.If(self.mv.valid & self.mv.ready):
            m.d.sync += [rr.eq(0), rc.eq(0), req_left.eq(1), cx.eq(clamp(nx0, W)), cy.eq(clamp(ny0, H))]
        m.d.comb += [self.req.valid.eq(req_left), self.req.payload.eq(Cat(cx, cy))]
        with m.If(self.req.valid & self.req.ready):
            with m.If(rc == span):
                m.d.sync += [rc.eq(0), cx.eq(clamp(x0, W))]
                with m.If(rr == span):
                    m.d.sync += req_left.eq(0)
                with m.Else():
                    m.d.sync += [rr.eq(rr + 1), cy.eq(clamp(y0 + rr + 1, H))]
            with m.Else():
                m.d.sync += [rc.eq(rc + 1), cx.eq(clamp(x0 + rc + 1, W))]

        # ---- datapath: responses in window raster order
        D = Mux(chroma, 8, 4)
        w00 = Signal(7)
        w01 = Signal(7)
        w10 = Signal(7)
        w11 = Signal(7)
        m.d.comb += [w00.eq((D - fx) * (D - fy)), w01.eq(fx * (D - fy)), w10.eq((D - fx) * fy), w11.eq(fx * fy)]
        line = [Signal(PB, name=f"line_{i}") for i in range(18)]     # line[0]: previous response
        pr, pc = Signal(5), Signal(5)
        px = self.rsp.payload
        left = line[0]
        above = Mux(chroma, line[8], line[16])
        above_left = Mux(chroma, line[9], line[17])
        acc = Signal(unsigned(PB + 8))
        m.d.comb += acc.eq(above_left * w00 + above * w01 + left * w10 + px * w11)
        out_free = ~self.o.valid | self.o.ready
        m.d.comb += self.rsp.ready.eq(in_block & out_free)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.rsp.valid & self.rsp.ready):
            m.d.sync += [line[0].eq(px)] + [line[i].eq(line[i - 1]) for i in range(1, 18)]
            with m.If((pr != 0) & (pc != 0)):
                m.d.sync += [
                    self.o.valid.eq(1),
                    self.o.payload.eq(Mux(chroma, shift_round(acc.as_signed(), 6), shift_round(acc.as_signed(), 4))),
                ]
            with m.If(pc == span):
                m.d.sync += pc.eq(0)
                with m.If(pr == span):
                    # last response of the block: next block position
                    m.d.sync += [pr.eq(0), in_block.eq(0)]
                    with m.If(bx + B >= W):
                        m.d.sync += bx.eq(0)
                        with m.If(by + B >= H):
                            m.d.sync += finished.eq(1)
                        with m.Else():
                            m.d.sync += by.eq(by + B)
                    with m.Else():
                        m.d.sync += bx.eq(bx + B)
                with m.Else():
                    m.d.sync += pr.eq(pr + 1)
            with m.Else():
                m.d.sync += pc.eq(pc + 1)

        # ---- start / done
        ending = busy & finished & ~self.o.valid
        m.d.comb += self.done.eq(ending)
        with m.If(ending):
            m.d.sync += [busy.eq(0), finished.eq(0)]
        with m.If(self.start & ~busy):
            m.d.sync += [busy.eq(1), finished.eq(0), in_block.eq(0), req_left.eq(0), bx.eq(0), by.eq(0),
                         pr.eq(0), pc.eq(0), H.eq(self.height), W.eq(self.width), chroma.eq(self.chroma)]
        return m
