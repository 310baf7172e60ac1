"""cocotb bench of the FPGA top (hw.fpga.wrapper.FpgaTop): byte streams in and out, compared with the golden model.

Host side: `run_wrapper_bench` (packs pixel words, runs the bench, reads the comparison back). Bench parameters
(sim.runner.bench_params): `data` = .npz with `inputs` / `expected` (T, P) packed pixel words, `channels`, `bits`,
`bus_bits`; `result` = JSON path; `idle`, `backpressure` probabilities; `seed`; `watchdog` cycles.
Every output code is compared; a mismatch or a missing pixel fails the test.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

try:   # the host side (run_wrapper_bench) works without a simulator session
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ReadOnly, RisingEdge
except ImportError:  # pragma: no cover - cocotb is a dependency of the project
    cocotb = None


def _split(word: int, bus_bits: int, beats: int) -> list[int]:
    mask = (1 << bus_bits) - 1
    return [(word >> (k * bus_bits)) & mask for k in range(beats)]


def _join(parts: list[int], bus_bits: int) -> int:
    return sum(int(p) << (k * bus_bits) for k, p in enumerate(parts))


if cocotb is not None:
    @cocotb.test()
    async def wrapper_matches_golden(dut):
        from sim.runner import bench_params
        from sim.tb.common import collect_stream, compare_pixels, drive_stream, reset_stream_dut

        prm = bench_params()
        rng = random.Random(prm.get("seed", 0))
        d = np.load(prm["data"], allow_pickle=True)
        inputs, expected = d["inputs"], d["expected"]
        channels, bits, bus = int(d["channels"]), int(d["bits"]), int(d["bus_bits"])
        beats = -(-channels * bits // bus)
        steps, pixels = inputs.shape
        stream_in = [b for t in range(steps) for w in inputs[t] for b in _split(int(w), bus, beats)]
        want = steps * pixels * beats
        idle, bp = prm.get("idle", 0.0), prm.get("backpressure", 0.0)

        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        await reset_stream_dut(dut, 4)

        got: list[int] = []
        src = cocotb.start_soon(drive_stream(dut, stream_in, rng, idle))
        await collect_stream(dut, want, got, rng, bp, prm.get("watchdog", 200000))
        await src
        # nothing more may come out: the wrapper must not duplicate or invent beats
        extra = 0
        dut.o__ready.value = 1
        for _ in range(4 * beats + 20):
            await ReadOnly()
            extra += int(bool(dut.o__valid.value))
            await RisingEdge(dut.clk)
        dut.o__ready.value = 0

        words = [_join(got[idx * beats:(idx + 1) * beats], bus) for idx in range(steps * pixels)]
        compared, mismatches, report = compare_pixels(words, expected, channels, bits, prm.get("max_report", 10))
        for idx, word in enumerate(words):
            pad = word >> (channels * bits)
            if pad:
                mismatches += 1
                report.append({"step": idx // pixels, "pixel": idx % pixels, "padding": pad})
        sim_cycles = int(cocotb.utils.get_sim_time("ns") // 10)
        result = {"outputs_compared": compared, "mismatches": mismatches, "extra_beats": extra,
                  "beats_out": len(got), "first_mismatches": report, "sim_cycles": sim_cycles}
        with open(prm["result"], "w") as f:
            json.dump(result, f)
        dut._log.info("compared %d codes over %d beats, %d mismatches", compared, len(got), mismatches)
        assert mismatches == 0 and extra == 0, f"FPGA top differs from the golden model: {report}, extra={extra}"


def run_wrapper_bench(verilog: Path, toplevel: str, inputs: np.ndarray, expected: np.ndarray, bits: int,
                      bus_bits: int, build_dir: Path, simulator: str = "icarus", idle: float = 0.0,
                      backpressure: float = 0.0, seed: int = 0, raise_on_mismatch: bool = True) -> dict:
    """Run the byte-stream bench on `verilog` for `inputs` (T, C, H, W) codes against `expected` (T, C, H, W)."""
    from sim.cell_check import run_pixel_bench

    beats = -(-inputs.shape[1] * bits // bus_bits)
    prm = {"idle": idle, "backpressure": backpressure, "seed": seed,
           "watchdog": 20000 + 50 * inputs.shape[2] * inputs.shape[3] * inputs.shape[1] ** 2 * beats}
    return run_pixel_bench(verilog, toplevel, "sim.tb.wrapper", inputs, expected, bits, build_dir, simulator, prm,
                           raise_on_mismatch, bus_bits=bus_bits)
