"""The decoder engine generated for a *pruned* checkpoint (issue 13, docs/pruning.md "The pruned decoder on the
engine"): shipped q1 pruned structurally (every channel group at half width, largest norms kept, snapped to the
array's PE: the ASE-GRU's hidden size C 16 -> 8, the context 32 -> 16, ...; `edgecodec.codec.prune.structural`,
the same checkpoint format `edgecodec prune` writes) decodes a real stream's I- and P-frame on the RTL (Verilator,
the memory model of sim/engine_harness) code for code like the integer model, whose frames equal `edgecodec decode
--mode int`; a corrupted weight of the pruned program is caught; shapes the generator cannot fold are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecodec.codec import checkpoint as ckpt
from edgecodec.engine_plan import square_shape
from hw.engine.program import DESC_WORDS, Image, program_cycles

SHAPE = square_shape(4, 32)          # 4 x 4 array, 128-bit bus; a 64 x 64 frame's widest map is 32


def pruned_checkpoint(folder: Path, fraction: float = 0.5, multiple: int = 4, groups: dict | None = None) -> Path:
    """Shipped q1 pruned structurally (untrained: hardware only) into `folder`/codec_q1.pt."""
    import model.codec.data as ds
    from edgecodec import config
    from edgecodec.codec.prune import structural
    from tests.conftest import CLIP_160, ROOT
    calib = ds.CropSampler(ds.list_sequences([CLIP_160]), 2, 64, 7).batch(2)
    ck = structural(ckpt.load(ROOT / "checkpoints", 1), config.from_dict({}), fraction, multiple, calib, groups)
    folder.mkdir(parents=True, exist_ok=True)
    ckpt.save(ckpt.path_for(folder, 1), ck)
    return folder


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    return pruned_checkpoint(tmp_path_factory.mktemp("pruned_q1"))


def stream(folder: Path, frames: int) -> bytes:
    """A 64 x 64 crop of the shipped QCIF clip coded in int mode with the checkpoint of `folder` (GOP = frames)."""
    from edgecodec.codec.coder import Coder
    from model.codec.data import load_sequence
    from tests.conftest import CLIP_QCIF_MP4
    y, u, v = load_sequence(CLIP_QCIF_MP4, frames)
    y, u, v = (np.ascontiguousarray(pl[:, 16:80, 40:104]) if i == 0 else np.ascontiguousarray(pl[:, 8:40, 20:52])
               for i, pl in enumerate((y, u, v)))
    return Coder(ckpt.load(folder, 1), "int", "ans").encode(y, u, v, frames).data


def corrupt_weights(image: bytes, prog: int, word_bytes: int) -> bytes:
    """The image with bit 6 of every code of one weight word (the middle one) of the program's last layer flipped
    (codes off by 64)."""
    img = Image.from_bytes(image, word_bytes)
    d = prog
    while not img.words[d] & 1:                         # FLAG_LAST
        d += DESC_WORDS * word_bytes
    wa, n = img.words[d + 8 * word_bytes], img.words[d + 9 * word_bytes]      # weight address and words
    img.words[wa + n // 2 * word_bytes] ^= sum(1 << (6 + 8 * i) for i in range(word_bytes))
    return img.to_bytes()


@pytest.mark.slow          # about 2 min on 2 loaded cores (the Verilator build 100 s, the five runs 10 s)
def test_a_pruned_checkpoint_decodes_on_the_engine(pruned, tmp_path):
    """An I-frame (hyper-synthesis, synthesis) and a P-frame (hyper-synthesis, the P-frame program: warp,
    p_from_latent, both ASE-GRU layers at C = 8, context, synthesis, adds) of a real stream on the engine generated
    for the pruned checkpoint, every map equal to the integer model's (frame_runs checks its frames against
    `decode --mode int`); the last run, the synthesis with one weight code corrupted in memory, is caught. The
    counter equals the cycle model on the convolution programs."""
    from edgecodec.engine_host import frame_runs
    from hw.engine.engine import EngineTop
    from hw.rtl.emit import write_component_verilog
    from sim.engine_harness import run_engine_runs
    ck = ckpt.load(pruned, 1)
    assert ck["prune"]["groups"]["inter.hidden"] == 8 and [c["channels"] for c in ck["int"]["dec_cells"]] == [8, 8]
    runs, specs = frame_runs(stream(pruned, 2), pruned, SHAPE)
    assert [(r.frame, r.kind) for r in runs] == [(0, "intra_h_s"), (0, "intra_g_s"), (1, "p_h_s"), (1, "p_frame")]
    assert [s.params.channels for s in specs] == [8, 8]
    wb = SHAPE.data_bits // 8
    stim = [(r.image, r.program_addr, r.expected) for r in runs]
    g_s = runs[1]
    stim.append((corrupt_weights(g_s.image, g_s.program_addr, wb), g_s.program_addr, g_s.expected))
    v = write_component_verilog(EngineTop(SHAPE, grus=specs), "engine_top", tmp_path / "engine.v")
    res = run_engine_runs(v, stim, wb, tmp_path / "h", stall=0, simulator="verilator", raise_on_mismatch=False)
    assert res["mismatches"][:4] == [0, 0, 0, 0] and all(n > 0 for n in res["compared"][:4]), res
    assert res["mismatches"][4] > 0, res["cycles"]              # the corrupted weightss
    for r, got in zip(runs, res["cycles"]):
        model = program_cycles(Image.from_bytes(r.image, wb), r.program_addr, SHAPE, specs)
        assert abs(got - model) <= 0.001 * model, (r.kind, got, model)


def test_the_pruned_decoders_layers_on_the_engine(pruned, tmp_path):
    """The fast variant (Icarus, one build): the pruned decoder's two ASE-GRU layers (C = 8; layer 1's input a
    left shift of layer 0's h: x_shift -1) over two 3 x 5 frames, and its I-frame hyper-synthesis (whose first
    layer has a negative requantisation shift: the bias moves left with it) on a real z of a 64 x 64 stream; then
    the hyper-synthesis with corrupted weights, caught."""
    from edgecodec.engine_host import frame_runs
    from hw.engine.engine import EngineTop
    from hw.engine.frame_program import gru_specs
    from hw.rtl.emit import write_component_verilog
    from quant.cell.params import CellParams
    from sim.engine_harness import run_engine_runs
    from tests.hw.engine.test_engine_p import gru_program
    ck = ckpt.load(pruned, 1)
    cells = [CellParams.from_json(c) for c in ck["int"]["dec_cells"]]
    specs = gru_specs(ck["int"], (2, 3))
    rng = np.random.default_rng(1)
    lo, hi = -(1 << (cells[0].act_bits - 1)), (1 << (cells[0].act_bits - 1)) - 1
    xs = [rng.integers(lo, hi, size=(8, 3, 5), endpoint=True) for _ in range(2)]
    h0 = [rng.integers(lo, hi, size=(8, 3, 5), endpoint=True) for _ in cells]
    specs = tuple(type(s)(s.params, 3, 5, s.x_shift) for s in specs)
    assert [s.x_shift for s in specs] == [0, cells[0].f_h - cells[1].f_x]
    img, prog, checks = gru_program(cells, xs, h0, SHAPE)
    h_s = frame_runs(stream(pruned, 1), pruned, SHAPE)[0][0]
    assert h_s.kind == "intra_h_s"
    wb = SHAPE.data_bits // 8
    stim = [(img.to_bytes(), prog, checks), (h_s.image, h_s.program_addr, h_s.expected),
            (corrupt_weights(h_s.image, h_s.program_addr, wb), h_s.program_addr, h_s.expected)]
    v = write_component_verilog(EngineTop(SHAPE, grus=specs), "engine_top", tmp_path / "engine.v")
    res = run_engine_runs(v, stim, wb, tmp_path / "h", stall=64, simulator="icarus", raise_on_mismatch=False)
    assert res["mismatches"][:2] == [0, 0] and all(n > 0 for n in res["compared"][:2]), res["report"][:3]
    assert res["mismatches"][2] > 0


@pytest.fixture(scope="module")
def unfoldable(tmp_path_factory):
    """Two pruned checkpoints the default engines cannot fold: C = 7 (prune.multiple = 1) and C = 12."""
    root = tmp_path_factory.mktemp("unfoldable")
    return {c: pruned_checkpoint(root / f"c{c}", 1.0, 4 if c % 4 == 0 else 1, {"inter.hidden": c}) for c in (7, 12)}


@pytest.mark.parametrize("c, argv, message", [
    (7, ["--pe", "4"], "decoder ASE-GRU layer 0: hidden size C = 7 is not a multiple of the array's PE 4"),
    (12, ["--pe", "8"], "decoder ASE-GRU layer 1: hidden size C = 12 is not a multiple of the array's PE 8"),
    (12, ["--pe", "4", "--gru-pe", "8"], "hidden size C = 12 is not a multiple of the GRU units' folding 8"),
])
def test_engine_verilog_refuses_a_pruned_shape_it_cannot_fold(unfoldable, tmp_path, capsys, c, argv, message):
    from edgecodec.cli import main
    out = tmp_path / "v" / "engine_top.v"
    assert main(["engine-verilog", "--resolution", "64x64", "--checkpoints", str(unfoldable[c]), *argv,
                 "-o", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not out.parent.exists()          # nothing written


def test_engine_plan_refuses_an_odd_hidden_size_and_skips_arrays_that_cannot_fold(unfoldable, capsys):
    import json
    from edgecodec.cli import main
    assert main(["engine-plan", "--resolution", "320x192", "--target-fps", "1",
                 "--checkpoints", str(unfoldable[7])]) == 2
    err = capsys.readouterr().err
    assert "folds onto no array above 1 x 1" in err and "hidden size C = 7" in err
    assert main(["engine-plan", "--resolution", "320x192", "--target-fps", "1000",
                 "--checkpoints", str(unfoldable[12])]) == 0
    rows = {r["pe"]: r for r in json.loads(capsys.readouterr().out)["arrays"]}
    assert "C = 12 is not a multiple of the array's PE 8" in rows[8]["why_not"] and not rows[8]["fits"]
    assert "C = 12" not in rows[4]["why_not"]


def test_the_p_frame_program_refuses_a_hidden_size_the_array_cannot_fold(unfoldable):
    from base.errors import EdgecodecError
    from hw.engine.frame_program import p_frame_program
    with pytest.raises(EdgecodecError, match="layer 0: hidden size C = 12 is not a multiple of the array's PE 8"):
        p_frame_program(ckpt.load(unfoldable[12], 1)["int"], (4, 4), square_shape(8, 32))
