"""cocotb bench of hw.engine.conv_unit.ConvUnit (Verilog toplevel `conv_unit`).

Parameters (`sim.runner.bench_params()`): ``npz`` (layers ``L{n}_w``, ``_pre``, ``_b``, ``_x``, ``_expected`` and
``_cfg`` = [stride, shift, lo, hi]), ``pe``, ``simd``, ``act_bits``, ``weight_bits``, ``bias_bits``, ``pre_bits``,
``seed``, ``idle`` (probability a source skips a cycle), ``backpressure`` (probability the sink is not ready),
``cycles_json`` (where to write the start-to-done cycles of every layer).

The layers run back to back on one instance (weights reloaded between them, as the engine's sequencer does);
every output code is compared with the reference and a mismatch names the layer, pixel and channel.
"""

from __future__ import annotations

import json
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from quant.fixed_point import pack_codes, unpack_codes
from sim.runner import bench_params

MAX_REPORTED = 12


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.p = bench_params()
        self.data = np.load(self.p["npz"])
        self.pe, self.simd = int(self.p["pe"]), int(self.p["simd"])
        self.A, self.Wb = int(self.p["act_bits"]), int(self.p["weight_bits"])
        self.Bb, self.Pb = int(self.p["bias_bits"]), int(self.p["pre_bits"])
        self.idle = float(self.p.get("idle", 0.0))
        self.bp = float(self.p.get("backpressure", 0.0))
        self.rng = random.Random(int(self.p.get("seed", 0)))
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for port in ("w", "b", "i"):
            getattr(dut, f"{port}__valid").value = 0
            getattr(dut, f"{port}__payload").value = 0
        dut.o__ready.value = 0
        dut.load.value = 0
        dut.start.value = 0

    def layers(self) -> int:
        return len([k for k in self.data.files if k.endswith("_cfg")])

    def beats(self, n: int) -> dict:
        d = self.data
        w, pre, b, x = d[f"L{n}_w"], d[f"L{n}_pre"], d[f"L{n}_b"], d[f"L{n}_x"]
        cout, cin, k, _ = w.shape
        wb = []
        for og in range(cout // self.pe):
            for ky in range(k):
                for kx in range(k):
                    for ig in range(cin // self.simd):
                        lanes = [w[og * self.pe + p, ig * self.simd + j, ky, kx]
                                 for p in range(self.pe) for j in range(self.simd)]
                        wb.append(pack_codes(lanes, self.Wb))
        bb = []
        for og in range(cout // self.pe):
            word = 0
            for p in range(self.pe):
                c = og * self.pe + p
                lane = (int(b[c]) & ((1 << self.Bb) - 1)) | (int(pre[c]) << self.Bb)
                word |= lane << (p * (self.Bb + self.Pb))
            bb.append(word)
        xb = [pack_codes(x[ig * self.simd:(ig + 1) * self.simd, yy, xx], self.A)
              for yy in range(x.shape[1]) for xx in range(x.shape[2]) for ig in range(cin // self.simd)]
        return {"w": wb, "b": bb, "i": xb}

    async def run_streams(self, sources: dict, outputs: int = 0, wait_done: bool = False,
                          limit: int = 2_000_000) -> tuple[list[int], int]:
        """One loop per clock: every source presents its next beat (AXI rule: held until taken, random idle
        cycles before a beat), the sink `o` drops ready at random; returns the output words and the cycles."""
        dut = self.dut
        sent = {k: 0 for k in sources}
        shown = {k: False for k in sources}
        got, cycles, done = [], 0, False
        while True:
            for k, beats in sources.items():
                if not shown[k] and sent[k] < len(beats) and self.rng.random() >= self.idle:
                    shown[k] = True
                    getattr(dut, f"{k}__payload").value = beats[sent[k]]
                getattr(dut, f"{k}__valid").value = int(shown[k])
            ready = int(self.rng.random() >= self.bp) if outputs else 0
            dut.o__ready.value = ready
            await ReadOnly()
            for k in sources:
                if shown[k] and int(getattr(dut, f"{k}__ready").value):
                    sent[k] += 1
                    shown[k] = False
            if ready and int(dut.o__valid.value):
                got.append(int(dut.o__payload.value))
            done = done or bool(int(dut.done.value))
            await RisingEdge(dut.clk)
            cycles += 1
            finished = all(sent[k] == len(v) for k, v in sources.items()) and len(got) >= outputs
            if finished and (done or not wait_done):
                break
            if cycles > limit:
                raise AssertionError(f"timeout after {cycles} cycles: sent {sent}, {len(got)} of {outputs} outputs")
        for k in sources:
            getattr(dut, f"{k}__valid").value = 0
        dut.o__ready.value = 0
        return got, cycles

    async def layer(self, n: int) -> int:
        dut, d = self.dut, self.data
        stride, shift, lo, hi = (int(v) for v in d[f"L{n}_cfg"])
        w, x, expected = d[f"L{n}_w"], d[f"L{n}_x"], d[f"L{n}_expected"]
        cout, cin = w.shape[:2]
        beats = self.beats(n)
        dut.load.value = 1
        await RisingEdge(dut.clk)
        dut.load.value = 0
        await self.run_streams({"w": beats["w"], "b": beats["b"]})
        dut.cin_groups.value = cin // self.simd
        dut.cout_groups.value = cout // self.pe
        dut.height.value, dut.width.value = x.shape[1], x.shape[2]
        dut.stride2.value = int(stride == 2)
        dut.shift.value = shift
        dut.lo.value, dut.hi.value = lo, hi
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        groups = cout // self.pe
        ho, wo = expected.shape[1:]
        got, cycles = await self.run_streams({"i": beats["i"]}, outputs=ho * wo * groups, wait_done=True)
        bad = []
        for m, word in enumerate(got):
            pix, og = divmod(m, groups)
            yy, xx = divmod(pix, wo)
            for p, code in enumerate(unpack_codes(word, self.pe, self.A)):
                want = int(expected[og * self.pe + p, yy, xx])
                if code != want:
                    bad.append(f"layer {n} pixel (y={yy}, x={xx}) channel {og * self.pe + p}: got {code}, "
                               f"expected {want}")
        if bad:
            more = f"\n  ... and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
            raise AssertionError(f"{len(bad)} mismatching codes:\n  " + "\n  ".join(bad[:MAX_REPORTED]) + more)
        await ReadOnly()
        assert not int(dut.busy.value), f"layer {n}: busy after done"
        await RisingEdge(dut.clk)
        dut._log.info("layer %d: %dx%dx%d -> %dx%dx%d stride %d bit-exact, %d cycles", n, cin, x.shape[1],
                      x.shape[2], cout, ho, wo, stride, cycles)
        return cycles


@cocotb.test()
async def test_layers(dut):
    """Every layer of the stimulus, back to back, under idle cycles and backpressure."""
    tb = TB(dut)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    cycles = [await tb.layer(n) for n in range(tb.layers())]
    if tb.p.get("cycles_json"):
        with open(tb.p["cycles_json"], "w") as f:
            json.dump(cycles, f)
