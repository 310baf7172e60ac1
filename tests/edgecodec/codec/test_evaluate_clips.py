"""`edgecodec eval` on several clips: crop specs, P-frame drift, the overlap of two RD curves, decoder MACs per
pixel (the count of bench/codec_bench.py) and a tiny real multi-clip run through the command line."""

from __future__ import annotations

from pathlib import Path

import importlib.util
import json

import numpy as np
import pytest

from base.errors import EdgecodecError
from edgecodec.cli import main
from edgecodec.codec import checkpoint as ckpt
from edgecodec.codec.evaluate import (HELDOUT, crop_planes, drift, evaluate_clips, load_clip, overlap,
                                      parse_clip_spec)
from model.video import read_video, read_yuv420

from tests.conftest import CLIP_160 as CLIP
from tests.conftest import ROOT

CHECKPOINTS = ROOT / "checkpoints"
needs_checkpoints = pytest.mark.skipif(not (CHECKPOINTS / "codec_q1.pt").is_file(),
                                       reason="no shipped codec checkpoint checkpoints/codec_q1.pt")


# ------------------------------------------------------------------------------------------- crop specs ----

@pytest.mark.parametrize("spec, expected", [
    ("data/video/streams/vpf_test.mp4@352x288+248+88", ("data/video/streams/vpf_test.mp4", (352, 288, 248, 88))),
    ("clip.y4m", ("clip.y4m", None)),
    ("dir@2/clip.y4m@64x48+0+16", ("dir@2/clip.y4m", (64, 48, 0, 16))),
])
def test_parse_clip_spec_good(spec, expected):
    assert parse_clip_spec(spec) == expected


@pytest.mark.parametrize("spec, words", [
    ("clip.y4m@352x288", "WxH+X+Y"),
    ("clip.y4m@axb+1+2", "WxH+X+Y"),
    ("clip.y4m@64x48+-2+0", "WxH+X+Y"),
    ("clip.y4m@", "WxH+X+Y"),
    ("@64x48+0+0", "no path"),
    ("clip.y4m@0x48+0+0", "positive"),
    ("clip.y4m@63x48+0+0", "even"),
    ("clip.y4m@64x48+1+0", "even"),
    ("", "empty"),
])
def test_parse_clip_spec_bad(spec, words):
    with pytest.raises(EdgecodecError) as e:
        parse_clip_spec(spec)
    assert words in str(e.value)
    if spec:
        assert f"'{spec}'" in str(e.value)


def test_crop_planes_cuts_luma_and_chroma_at_half_coordinates():
    y = np.arange(2 * 8 * 12, dtype=np.uint8).reshape(2, 8, 12)
    u = np.arange(2 * 4 * 6, dtype=np.uint8).reshape(2, 4, 6)
    v = u + 100
    cy, cu, cv = crop_planes(y, u, v, (4, 2, 6, 4))
    assert np.array_equal(cy, y[:, 4:6, 6:10])
    assert np.array_equal(cu, u[:, 2:3, 3:5]) and np.array_equal(cv, v[:, 2:3, 3:5])
    assert crop_planes(y, u, v, None)[0] is y


@pytest.mark.parametrize("crop", [(8, 2, 6, 0), (4, 8, 0, 2), (14, 8, 0, 0)])
def test_crop_outside_the_frame_is_refused(crop):
    y = np.zeros((1, 8, 12), np.uint8)
    u = np.zeros((1, 4, 6), np.uint8)
    with pytest.raises(EdgecodecError, match="outside the 12x8 frame"):
        crop_planes(y, u, u, crop, "clip.y4m")


def test_crop_outside_a_real_clip_is_refused_naming_it():
    with pytest.raises(EdgecodecError) as e:
        load_clip(CLIP, 2, (64, 48, 100, 0))        # the clip is 160x96: 100 + 64 > 160
    assert CLIP.name in str(e.value) and "64x48+100+0" in str(e.value) and "160x96" in str(e.value)


def test_cli_refuses_a_bad_crop_and_heldout_with_clip(capsys, tmp_path):
    assert main(["eval", "--clip", f"{CLIP}@65x48+0+0", "--out", str(tmp_path)]) == 2
    assert f"{CLIP}@65x48+0+0" in capsys.readouterr().err
    assert main(["eval", "--heldout", "--clip", str(CLIP), "--out", str(tmp_path)]) == 2
    assert "--heldout" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_heldout_set_is_the_diagnosis_set():
    assert [(n, p, c) for n, p, c in HELDOUT] == [
        ("carphone", "data/video/carphone_176x144_qp10.mp4", None),
        ("vpf_dog", "data/video/streams/vpf_test.mp4", (352, 288, 248, 88)),
        ("zhling", "data/video/streams/openh264_Zhling_1280x720.264", (352, 288, 464, 216))]
    for _, path, _ in HELDOUT:
        assert (ROOT / path).is_file()


