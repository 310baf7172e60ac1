"""`edgecodec prune` on a tiny teacher: a pruned checkpoint that encode / decode / eval (int and float) accept,
its widths and decoder MACs, the same bytes for the same seed, resume after an interruption, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from base.errors import EdgecodecError
from edgecodec import config
from edgecodec.cli import main
from edgecodec.codec import checkpoint as ckpt
from edgecodec.codec.coder import Coder, decode
from edgecodec.codec.evaluate import macs_per_pixel
from edgecodec.codec.recipe import train
from model.codec.prune import HIDDEN, GatedCodec
from model.video import read_yuv420

from tests.conftest import CLIP_160 as CLIP

TINY = {"codec": {"features": 8, "latent": 8, "hyper": 8, "context": 8, "lambdas": [256], "gop": 3},
        "codec_train": {"data": [str(CLIP)], "crop": 64, "seq_len": 2, "batch": 1, "intra_steps": 3,
                        "inter_steps": 3},
        "prune": {"steps": 4, "save_every": 2, "stage_steps": 1, "budget": 0.5, "tau_lr": 1.0, "multiple": 4,
                  "ramp": 0.0}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny teacher, its config file and one pruned checkpoint made through the command line."""
    root = tmp_path_factory.mktemp("prune")
    cfg_path = root / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY))
    [teacher] = train(config.from_dict(TINY), root / "teacher", progress=False)
    out = root / "pruned"
    assert main(["prune", str(teacher), "--out", str(out), "--config", str(cfg_path), "--quiet"]) == 0
    return cfg_path, teacher, out


def test_the_pruned_checkpoint_is_narrower_and_reports_its_decoder_macs(setup, capsys):
    cfg_path, teacher, out = setup
    ck, dense = ckpt.load(out / "codec_q1.pt"), ckpt.load(teacher)
    meta = ck["prune"]
    macs = meta["decoder_macs"]
    assert macs["pruned"]["gop_mean"] < macs["dense"]["gop_mean"] and 0 < macs["removed"] < 1
    assert meta["groups"][HIDDEN] % 4 == 0 and meta["groups"][HIDDEN] < 16
    assert ck["shape"]["channels"] == meta["groups"][HIDDEN] == ck["codec"].inter.dec_rnn.cells[1].channels
    assert ck["widths"]["inter.from_latent.0"] == 4 * meta["groups"][HIDDEN]
    assert all(np.asarray(ck["float"][f"{n}.weight"]).shape[0] == w for n, w in ck["widths"].items())
    assert [c["channels"] for c in ck["int"]["dec_cells"]] == [meta["groups"][HIDDEN]] * 2
    # the reported MACs are the hook count of the real (narrow / dense) decoders, per pixel, GOP of 3
    for codec, m in ((ck["codec"], macs["pruned"]), (dense["codec"], macs["dense"])):
        hook = macs_per_pixel(codec, 256, 256)
        counted = GatedCodec(codec).decoder_macs(GatedCodec(codec).full(), 256, 256, 3)
        assert counted["I"] / 65536 == pytest.approx(hook["intra_decoder"], abs=0.06)
        assert counted["P"] / 65536 == pytest.approx(hook["p_decoder"], abs=0.06)
        full_hd = GatedCodec(codec).decoder_macs(GatedCodec(codec).full(), 1080, 1920, 3)
        assert m == {k: round(v) for k, v in full_hd.items()}      # the gated widths' count = the narrow model's
    assert ck["quality"] == dense["quality"] and ck["lambda"] == dense["lambda"]


@pytest.mark.parametrize("mode", ["int", "float"])
def test_encode_decode_of_a_pruned_checkpoint_is_consistent(setup, mode):
    _, _, out = setup
    y, u, v = (p[:4] for p in read_yuv420(CLIP))
    r = Coder(ckpt.load(out, 1), mode).encode(y, u, v, gop=3)
    header, rec = decode(r.data, out)
    assert header.mode == mode and r.frame_types == [0, 1, 1, 0]
    assert all(np.array_equal(a, b) for a, b in zip(rec, r.recon))


