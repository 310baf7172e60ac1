"""bench/prune_study.py: BD figures of a pruned set against its anchor (fast), and the whole study on a tiny
four-quality teacher set, one method and budget (slow)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import CLIP_160 as CLIP
from tests.conftest import ROOT


def _study():
    spec = importlib.util.spec_from_file_location("prune_study_for_test", ROOT / "bench" / "prune_study.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _curve(shift_db: float, rate_scale: float = 1.0) -> list[dict]:
    return [{"bpp": b * rate_scale, "psnr_yuv611": p + shift_db, "psnr_y": p + shift_db - 1}
            for b, p in ((0.05, 28.0), (0.1, 30.5), (0.2, 33.0), (0.4, 35.5))]


def test_compare_gives_bd_rate_and_psnr_or_the_reason():
    s = _study()
    same = s.compare(_curve(0), _curve(0))
    assert same["psnr_yuv611"]["bd_rate_pct"] == pytest.approx(0, abs=1e-6)
    assert same["psnr_y"]["bd_psnr_db"] == pytest.approx(0, abs=1e-6)
    worse = s.compare(_curve(0), _curve(-0.5))["psnr_yuv611"]
    assert worse["bd_psnr_db"] == pytest.approx(-0.5, abs=1e-6) and worse["bd_rate_pct"] > 0
    more_bits = s.compare(_curve(0), _curve(0, 1.1))["psnr_yuv611"]
    assert more_bits["bd_rate_pct"] == pytest.approx(10, abs=1e-3)
    short = s.compare(_curve(0), _curve(0)[:3])["psnr_yuv611"]
    assert short["bd_rate_pct"] is None and "at least 4" in short["bd_rate_pct_reason"]
    far = s.compare(_curve(0), _curve(20))["psnr_yuv611"]
    assert far["bd_rate_pct"] is None and "do not overlap" in far["bd_rate_pct_reason"]


@pytest.mark.slow
def test_the_study_on_a_tiny_teacher_set(tmp_path, ffmpeg):
    from edgecodec import config
    from edgecodec.codec.recipe import train
    s = _study()
    cfg = config.from_dict({
        "codec": {"features": 8, "latent": 8, "hyper": 8, "context": 8, "lambdas": [512, 256, 128, 64], "gop": 3},
        "codec_train": {"data": [str(CLIP)], "crop": 64, "seq_len": 2, "batch": 1, "intra_steps": 3,
                        "inter_steps": 3, "finetune_intra_steps": 2, "finetune_steps": 2},
        "prune": {"steps": 4, "save_every": 2, "stage_steps": 1, "tau_lr": 1.0, "multiple": 4, "ramp": 0.0}})
    train(cfg, tmp_path / "teacher", progress=False)
    r = s.study(cfg, tmp_path / "teacher", tmp_path / "study", ["gd"], [0.5], str(CLIP), 5, progress=False)
    [row] = r["rows"]
    assert len(row["points"]) == len(r["teacher"]["points"]) == 4
    assert all(0 < m < 1 for m in row["decoder_macs_removed"]) and row["decode_speedup"] > 0
    for against in ("vs_teacher", "vs_x264"):      # a number, or the reason there is none
        for cell in row[against].values():
            assert cell["bd_rate_pct"] is not None or cell["bd_rate_pct_reason"]
    assert "| gd | 0.5 |" in s.markdown(r)
    # resumed: the pruned checkpoints are reused, not trained again
    again = s.study(cfg, tmp_path / "teacher", tmp_path / "study", ["gd"], [0.5], str(CLIP), 5, progress=False)
    assert again["rows"][0]["points"] == row["points"]


def test_a_study_spread_over_sessions_runs_each_set_once(tmp_path, monkeypatch):
    """The partial result is saved after every set; a later run with the same key reuses the teacher's
    evaluation and the finished sets, a different key (here: more prune steps) prunes again but keeps the teacher's
    evaluation while the teachers, clip and frames are the same."""
    import dataclasses
    from edgecodec import config
    s = _study()
    calls = {"prune": [], "eval": []}
    curve = [{"quality": q, "bpp": b, "psnr_yuv611": p, "psnr_y": p - 1, "decode_fps": 10.0}
             for q, (b, p) in enumerate(((0.05, 28.0), (0.1, 30.5), (0.2, 33.0), (0.4, 35.5)), 1)]

    def fake_prune(cfg, teachers, out, budget, method, progress):
        calls["prune"].append((method, budget))
        return []

    def fake_eval(checkpoints, clip, frames, gop, out, x264):
        calls["eval"].append(out.name)
        return {"curves": {"ours-int": curve, **({"x264": curve} if x264 else {})}}

    monkeypatch.setattr(s, "prune_set", fake_prune)
    monkeypatch.setattr(s, "evaluate_set", fake_eval)
    monkeypatch.setattr(s, "study_key", lambda cfg, *a: f"key-{cfg.prune.steps}")
    cfg = config.from_dict({})
    saved = []

    def stop_after_first_set(r):
        saved.append({**r, "rows": list(r["rows"])})
        if len(r["rows"]) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        s.study(cfg, tmp_path, tmp_path / "a", ["gd", "ste"], [0.5], "clip.y4m", 5, progress=False,
                on_row=stop_after_first_set)
    assert calls["prune"] == [("gd", 0.5)] and not saved[-1]["complete"]
    assert "in progress: 1 of the sets" in s.markdown(saved[-1])
    calls["prune"].clear(), calls["eval"].clear()
    r = s.study(cfg, tmp_path, tmp_path / "b", ["gd", "ste"], [0.5], "clip.y4m", 5, progress=False,
                previous=saved[-1])
    assert calls == {"prune": [("ste", 0.5)], "eval": ["eval_ste_0.5"]} and r["complete"]
    assert [(row["method"], row["budget"]) for row in r["rows"]] == [("gd", 0.5), ("ste", 0.5)]
    calls["prune"].clear(), calls["eval"].clear()
    longer = dataclasses.replace(cfg, prune=dataclasses.replace(cfg.prune, steps=cfg.prune.steps + 1))
    r2 = s.study(longer, tmp_path, tmp_path / "c", ["gd"], [0.5], "clip.y4m", 5, progress=False, previous=r)
    assert calls == {"prune": [("gd", 0.5)], "eval": ["eval_gd_0.5"]}      # the same teachers: their evaluation
    calls["prune"].clear(), calls["eval"].clear()
    monkeypatch.setattr(s, "teacher_key", lambda *a: "other teachers")
    monkeypatch.setattr(s, "study_key", lambda *a: "another key")
    s.study(longer, tmp_path, tmp_path / "d", ["gd"], [0.5], "clip.y4m", 5, progress=False, previous=r2)
    assert calls == {"prune": [("gd", 0.5)], "eval": ["eval_teacher", "eval_gd_0.5"]}


def test_the_sets_are_compared_with_a_dense_narrow_codec(tmp_path, monkeypatch):
    """--narrow: the dense narrow set is evaluated once (reused by a later run of the same checkpoints), and every
    pruned set gets its BD figures against it; the markdown says them."""
    from edgecodec import config
    from edgecodec.codec import checkpoint as ckpt
    s = _study()
    evals = []

    def curve(shift):
        return [{"quality": q, "bpp": b, "psnr_yuv611": p + shift, "psnr_y": p + shift - 1, "decode_fps": 10.0}
                for q, (b, p) in enumerate(((0.05, 28.0), (0.1, 30.5), (0.2, 33.0), (0.4, 35.5)), 1)]

    def fake_eval(checkpoints, clip, frames, gop, out, x264):
        evals.append(out.name)
        shift = {"eval_narrow": -1.0, "eval_gd_0.65": -0.25}.get(out.name, 0.0)
        return {"curves": {"ours-int": curve(shift), **({"x264": curve(-2)} if x264 else {})},
                "decoder_macs_per_pixel": {"q1": {"I": 981.0, "P": 1204.5, "gop_mean": 1176.6}}}

    monkeypatch.setattr(s, "prune_set", lambda *a: [])
    monkeypatch.setattr(s, "evaluate_set", fake_eval)
    monkeypatch.setattr(s, "teacher_key", lambda *a: "teachers")
    monkeypatch.setattr(s, "study_key", lambda *a: "key")
    monkeypatch.setattr(ckpt, "available", lambda folder: [1, 2, 3, 4])
    monkeypatch.setattr(ckpt, "load", lambda folder, q=None: {"hash": f"{folder}-{q}"})
    cfg = config.from_dict({})
    r = s.study(cfg, tmp_path, tmp_path / "a", ["gd"], [0.65], "clip.y4m", 5, progress=False,
                narrow=tmp_path / "narrow")
    assert evals == ["eval_teacher", "eval_narrow", "eval_gd_0.65"]
    assert r["narrow"]["vs_teacher"]["psnr_yuv611"]["bd_psnr_db"] == pytest.approx(-1.0, abs=1e-6)
    assert r["rows"][0]["vs_narrow"]["psnr_yuv611"]["bd_psnr_db"] == pytest.approx(0.75, abs=1e-6)
    md = s.markdown(r)
    assert "dense narrow" in md and "1177 MACs/px" in md and "gd 0.65: BD-rate" in md and "+0.75 dB" in md
    evals.clear()
    again = s.study(cfg, tmp_path, tmp_path / "b", ["gd"], [0.65], "clip.y4m", 5, progress=False, previous=r,
                    narrow=tmp_path / "narrow")
    assert evals == [] and again["rows"][0]["vs_narrow"] == r["rows"][0]["vs_narrow"]
    without = s.study(cfg, tmp_path, tmp_path / "c", ["gd"], [0.65], "clip.y4m", 5, progress=False, previous=r)
    assert "narrow" not in without and "vs_narrow" not in without["rows"][0]
