"""Stages of the cell RTL built alone and simulated in Amaranth's simulator against the integer model.

`hw.rtl.gru_datapath.GateMacArray` (S2) and `GateEpilogue` (E1-E6) against `quant.cell.golden.gates`, and
`hw.rtl.dwconv.LineBuffer` against the zero-padded frame that `quant.cell.golden_dwconv` convolves. Each harness
below builds one stage into its own Module, as the parent components do; each check also runs on a deliberately
broken stage (corrupted weight, corrupted LUT entry, missing masks) to show it detects the fault.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module, Mux, Signal, signed
from amaranth.sim import Simulator

from hw.rtl.dwconv import LineBuffer
from hw.rtl.gru_datapath import MATS, GateEpilogue, GateMacArray
from quant import fixed_point as fp
from quant.cell import golden
from quant.cell.params import CellParams

from tests.cellgen import random_params


def _run(dut: Elaboratable, testbench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def _gate_inputs(p: CellParams, npix: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x~, h~, h_{t-1} codes (C, npix): half the pixels full-range (saturating the LUT inputs), half small."""
    rng = np.random.default_rng(seed)
    lo, hi = fp.srange(p.act_bits)
    full = rng.integers(lo, hi + 1, size=(3, p.channels, npix))
    small = np.clip(np.round(rng.normal(0, hi / 6, size=(3, p.channels, npix))), lo, hi).astype(np.int64)
    xt, ht, h = np.where(np.arange(npix) % 2 == 0, full, small)
    return xt, ht, h


def _mat_sums(p: CellParams, xt: np.ndarray, ht: np.ndarray) -> dict[str, np.ndarray]:
    """The six matrix products (C, N) of golden.gates, W products with their bias: the accumulator contents."""
    sums = {}
    for name in MATS:
        gate = name[1]
        if name[0] == "w":
            sums[name] = p.w[gate] @ xt + p.b[gate][:, None]
        else:
            sums[name] = p.u[gate] @ ht
    return sums


# ---- S2: MAC array -----------------------------------------------------------------------------------------------

