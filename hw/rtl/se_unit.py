"""SE unit: average pool of h_{t-1} (from running sums), FC1 + ReLU, FC2, sigmoid LUT -> sigma per channel.

One multiplier (plus the constant multiply of the mean), sequential: C (mean) + 2 * C * C/r (FCs) + 13 cycles
per step (start, pipeline drain between phases and `done`), run between frames while the gate pipeline is
drained. Arithmetic: docs/numerics.md steps 2-4.

Pipeline of one multiply-accumulate term: S0 issue (weight/bias ROM by flat/outer, operand by inner or sum by
outer, into registers with the phase/first/last/output-index tags) -> S1 product register -> S2 accumulate
(first ? bias : acc) + product, or for MEAN mean[i] = requant(sum * R) -> S3 on the last term requant of acc
(FC1 -> s1[j] with the ReLU clamp, FC2 -> LUT code register) -> S4 (FC2) sigma[i] = LUT[code]. A phase is
issued only once the pipeline is empty, since FC1 reads every mean and FC2 every s1 (C/r may be 1).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from quant import fixed_point as fp

from hw.rtl.fixed import requant, rom


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
        idx_shape = range(max(c, hd))

        # ---- pipeline registers; phase tags ----
        MEAN, FC1, FC2 = 0, 1, 2
        # S0 issue -> S1: operands (ROM weight and bias by flat/outer, FC operand by inner, sum by outer) and tags
        # (explicit names: the issue helpers below close over these, which hides them from Amaranth's name tracer)
        v1, first1, last1 = Signal(name="v1"), Signal(name="first1"), Signal(name="last1")
        ph1, idx1 = Signal(range(3), name="ph1"), Signal(idx_shape, name="idx1")
        w_r = Signal(signed(wb))
        op_r = Signal(signed(a + 1))             # mean (signed A) or s1 (unsigned A)
        bias1 = Signal(signed(bb))
        sum_r = Signal(signed(sum_bits))
        # S1 product -> S2
        v2, first2, last2 = Signal(), Signal(), Signal()
        ph2, idx2 = Signal(range(3)), Signal(idx_shape)
        bias2 = Signal(signed(bb))
        prod_e = w_r * op_r
        mprod_e = sum_r * self.recip
        prod = Signal(prod_e.shape())
        mprod = Signal(mprod_e.shape())
        # S2 accumulate / mean write -> S3 requant (FC1 -> s1[j], FC2 -> LUT code)
        v3, ph3, idx3 = Signal(), Signal(range(3)), Signal(idx_shape)
        # S3 -> S4 sigma[i] = LUT[code]
        v4, idx4 = Signal(), Signal(idx_shape)
        code = Signal(signed(self.lb))
        busy = Signal()
        m.d.comb += busy.eq(v1 | v2 | v3 | v4)

        # S1: product registers
        m.d.sync += [prod.eq(prod_e), mprod.eq(mprod_e), v2.eq(v1), first2.eq(first1), last2.eq(last1),
                     ph2.eq(ph1), idx2.eq(idx1), bias2.eq(bias1)]
        # S2: accumulate; the pool mean is written here
        with m.If(v2 & (ph2 != MEAN)):
            m.d.sync += acc.eq(Mux(first2, bias2, acc) + prod)
        with m.If(v2 & (ph2 == MEAN)):
            m.d.sync += mean_a[idx2].eq(requant(mprod, self.recip_shift, *fp.srange(a)))
        m.d.sync += [v3.eq(v2 & last2 & (ph2 != MEAN)), ph3.eq(ph2), idx3.eq(idx2)]
        # S3: requant of the finished sum (acc holds it for exactly this cycle)
        with m.If(v3 & (ph3 == FC1)):
            m.d.sync += s1_a[idx3].eq(requant(acc, self.fc1_shift, *fp.urange(a)))
        with m.If(v3 & (ph3 == FC2)):
            m.d.sync += code.eq(requant(acc, self.fc2_shift, *fp.srange(self.lb)))
        m.d.sync += [v4.eq(v3 & (ph3 == FC2)), idx4.eq(idx3)]
        # S4: sigmoid LUT
        with m.If(v4):
            m.d.sync += sigma_a[idx4].eq(rom(self.lut, a, code.as_unsigned(), signed_out=False))

        # S0: issue sequencer. A phase starts only when the pipeline is empty (FC1 reads every mean, FC2 every s1).
        def fc_issue(phase, w, b, operand, n_in: int, n_out: int, drain_state: str):
            """Issue W[outer, inner] * operand (+ b[outer] with the first term); next (outer, inner)."""
            m.d.sync += [v1.eq(1), ph1.eq(phase), first1.eq(inner == 0), last1.eq(inner == n_in - 1),
                         idx1.eq(outer), w_r.eq(w(flat)), bias1.eq(b(outer)), op_r.eq(operand),
                         flat.eq(flat + 1), inner.eq(inner + 1)]
            with m.If(inner == n_in - 1):
                m.d.sync += [inner.eq(0), outer.eq(outer + 1)]
                with m.If(outer == n_out - 1):
                    m.next = drain_state

        def drain_then(next_state: str):
            m.d.sync += [outer.eq(0), inner.eq(0), flat.eq(0)]
            with m.If(~busy):
                m.next = next_state

        m.d.sync += v1.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += outer.eq(0)
                    m.next = "MEAN"
            with m.State("MEAN"):  # mean[i] = requant(sum[i] * R, K)
                m.d.sync += [v1.eq(1), ph1.eq(MEAN), first1.eq(1), last1.eq(1), idx1.eq(outer),
                             sum_r.eq(sums_w.word_select(outer, sum_bits).as_signed()), outer.eq(outer + 1)]
                with m.If(outer == c - 1):
                    m.next = "MEAN_DRAIN"
            with m.State("MEAN_DRAIN"):
                drain_then("FC1")
            with m.State("FC1"):  # s1[j] = relu-requant(b1[j] + sum_c W1[j, c] mean[c])
                fc_issue(FC1, w1, b1, Cat(*mean).word_select(inner, a).as_signed(), c, hd, "FC1_DRAIN")
            with m.State("FC1_DRAIN"):
                drain_then("FC2")
            with m.State("FC2"):  # sigma[c] = SIG[requant(b2[c] + sum_j W2[c, j] s1[j])]
                fc_issue(FC2, w2, b2, Cat(*s1).word_select(inner, a), hd, c, "FC2_DRAIN")
            with m.State("FC2_DRAIN"):  # done once the last sigma is written
                with m.If(~busy):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m
