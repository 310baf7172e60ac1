"""edgecodec.config validation (EdgecodecError naming the field) and model.video Y4M reading of real and broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecodec import config as cfgmod
from edgecodec.config import Config, from_dict, load
from base.errors import EdgecodecError
from model.video import read_header, read_luma

from tests.conftest import CLIP_160 as CLIP
from tests.conftest import ROOT


def _need_clip() -> Path:
    if not CLIP.is_file():
        pytest.fail(f"real clip not available: {CLIP}")
    return CLIP


# ---- config ------------------------------------------------------------------------------------------------------

def test_defaults_and_default_yaml_are_valid():
    assert from_dict({}) == Config().validate()
    cfg = load(ROOT / "configs" / "default.yaml")
    assert cfg.model.channels % cfg.hw.pe == 0 and cfg.quant.act_bits == 8
    # to_dict -> from_dict is the identity (tuples come back from YAML lists)
    d = cfg.to_dict()
    d["train"]["clips"] = list(d["train"]["clips"])
    assert from_dict(d) == cfg


def test_valid_overrides_are_applied():
    cfg = from_dict({"model": {"channels": 8, "se_reduction": 2}, "hw": {"pe": 8, "simd": 1, "dw_parallel": 2},
                     "train": {"lr": 1, "clips": "one.y4m"}, "quant": None})
    assert cfg.model.channels == 8 and cfg.hw.pe == 8
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)          # an int is a valid number
    assert cfg.train.clips == ("one.y4m",)


@pytest.mark.parametrize("data, names", [
    ({"modle": {}}, ["unknown section", "modle"]),
    ({"model": {"chanels": 8}}, ["unknown key", "chanels", "'model'"]),
    ({"hw": {"pe": 4, "lanes": 2}}, ["unknown key", "lanes", "'hw'"]),
    ({"model": {"channels": "16"}}, ["model.channels", "integer"]),
    ({"model": {"channels": 16.0}}, ["model.channels", "integer"]),
    ({"model": {"layers": True}}, ["model.layers", "integer"]),
    ({"quant": {"act_bits": [8]}}, ["quant.act_bits", "integer"]),
    ({"train": {"lr": "fast"}}, ["train.lr", "number"]),
    ({"train": {"lr": False}}, ["train.lr", "number"]),
    ({"model": {"channels": 16}, "hw": {"pe": 3}}, ["hw.pe=3", "model.channels=16"]),
    ({"model": {"channels": 12, "se_reduction": 4}, "hw": {"simd": 8}}, ["hw.simd=8", "model.channels=12"]),
    ({"hw": {"dw_parallel": 5}}, ["hw.dw_parallel=5"]),
    ({"hw": {"pe": 0}}, ["hw.pe=0"]),
    ({"model": {"channels": 4, "se_reduction": 8}, "hw": {"pe": 4, "simd": 4, "dw_parallel": 4}},
     ["model.se_reduction=8", "C/r < 1"]),
    ({"model": {"channels": 16, "se_reduction": 3}}, ["model.se_reduction=3", "divide"]),
    ({"model": {"se_reduction": 0}}, ["model.se_reduction"]),
    ({"model": {"gate_kernel": 2}}, ["model.gate_kernel"]),
    ({"model": {"downsample": 3}}, ["model.downsample"]),
    ({"quant": {"act_bits": 1}}, ["quant.act_bits"]),
    ({"codec": {"intra_latent": -1}}, ["codec.intra_latent"]),
    ({"codec": {"intra_features": -2}}, ["codec.intra_features"]),
    ({"codec": {"intra_analysis": -1}}, ["codec.intra_analysis"]),
    ({"quant": {"lut_frac": 8}}, ["quant.lut_frac"]),
    ({"codec": {"int_lut_frac": 8}}, ["codec.int_lut_frac"]),
    ({"codec": {"int_lut_bits": 13}}, ["codec.int_lut_bits"]),
    ({"flow": {"simulator": "vcs"}}, ["flow.simulator"]),
    ({"flow": {"layer": 2}}, ["flow.layer"]),
    ({"model": [1, 2]}, ["section 'model'"]),
    ([1, 2], ["top level"]),
])
def test_from_dict_rejects(data, names):
    with pytest.raises(EdgecodecError) as exc:
        from_dict(data)
    msg = str(exc.value)
    assert msg.startswith("invalid config:"), msg
    for name in names:
        assert name in msg, f"{name!r} not in {msg!r}"


@pytest.mark.parametrize("data, field", [({"flow": {"build_dir": 5}}, "flow.build_dir"),
                                         ({"flow": {"clip": ["a.y4m", "b.y4m"]}}, "flow.clip"),
                                         ({"train": {"clips": [1, 2]}}, "train.clips")])
def test_from_dict_rejects_wrong_type_of_string_fields(data, field):
    with pytest.raises(EdgecodecError, match=field):
        from_dict(data)


@pytest.mark.parametrize("data, field", [({"hw": []}, "section 'hw'"), ({"model": 0}, "section 'model'"),
                                         ({"quant": ""}, "section 'quant'")])
def test_from_dict_rejects_falsy_non_mapping_section(data, field):
    with pytest.raises(EdgecodecError, match=field):
        from_dict(data)


def test_load_errors(tmp_path):
    with pytest.raises(EdgecodecError, match="config file not found") as exc:
        load(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(exc.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  channels: [16\n  layers: 2\n")
    with pytest.raises(EdgecodecError, match="not valid YAML") as exc:
        load(bad)
    assert "bad.yaml" in str(exc.value)
    tabbed = tmp_path / "tab.yaml"
    tabbed.write_text("model:\n\tchannels: 8\n")
    with pytest.raises(EdgecodecError, match="not valid YAML"):
        load(tabbed)
    # valid YAML, wrong content: the validation message, not a traceback
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("hw:\n  pe: 5\n")
    with pytest.raises(EdgecodecError, match="hw.pe=5"):
        load(wrong)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load(empty) == Config()
    assert load(str(empty)) == Config()                      # str paths too
    assert cfgmod.EdgecodecError is EdgecodecError


# ---- video -------------------------------------------------------------------------------------------------------

def test_read_real_clip():
    clip = _need_clip()
    hdr = read_header(clip)
    assert (hdr.width, hdr.height, hdr.colorspace, hdr.fps) == (160, 96, "420jpeg", "6:1")
    y = read_luma(clip)
    assert y.dtype == np.uint8 and y.ndim == 3 and y.shape[1:] == (96, 160) and y.shape[0] >= 2
    frame = 96 * 160 * 3 // 2
    assert y.shape[0] == (clip.stat().st_size - hdr.header_bytes) // (len(b"FRAME\n") + frame)
    assert y.std() > 10, "real footage, not a constant plane"
    assert not np.array_equal(y[0], y[-1])
    two = read_luma(str(clip), max_frames=2)
    assert two.shape == (2, 96, 160)
    np.testing.assert_array_equal(two, y[:2])
    # the luma plane is the first W*H bytes after each FRAME marker
    raw = clip.read_bytes()
    start = hdr.header_bytes + len(b"FRAME\n")
    np.testing.assert_array_equal(y[0].ravel(), np.frombuffer(raw[start:start + 96 * 160], np.uint8))


def _y4m(path: Path, header: str, frames: int = 2, w: int = 8, h: int = 4, frame_size: int | None = None) -> Path:
    size = w * h * 3 // 2 if frame_size is None else frame_size
    body = b"".join(b"FRAME\n" + bytes([i % 256]) * size for i in range(frames))
    path.write_bytes(header.encode() + b"\n" + body)
    return path


def test_synthetic_y4m_round_trip(tmp_path):
    y = read_luma(_y4m(tmp_path / "ok.y4m", "YUV4MPEG2 W8 H4 F25:1 Ip A1:1 C420mpeg2 XYSCSS=420MPEG2", frames=3))
    assert y.shape == (3, 4, 8) and y[2].min() == y[2].max() == 2
    assert read_luma(_y4m(tmp_path / "noc.y4m", "YUV4MPEG2 W8 H4 F25:1")).shape == (2, 4, 8)   # C defaults to 420


@pytest.mark.parametrize("content, message", [
    (b"RIFF\x00\x00\x00\x00AVI LIST", "not a Y4M file"),
    (b"", "not a Y4M file"),
    (b"YUV4MPEG2 W8 H4 C420jpeg", "not a Y4M file"),                       # header line never ends
    (b"\x00\x00\x00\x20ftypisom" + bytes(100), "not a Y4M file"),
])
def test_non_y4m_files(tmp_path, content, message):
    path = tmp_path / "clip.y4m"
    path.write_bytes(content)
    with pytest.raises(EdgecodecError, match=message) as exc:
        read_header(path)
    assert str(path) in str(exc.value)
    with pytest.raises(EdgecodecError, match=message):
        read_luma(path)


def test_real_mp4_is_not_y4m():
    mp4 = CLIP.parent / "carphone_176x144_qp10.mp4"
    if not mp4.is_file():
        pytest.fail(f"not available: {mp4}")
    with pytest.raises(EdgecodecError, match="not a Y4M file"):
        read_luma(mp4)


def test_missing_video(tmp_path):
    with pytest.raises(EdgecodecError, match="video not found"):
        read_luma(tmp_path / "missing.y4m")


def test_truncated_real_clip(tmp_path):
    clip = _need_clip()
    raw = clip.read_bytes()
    hdr = read_header(clip)
    frame = len(b"FRAME\n") + 96 * 160 * 3 // 2
    cut = hdr.header_bytes + frame + frame // 2                # in the middle of the second frame
    path = tmp_path / "cut.y4m"
    path.write_bytes(raw[:cut])
    with pytest.raises(EdgecodecError, match="truncated Y4M, frame 1 has") as exc:
        read_luma(path)
    assert "cut.y4m" in str(exc.value)
    assert read_luma(path, max_frames=1).shape == (1, 96, 160)        # the complete first frame is still readable
    # cut inside the luma plane of the first frame
    path.write_bytes(raw[:hdr.header_bytes + 100])
    with pytest.raises(EdgecodecError, match="truncated Y4M, frame 0"):
        read_luma(path)


@pytest.mark.parametrize("header, message", [
    ("YUV4MPEG2 W8 H4 F25:1 Ip C422", "C422 is not supported"),
    ("YUV4MPEG2 W8 H4 F25:1 Ip C420p10 XYSCSS=420P10", "C420p10 is not supported"),
    ("YUV4MPEG2 W8 H4 F25:1 C420p12", "C420p12 is not supported"),
    ("YUV4MPEG2 W8 H4 F25:1 C420p9", "C420p9 is not supported"),
    ("YUV4MPEG2 W8 H4 F25:1 C444", "C444 is not supported"),
    ("YUV4MPEG2 W8 H4 F25:1 Cmono", "Cmono is not supported"),
    ("YUV4MPEG2 H4 F25:1 C420jpeg", "W/H"),
    ("YUV4MPEG2 Wx H4 F25:1 C420jpeg", "W/H"),
    ("YUV4MPEG2 W0 H4 F25:1 C420jpeg", "0x4"),
])
def test_unsupported_headers(tmp_path, header, message):
    path = _y4m(tmp_path / "clip.y4m", header)
    with pytest.raises(EdgecodecError, match=message) as exc:
        read_header(path)
    assert str(path) in str(exc.value)
    with pytest.raises(EdgecodecError, match=message):
        read_luma(path)


def test_odd_frame_size_is_accepted(tmp_path):
    hdr = read_header(_y4m(tmp_path / "odd.y4m", "YUV4MPEG2 W7 H5 F25:1 C420jpeg"))
    assert (hdr.width, hdr.height) == (7, 5)


def test_unsupported_colour_space_says_how_to_convert(tmp_path):
    with pytest.raises(EdgecodecError, match="8-bit 4:2:0.*yuv420p"):
        read_luma(_y4m(tmp_path / "c.y4m", "YUV4MPEG2 W8 H4 F25:1 C422"))


def test_corrupt_frame_marker_and_empty_clip(tmp_path):
    path = _y4m(tmp_path / "marker.y4m", "YUV4MPEG2 W8 H4 F25:1 C420jpeg", frames=2)
    raw = path.read_bytes().replace(b"FRAME", b"FRAMX")
    raw = raw.replace(b"FRAMX", b"FRAME", 1)                  # second marker broken
    path.write_bytes(raw)
    with pytest.raises(EdgecodecError, match="expected FRAME marker at frame 1"):
        read_luma(path)
    empty = _y4m(tmp_path / "empty.y4m", "YUV4MPEG2 W8 H4 F25:1 C420jpeg", frames=0)
    with pytest.raises(EdgecodecError, match="holds no frames"):
        read_luma(empty)
    # 4:2:2-sized frames under a 4:2:0 header: the size mismatch surfaces as a corrupt/truncated file
    wrong = _y4m(tmp_path / "size.y4m", "YUV4MPEG2 W8 H4 F25:1 C420jpeg", frames=2, frame_size=8 * 4 * 2)
    with pytest.raises(EdgecodecError, match="FRAME marker|truncated"):
        read_luma(wrong)
