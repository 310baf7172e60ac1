"""Metrics (PSNR, YUV 6:1:1, RGB, MS-SSIM), ffmpeg low-delay-P anchors, BD-rate and RD plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import model.video
from edgecodec.codec import anchors as fb
from base.errors import EdgecodecError
from edgecodec.codec.metrics import (frame_metrics, mean_metrics, ms_ssim_luma, ms_ssim_variant, psnr, psnr_rgb,
                               psnr_yuv)
from edgecodec.codec.rd import bd_detail, bd_psnr, bd_rate, rd_plot

from tests.conftest import CLIP_160, CLIP_320  # noqa: E402  (CLIP_160 holds 5 frames)
needs_ffmpeg = pytest.mark.usefixtures("ffmpeg")


def _frames(path, n):
    return model.video.read_yuv420(path, max_frames=n)


# ---- metrics -----------------------------------------------------------------------------------------------

def test_psnr_hand_examples():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0, 0] = 16  # MSE = 256 / 16 = 16
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 16))
    assert psnr(a, a + 1) == pytest.approx(10 * math.log10(255 ** 2))  # MSE 1 -> 48.13 dB
    assert psnr(a, a + 1) == pytest.approx(48.1308, abs=1e-4)
    assert psnr(np.zeros(4), np.full(4, 0.1), peak=1.0) == pytest.approx(20.0)
    assert psnr(a, a) == 100.0  # identical: capped, not inf
    with pytest.raises(EdgecodecError):
        psnr(a, np.zeros((4, 5), np.uint8))


def test_yuv611_weighting():
    y, u, v = np.zeros((8, 8), np.uint8), np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)
    p = psnr_yuv(y, u, v, y + 1, u + 2, v + 4)
    assert p["y"] == pytest.approx(psnr(y, y + 1))
    assert p["u"] == pytest.approx(psnr(u, u + 2))
    assert p["v"] == pytest.approx(psnr(v, v + 4))
    assert p["yuv611"] == pytest.approx((6 * p["y"] + p["u"] + p["v"]) / 8)
    assert p["u"] - p["v"] == pytest.approx(20 * math.log10(2))


def test_identical_and_mean_metrics():
    y, u, v = _frames(CLIP_320, 2)
    per = frame_metrics((y, u, v), (y, u, v))
    assert len(per) == 2
    for f in per:
        assert f["psnr_y"] == f["psnr_u"] == f["psnr_v"] == f["psnr_yuv611"] == f["psnr_rgb"] == 100.0
        assert f["ms_ssim"] == pytest.approx(1.0, abs=1e-9)
        assert f["mse_y"] == 0.0
    m = mean_metrics(per)
    assert m["frames"] == 2 and m["psnr"] == m["psnr_y"] == 100.0 and m["psnr_y_of_mean_mse"] == 100.0

    # mean of per-frame PSNR vs PSNR of the mean MSE (MSE 1 and 4 -> mean 2.5)
    hand = [dict(mse_y=1.0, psnr_y=psnr(np.zeros(1), np.ones(1)), psnr_u=40, psnr_v=40, psnr_yuv611=45,
                 psnr_rgb=44, ms_ssim=0.9, ms_ssim_variant="x"),
            dict(mse_y=4.0, psnr_y=psnr(np.zeros(1), np.full(1, 2.0)), psnr_u=42, psnr_v=42, psnr_yuv611=43,
                 psnr_rgb=42, ms_ssim=0.8, ms_ssim_variant="x")]
    m = mean_metrics(hand)
    assert m["psnr"] == pytest.approx((hand[0]["psnr_y"] + hand[1]["psnr_y"]) / 2)
    assert m["psnr_y_of_mean_mse"] == pytest.approx(10 * math.log10(255 ** 2 / 2.5))
    assert m["ms_ssim"] == pytest.approx(0.85) and m["psnr_u"] == pytest.approx(41)


def test_psnr_rgb_uses_clipped_rgb():
    y, u, v = (p[0] for p in _frames(CLIP_320, 1))
    y2 = np.clip(y.astype(int) + 3, 0, 255).astype(np.uint8)
    ref = np.clip(model.video.yuv420_to_rgb(y, u, v), 0, 255)
    rec = np.clip(model.video.yuv420_to_rgb(y2, u, v), 0, 255)
    assert psnr_rgb(y, u, v, y2, u, v) == pytest.approx(psnr(ref, rec))
    assert 35 < psnr_rgb(y, u, v, y2, u, v) < 45


def test_ms_ssim_real_luma_and_small_variant():
    rng = np.random.default_rng(0)
    for clip, win in ((CLIP_320, 11), (CLIP_160, 5)):
        y = _frames(clip, 1)[0][0]
        noisy = np.clip(y + rng.normal(0, 8, y.shape), 0, 255).astype(np.uint8)
        same, variant = ms_ssim_luma(y, y)
        assert same == pytest.approx(1.0, abs=1e-9)
        assert f"win {win}" in variant and "5 scales" in variant
        assert variant.startswith("standard" if win == 11 else "reduced window")
        val, _ = ms_ssim_luma(y, noisy)
        assert 0.5 < val < 0.999
    assert ms_ssim_variant(144, 176)[0] == 9
    with pytest.raises(EdgecodecError):
        ms_ssim_variant(32, 64)


# ---- ffmpeg anchors ----------------------------------------------------------------------------------------

_QP = {"x264": (24, 34), "x265": (24, 34), "av1": (36, 48)}  # (higher quality, moderate)


@needs_ffmpeg
@pytest.mark.parametrize("codec", fb.CODECS)
def test_run_codec_low_delay(codec, tmp_path):
    frames, gop = 5, 4  # the 160x96 clip holds 5 frames: I P P P I
    hi, mid = (fb.run_codec(codec, CLIP_160, tmp_path / "a", q, gop, frames) for q in _QP[codec])
    for r in (hi, mid):
        assert r["pict_types"] == "IPPPI"
        assert r["frames"] == frames and r["bits"] > 0 and r["bytes"] == r["file_bytes"]
        assert r["bytes"] == Path(r["stream"]).stat().st_size
        assert sum(f["bits"] for f in r["per_frame"]) == r["bits"]
        assert all(f["bits"] > 0 for f in r["per_frame"])
        assert r["bpp"] == pytest.approx(r["bits"] / (160 * 96 * frames))
        assert r["psnr_y"] > 25 and r["psnr_yuv611"] > 25 and 0.8 < r["ms_ssim"] < 1
        assert "win 5" in r["ms_ssim_variant"]
        assert Path(r["result_json"]).is_file()
        assert r["encoder_version"] and "not found" not in r["encoder_version"]
        assert "-bf" not in r["commands"]["encode"] and f"{r['qp']}" in r["commands"]["encode"]
    assert hi["bits"] > mid["bits"] and hi["psnr_y"] > mid["psnr_y"] and hi["psnr_yuv611"] > mid["psnr_yuv611"]
    again = fb.run_codec(codec, CLIP_160, tmp_path / "b", _QP[codec][1], gop, frames)
    assert Path(again["stream"]).read_bytes() == Path(mid["stream"]).read_bytes()  # deterministic


@needs_ffmpeg
def test_run_codec_bad_input(tmp_path):
    with pytest.raises(EdgecodecError, match="only 5 frames"):
        fb.run_codec("x264", CLIP_160, tmp_path, 30, 4, 6)
    with pytest.raises(EdgecodecError, match="unknown codec"):
        fb.run_codec("vp9", CLIP_160, tmp_path, 30, 4, 2)
    with pytest.raises(EdgecodecError, match="crf"):
        fb.run_codec("x264", CLIP_160, tmp_path, 70, 4, 2)
    with pytest.raises(EdgecodecError) as e:
        fb._run(["ffmpeg", "-hide_banner", "-i", str(tmp_path / "missing.y4m"), "-f", "null", "-"], "probe test")
    assert "ffmpeg -hide_banner -i" in str(e.value) and "missing.y4m" in str(e.value.args[0].splitlines()[-1])


def test_check_low_delay():
    fb.check_low_delay(list("IPPPIP"), 4, 6)
    for bad in ("IPBPIP", "IPPPPP", "IPIPIP", "IPPPI"):
        with pytest.raises(EdgecodecError):
            fb.check_low_delay(list(bad), 4, 6)


def test_missing_ffmpeg(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    fb._tools.cache_clear()
    try:
        with pytest.raises(EdgecodecError, match="apt-get install ffmpeg"):
            fb._tools()
    finally:
        fb._tools.cache_clear()


def test_default_qps():
    assert set(fb.DEFAULT_QPS) == set(fb.CODECS)
    for codec, qps in fb.DEFAULT_QPS.items():
        assert len(qps) >= 4 and list(qps) == sorted(qps)


# ---- BD and plots ------------------------------------------------------------------------------------------

def _curve(scale=1.0, shift=0.0):
    return [dict(bpp=b * scale, psnr_yuv611=q + shift) for b, q in ((0.05, 30.0), (0.1, 33.0), (0.2, 36.5),
                                                                    (0.4, 39.0), (0.8, 41.0))]


def test_bd_rate_and_psnr():
    anchor = _curve()
    assert bd_rate(anchor, _curve()) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(anchor, _curve()) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(anchor, _curve(scale=0.5)) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(anchor, _curve(scale=2.0)) == pytest.approx(100.0, abs=1e-6)
    assert bd_psnr(anchor, _curve(shift=0.5)) == pytest.approx(0.5, abs=1e-9)
    assert bd_rate(anchor, list(reversed(_curve(scale=0.5)))) == pytest.approx(-50.0, abs=1e-6)  # order-free
    d = bd_detail(anchor, _curve(scale=0.5))
    assert d["overlap"] == pytest.approx(1.0) and d["interval"] == [30.0, 41.0]

    value, reason = bd_rate(anchor, _curve(shift=20.0), return_reason=True)
    assert value is None and "do not overlap" in reason
    assert bd_psnr(anchor, _curve(scale=100.0)) is None

    with pytest.raises(EdgecodecError, match="at least 4"):
        bd_rate(anchor[:3], anchor[:3])
    with pytest.raises(EdgecodecError, match="increase"):
        bd_rate(anchor, [dict(p, psnr_yuv611=30.0) for p in anchor])
    with pytest.raises(EdgecodecError, match="psnr_rgb"):
        bd_rate(anchor, anchor, metric="psnr_rgb")


def test_rd_plot_png(tmp_path):
    curves = {"x264": _curve(), "codec": _curve(scale=0.7)}
    p1 = rd_plot(curves, tmp_path / "rd.png", "psnr_yuv611", "test")
    p2 = rd_plot(curves, tmp_path / "rd2.png", "psnr_yuv611", "test")
    data = p1.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert data == p2.read_bytes()  # deterministic
    assert not (tmp_path / "rd.png.tmp").exists()
    with pytest.raises(EdgecodecError):
        rd_plot({"a": _curve()}, tmp_path / "x.png", "ms_ssim", "")
