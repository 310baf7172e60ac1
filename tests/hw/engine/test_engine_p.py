"""The engine's P-frame descriptors (hw.engine.engine's sequencer), from AXI memory (cocotbext-axi AxiRam with
pauses on every channel), code for code against the integer models:
- ASE-GRU layers (hw.engine.gru_unit): the shipped decoder's two layers over several frames, x, h_{t-1} and the
  pool sums read, h_t and its sums written back;
- element-wise adds (hw.engine.add_unit): the reconstruction clamp(warped + residual, 0, 255), the context input
  warped - 128."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hw.engine.engine import EngineTop
from hw.engine.gru_unit import GruSpec
from hw.engine.program import (DESC_WORDS, EngineShape, Image, add_descriptor, gru_descriptor, map_words,
                               program_cycles)
from hw.rtl.emit import write_component_verilog
from quant import fixed_point as fp
from quant.cell.golden import cell_step
from sim.runner import run_bench
from sim.tb.engine_maps import save_runs
from tests.hw.engine.test_gru_unit import shipped_cell

SHAPE = EngineShape(pe=4, simd=4, data_bits=128, max_width=32, max_cin=64, max_cout=256)


def gru_descriptors(img: Image, cells, xs: list, h0: list, shape: EngineShape):
    """Descriptors of len(xs) frames through the layer stack `cells` from hidden states h0, their maps in `img`;
    the expected maps (every h_t, the last frame's sums) as (address, codes, lanes, bits)."""
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
    return descs, checks


def write_program(img: Image, descs: list) -> int:
    """The descriptors as a program in `img` (the last flagged); its address."""
    descs = [list(d) for d in descs]
    descs[-1][0] |= 1
    prog = img.alloc(DESC_WORDS * len(descs))
    for i, d in enumerate(descs):
        img.put(prog + i * DESC_WORDS * img.word_bytes, d)
    return prog


def gru_program(cells, xs: list, h0: list, shape: EngineShape):
    img = Image(shape.data_bits // 8)
    descs, checks = gru_descriptors(img, cells, xs, h0, shape)
    return img, write_program(img, descs), checks


def run_gru_engine(tmp_path: Path, cells, xs, h0, specs, shape: EngineShape = SHAPE, simulator: str = "icarus",
                   idle: float = 0.2, corrupt=None, runs: int = 2) -> list[int]:
    img, prog, checks = gru_program(cells, xs, h0, shape)
    if corrupt:
        corrupt(img, checks)
    return run_program(tmp_path, img, prog, checks, specs, shape, simulator, idle, runs)


def run_program(tmp_path: Path, img: Image, prog: int, checks: list, specs, shape: EngineShape = SHAPE,
                simulator: str = "icarus", idle: float = 0.2, runs: int = 2, max_cycles: int = 5_000_000) -> list[int]:
    """Run a program `runs` times on an engine generated with the GRU units `specs`, with pauses, the last run
    without; compare the maps `checks`. Returns every run's cycles; the last equals the cycle model."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    v = write_component_verilog(EngineTop(shape, grus=specs), "engine_top", tmp_path / "engine.v")
    save_runs(tmp_path / "stim.npz", [(img.to_bytes(), prog, checks)] * runs)
    cycles = tmp_path / "cycles.json"
    run_bench(v, "engine_top", "sim.tb.engine", tmp_path / "sim", simulator,
              env=dict(npz=str(tmp_path / "stim.npz"), word_bytes=shape.data_bits // 8,
                       seed=3, idle=idle, runs=runs, cycles_json=str(cycles), max_cycles=max_cycles,
                       clean_last=1))
    got = json.loads(cycles.read_text())
    assert got[-1] == program_cycles(img, prog, shape, specs), (got, program_cycles(img, prog, shape, specs))
    return got


def stack(height: int, width: int, frames: int, seed: int):
    cells = [shipped_cell(0), shipped_cell(1)]
    rng = np.random.default_rng(seed)
    c, a = cells[0].channels, cells[0].act_bits
    xs = [rng.integers(*fp.srange(a), size=(c, height, width), endpoint=True) for _ in range(frames)]
    h0 = [rng.integers(*fp.srange(a), size=(c, height, width), endpoint=True) for _ in cells]
    specs = tuple(GruSpec(p, height, width, 0 if n == 0 else cells[n - 1].f_h - p.f_x) for n, p in enumerate(cells))
    return cells, xs, h0, specs


def add_descriptors(img: Image, rng):
    """The reconstruction clamp(warped + residual, 0, 255) (the residual reaching past both ends) and the context
    input warped - 128 (one input) on a 6-channel map padded to 8 (two words a pixel) of 5 x 7 pixels, 70 words:
    chunks of 16 and a short one."""
    warped = rng.integers(0, 256, size=(8, 5, 7))
    res = rng.integers(-300, 300, size=(8, 5, 7))
    words = 8 // SHAPE.pe * 5 * 7
    addr = {}
    for name, codes in (("warped", warped), ("res", res)):
        addr[name] = img.alloc(words)
        img.put(addr[name], map_words(codes, SHAPE.pe, SHAPE.act_bits))
    recon, ctx = img.alloc(words), img.alloc(words)
    descs = [add_descriptor(words, a=addr["res"], b=addr["warped"], out=recon, lo=0, hi=255),
             add_descriptor(words, a=addr["warped"], out=ctx, k=-128, lo=-2048, hi=2047)]
    checks = [(recon, np.clip(warped + res, 0, 255), SHAPE.pe, SHAPE.act_bits),
              (ctx, warped - 128, SHAPE.pe, SHAPE.act_bits)]
    return descs, checks


def warp_descriptors(img: Image, rng):
    """A packed frame of 8 x 16 (a 16 x 32 luma plane: 1 x 2 blocks) warped by vectors reaching past every border,
    fractional and whole: equal to warp_int on its planes."""
    import torch
    from hw.engine.program import frame_channels, warp_descriptor
    from quant.codec.int_codec import pack_planes, unpack_planes, warp_int
    fh, fw = 8, 16
    ref = torch.from_numpy(rng.integers(0, 256, size=(1, 6, fh, fw)))
    mv = rng.integers(-40, 41, size=(2, fh // 8, fw // 8))
    mv[:, 0, 0] = (-70, -61)
    mv[:, -1, -1] = (77, 53)
    warped = pack_planes(*warp_int(*unpack_planes(ref), torch.from_numpy(mv)))[0].numpy()
    fc = frame_channels(SHAPE)
    full = np.zeros((fc, fh, fw), dtype=np.int64)
    full[:6] = ref[0].numpy()
    words = fh * fw * fc // SHAPE.pe
    src, dst, vec = img.alloc(words), img.alloc(words), img.alloc(mv[0].size)
    img.put(src, map_words(full, SHAPE.pe, SHAPE.act_bits))
    img.put(vec, [(int(dx) & 0xFFFF) | ((int(dy) & 0xFFFF) << 16) for dx, dy in zip(mv[0].reshape(-1),
                                                                                  mv[1].reshape(-1))])
    want = np.zeros_like(full)
    want[:6] = warped
    return [warp_descriptor(fh, fw, ref=src, out=dst, vectors=vec)], [(dst, want, SHAPE.pe, SHAPE.act_bits)]


def test_the_p_frame_descriptors_from_memory(tmp_path):
    """One program: the shipped decoder's two GRU layers over two frames (3 x 5 maps; every h_t and the last sums
    compared), a frame warp and the two element-wise adds. Run with pauses, then without: the second run's cycles
    equal program_cycles."""
    rng = np.random.default_rng(4)
    cells, xs, h0, specs = stack(3, 5, 2, 0)
    img = Image(SHAPE.data_bits // 8)
    descs, checks = gru_descriptors(img, cells, xs, h0, SHAPE)
    for more in (warp_descriptors(img, rng), add_descriptors(img, rng)):
        descs += more[0]
        checks += more[1]
    cycles = run_program(tmp_path, img, write_program(img, descs), checks, specs)
    assert len(cycles) == 2 and cycles[0] > cycles[1]            # pauses, then none (equal to the model)


@pytest.mark.slow          # 35 s: a second Icarus build of the GRU engine
def test_gru_units_folded_apart_from_the_array(tmp_path):
    """GRU units generated with their own folding (EngineShape.gru_pe = 2 beside a 4 x 4 array: a quarter of the
    multipliers): the same h_t and sums, and the cycle model's (C/2)^2 cycles a pixel, equal to the counter."""
    import dataclasses
    cells, xs, h0, specs = stack(2, 3, 1, 2)
    run_gru_engine(tmp_path, cells, xs, h0, specs, shape=dataclasses.replace(SHAPE, gru_pe=2), idle=0.1)


@pytest.mark.slow
def test_a_wrong_code_is_reported_at_its_map_and_pixel(tmp_path):
    cells, xs, h0, specs = stack(3, 4, 1, 1)

    def corrupt(img, checks):
        checks[2][1][2, 1, 3] += 1                # layer 1's h_t (after layer 0's h_t and sums), channel 2

    with pytest.raises(Exception, match="failed"):
        run_gru_engine(tmp_path, cells, xs, h0, specs, idle=0, corrupt=corrupt, runs=1)
    assert "map 2 channel 2 pixel (y=1, x=3)" in (tmp_path / "sim" / "results.xml").read_text()


def p_frame_stimulus(quality: int, frames: int, shape: EngineShape):
    """A real stream (a 64 x 64 crop of the shipped QCIF clip, GOP = frames, int mode) through the host driver
    (edgecodec.engine_host): per P-frame the engine's memory image (y_hat and the block vectors from the stream, the
    reference frame) and the maps the RTL must write, which equal the frames of `edgecodec decode --mode int`."""
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.codec.coder import Coder
    from edgecodec.engine_host import p_frame_runs
    from model.codec.data import load_sequence
    from tests.conftest import CLIP_QCIF_MP4, ROOT
    y, u, v = load_sequence(CLIP_QCIF_MP4, frames)
    y, u, v = (np.ascontiguousarray(pl[:, 16:80, 40:104]) if i == 0 else np.ascontiguousarray(pl[:, 8:40, 20:52])
               for i, pl in enumerate((y, u, v)))
    folder = ROOT / "checkpoints"
    data = Coder(ckpt.load(folder, quality), "int", "ans").encode(y, u, v, frames).data
    runs, specs = p_frame_runs(data, folder, shape)
    assert [r.frame for r in runs] == list(range(1, frames))
    return [(r.image, r.program_addr, r.expected) for r in runs], specs


def run_p_frames(tmp_path: Path, quality: int, frames: int, simulator: str, idle: float = 0.1) -> list[int]:
    from edgecodec.engine_plan import shape_for
    from tests.hw.engine.test_conv_unit import shipped_int
    shape = shape_for(shipped_int(quality), 4, 32)      # SHAPE for the checkpoint's weight codes
    stim, specs = p_frame_stimulus(quality, frames, shape)
    tmp_path.mkdir(parents=True, exist_ok=True)
    v = write_component_verilog(EngineTop(shape, grus=specs), "engine_top", tmp_path / "engine.v")
    save_runs(tmp_path / "stim.npz", stim)
    cycles = tmp_path / "cycles.json"
    run_bench(v, "engine_top", "sim.tb.engine", tmp_path / "sim", simulator,
              env=dict(npz=str(tmp_path / "stim.npz"), word_bytes=shape.data_bits // 8, seed=7, idle=idle,
                       runs=len(stim), cycles_json=str(cycles), clean_last=1))
    got = json.loads(cycles.read_text())
    image, prog, _ = stim[-1]
    model = program_cycles(Image.from_bytes(image, shape.data_bits // 8), prog, shape, specs)
    assert abs(got[-1] - model) <= 0.001 * model, (got, model)       # the last run has no pauses
    return got


@pytest.mark.slow
@pytest.mark.parametrize("quality", [1, 4])
def test_p_frames_of_a_real_stream_decoded_on_the_engine(tmp_path, quality):
    """Three P-frames of a real stream: every map the program writes (the warped frame, both GRU layers' h_t and
    sums, the reconstruction) equal to the integer decoder's, and the frames to `edgecodec decode --mode int`, byte
    for byte."""
    cycles = run_p_frames(tmp_path, quality, 4, "verilator")
    assert len(cycles) == 3           # the last without pauses: within 0.1 % of program_cycles (measured: 6 cycles
                                      # in 979 k at q1)


def test_the_program_walker_agrees_with_the_convolution_model():
    """program_cycles, reading descriptors from the image, equals engine_cycles on convolution programs (strips,
    stride 2, PixelShuffle)."""
    from hw.engine.program import compile_stack, engine_cycles
    from tests.hw.engine.test_conv_unit import random_layer
    rng = np.random.default_rng(8)
    layers = [random_layer(rng, 4, 8, 2, 10, True), random_layer(rng, 8, 16, 1, 9, True)]
    small = EngineShape(pe=2, simd=2, data_bits=64, max_width=8, max_cin=64, max_cout=256)
    prog = compile_stack(layers, 5, 19, small)
    assert program_cycles(prog.image, prog.program_addr, small) == engine_cycles(prog)