def test_heldout_clips_are_not_training_data():
    """The shipped recipe trains on none of the held-out clips (neither the default nor the GPU config)."""
    from edgecodec import config
    held = {Path(p).name for _, p, _ in HELDOUT}
    for name in ("default.yaml", "codec_gpu.yaml"):
        cfg = config.load(ROOT / "configs" / name)
        assert not held & {Path(d).name for d in cfg.codec_train.data}, name


# ------------------------------------------------------------------------------------------- drift ----

def _frames(types, y, yuv):
    return [{"type": t, "psnr_y": a, "psnr_yuv611": b} for t, a, b in zip(types, y, yuv)]


def test_drift_per_gop_exact():
    per = _frames("IPPPIPPPIP",
                  [40.0, 30.0, 29.5, 28.75, 41.0, 32.0, 32.5, 31.5, 40.0, 30.0],
                  [42.0, 33.0, 32.75, 32.5, 43.0, 34.0, 34.0, 33.0, 42.0, 33.0])
    d = drift(per)
    assert d["limit_db"] == 1.0 and d["metrics"] == ["psnr_y", "psnr_yuv611"]
    assert len(d["gops"]) == 2                       # the last GOP has one P-frame: nothing to compare
    g0, g1 = d["gops"]
    assert (g0["gop"], g0["start"], g0["first_p"], g0["last_p"]) == (0, 0, 1, 3)
    assert (g0["psnr_y_first"], g0["psnr_y_last"], g0["psnr_y_drop"]) == (30.0, 28.75, 1.25)
    assert (g0["psnr_yuv611_first"], g0["psnr_yuv611_last"], g0["psnr_yuv611_drop"]) == (33.0, 32.5, 0.5)
    assert g0["max_drop_db"] == 1.25 and g0["met"] is False
    assert (g1["start"], g1["first_p"], g1["last_p"]) == (4, 5, 7)
    assert g1["psnr_y_drop"] == 0.5 and g1["psnr_yuv611_drop"] == 1.0 and g1["met"] is True   # 1 dB is within
    assert d["max_drop_db"] == 1.25 and d["met"] is False


def test_drift_rising_quality_meets_and_no_p_frames_give_none():
    d = drift(_frames("IPP", [30.0, 25.0, 27.0], [31.0, 26.0, 28.5]))
    assert d["gops"][0]["psnr_y_drop"] == -2.0 and d["gops"][0]["psnr_yuv611_drop"] == -2.5
    assert d["max_drop_db"] == -2.0 and d["met"] is True
    d = drift(_frames("IPIP", [30.0, 29.0, 30.0, 29.0], [30.0, 29.0, 30.0, 29.0]))
    assert d["gops"] == [] and d["max_drop_db"] is None and d["met"] is None
    d = drift(_frames("IPPP", [30.0, 29.0, 28.0, 27.0], [30.0, 29.0, 28.5, 28.5]), limit_db=2.0)
    assert d["max_drop_db"] == 2.0 and d["met"] is True


# ------------------------------------------------------------------------------------------- overlap ----

def _curve(*q):
    return [{"bpp": 0.01 * (i + 1), "psnr_yuv611": v} for i, v in enumerate(q)]


def test_overlap_partial_full_and_none():
    o = overlap(_curve(24.0, 25.5, 27.0, 28.0), _curve(26.0, 30.0, 35.0, 40.0))
    assert o["range"] == [26.0, 28.0] and o["covered_db"] == 2.0 and o["met"] is False
    assert o["ours"] == [24.0, 28.0] and o["anchor"] == [26.0, 40.0] and o["aim_db"] == [26.0, 34.0]
    o = overlap(_curve(25.0, 29.0, 33.0, 35.5), _curve(20.0, 30.0, 40.0, 45.0))
    assert o["range"] == [26.0, 34.0] and o["covered_db"] == 8.0 and o["met"] is True
    o = overlap(_curve(27.5, 29.0, 31.0, 33.5), _curve(20.0, 30.0, 40.0, 45.0))
    assert o["range"] == [27.5, 33.5] and o["covered_db"] == 6.0 and o["met"] is False
    o = overlap(_curve(20.0, 22.0, 23.0, 24.0), _curve(26.0, 30.0, 35.0, 40.0))
    assert o["range"] is None and o["covered_db"] == 0.0 and o["met"] is False
    o = overlap(_curve(26.5, 27.0), _curve(30.0, 31.0), aim=(20.0, 40.0))
    assert o["range"] is None and o["met"] is False
    assert overlap([], _curve(26.0, 30.0))["met"] is False


# ------------------------------------------------------------------------------------------- a real run ----

