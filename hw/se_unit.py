"""SE unit: average pool of h_{t-1} (from running sums), FC1 + ReLU, FC2, sigmoid LUT -> sigma per channel.

One multiplier, sequential: C (mean) + 2 * C * C/r (FCs) + a few cycles per step, run between frames while
the gate pipeline is drained. Arithmetic: docs/numerics.md steps 2-4.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from quant import fixed_point as fp

from .fixed import requant, rom


class SEUnit(wiring.Component):
    """Squeeze-excitation of the hidden state.

    Parameters
    ----------
    channels, hidden : C and C/r.
    act_bits : A; sigma is unsigned A bits (scale 2^-A), the pool mean signed A bits (scale 2^-(A-1)).
    pixels : H*W of the frame (sets the fixed-point reciprocal of the mean).
    sum_bits : width of the per-channel sums on `sums`.
    fc1_w, fc1_b, fc2_w, fc2_b : integer codes; fc1_shift, fc2_shift : requant shifts.
    lut_bits : L; sig_lut : 2^L sigmoid codes.

    Attributes
    ----------
    start : In(1), pulse to compute sigma from `sums`.
    done : Out(1), one-cycle pulse when `sigma` holds the new values.
    sums : In(ArrayLayout(signed(sum_bits), C)), sum of h_{t-1}[c] over the frame.
    sigma : Out(ArrayLayout(unsigned(A), C)).
    """

    def __init__(self, *, channels: int, hidden: int, act_bits: int, pixels: int, sum_bits: int,
                 fc1_w, fc1_b, fc2_w, fc2_b, fc1_shift: int, fc2_shift: int, lut_bits: int, sig_lut):
        self.c, self.hd, self.a, self.lb = channels, hidden, act_bits, lut_bits
        self.fc1_w, self.fc1_b = np.asarray(fc1_w), np.asarray(fc1_b)
        self.fc2_w, self.fc2_b = np.asarray(fc2_w), np.asarray(fc2_b)
        if self.fc1_w.shape != (hidden, channels) or self.fc2_w.shape != (channels, hidden):
            raise ValueError(f"SEUnit: FC shapes {self.fc1_w.shape}, {self.fc2_w.shape} do not match C={channels}, "
                             f"C/r={hidden}")
        self.fc1_shift, self.fc2_shift = fc1_shift, fc2_shift
        self.recip, self.recip_shift = fp.mean_reciprocal(pixels)
        self.lut = np.asarray(sig_lut)
        if self.lut.shape != (1 << lut_bits,):
            raise ValueError(f"SEUnit: sigmoid LUT needs {1 << lut_bits} entries, got {self.lut.shape}")
        super().__init__({
            "start": In(1), "done": Out(1),
            "sums": In(data.ArrayLayout(signed(sum_bits), channels)),
            "sigma": Out(data.ArrayLayout(unsigned(act_bits), channels)),
        })

    def elaborate(self, platform):
        m = Module()
        c, hd, a = self.c, self.hd, self.a
        wb = max(fp.bits_for(int(v.min()), int(v.max())) for v in (self.fc1_w, self.fc2_w))
        bb = max(fp.bits_for(int(v.min()), int(v.max())) for v in (self.fc1_b, self.fc2_b))
        w1 = lambda i: rom(self.fc1_w.reshape(-1), wb, i)  # noqa: E731
        w2 = lambda i: rom(self.fc2_w.reshape(-1), wb, i)  # noqa: E731
        b1 = lambda i: rom(self.fc1_b, bb, i)  # noqa: E731
        b2 = lambda i: rom(self.fc2_b, bb, i)  # noqa: E731

        mean = [Signal(signed(a), name=f"mean{i}") for i in range(c)]
        s1 = [Signal(unsigned(a), name=f"s1_{j}") for j in range(hd)]
        mean_a, s1_a = Array(mean), Array(s1)
        sums_w = Cat(*[self.sums[i] for i in range(c)])
        sum_bits = len(self.sums[0])
        sigma = [Signal(unsigned(a), name=f"sigma{i}") for i in range(c)]
        sigma_a = Array(sigma)
        for i in range(c):
            m.d.comb += self.sigma[i].eq(sigma[i])

        bound1 = int(np.abs(self.fc1_w).sum(axis=1).max()) * (1 << (a - 1)) + int(np.abs(self.fc1_b).max())
        bound2 = int(np.abs(self.fc2_w).sum(axis=1).max()) * ((1 << a) - 1) + int(np.abs(self.fc2_b).max())
        acc = Signal(signed(fp.bits_for(-max(bound1, bound2), max(bound1, bound2))))
        outer = Signal(range(max(c, hd) + 1))
        inner = Signal(range(max(c, hd) + 1))
        flat = Signal(range(c * hd + 1))

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += outer.eq(0)
                    m.next = "MEAN"
            with m.State("MEAN"):
                m.d.sync += mean_a[outer].eq(requant(sums_w.word_select(outer, sum_bits).as_signed() * self.recip, self.recip_shift,
                                                     *fp.srange(a)))
                m.d.sync += outer.eq(outer + 1)
                with m.If(outer == c - 1):
                    m.d.sync += [outer.eq(0), inner.eq(0), flat.eq(0)]
                    m.next = "FC1"
            with m.State("FC1"):  # s1[j] = relu-requant(b1[j] + sum_c W1[j, c] mean[c])
                nxt = Signal.like(acc)
                m.d.comb += nxt.eq(Mux(inner == 0, b1(outer), acc) + w1(flat) * Cat(*mean).word_select(inner, a).as_signed())
                m.d.sync += [acc.eq(nxt), flat.eq(flat + 1), inner.eq(inner + 1)]
                with m.If(inner == c - 1):
                    m.d.sync += [s1_a[outer].eq(requant(nxt, self.fc1_shift, *fp.urange(a))),
                                 inner.eq(0), outer.eq(outer + 1)]
                    with m.If(outer == hd - 1):
                        m.d.sync += [outer.eq(0), flat.eq(0)]
                        m.next = "FC2"
            with m.State("FC2"):  # sigma[c] = SIG[requant(b2[c] + sum_j W2[c, j] s1[j])]
                nxt = Signal.like(acc)
                code = Signal(signed(self.lb))
                m.d.comb += [nxt.eq(Mux(inner == 0, b2(outer), acc) + w2(flat) * Cat(*s1).word_select(inner, a)),
                             code.eq(requant(nxt, self.fc2_shift, *fp.srange(self.lb)))]
                m.d.sync += [acc.eq(nxt), flat.eq(flat + 1), inner.eq(inner + 1)]
                with m.If(inner == hd - 1):
                    m.d.sync += [sigma_a[outer].eq(rom(self.lut, a, code.as_unsigned(), signed_out=False)), inner.eq(0), outer.eq(outer + 1)]
                    with m.If(outer == c - 1):
                        m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        return m

