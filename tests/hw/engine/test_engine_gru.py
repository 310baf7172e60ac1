"""The engine's ASE-GRU layers (hw.engine.gru_unit in hw.engine.engine's sequencer): the shipped decoder's two
layers over several frames, x, h_{t-1} and the pool sums read from AXI memory (cocotbext-axi AxiRam with pauses on
every channel), h_t and its sums written back, equal to the integer golden model code for code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hw.engine.engine import EngineTop
from hw.engine.gru_unit import GruSpec
from hw.engine.program import DESC_WORDS, EngineShape, Image, gru_descriptor, map_words
from hw.rtl.emit import write_component_verilog
from quant import fixed_point as fp
from quant.cell.golden import cell_step
from sim.runner import run_bench
from tests.hw.engine.test_gru_unit import shipped_cell

SHAPE = EngineShape(pe=4, simd=4, data_bits=128, max_width=16, max_cin=16, max_cout=64)


def gru_program(cells, xs: list, h0: list, shape: EngineShape):
    """Image and program of len(xs) frames through the layer stack `cells` from hidden states h0; the expected
    maps (every h_t, the last frame's sums) as (address, codes, lanes, bits)."""
    img = Image(shape.data_bits // 8)
    c, height, width = xs[0].shape
    wb, k = img.word_bytes, c // shape.pe
    pitch = width * k * wb

    def put_map(codes):
        addr = img.alloc(height * width * k)
        img.put(addr, map_words(codes, shape.pe, shape.act_bits))
        return addr

    def put_sums(h):
        addr = img.alloc(c)
        img.put(addr, [int(v) & 0xFFFFFFFF for v in h.reshape(c, -1).sum(axis=1)])
        return addr

    h_addr = [put_map(h) for h in h0]
    s_addr = [put_sums(h) for h in h0]
    hs, descs, checks = list(h0), [], []
    for t, x in enumerate(xs):
        x_addr, inp = put_map(x), x
        for n, p in enumerate(cells):
            if n:
                inp = fp.requant(hs[n - 1], cells[n - 1].f_h - p.f_x, *fp.srange(p.act_bits))
            hs[n] = cell_step(p, inp, hs[n])
            out, sums = img.alloc(height * width * k), img.alloc(c)
            descs.append(gru_descriptor(n, height, width, sums_in=s_addr[n], h_prev=h_addr[n], sums_out=sums,
                                        x=x_addr, h_out=out, x_pitch=pitch, h_pitch=pitch))
            checks.append((out, hs[n], shape.pe, shape.act_bits))
            if t == len(xs) - 1:
                checks.append((sums, hs[n].reshape(c, -1).sum(axis=1).reshape(c, 1, 1), 1, 32))
            x_addr, h_addr[n], s_addr[n] = out, out, sums
    descs[-1][0] |= 1
    prog = img.alloc(DESC_WORDS * len(descs))
    for i, d in enumerate(descs):
        img.put(prog + i * DESC_WORDS * wb, d)
    return img, prog, checks


def run_gru_engine(tmp_path: Path, cells, xs, h0, specs, shape: EngineShape = SHAPE, simulator: str = "icarus",
                   idle: float = 0.2, corrupt=None, runs: int = 1) -> list[int]:
    img, prog, checks = gru_program(cells, xs, h0, shape)
    if corrupt:
        corrupt(img, checks)
    tmp_path.mkdir(parents=True, exist_ok=True)
    v = write_component_verilog(EngineTop(shape, grus=specs), "engine_top", tmp_path / "engine.v")
    arrays = {f"expected_{n}": np.asarray(w, dtype=np.int64) for n, (_, w, _, _) in enumerate(checks)}
    np.savez(tmp_path / "stim.npz", image=np.frombuffer(img.to_bytes(), dtype=np.uint8),
             region_addr=np.array([a for a, *_ in checks]), region_lanes=np.array([n for _, _, n, _ in checks]),
             region_bits=np.array([b for *_, b in checks]), **arrays)
    cycles = tmp_path / "cycles.json"
    run_bench(v, "engine_top", "sim.tb.engine", tmp_path / "sim", simulator,
              env=dict(npz=str(tmp_path / "stim.npz"), program_addr=prog, word_bytes=shape.data_bits // 8,
                       seed=3, idle=idle, runs=runs, cycles_json=str(cycles)))
    return json.loads(cycles.read_text())


def stack(height: int, width: int, frames: int, seed: int):
    cells = [shipped_cell(0), shipped_cell(1)]
    rng = np.random.default_rng(seed)
    c, a = cells[0].channels, cells[0].act_bits
    xs = [rng.integers(*fp.srange(a), size=(c, height, width), endpoint=True) for _ in range(frames)]
    h0 = [rng.integers(*fp.srange(a), size=(c, height, width), endpoint=True) for _ in cells]
    specs = tuple(GruSpec(p, height, width, 0 if n == 0 else cells[n - 1].f_h - p.f_x) for n, p in enumerate(cells))
    return cells, xs, h0, specs


def test_the_decoders_two_gru_layers_over_three_frames_from_memory(tmp_path):
    cells, xs, h0, specs = stack(4, 6, 3, 0)
    cycles = run_gru_engine(tmp_path, cells, xs, h0, specs, runs=2)
    assert len(cycles) == 2 and min(cycles) > 0


def test_a_wrong_code_is_reported_at_its_map_and_pixel(tmp_path):
    cells, xs, h0, specs = stack(3, 4, 1, 1)

    def corrupt(img, checks):
        checks[2][1][2, 1, 3] += 1                # layer 1's h_t (after layer 0's h_t and sums), channel 2

    with pytest.raises(Exception, match="failed"):
        run_gru_engine(tmp_path, cells, xs, h0, specs, idle=0, corrupt=corrupt)
    assert "map 2 channel 2 pixel (y=1, x=3)" in (tmp_path / "sim" / "results.xml").read_text()
