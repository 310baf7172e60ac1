"""model.video (Y4M read/write, PyAV decoding, BT.601 full-range colour), model.yuv (4:2:0 packing, padding) and
model.codec.data (sequence discovery, PNG/Vimeo-90K loading, seeded CropSampler)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from base.errors import EdgecodecError
from model.codec.data import CropSampler, list_sequences, load_sequence
from model.video import (read_header, read_luma, read_video, read_yuv420, rgb_to_yuv420, write_y4m,
                         yuv420_to_rgb)
from model.yuv import crop, pack420, pad_to_multiple, to_codes, unpack420

from base.paths import VIDEO_DIR as VIDEO
CLIP = VIDEO / "CiscoVT2people_160x96_6fps.y4m"
MP4 = VIDEO / "carphone_176x144_qp10.mp4"


def _need(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"real clip not available: {path}")
    return path


def _planes(t: int, h: int, w: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ch, cw = (h + 1) // 2, (w + 1) // 2
    return (rng.integers(0, 256, (t, h, w), dtype=np.uint8), rng.integers(0, 256, (t, ch, cw), dtype=np.uint8),
            rng.integers(0, 256, (t, ch, cw), dtype=np.uint8))


def _png_folder(folder: Path, frames: int, h: int, w: int, names: str = "im{}.png", seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(1, frames + 1):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img[0, 0] = 10 * i                                        # frame order is visible in the top-left pixel
        Image.fromarray(img).save(folder / names.format(i))
    return folder


# ---- Y4M -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("h, w", [(4, 6), (5, 7), (1, 1), (3, 8), (6, 9)])
def test_y4m_round_trip_any_size(tmp_path, h, w):
    y, u, v = _planes(3, h, w)
    path = write_y4m(tmp_path / "sub" / "clip.y4m", y, u, v, fps="25:1")
    assert not list(path.parent.glob("*.tmp"))
    hdr = read_header(path)
    assert (hdr.width, hdr.height, hdr.fps, hdr.colorspace) == (w, h, "25:1", "420jpeg")
    assert path.stat().st_size == hdr.header_bytes + 3 * (6 + hdr.frame_bytes)
    for got, want in zip(read_yuv420(path), (y, u, v)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(read_luma(path), y)
    for got, want in zip(read_yuv420(path, max_frames=1, start=1), (y[1:2], u[1:2], v[1:2])):
        np.testing.assert_array_equal(got, want)
    *planes, fps = read_video(path, max_frames=2)
    assert fps == "25:1" and [p.shape[0] for p in planes] == [2, 2, 2]
    np.testing.assert_array_equal(planes[2], v[:2])


def test_write_y4m_one_frame_and_errors(tmp_path):
    y, u, v = _planes(1, 4, 4)
    path = write_y4m(tmp_path / "one.y4m", y[0], u[0], v[0], fps=12)
    assert read_header(path).fps == "12:1" and read_yuv420(path)[0].shape == (1, 4, 4)
    for args, message in [((y.astype(np.float32), u, v), "uint8"), ((y, u[:, :1], v), "chroma must be"),
                          ((y[:0], u[:0], v[:0]), "T, H, W > 0")]:
        with pytest.raises(EdgecodecError, match=message):
            write_y4m(tmp_path / "bad.y4m", *args)
    with pytest.raises(EdgecodecError, match="frame rate"):
        write_y4m(tmp_path / "bad.y4m", y, u, v, fps="fast")
    assert not (tmp_path / "bad.y4m").exists()


@pytest.mark.parametrize("cs, what", [("420p10 XYSCSS=420P10", "10-bit 4:2:0"), ("444", "8-bit 4:4:4"),
                                      ("422", "8-bit 4:2:2"), ("mono", "8-bit monochrome")])
def test_refuses_other_formats_with_conversion_command(tmp_path, cs, what):
    path = tmp_path / "hi.y4m"
    path.write_bytes(f"YUV4MPEG2 W8 H4 F25:1 C{cs}\n".encode() + b"FRAME\n" + bytes(96))
    for reader in (read_yuv420, read_video):
        with pytest.raises(EdgecodecError, match=what) as exc:
            reader(path)
        assert str(path) in str(exc.value) and f"ffmpeg -i {path} -pix_fmt yuv420p" in str(exc.value)


def test_truncated_and_short_files(tmp_path):
    y, u, v = _planes(2, 5, 7)
    path = write_y4m(tmp_path / "odd.y4m", y, u, v)
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])
    with pytest.raises(EdgecodecError, match="truncated Y4M, frame 1 has 49 of 59 bytes") as exc:
        read_yuv420(path)
    assert "odd.y4m" in str(exc.value)
    assert read_yuv420(path, max_frames=1)[1].shape == (1, 3, 4)
    hdr = read_header(path)
    path.write_bytes(raw[:hdr.header_bytes + 6 + 20])             # cut inside frame 0, skipped by start=1
    with pytest.raises(EdgecodecError, match="truncated Y4M, frame 0"):
        read_yuv420(path, start=1)
    path.write_bytes(raw)
    with pytest.raises(EdgecodecError, match="start=2 but the clip holds only 2 frames"):
        read_yuv420(path, start=2)
    with pytest.raises(EdgecodecError, match="max_frames"):
        read_yuv420(path, max_frames=0)


def test_real_y4m_clip_matches_read_luma():
    y, u, v, fps = read_video(_need(CLIP), max_frames=3)
    assert y.shape == (3, 96, 160) and u.shape == v.shape == (3, 48, 80) and fps == "6:1"
    np.testing.assert_array_equal(y, read_luma(CLIP, max_frames=3))
    assert u.std() > 1 and not np.array_equal(u, v)


# ---- other containers (PyAV) -----------------------------------------------------------------------------------

def test_mp4_decoding_matches_pyav_stacked_planes():
    import av
    y, u, v, fps = read_video(_need(MP4))
    assert y.shape[1:] == (144, 176) and u.shape[1:] == v.shape[1:] == (72, 88) and y.shape[0] > 0
    assert y.dtype == np.uint8 and fps == "30000:1001" and y.std() > 10
    with av.open(str(MP4)) as c:
        stacked = next(c.decode(video=0)).reformat(format="yuv420p").to_ndarray()   # (H*3/2, W)
    np.testing.assert_array_equal(y[0], stacked[:144])
    np.testing.assert_array_equal(u[0], stacked[144:180].reshape(72, 88))
    np.testing.assert_array_equal(v[0], stacked[180:].reshape(72, 88))
    assert read_video(MP4, max_frames=2)[0].shape == (2, 144, 176)


def test_odd_size_lossless_mkv(tmp_path):
    import av
    y, u, v = _planes(3, 5, 7, seed=3)
    path = tmp_path / "odd.mkv"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 7, 5, "yuv420p"
        for t in range(3):
            frame = av.VideoFrame(7, 5, "yuv420p")
            for plane, data in zip(frame.planes, (y[t], u[t], v[t])):
                buf = np.zeros((plane.height, plane.line_size), np.uint8)
                buf[:, :data.shape[1]] = data
                plane.update(buf.tobytes())
            c.mux(stream.encode(frame))
        c.mux(stream.encode())
    got = read_video(path)
    for a, b in zip(got[:3], (y, u, v)):
        np.testing.assert_array_equal(a, b)
    assert got[3] == "10:1"


@pytest.mark.parametrize("name, content", [("noise.mp4", np.random.default_rng(1).bytes(4000)),
                                           ("text.mkv", b"hello, not a video\n"), ("empty.avi", b"")])
def test_undecodable_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(EdgecodecError) as exc:
        read_video(path)
    assert str(path) in str(exc.value) and ("cannot decode" in str(exc.value) or "no video" in str(exc.value))
    with pytest.raises(EdgecodecError, match="video not found"):
        read_video(tmp_path / "missing.mp4")


# ---- colour ----------------------------------------------------------------------------------------------------

def test_rgb_yuv_full_range_bt601():
    px = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], np.uint8)            # 1x3: odd width
    y, u, v = rgb_to_yuv420(px)
    assert y.tolist() == [[255, 0, 76]] and u.shape == v.shape == (1, 2)
    assert u[0, 0] == v[0, 0] == 128                                                 # mean of white and black
    assert v[0, 1] == 255 and u[0, 1] == round(128 - 0.299 * 255 / 1.772)          # red alone at the odd edge
    gray = yuv420_to_rgb(np.full((3, 3), 100, np.uint8), np.full((2, 2), 128, np.uint8),
                         np.full((2, 2), 128, np.uint8))
    assert gray.dtype == np.float64 and gray.shape == (3, 3, 3) and np.all(gray == 100)
    np.testing.assert_allclose(yuv420_to_rgb(y, u, v)[0, 0], 255 - 0.0, atol=1e-9)
    with pytest.raises(EdgecodecError, match="uint8"):
        rgb_to_yuv420(px.astype(np.float32))
    with pytest.raises(EdgecodecError, match="chroma must be"):
        yuv420_to_rgb(y, u[:, :1], v)


@pytest.mark.parametrize("h, w", [(32, 48), (31, 47)])
def test_rgb_round_trip_smooth_image(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([40 + 4 * xx, 200 - 3 * yy, 100 + 2 * xx + yy], -1).clip(0, 255).astype(np.uint8)
    back = yuv420_to_rgb(*rgb_to_yuv420(rgb))
    assert back.shape == (h, w, 3)
    assert np.abs(back - rgb).max() <= 6 and np.abs(back - rgb).mean() < 2.5
    blocks = np.random.default_rng(h).integers(0, 256, (h // 2 + 1, w // 2 + 1, 3), dtype=np.uint8)
    flat = blocks.repeat(2, 0).repeat(2, 1)[:h, :w]               # no chroma detail: only 8-bit rounding is lost
    assert np.abs(yuv420_to_rgb(*rgb_to_yuv420(flat)) - flat).max() < 1.5


# ---- packing ---------------------------------------------------------------------------------------------------

def test_pack_unpack_exact_inverse():
    y, u, v = _planes(6, 8, 12)
    y, u, v = y.reshape(2, 3, 8, 12), u.reshape(2, 3, 4, 6), v.reshape(2, 3, 4, 6)
    t = pack420(y, u, v)
    assert t.shape == (2, 3, 6, 4, 6) and t.dtype == torch.float32 and t.max() <= 255 / 256
    np.testing.assert_array_equal(t[..., 0, :, :].numpy() * 256, y[..., 0::2, 0::2])
    np.testing.assert_array_equal(t[..., 1, :, :].numpy() * 256, y[..., 0::2, 1::2])
    np.testing.assert_array_equal(t[..., 2, :, :].numpy() * 256, y[..., 1::2, 0::2])
    np.testing.assert_array_equal(t[..., 5, :, :].numpy() * 256, v)
    for got, want in zip(unpack420(t), (y, u, v)):
        assert torch.equal(got * 256, torch.from_numpy(want).float())
        assert torch.equal(to_codes(got), torch.from_numpy(want))
    assert torch.equal(pack420(*(torch.from_numpy(a) for a in (y, u, v))), t)


def test_to_codes_rounds_half_even_and_clamps():
    t = torch.tensor([0.5, 1.5, 2.5, -3.0, 254.6, 300.0]) / 256
    assert to_codes(t).tolist() == [0, 2, 2, 0, 255, 255] and to_codes(t).dtype == torch.uint8
    with pytest.raises(EdgecodecError, match="NaN"):
        to_codes(torch.tensor([float("nan")]))


def test_pack_errors():
    y, u, v = _planes(1, 5, 8)
    with pytest.raises(EdgecodecError, match="even"):
        pack420(y, u, v)
    y, u, v = _planes(1, 4, 8)
    with pytest.raises(EdgecodecError, match="chroma must be"):
        pack420(y, u[..., :2], v)
    with pytest.raises(EdgecodecError, match="uint8"):
        pack420(y.astype(np.float32), u, v)
    with pytest.raises(EdgecodecError, match="6, h, w"):
        unpack420(torch.zeros(2, 5, 3, 3))


@pytest.mark.parametrize("h, w, multiple", [(5, 7, 4), (6, 9, 8), (8, 8, 8), (1, 3, 2)])
@pytest.mark.parametrize("as_torch", [False, True])
def test_pad_crop_inverse(h, w, multiple, as_torch):
    y, u, v = _planes(2, h, w, seed=h * w)
    if as_torch:
        y, u, v = (torch.from_numpy(a) for a in (y, u, v))
    py, pu, pv, size = pad_to_multiple(y, u, v, multiple)
    assert size == (h, w) and type(py) is type(y)
    assert py.shape[-2] % multiple == 0 and py.shape[-1] % multiple == 0 and py.shape[-2] >= h
    assert tuple(pu.shape) == (2, py.shape[-2] // 2, py.shape[-1] // 2) == tuple(pv.shape)
    assert (py[:, -1, :w] == y[:, -1, :]).all() and (py[:, :h, -1] == y[:, :, -1]).all()   # edge replication
    assert (pu[:, -1, :u.shape[-1]] == u[:, -1, :]).all()
    for got, want in zip(crop(py, pu, pv, *size), (y, u, v)):
        assert (got == want).all() and tuple(got.shape) == tuple(want.shape)
    pack420(py, pu, pv)                                          # padded planes are packable
    with pytest.raises(EdgecodecError, match="even integer"):
        pad_to_multiple(y, u, v, 3)


# ---- datasets --------------------------------------------------------------------------------------------------

def test_list_sequences_folders_files_and_errors(tmp_path):
    found = list_sequences(VIDEO)   # recursive: the clips and the original streams in streams/
    names = [p.name for p in VIDEO.iterdir() if p.is_file()] + [p.name for p in (VIDEO / "streams").iterdir()]
    assert sorted(p.name for p in found) == sorted(names) and len(found) == 9
    _png_folder(tmp_path / "b" / "shot10", 2, 8, 8)
    _png_folder(tmp_path / "b" / "shot9", 2, 8, 8)
    (tmp_path / "b" / "notes.txt").write_text("x")
    assert [p.name for p in list_sequences([tmp_path / "b", CLIP])] == ["shot9", "shot10", CLIP.name]
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgecodecError, match=r"no sequences found.*\*\.y4m.*\*\.png.*sep_trainlist") as exc:
        list_sequences(tmp_path / "empty")
    assert "empty" in str(exc.value)
    with pytest.raises(EdgecodecError, match="not found"):
        list_sequences([tmp_path / "nope"])
    with pytest.raises(EdgecodecError, match="split"):
        list_sequences(VIDEO, split="val")


def test_png_sequence_natural_order_and_odd_size(tmp_path):
    folder = _png_folder(tmp_path / "clip", 11, 17, 21, names="frame_{}.png")
    y, u, v = load_sequence(folder, max_frames=10)
    assert y.shape == (10, 16, 20) and u.shape == v.shape == (10, 8, 10) and y.dtype == np.uint8
    assert np.all(np.diff(y[:, 0, 0].astype(int)) > 0)                   # frame_2 before frame_10
    ref = rgb_to_yuv420(np.asarray(Image.open(folder / "frame_3.png"))[:16, :20])
    for got, want in zip((y[2], u[2], v[2]), ref):
        np.testing.assert_array_equal(got, want)
    (folder / "frame_12.png").write_bytes(b"not a png")
    with pytest.raises(EdgecodecError, match="frame_12.png.*cannot read PNG"):
        load_sequence(folder)
    (folder / "frame_12.png").unlink()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "frame_12.png")
    with pytest.raises(EdgecodecError, match="frame_12.png: frame size 8x8 differs"):
        load_sequence(folder)


def _vimeo(root: Path) -> Path:
    for i, name in enumerate(["00001/0001", "00001/0002", "00002/0001", "00003/0001"]):
        _png_folder(root / "sequences" / name, 7, 16, 24, seed=i)
    (root / "sep_trainlist.txt").write_text("00001/0001\n00001/0002\n\n")
    (root / "sep_testlist.txt").write_text("00002/0001\n")
    return root


def test_vimeo_layout_through_sampler(tmp_path):
    root = _vimeo(tmp_path / "vimeo_septuplet")
    train = list_sequences(root)
    assert [p.relative_to(root / "sequences").as_posix() for p in train] == ["00001/0001", "00001/0002"]
    assert [p.name for p in list_sequences(root, split="test")] == ["0001"]
    batch = CropSampler(train, seq_len=3, crop=8, seed=0).batch(4)
    assert batch.shape == (4, 3, 6, 4, 4) and batch.dtype == torch.float32
    assert 0 <= batch.min() and batch.max() <= 255 / 256
    (root / "sep_testlist.txt").write_text("00009/0001\n")
    with pytest.raises(EdgecodecError, match="sep_testlist.txt: 1 of 1 listed septuplets are missing.*00009/0001"):
        list_sequences(root, split="test")


def test_sampler_is_seeded_and_lazy_matches_eager(tmp_path):
    seqs = [_png_folder(tmp_path / f"s{i}", 5, 12, 16, seed=i) for i in range(3)] + [CLIP]
    a = CropSampler(seqs, seq_len=4, crop=8, seed=7, max_frames_per_seq=6).batch(6)
    b = CropSampler(seqs, seq_len=4, crop=8, seed=7, max_frames_per_seq=6).batch(6)
    c = CropSampler(seqs, seq_len=4, crop=8, seed=8, max_frames_per_seq=6).batch(6)
    lazy = CropSampler(seqs, seq_len=4, crop=8, seed=7, max_frames_per_seq=6, lazy=True, cache_size=1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(lazy.batch(6), a)


def test_sampler_crops_keep_chroma_aligned():
    rng = np.random.default_rng(5)
    u = rng.integers(0, 256, (6, 10, 13), dtype=np.uint8)
    y = u.repeat(2, 1).repeat(2, 2)                                  # each 2x2 luma block equals its chroma
    x = (2 * np.arange(13, dtype=np.uint8)).repeat(2)[None, None].repeat(20, 1).repeat(6, 0)  # blockwise ramp
    sampler = CropSampler([(y, u, 255 - u), (x, x[:, ::2, ::2], x[:, ::2, ::2])], seq_len=3, crop=8, seed=1)
    flips = set()
    for window in sampler.batch(32):
        wy, wu, wv = (to_codes(p) for p in unpack420(window))
        assert torch.equal(wy[:, 0::2, 0::2], wu) and torch.equal(wy[:, 1::2, 1::2], wu)
        assert torch.equal(wv, 255 - wu) or torch.equal(wv, wu)
        if torch.equal(wv, wu):                                      # the ramp: flipped windows run backwards
            flips.add(bool(wy[0, 0, 0] > wy[0, 0, -1]))
    assert flips == {True, False}


def test_sampler_skips_or_refuses_unusable_sequences(tmp_path):
    short = _png_folder(tmp_path / "short", 2, 16, 16)
    small = _png_folder(tmp_path / "small", 5, 6, 16)
    good = _png_folder(tmp_path / "good", 5, 16, 16)
    with pytest.raises(EdgecodecError, match=r"no sequence has >= 3 frames of >= 8x8.*short \(2 frames.*small"):
        CropSampler([short, small], seq_len=3, crop=8, seed=0)
    with pytest.warns(UserWarning, match="skipping 2 sequence.*short.*small"):
        sampler = CropSampler([short, good, small], seq_len=3, crop=8, seed=0)
    assert sampler.usable == [1] and sampler.batch(2).shape == (2, 3, 6, 4, 4)
    lazy = CropSampler([good, short], seq_len=3, crop=8, seed=0, lazy=True)
    with pytest.warns(UserWarning, match="short"):
        lazy.batch(8)                                                # the short one is found when drawn
    assert lazy.usable == [0]
    for kw, message in [({"crop": 7}, "crop=7 must be even"), ({"seq_len": 0}, "seq_len=0"),
                        ({"crop": 0}, "crop=0")]:
        with pytest.raises(EdgecodecError, match=message):
            CropSampler([good], **{"seq_len": 3, "crop": 8, "seed": 0, **kw})
    with pytest.raises(EdgecodecError, match="n=0"):
        sampler.batch(0)
    with pytest.raises(EdgecodecError, match="array sequence 0"):
        CropSampler([(np.zeros((3, 8, 8), np.uint8),) * 3], seq_len=1, crop=2, seed=0)


def test_scaled_windows_are_box_averaged_crops_and_default_draws_are_unchanged():
    rng = np.random.default_rng(3)
    big = tuple(rng.integers(0, 256, (4, h, w), dtype=np.uint8) for h, w in ((32, 48), (16, 24), (16, 24)))
    small = tuple(rng.integers(0, 256, (4, h, w), dtype=np.uint8) for h, w in ((16, 16), (8, 8), (8, 8)))
    plain = CropSampler([big, small], seq_len=2, crop=8, seed=4).batch(12)
    assert torch.equal(CropSampler([big, small], seq_len=2, crop=8, seed=4, scales=(1,)).batch(12), plain)
    scaled = CropSampler([big, small], seq_len=2, crop=8, seed=4, scales=(4, 1, 2))
    assert scaled.scales == (1, 2, 4)
    windows = scaled.batch(64)
    assert windows.shape == (64, 2, 6, 4, 4)
    assert torch.equal(CropSampler([big, small], seq_len=2, crop=8, seed=4, scales=(1, 2, 4)).batch(64), windows)
    # every window is a crop of one sequence at some scale: find it among all even positions, both flips
    y, u, v = (torch.from_numpy(p.astype(np.int64)) for p in big)
    found = set()
    for s in (2, 4):
        for t in range(3):
            for r in range(0, 32 - 8 * s + 1, 2):
                for c in range(0, 48 - 8 * s + 1, 2):
                    cy = y[t:t + 2, r:r + 8 * s, c:c + 8 * s].reshape(2, 8, s, 8, s).sum((2, 4))
                    ref = ((cy + s * s // 2) // (s * s)).to(torch.uint8)
                    for k, w in enumerate(windows):
                        wy = to_codes(unpack420(w)[0])
                        if torch.equal(wy, ref) or torch.equal(wy, ref.flip(-1)):
                            found.add((k, s))
    assert {s for _, s in found} == {2, 4}                          # both scales drawn and exact box means
    assert 4 <= len(found) < 64                                      # and scale 1 too
    for bad in [(), (0,), (2, 2), (1.5,)]:
        with pytest.raises(EdgecodecError, match="scales"):
            CropSampler([big], seq_len=2, crop=8, seed=0, scales=bad)
    with pytest.raises(EdgecodecError, match="no sequence has"):    # too small at the smallest scale
        CropSampler([small], seq_len=2, crop=8, seed=0, scales=(4,))
