"""sim.engine_harness: the engine with the Verilog memory model (sim/rtl/axi_mem.v) in one toplevel, for whole
frames at simulator speed; checked on the P-frame descriptors (GRU layers, warp, adds) under random pauses on every
AXI channel, shown able to fail (a wrong code at its run, map and pixel; an access outside memory), and on whole
QCIF frames of real streams at two qualities (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hw.engine.engine import EngineTop
from hw.engine.program import Image, program_cycles
from hw.rtl.emit import write_component_verilog
from sim.engine_harness import depth_log2, run_engine_runs
from tests.hw.engine.test_engine_p import (SHAPE, add_descriptors, gru_descriptors, stack, warp_descriptors,
                                           write_program)


def p_descriptor_run(seed: int):
    """One program: the decoder's two GRU layers over two 3 x 5 frames, a frame warp, the two adds."""
    rng = np.random.default_rng(seed)
    cells, xs, h0, specs = stack(3, 5, 2, seed)
    img = Image(SHAPE.data_bits // 8)
    descs, checks = gru_descriptors(img, cells, xs, h0, SHAPE)
    for more in (warp_descriptors(img, rng), add_descriptors(img, rng)):
        descs += more[0]
        checks += more[1]
    prog = write_program(img, descs)
    return img, prog, checks, specs


def harness(tmp_path: Path, runs: list, specs, stall: int, simulator: str = "icarus", **kw) -> dict:
    v = write_component_verilog(EngineTop(SHAPE, grus=specs), "engine_top", tmp_path / "engine.v")
    return run_engine_runs(v, runs, SHAPE.data_bits // 8, tmp_path / "h", stall=stall, simulator=simulator, **kw)


def test_p_frame_descriptors_on_the_memory_model_under_pauses(tmp_path):
    """Three runs on one build (a reset and a new memory image before each): two programs under pauses of 25 % on
    every AXI channel, then the second again without: every map equal to the integer models'; the clean run's
    counter equals program_cycles (the memory model keeps AxiRam's timing, on which the cycle model's constants
    were measured)."""
    a, b = p_descriptor_run(4), p_descriptor_run(5)
    runs = [(img.to_bytes(), prog, checks) for img, prog, checks, _ in (a, b, b)]
    res = harness(tmp_path, runs, a[3], stall=[64, 64, 0])
    assert res["mismatches"] == [0, 0, 0] and all(n > 0 for n in res["compared"])
    assert res["cycles"][1] > res["cycles"][2] == program_cycles(b[0], b[1], SHAPE, b[3]), res["cycles"]


def test_a_wrong_code_and_an_access_outside_memory_are_reported(tmp_path):
    """One build, two runs: a wrong expected code is reported at its run, map, channel and pixel; a program whose
    first output lies past the memory raises the model's fault."""
    img, prog, checks, specs = p_descriptor_run(6)
    wrong = [(a, w.copy(), n, bits) for a, w, n, bits in checks]
    wrong[2][1][2, 1, 3] += 1                 # layer 1's h_t, channel 2
    outside = Image(img.word_bytes, dict(img.words), img.top)
    words = 1 << depth_log2(len(img.to_bytes()), img.word_bytes)
    outside.words[prog + 12 * img.word_bytes] = words * img.word_bytes   # the first descriptor's output: past the end
    res = harness(tmp_path, [(img.to_bytes(), prog, wrong), (outside.to_bytes(), prog, checks)], specs, stall=0,
                  raise_on_mismatch=False)
    assert res["failed"] and res["mismatches"][0] == 1
    assert any("run 0 map 2 channel 2 pixel (y=1, x=3)" in r for r in res["report"])
    assert any("run 1: an access outside the memory model" in r for r in res["report"])


def qcif_frames(quality: int, frames: int, shape):
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.codec.coder import Coder
    from edgecodec.engine_host import frame_runs
    from model.codec.data import load_sequence
    from tests.conftest import CLIP_QCIF_MP4, ROOT
    y, u, v = load_sequence(CLIP_QCIF_MP4, frames)
    folder = ROOT / "checkpoints"
    data = Coder(ckpt.load(folder, quality), "int", "ans").encode(y, u, v, 8).data
    return frame_runs(data, folder, shape)


@pytest.mark.slow
@pytest.mark.parametrize("quality", [1, 4])
def test_whole_qcif_frames_of_real_streams_on_the_engine(tmp_path, quality):
    """An I-frame and three P-frames of the shipped QCIF clip (176 x 144, padded to 192 x 192) at qualities 1 and
    4: per frame the hyper-synthesis and the synthesis (I) or the P-frame program, every map equal to the integer
    decoder's, whose frames equal `edgecodec decode --mode int` (checked in frame_runs); pauses of 10 % on every
    AXI channel. About 4 min each on 2 cores."""
    from edgecodec.engine_plan import shape_for
    from tests.hw.engine.test_conv_unit import shipped_int
    shape = shape_for(shipped_int(quality), 8, 64)
    runs, specs = qcif_frames(quality, 4, shape)
    assert [(r.frame, r.kind) for r in runs] == [(0, "intra_h_s"), (0, "intra_g_s")] + [
        (t, k) for t in (1, 2, 3) for k in ("p_h_s", "p_frame")]
    v = write_component_verilog(EngineTop(shape, grus=specs), "engine_top", tmp_path / "engine.v")
    res = run_engine_runs(v, [(r.image, r.program_addr, r.expected) for r in runs], shape.data_bits // 8,
                          tmp_path / "h", stall=26)
    assert res["mismatches"] == [0] * len(runs)