def _bench_macs():
    spec = importlib.util.spec_from_file_location("codec_bench_for_test", ROOT / "bench" / "codec_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = mod.macs_per_pixel(ckpt.load(CHECKPOINTS, 1)["codec"])
    return m["intra_decoder"], m["p_decoder"]


@needs_checkpoints
def test_multi_clip_run_files_keys_and_macs(tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["eval", "--clip", str(CLIP), "--clip", f"{CLIP}@64x48+16+32", "--frames", "4", "--gop", "4",
               "--quality", "1", "--mode", "int", "--no-ffmpeg", "--quiet", "--checkpoints", str(CHECKPOINTS),
               "--out", str(out)])
    assert rc == 0
    brief = json.loads(capsys.readouterr().out)
    names = [CLIP.stem, f"{CLIP.stem}_64x48+16+32"]
    assert [c["clip"] for c in brief["clips"]] == names
    assert (out / "clips.md").is_file() and not (out / "eval.md").exists()
    summary = json.loads((out / "clips.json").read_text())
    assert [r["clip"] for r in summary["clips"]] == names
    assert summary["frames"] == 4 and summary["gop"] == 4
    for key in ("bpp", "psnr_yuv611", "bd_rate_vs_x264_pct", "bd_overlap", "overlap_26_34_db", "drift_max_db",
                "decoder_macs_per_pixel", "aims_met"):
        assert all(key in r for r in summary["clips"]), key
    i_bench, p_bench = _bench_macs()
    for name in names:
        d = out / name
        for f in ("eval.md", "eval.json", "source.y4m", "rd_psnr_yuv611.png", "rd_psnr_rgb.png", "rd_ms_ssim.png"):
            assert (d / f).is_file(), d / f
        r = json.loads((d / "eval.json").read_text())
        assert list(r["curves"]) == ["ours-int"] and len(r["curves"]["ours-int"]) == 1
        p = r["curves"]["ours-int"][0]
        macs = p["decoder_macs_per_pixel"]
        assert macs["I"] > 0 and macs["P"] > 0 and (macs["I"], macs["P"]) == (i_bench, p_bench)
        assert r["decoder_macs_per_pixel"] == {"q1": macs}
        assert [f["type"] for f in p["per_frame"]] == ["I", "P", "P", "P"]
        g = p["drift"]["gops"]
        assert len(g) == 1 and (g[0]["first_p"], g[0]["last_p"]) == (1, 3)
        assert g[0]["psnr_y_drop"] == pytest.approx(p["per_frame"][1]["psnr_y"] - p["per_frame"][3]["psnr_y"],
                                                    abs=1e-3)
        assert set(r["aims"]) == {"curve", "overlap_x264", "bd_rate_vs_x264", "drift"}
        assert r["aims"]["drift"]["value"] == p["drift"]["max_drop_db"]
        assert r["aims"]["bd_rate_vs_x264"]["met"] is None          # no x264 sweep: not measured
        md = (d / "eval.md").read_text()
        assert "dec MACs/px P" in md and f"| {p_bench:g} |" in md and "Drift of ours-int" in md
        assert "Aims (ours-int)" in md
    row = summary["clips"][1]
    assert row["size"] == "64x48" and row["crop"] == {"width": 64, "height": 48, "x": 16, "y": 32}
    assert summary["all_aims_met"]["bd_rate_vs_x264"] is None
    # the crop's source is the crop of the clip's frames
    y, u, v, _ = read_video(CLIP, 4)
    cy, cu, cv = read_yuv420(out / names[1] / "source.y4m")
    assert np.array_equal(cy, y[:, 32:80, 16:80]) and np.array_equal(cu, u[:, 16:40, 8:40])
    assert np.array_equal(cv, v[:, 16:40, 8:40])


@needs_checkpoints
def test_single_clip_without_crop_keeps_the_old_layout(tmp_path, capsys):
    rc = main(["eval", "--clip", str(CLIP), "--frames", "2", "--gop", "2", "--quality", "1", "--mode", "int",
               "--no-ffmpeg", "--quiet", "--checkpoints", str(CHECKPOINTS), "--out", str(tmp_path)])
    assert rc == 0
    brief = json.loads(capsys.readouterr().out)
    assert brief["eval"] == str(tmp_path / "eval.md")
    assert (tmp_path / "eval.json").is_file() and not (tmp_path / "clips.json").exists()
    r = json.loads((tmp_path / "eval.json").read_text())
    assert "name" not in r and "crop" not in r and r["width"] == 160


def test_evaluate_clips_refuses_a_missing_clip_before_work(tmp_path):
    with pytest.raises(EdgecodecError, match="video not found"):
        evaluate_clips([str(CLIP), str(tmp_path / "nope.y4m")], 2, 2, CHECKPOINTS, [1], tmp_path / "o", ("int",), ())
    assert not (tmp_path / "o").exists()