def test_cli_encode_decode_eval_accept_a_pruned_checkpoint(setup, tmp_path, capsys):
    cfg_path, _, out = setup
    bin_, rec = tmp_path / "o.bin", tmp_path / "r.y4m"
    common = ["--config", str(cfg_path), "--checkpoints", str(out)]
    assert main(["encode", str(CLIP), "-o", str(bin_), "--quality", "1", "--frames", "3", *common]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "int"
    assert main(["decode", str(bin_), "-o", str(rec), *common]) == 0
    capsys.readouterr()
    assert read_yuv420(rec)[0].shape == (3, 96, 160)
    assert main(["eval", "--clip", str(CLIP), "--frames", "3", "--mode", "int", "--no-ffmpeg", "--quiet",
                 "--out", str(tmp_path / "eval"), *common]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert "int" in json.dumps(report)
    # the decoder engine's planner reads the pruned widths from the integer model
    assert main(["engine-plan", "--resolution", "320x192", "--target-fps", "1", "--quality", "1", *common]) == 0
    assert json.loads(capsys.readouterr().out)["reachable"] is True


@pytest.mark.slow      # the resume test below already compares a second run's bytes with the fixture's
def test_the_same_seed_gives_the_same_bytes(setup, tmp_path):
    cfg_path, teacher, out = setup
    assert main(["prune", str(teacher), "--config", str(cfg_path), "--quiet", "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "codec_q1.pt").read_bytes() == (out / "codec_q1.pt").read_bytes()


def test_an_interrupted_run_resumes_to_the_same_bytes(setup, tmp_path, monkeypatch):
    import model.codec.data as ds
    cfg_path, teacher, out = setup
    whole = (out / "codec_q1.pt").read_bytes()
    argv = ["prune", str(teacher), "--config", str(cfg_path), "--quiet"]
    real, calls = ds.CropSampler.batch, {"n": 0}

    def flaky(self, n):
        calls["n"] += 1
        if calls["n"] == 4:                       # step 3, after the resume state of step 2
            raise KeyboardInterrupt
        return real(self, n)

    monkeypatch.setattr(ds.CropSampler, "batch", flaky)
    assert main([*argv, "--out", str(tmp_path / "b")]) == 130
    assert (tmp_path / "b" / "codec_q1.prune.pt").is_file() and not (tmp_path / "b" / "codec_q1.pt").exists()
    monkeypatch.setattr(ds.CropSampler, "batch", real)
    calls["n"] = 0
    monkeypatch.setattr(ds.CropSampler, "batch", _counting(real, calls))
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert calls["n"] == 2 + 1                    # steps 2 and 3, then the calibration batch: resumed at step 2
    assert (tmp_path / "b" / "codec_q1.pt").read_bytes() == whole
    assert not (tmp_path / "b" / "codec_q1.prune.pt").exists()


def test_the_prune_trains_on_the_teachers_crops(setup, tmp_path, monkeypatch):
    """The student learns from the crops its teacher's recipe drew (codec_train.scales: box-averaged larger crops,
    not plain crops of large frames), and a change of the scales is a new recipe (another key, not a finished
    checkpoint reused)."""
    import model.codec.data as ds
    from edgecodec.codec.prune import load_teacher, prune_key
    cfg_path, teacher, _ = setup
    real, seen = ds.CropSampler.__init__, []

    def spy(self, *a, **k):
        seen.append(tuple(k.get("scales", (1,))))
        real(self, *a, **k)

    monkeypatch.setattr(ds.CropSampler, "__init__", spy)
    scaled = {**TINY, "codec_train": {**TINY["codec_train"], "scales": [1, 2]}}
    (tmp_path / "scaled.yaml").write_text(yaml.safe_dump(scaled))
    assert main(["prune", str(teacher), "--config", str(tmp_path / "scaled.yaml"), "--quiet", "--out",
                 str(tmp_path / "s")]) == 0
    assert seen[0] == (1, 2)                      # the training sampler (the calibration batch comes after)
    ck = load_teacher(teacher)
    assert prune_key(config.from_dict(scaled), ck, 0.5, "gd") != prune_key(config.from_dict(TINY), ck, 0.5, "gd")


def _counting(real, calls):
    def batch(self, n):
        calls["n"] += 1
        return real(self, n)
    return batch


@pytest.mark.parametrize("budget", ["0", "1", "1.5"])
def test_a_budget_outside_zero_one_is_refused_and_writes_nothing(setup, tmp_path, capsys, budget):
    cfg_path, teacher, _ = setup
    assert main(["prune", str(teacher), "--out", str(tmp_path / "o"), "--budget", budget, "--config",
                 str(cfg_path), "--quiet"]) == 2
    assert "(0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_teacher_that_is_not_a_codec_checkpoint_is_refused(setup, tmp_path, capsys):
    cfg_path, _, _ = setup
    other = tmp_path / "other.pt"
    torch.save({"format": "edgecodec-ase-gru-v1", "float": {}}, other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for bad, message in ((other, "not an edgecodec-codec-v2 checkpoint"), (junk, "corrupt or not a torch"),
                         (tmp_path / "missing.pt", "not found"), (tmp_path, "folder")):
        assert main(["prune", str(bad), "--out", str(tmp_path / "o"), "--config", str(cfg_path), "--quiet"]) == 2
        assert message in capsys.readouterr().err, bad
        assert not (tmp_path / "o").exists()


def test_beta_by_method_and_the_config_section_is_validated():
    from edgecodec.codec.prune import beta_at
    assert [beta_at("gd", s, 10, 0.0, 0.6) for s in (0, 3, 6, 9)] == [1.0, 0.5, 0.0, 0.0]
    assert {beta_at("ste", s, 10, 0.0, 0.6) for s in range(10)} == {1.0}
    assert {beta_at("hard", s, 10, 0.0, 0.6) for s in range(10)} == {0.0}
    assert config.from_dict({}).prune.budget == 0.5
    for bad, message in (({"budget": 1.5}, r"\(0, 1\)"), ({"budget": 0}, r"\(0, 1\)"), ({"method": "x"}, "gd, ste"),
                         ({"decay_start": 0.7, "decay_end": 0.6}, "start < end"), ({"resolution": "big"}, "WIDTHx")):
        with pytest.raises(EdgecodecError, match=message):
            config.from_dict({"prune": bad})
