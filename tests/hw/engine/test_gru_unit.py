"""hw.engine.gru_unit.GruUnit: the shipped decoder's ASE-GRU layers with x and h_{t-1} streamed in as the engine's
map words, equal to the integer golden model (quant.cell.golden.cell_step) step after step, under stalls."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from base.errors import EdgecodecError
from base.paths import resolve
from hw.engine.gru_unit import GruUnit
from hw.rtl.emit import write_component_verilog
from quant import fixed_point as fp
from quant.cell.golden import cell_step
from quant.cell.params import CellParams
from sim.runner import run_bench


def shipped_cell(layer: int, quality: int = 1) -> CellParams:
    state = torch.load(resolve(f"checkpoints/codec_q{quality}.pt"), weights_only=False)
    return CellParams.from_json(state["int"]["dec_cells"][layer])


def to_words(codes: np.ndarray, lanes: int, lane_bits: int) -> np.ndarray:
    """(C, H, W) codes -> the engine's map words, pixel-major (hw.engine.program)."""
    c = codes.shape[0]
    px = codes.reshape(c, -1).T
    return np.array([fp.pack_codes(px[i, w * lanes:(w + 1) * lanes], lane_bits)
                     for i in range(px.shape[0]) for w in range(c // lanes)], dtype=np.uint64)


def stimulus(p: CellParams, height: int, width: int, steps: int, x_shift: int, lanes: int, lane_bits: int,
             seed: int) -> dict:
    rng = np.random.default_rng(seed)
    c, a = p.channels, p.act_bits
    lo, hi = fp.srange(lane_bits if x_shift else a)
    h = rng.integers(*fp.srange(a), size=(c, height, width), endpoint=True)
    arrays = {"h0": to_words(h, lanes, lane_bits), "sums0": h.reshape(c, -1).sum(axis=1), "x": [], "expected": [],
              "expected_sums": [], "height": height, "width": width, "lanes": lanes, "lane_bits": lane_bits}
    for _ in range(steps):
        x = rng.integers(lo, hi, size=(c, height, width), endpoint=True)
        h = cell_step(p, fp.requant(x, x_shift, *fp.srange(a)), h)
        arrays["x"].append(to_words(x, lanes, lane_bits))
        arrays["expected"].append(to_words(h, lanes, lane_bits))
        arrays["expected_sums"].append(h.reshape(c, -1).sum(axis=1))
    return {k: np.asarray(v) for k, v in arrays.items()}


def run_unit(tmp_path: Path, p: CellParams, *, height=5, width=7, steps=3, x_shift=0, lanes=4, lane_bits=12,
             word_bits=64, pe=4, simd=4, dw_parallel=4, seed=0, corrupt=None, **env) -> list[int]:
    unit = GruUnit(p, height, width, lanes=lanes, lane_bits=lane_bits, word_bits=word_bits, pe=pe, simd=simd,
                   dw_parallel=dw_parallel, x_shift=x_shift)
    arrays = stimulus(p, height, width, steps, x_shift, lanes, lane_bits, seed)
    if corrupt:
        corrupt(arrays)
    tmp_path.mkdir(parents=True, exist_ok=True)
    v = write_component_verilog(unit, "gru_unit", tmp_path / "gru_unit.v")
    np.savez(tmp_path / "stim.npz", **arrays)
    cycles = tmp_path / "cycles.json"
    run_bench(v, "gru_unit", "sim.tb.gru_unit", tmp_path / "sim", "icarus",
              env=dict(npz=str(tmp_path / "stim.npz"), cycles_json=str(cycles), seed=seed, **env))
    return json.loads(cycles.read_text())


@pytest.mark.slow
def test_both_shipped_decoder_layers_step_after_step_under_stalls(tmp_path):
    for layer in (0, 1):
        run_unit(tmp_path / f"l{layer}", shipped_cell(layer), seed=layer, idle=0.3, backpressure=0.3)


def test_input_shift_and_folding(tmp_path):
    """x from a wider grid (shift 2, saturating), two lanes a word, a narrower gate array and projector."""
    run_unit(tmp_path, shipped_cell(1), height=4, width=6, steps=2, x_shift=2, lanes=2, pe=2, simd=8,
             dw_parallel=2, word_bits=32, seed=5, idle=0.2, backpressure=0.2)


def test_a_wrong_expected_code_is_reported_at_its_pixel(tmp_path):
    def corrupt(arrays):
        arrays["expected"][1][(2 * 7 + 3) * 4 + 1] ^= 1 << 12       # step 1, pixel (2, 3), channel 5

    with pytest.raises(EdgecodecError, match="failed"):
        run_unit(tmp_path, shipped_cell(0), corrupt=corrupt)
    assert "step 1 pixel (y=2, x=3) channel 5" in (tmp_path / "sim" / "results.xml").read_text()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_shapes_it_cannot_carry_are_refused():
    p = shipped_cell(0)
    with pytest.raises(EdgecodecError, match="lanes a word must divide"):
        GruUnit(p, 4, 4, lanes=3, lane_bits=12, word_bits=64, pe=4, simd=4, dw_parallel=4)
    with pytest.raises(EdgecodecError, match="cannot carry"):
        GruUnit(p, 4, 4, lanes=4, lane_bits=6, word_bits=64, pe=4, simd=4, dw_parallel=4)
    with pytest.raises(EdgecodecError, match="pe=3 must divide"):
        GruUnit(p, 4, 4, lanes=4, lane_bits=12, word_bits=64, pe=3, simd=4, dw_parallel=4)
