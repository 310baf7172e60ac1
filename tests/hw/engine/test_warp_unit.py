"""hw.engine.warp_unit.WarpUnit: bit-exact against quant.codec.int_codec.warp_int (luma and chroma planes, vectors
pointing outside the plane, whole- and fractional-pel) under random stalls and memory latency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from base.errors import EdgecodecError
from hw.engine.warp_unit import WarpUnit, warp_cycles
from hw.rtl.emit import write_component_verilog
from quant.codec.int_codec import sample_int
from sim.runner import run_bench


def expected(ref: np.ndarray, mv: np.ndarray, chroma: bool) -> np.ndarray:
    """warp_int's sampler on one plane with block vectors mv (H/B, W/B, 2)."""
    b = 8 if chroma else 16
    d = np.repeat(np.repeat(mv, b, axis=0), b, axis=1)
    out = sample_int(torch.from_numpy(ref.astype(np.int64)), torch.from_numpy(d[..., 0]),
                     torch.from_numpy(d[..., 1]), 3 if chroma else 2)
    return out.numpy()


def planes(rng, specs) -> dict:
    arrays = {}
    for n, (h, w, chroma, reach) in enumerate(specs):
        b = 8 if chroma else 16
        ref = rng.integers(0, 256, size=(h, w))
        mv = rng.integers(-reach, reach + 1, size=(h // b, w // b, 2))
        mv[0, 0] = (-4 * reach, -4 * reach)          # far outside the top-left corner
        mv[-1, -1] = (4 * reach + 3, 4 * reach + 1)   # and the bottom-right one, fractional
        arrays.update({f"P{n}_ref": ref, f"P{n}_mv": mv, f"P{n}_expected": expected(ref, mv, chroma),
                       f"P{n}_chroma": np.array(int(chroma))})
    return arrays


def run_warp(tmp_path: Path, arrays: dict, simulator: str = "icarus", **env) -> list[int]:
    v = write_component_verilog(WarpUnit(), "warp_unit", tmp_path / "warp_unit.v")
    np.savez(tmp_path / "stim.npz", **arrays)
    cycles = tmp_path / "cycles.json"
    run_bench(v, "warp_unit", "sim.tb.warp_unit", tmp_path / "sim", simulator,
              env=dict(npz=str(tmp_path / "stim.npz"), cycles_json=str(cycles), **env))
    return json.loads(cycles.read_text())


def test_luma_and_chroma_planes_bit_exact_under_stalls(tmp_path):
    rng = np.random.default_rng(0)
    arrays = planes(rng, [(32, 48, False, 40), (16, 24, True, 40), (16, 16, False, 3)])
    run_warp(tmp_path, arrays, seed=3, idle=0.3, backpressure=0.3, latency=3)


def test_cycles_match_the_model(tmp_path):
    rng = np.random.default_rng(1)
    specs = [(32, 32, False, 9), (16, 32, True, 9)]
    got = run_warp(tmp_path, planes(rng, specs), latency=2)
    assert got == [warp_cycles(height=h, width=w, chroma=c, latency=2) for h, w, c, _ in specs]


def test_a_wrong_reference_pixel_is_reported(tmp_path):
    rng = np.random.default_rng(2)
    arrays = planes(rng, [(16, 32, False, 2)])
    arrays["P0_expected"] = arrays["P0_expected"].copy()
    arrays["P0_expected"][5, 20] += 1
    with pytest.raises(EdgecodecError, match="failed"):
        run_warp(tmp_path, arrays)
    assert "pixel (y=5, x=20) block (0, 1)" in (tmp_path / "sim" / "results.xml").read_text()