class _MacArrayHarness(Elaboratable):
    """`GateMacArray` alone; the weight-ROM word is an input (the datapath reads it from `wrom`)."""

    def __init__(self, mac_array: GateMacArray):
        self.mac_array = mac_array
        a, simd = mac_array.p.act_bits, mac_array.simd
        self.valid = Signal()
        self.first = Signal()
        self.group = Signal(range(max(mac_array.p.channels // mac_array.pe, 2)))
        self.weights = Signal(mac_array.word_bits)
        self.xt = [Signal(signed(a), name=f"xt{s}") for s in range(simd)]
        self.ht = [Signal(signed(a), name=f"ht{s}") for s in range(simd)]
        self.acc = None

    def elaborate(self, platform):
        m = Module()
        self.acc = self.mac_array.build(m, valid=self.valid, first=self.first, group=self.group,
                                        weights=self.weights, xt=self.xt, ht=self.ht)
        return m


def _mac_array_mismatches(p_rtl: CellParams, p_ref: CellParams, pe: int, simd: int, npix: int = 5,
                          seed: int = 0) -> list:
    """Run every beat of `npix` pixels through the array built from `p_rtl`, with random bubbles; returns
    (pixel, channel, matrix, got, want) for each accumulator that differs from the products of `p_ref`."""
    mac_array = GateMacArray(p_rtl, pe, simd)
    dut = _MacArrayHarness(mac_array)
    xt, ht, _ = _gate_inputs(p_ref, npix, seed)
    want = _mat_sums(p_ref, xt, ht)
    words = mac_array.rom_words()
    c = p_ref.channels
    gc, kc = c // pe, c // simd
    rng = np.random.default_rng(seed + 1)
    bad = []

    async def testbench(ctx):
        for n in range(npix):
            for g in range(gc):
                for k in range(kc):
                    while rng.random() < 0.25:              # a bubble: the accumulators must hold
                        ctx.set(dut.valid, 0)
                        await ctx.tick()
                    ctx.set(dut.valid, 1)
                    ctx.set(dut.first, k == 0)
                    ctx.set(dut.group, g)
                    ctx.set(dut.weights, words[g * kc + k])
                    for s in range(simd):
                        ctx.set(dut.xt[s], int(xt[k * simd + s, n]))
                        ctx.set(dut.ht[s], int(ht[k * simd + s, n]))
                    await ctx.tick()
                ctx.set(dut.valid, 0)
                await ctx.tick()                            # the group's sums stay until its next first beat
                for j in range(pe):
                    for name in MATS:
                        got, exp = ctx.get(dut.acc[j][name]), int(want[name][g * pe + j, n])
                        if got != exp:
                            bad.append((n, g * pe + j, name, got, exp))

    _run(dut, testbench)
    return bad


@pytest.mark.parametrize("pe, simd", [(2, 4), (1, 8), (8, 1), (4, 2)])
def test_mac_array_matches_integer_model(pe, simd):
    p = random_params(8, 2, 3)
    assert _mac_array_mismatches(p, p, pe, simd) == []


def test_mac_array_corrupted_weight_is_caught():
    p = random_params(8, 2, 3)
    bad_u = p.u["z"].copy()
    lo, hi = fp.srange(p.weight_bits)
    bad_u[5, 2] += 1 if bad_u[5, 2] < hi else -1
    p_bad = dataclasses.replace(p, u={**p.u, "z": bad_u})
    bad = _mac_array_mismatches(p_bad, p, pe=2, simd=4)
    assert bad, "a corrupted U_z code must change an accumulator"
    assert {(ch, name) for _, ch, name, _, _ in bad} == {(5, "uz")}, bad


# ---- E1-E6: LUT epilogue -----------------------------------------------------------------------------------------

class _EpilogueHarness(Elaboratable):
    """`GateEpilogue` alone; the accumulators and the group's tags are inputs."""

    def __init__(self, epilogue: GateEpilogue, acc_bits: dict[str, int], npix: int):
        self.epilogue = epilogue
        p, pe = epilogue.p, epilogue.pe
        self.acc = [{k: Signal(signed(acc_bits[k]), name=f"acc_{k}{j}") for k in MATS} for j in range(pe)]
        self.tags = {"v": Signal(name="v"), "g": Signal(range(max(p.channels // pe, 2)), name="g"),
                     "pix": Signal(range(max(npix, 2)), name="pix"), "lastg": Signal(name="lastg"),
                     "hold": Signal(pe * p.act_bits, name="hold")}
        self.out_tags = self.h = None

    def elaborate(self, platform):
        m = Module()
        self.epilogue.build_luts(m)
        self.out_tags, self.h = self.epilogue.build(m, self.acc, self.tags)
        return m


def _epilogue_mismatches(epilogue: GateEpilogue, p: CellParams, pe: int, npix: int = 12, seed: int = 0,
                         xt=None, ht=None, h=None) -> list:
    """Stream one group per cycle (with bubbles) through the epilogue; returns (pixel, channel, got, want) for
    each h_t code that differs from golden.gates, and fails if a group comes out missing, twice or mistagged."""
    if xt is None:
        xt, ht, h = _gate_inputs(p, npix, seed)
    want = golden.gates(p, xt, ht, h)
    sums = _mat_sums(p, xt, ht)
    acc_bits = GateMacArray(p, pe, 1).acc_bits            # the datapath's widths (they do not depend on simd)
    dut = _EpilogueHarness(epilogue, acc_bits, npix)
    a, gc = p.act_bits, p.channels // pe
    rng = np.random.default_rng(seed + 2)
    out = {}

    def collect(ctx):
        if ctx.get(dut.out_tags["v"]):
            key = (ctx.get(dut.out_tags["pix"]), ctx.get(dut.out_tags["g"]))
            assert key not in out, f"group {key} came out twice"
            assert ctx.get(dut.out_tags["lastg"]) == (key[1] == gc - 1)
            out[key] = [ctx.get(x) for x in dut.h]

    async def testbench(ctx):
        for n in range(npix):
            for g in range(gc):
                while rng.random() < 0.2:
                    ctx.set(dut.tags["v"], 0)
                    await ctx.tick()
                    collect(ctx)
                lanes = range(g * pe, (g + 1) * pe)
                for j, o in enumerate(lanes):
                    for name in MATS:
                        ctx.set(dut.acc[j][name], int(sums[name][o, n]))
                ctx.set(dut.tags["v"], 1)
                ctx.set(dut.tags["g"], g)
                ctx.set(dut.tags["pix"], n)
                ctx.set(dut.tags["lastg"], g == gc - 1)
                ctx.set(dut.tags["hold"], fp.pack_codes(h[list(lanes), n], a))
                await ctx.tick()
                collect(ctx)
        ctx.set(dut.tags["v"], 0)
        for _ in range(8):                                  # drain: six stages
            await ctx.tick()
            collect(ctx)

    _run(dut, testbench)
    assert sorted(out) == [(n, g) for n in range(npix) for g in range(gc)], "groups missing from the output"
    return [(n, g * pe + j, got, int(want[g * pe + j, n]))
            for (n, g), hs in out.items() for j, got in enumerate(hs) if got != want[g * pe + j, n]]


@pytest.mark.parametrize("pe", [1, 2, 8])
def test_epilogue_matches_integer_model(pe):
    p = random_params(8, 2, 3)
    assert _epilogue_mismatches(GateEpilogue(p, pe), p, pe) == []


def test_epilogue_matches_integer_model_narrow_codes():
    p = random_params(8, 2, 3, bits=6)
    assert _epilogue_mismatches(GateEpilogue(p, 4), p, 4, seed=5) == []


def _z_addresses(p: CellParams, xt: np.ndarray, ht: np.ndarray) -> np.ndarray:
    """Sigmoid-LUT addresses of z that golden.gates reads, (C, N)."""
    grid = p.gate_grid("z")
    acc = fp.align(p.w["z"] @ xt + p.b["z"][:, None], p.f_w["z"] + p.f_xp, grid) + \
        fp.align(p.u["z"] @ ht, p.f_u["z"] + p.f_h, grid)
    return fp.lut_address(fp.requant(acc, grid - p.lut_frac, *fp.srange(p.lut_bits)), p.lut_bits)


def test_epilogue_corrupted_lut_entry_is_caught():
    p, pe = random_params(8, 2, 3), 2
    xt, ht, h = _gate_inputs(p, 12, seed=0)
    addrs, counts = np.unique(_z_addresses(p, xt, ht), return_counts=True)
    addr = int(addrs[np.argmax(counts)])                    # the entry most groups read
    epilogue = GateEpilogue(p, pe)
    epilogue.sig_lut[addr] = (epilogue.sig_lut[addr] + (1 << (p.act_bits - 1))) % (1 << p.act_bits)
    bad = _epilogue_mismatches(epilogue, p, pe, xt=xt, ht=ht, h=h)
    assert bad, f"a corrupted sigmoid LUT entry ({addr}) must change some h_t code"


# ---- depth-wise conv line buffer ---------------------------------------------------------------------------------

class _LineBufferHarness(Elaboratable):
    """`LineBuffer` alone; the position, its `advance` and the input pixel are inputs, the column an output."""

    def __init__(self, line_buffer: LineBuffer):
        self.line_buffer = line_buffer
        pad = line_buffer.kernel // 2
        self.iy = Signal(range(max(line_buffer.height + pad, 2)))
        self.ix = Signal(range(max(line_buffer.width + pad, 2)))
        self.advance = Signal()
        self.new_px = Signal(line_buffer.pixel_bits)
        self.col = [Signal(line_buffer.pixel_bits, name=f"col{j}") for j in range(line_buffer.kernel)]

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain()             # explicit: with k = 1 the stage has no register to imply it
        lb = self.line_buffer
        ix_next = Mux(self.ix == lb.width + lb.kernel // 2 - 1, 0, self.ix + 1)   # as in DWConvResidual
        col = lb.build(m, iy=self.iy, ix=self.ix, ix_next=ix_next, advance=self.advance, new_px=self.new_px)
        m.d.comb += [self.col[j].eq(col[j]) for j in range(lb.kernel)]
        return m


class _UnmaskedLineBuffer(LineBuffer):
    """Fault model: padding rows and columns pass the raw memory contents (stale rows of the previous frame)."""

    def mask_column(self, raw, *, iy, ix):
        return list(raw)


def _line_buffer_mismatches(line_buffer: LineBuffer, frames: int = 3, seed: int = 0) -> list:
    """Walk the extended grid of `frames` random frames (with stalls) and compare the column at every cycle with
    the zero-padded frame; returns (frame, iy, ix, row j, got, want) per differing pixel word."""
    H, W, k, bits = line_buffer.height, line_buffer.width, line_buffer.kernel, line_buffer.pixel_bits
    pad = k // 2
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 1 << bits, size=(frames, H, W))    # nonzero: a stale or shifted word cannot pass as 0
    padded = np.pad(x, ((0, 0), (k - 1, pad), (0, pad)))   # rows above the frame and the bottom/right padding
    dut = _LineBufferHarness(line_buffer)
    bad = []

    def check(ctx, f, iy, ix):
        for j in range(k):
            got, want = ctx.get(dut.col[j]), int(padded[f, iy + j, ix])   # row iy - (k-1) + j of the frame
            if got != want:
                bad.append((f, iy, ix, j, got, want))

    async def testbench(ctx):
        for f in range(frames):
            for iy in range(H + pad):
                for ix in range(W + pad):
                    ctx.set(dut.iy, iy)
                    ctx.set(dut.ix, ix)
                    ctx.set(dut.new_px, int(x[f, iy, ix]) if iy < H and ix < W else 0)
                    ctx.set(dut.advance, 0)
                    while rng.random() < 0.3:                # stalled: the column must stay
                        check(ctx, f, iy, ix)
                        await ctx.tick()
                    ctx.set(dut.advance, 1)
                    check(ctx, f, iy, ix)
                    await ctx.tick()

    _run(dut, testbench)
    return bad


@pytest.mark.parametrize("height, width, kernel", [(4, 5, 3), (2, 3, 5), (5, 4, 5), (3, 4, 1), (1, 1, 3)])
def test_line_buffer_matches_zero_padded_frame(height, width, kernel):
    lb = LineBuffer(height=height, width=width, kernel=kernel, pixel_bits=16)
    assert _line_buffer_mismatches(lb) == []


def test_line_buffer_without_masks_is_caught():
    bad = _line_buffer_mismatches(_UnmaskedLineBuffer(height=4, width=5, kernel=3, pixel_bits=16))
    assert bad, "stale rows and padding must reach the column without the masks"
    assert {f for f, *_ in bad} >= {1, 2}, "frames after the first must see the previous frame's rows"
