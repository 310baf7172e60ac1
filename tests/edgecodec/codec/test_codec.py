"""The ASE-GRU video codec: model shapes, integer motion compensation and layers, encode/decode round trips in
both modes and entropy coders, cross-process bit-exactness, corruption of the integer model, bad input,
training resume, and the RTL of the decoder's ASE-GRU layer on the codes of a real decode."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgecodec.codec import checkpoint as ckpt
from edgecodec import config
from edgecodec.codec.bitstream import BitstreamError, parse_stream
from edgecodec.cli import main
from edgecodec.codec.recipe import train
from edgecodec.codec.coder import Coder, decode
from base.errors import EdgecodecError
from model.codec.network import CodecShape, VideoCodec, warp_packed
from model.video import read_yuv420
from quant import fixed_point as fp
from quant.codec import int_codec as ic
from quant.codec.intnet import convert, requant_t

from tests.conftest import CLIP_160 as CLIP
from tests.conftest import ROOT
TINY = {"codec": {"features": 8, "latent": 8, "intra_features": 10, "intra_latent": 12, "intra_analysis": 14,
                  "hyper": 8, "context": 8,
                  "lambdas": [512, 256, 128, 64],
                  "gop": 4},
        "codec_train": {"data": [str(CLIP)], "crop": 64, "seq_len": 3, "batch": 2, "intra_steps": 4,
                        "inter_steps": 4, "finetune_intra_steps": 2, "finetune_steps": 2}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Four tiny trained qualities (a few steps each: the numbers are not the point, the machinery is)."""
    cfg = config.from_dict(TINY)
    out = tmp_path_factory.mktemp("ck")
    train(cfg, out, progress=False)
    return cfg, out


@pytest.fixture(scope="module")
def clip():
    return read_yuv420(CLIP)


def test_seed_hidden_size_512_runs():
    codec = VideoCodec(CodecShape(channels=512, reduction=16, features=8, latent=8, hyper=8, context=8))
    x = torch.rand(1, 6, 32, 32)
    with torch.no_grad():
        ref = codec.intra(x)["recon"]
        out = codec.inter(x, ref, codec.inter.init_state(x), torch.zeros(1, 2, 4, 4, dtype=torch.int64))
    assert out["recon"].shape == x.shape and out["state"][0][0].shape == (1, 512, 8, 8)


def test_intra_widths_are_their_own(tiny, clip):
    """codec.intra_features / intra_latent / intra_analysis widen the I-frame codec only (intra_analysis: g_a alone);
    the stream's payload check counts the latent."""
    cfg, out = tiny
    ck = ckpt.load(out, 1)
    assert ck["codec"].intra.g_a[-1].out_channels == 12 and ck["codec"].inter.to_latent.out_channels == 8
    assert ck["codec"].intra.g_a[0].out_channels == 14 and ck["codec"].intra.g_s[0].out_channels == 4 * 10
    assert ck["codec"].inter.feat[0].out_channels == 8
    coder = Coder(ck, mode="int")
    assert coder.symbols_per_frame(0, 64, 64) - coder.symbols_per_frame(1, 64, 64) == (12 - 8) * 16 - 2 - 2 * 16


def test_integer_warp_matches_float_warp_and_is_exact_for_whole_pixels():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 256, (64, 96), generator=g)
    u, v = (torch.randint(0, 256, (32, 48), generator=g) for _ in range(2))
    m = torch.randint(-40, 41, (2, 4, 6), generator=g)
    ref = ic.pack_planes(y, u, v)
    wi = ic.pack_planes(*ic.warp_int(y, u, v, m)).double()
    wf = warp_packed(ref.double() / 256, m[None].double()) * 256
    assert float((wf - wi).abs().max()) <= 0.5 + 1e-9          # one rounding, nothing else
    assert torch.equal(ic.pack_planes(*ic.warp_int(y, u, v, torch.zeros_like(m))), ref)
    shift = torch.zeros_like(m)
    shift[0] = 8                                             # +2 luma px = +1 chroma px everywhere
    yw, uw, _ = ic.warp_int(y, u, v, shift)
    assert torch.equal(yw[:, :-2], y[:, 2:]) and torch.equal(uw[:, :-1], u[:, 1:])
    one = torch.zeros_like(m)
    one[:, 1, 2] = torch.tensor([5, -7])                     # one block moves: only its 16x16 luma / 8x8 chroma
    yw, uw, vw = ic.warp_int(y, u, v, one)
    changed = (yw != y).nonzero()
    assert changed[:, 0].min() >= 16 and changed[:, 0].max() < 32 and changed[:, 1].min() >= 32 \
        and changed[:, 1].max() < 48
    changed = (uw != u).nonzero()
    assert changed[:, 0].min() >= 8 and changed[:, 0].max() < 16 and changed[:, 1].min() >= 16 \
        and changed[:, 1].max() < 24


def test_requant_t_is_the_contract_requant():
    acc = np.random.default_rng(1).integers(-2 ** 40, 2 ** 40, 5000)
    for shift in (-2, 0, 1, 5, 13):
        got = requant_t(torch.from_numpy(acc), shift, 12).numpy()
        assert np.array_equal(got, fp.requant(acc, shift, *fp.srange(12)))


def test_integer_sequential_tracks_float():
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, padding=1),
                              torch.nn.PixelShuffle(2), torch.nn.Hardtanh(-1, 1))
    codes = torch.randint(-64, 65, (2, 4, 8, 8))
    x = codes.float() / 64
    net = convert(seq, [x], 6, 8, 12, 8)
    out = net.run(codes).double() * 2.0 ** -net.f_out
    with torch.no_grad():
        ref = seq(x).double()
    assert float((out - ref).abs().max()) < 0.02 * float(ref.abs().max())


@pytest.mark.parametrize("mode, entropy", [("int", "ans"), ("int", "rice"), ("float", "ans")])
def test_round_trip(tiny, clip, mode, entropy):
    cfg, out = tiny
    y, u, v = clip
    r = Coder(ckpt.load(out, 2), mode, entropy).encode(y, u, v, gop=4)
    header, rec = decode(r.data, out)
    assert (header.width, header.height, header.frame_count, header.mode) == (160, 96, 5, mode)
    assert all(np.array_equal(a, b) for a, b in zip(rec, r.recon))
    assert rec[0].shape == y.shape and r.frame_types == [0, 1, 1, 1, 0]
    assert sum(r.frame_bits) < 8 * len(r.data)               # plus the file header and CRC


def test_odd_frame_size_is_padded_and_cropped(tiny, clip):
    _, out = tiny
    y, u, v = (p[:3, :69, :91] for p in (clip[0], *[c[:, :35, :46] for c in clip[1:]]))
    r = Coder(ckpt.load(out, 1)).encode(np.ascontiguousarray(y), np.ascontiguousarray(u), np.ascontiguousarray(v), 4)
    _, rec = decode(r.data, out)
    assert rec[0].shape == (3, 69, 91) and rec[1].shape == (3, 35, 46)


_CHILD = """
import sys, numpy as np
from edgecodec.codec import checkpoint as ckpt
from edgecodec.codec.coder import Coder, decode
from model.video import read_yuv420
mode, ck, clip, out = sys.argv[1:5]
if mode == "encode":
    y, u, v = read_yuv420(clip)
    r = Coder(ckpt.load(ck, 3), "int").encode(y, u, v, 4)
    open(out + ".bin", "wb").write(r.data)
    np.savez(out + ".enc.npz", *r.recon)
else:
    _, rec = decode(open(out + ".bin", "rb").read(), ck)
    np.savez(out + ".dec.npz", *rec)
"""


def test_encode_in_one_process_decode_in_another(tiny, tmp_path):
    _, out = tiny
    stem = str(tmp_path / "s")
    for step, threads in (("encode", "2"), ("decode", "1")):   # other thread count: other summation orders
        env = {"OMP_NUM_THREADS": threads, "PATH": "/usr/bin:/bin"}
        subprocess.run([sys.executable, "-c", _CHILD, step, str(out), str(CLIP), stem], check=True, cwd=ROOT,
                       env=env, timeout=300)
    enc, dec = np.load(stem + ".enc.npz"), np.load(stem + ".dec.npz")
    assert all(np.array_equal(enc[k], dec[k]) for k in enc.files)


def _encoded(tiny, clip):
    ck = ckpt.load(tiny[1], 2)
    r = Coder(ck).encode(*clip, 4)
    return (ck, r, *parse_stream(r.data))


@pytest.mark.parametrize("net", ["p_synth", "p_context"])
def test_a_corrupted_integer_weight_breaks_bit_exactness(tiny, clip, net):
    """The exactness test can fail: one weight code of the decoder's synthesis (or of the context features of
    the warped frame that the synthesis reads) changed -> other frames."""
    ck, r, header, frames = _encoded(tiny, clip)
    bad = Coder(ck)
    layer = bad.int.nets[net].layers[0]
    layer["w"] = np.array(layer["w"], dtype=np.int64)
    layer["w"][:, :, 1, 1] += 64                 # the centre tap of every filter: no zero padding can hide it
    bad.int.nets[net]._w.clear()
    rec = bad.decode_frames(header, frames)
    assert not np.array_equal(rec[0], r.recon[0])


def test_a_corrupted_gru_lut_breaks_bit_exactness(tiny, clip, monkeypatch):
    ck, r, header, frames = _encoded(tiny, clip)
    lut = fp.tanh_lut
    monkeypatch.setattr(fp, "tanh_lut", lambda *a: np.where(np.arange(len(lut(*a))) < 128, lut(*a) // 2, lut(*a)))
    rec = Coder(ck).decode_frames(header, frames)
    assert not np.array_equal(rec[0], r.recon[0])


def test_stream_names_its_checkpoint(tiny, clip, tmp_path):
    _, out = tiny
    y, u, v = clip
    r = Coder(ckpt.load(out, 1)).encode(y, u, v, 4)
    other = tmp_path / "other"
    other.mkdir()
    (other / "codec_q1.pt").write_bytes((out / "codec_q2.pt").read_bytes())
    with pytest.raises(EdgecodecError, match="decode with the checkpoint that encoded it"):
        decode(r.data, other)
    with pytest.raises(EdgecodecError, match="no checkpoint for quality 1"):
        decode(r.data, tmp_path)


def test_fuzzed_bitstreams_fail_cleanly(tiny, clip):
    """Thousands of mutated streams: a clear BitstreamError every time (the CRC or a check behind it)."""
    _, out = tiny
    y, u, v = (p[:5, :64, :64] for p in (clip[0], *[c[:, :32, :32] for c in clip[1:]]))
    data = Coder(ckpt.load(out, 1)).encode(*(np.ascontiguousarray(p) for p in (y, u, v)), 4).data
    rng = np.random.default_rng(0)
    for i in range(2000):
        b = bytearray(data)
        kind = i % 4
        if kind == 0:
            pos = int(rng.integers(len(b)))
            b[pos] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            b = b[:int(rng.integers(len(b)))]
        elif kind == 2:
            pos = int(rng.integers(len(b)))
            b[pos:pos] = bytes(rng.integers(0, 256, int(rng.integers(1, 8)), dtype=np.uint8))
        else:
            pos = int(rng.integers(len(b)))
            del b[pos:pos + int(rng.integers(1, 8))]
        with pytest.raises(BitstreamError):
            decode(bytes(b), out)


@pytest.mark.timeout(300)
def test_mutated_payloads_behind_a_valid_crc_never_crash(tiny, clip):
    """Payload bytes changed and the CRC recomputed: the entropy decoder sees garbage -> BitstreamError or
    frames, never another exception and never a hang."""
    import zlib
    _, out = tiny
    y, u, v = (p[:5, :64, :64] for p in (clip[0], *[c[:, :32, :32] for c in clip[1:]]))
    data = Coder(ckpt.load(out, 1), "int", "rice").encode(*(np.ascontiguousarray(p) for p in (y, u, v)), 4).data
    rng = np.random.default_rng(1)
    errors = 0
    for _ in range(50):          # the breadth is bench/decoder_fuzz.py's (10^5 streams)
        b = bytearray(data[:-4])
        pos = int(rng.integers(40, len(b)))          # behind the fixed header
        b[pos] ^= 1 << int(rng.integers(8))
        b += zlib.crc32(bytes(b)).to_bytes(4, "little")
        try:
            decode(bytes(b), out)
        except BitstreamError:
            errors += 1
    assert errors > 0


def test_cli_encode_decode_and_bad_input(tiny, tmp_path, capsys):
    cfg, out = tiny
    bin_, rec = tmp_path / "o.bin", tmp_path / "r.y4m"
    assert main(["encode", str(CLIP), "-o", str(bin_), "--quality", "2", "--checkpoints", str(out), "--gop", "4"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bytes"] == bin_.stat().st_size
    assert main(["decode", str(bin_), "-o", str(rec), "--checkpoints", str(out)]) == 0
    capsys.readouterr()
    assert read_yuv420(rec)[0].shape == (5, 96, 160)
    cases = [(["encode", str(CLIP), "-o", str(bin_), "--quality", "9", "--checkpoints", str(out)],
              "no checkpoint for quality 9"),
             (["decode", str(CLIP), "-o", str(rec), "--checkpoints", str(out)], "not an edgecodec bitstream"),
             (["decode", str(tmp_path / "none.bin"), "-o", str(rec)], "bitstream not found")]
    ten = tmp_path / "ten.y4m"
    ten.write_bytes(b"YUV4MPEG2 W8 H4 F25:1 C420p10\nFRAME\n" + bytes(96))
    cases.append((["encode", str(ten), "-o", str(bin_), "--checkpoints", str(out)], "10-bit"))
    trunc = tmp_path / "t.bin"
    trunc.write_bytes(bin_.read_bytes()[:-9])
    cases.append((["decode", str(trunc), "-o", str(rec), "--checkpoints", str(out)], "truncated|CRC"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert __import__("re").search(message, capsys.readouterr().err), (argv, message)


def test_training_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    """Interrupted after a resume point, restarted: the same checkpoint as an uninterrupted run."""
    import model.codec.data as ds
    t = dict(TINY)
    t["codec"] = {**TINY["codec"], "lambdas": [256]}
    t["codec_train"] = {**TINY["codec_train"], "intra_steps": 3, "inter_steps": 5}
    cfg = config.from_dict(t)
    import model.codec.train as mct
    monkeypatch.setattr(mct, "run_stage", _every(mct.run_stage, 2))
    import edgecodec.codec.recipe as ct
    monkeypatch.setattr(ct, "run_stage", mct.run_stage)
    whole = train(cfg, tmp_path / "a", progress=False)[0]
    calls = {"n": 0}
    real = ds.CropSampler.batch

    def flaky(self, n):
        calls["n"] += 1
        if calls["n"] == 7:                       # inside the P stage, after its resume point at step 2
            raise KeyboardInterrupt
        return real(self, n)

    monkeypatch.setattr(ds.CropSampler, "batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "b", progress=False)
    assert (tmp_path / "b" / "codec_q1.resume.pt").is_file()
    monkeypatch.setattr(ds.CropSampler, "batch", real)
    again = train(cfg, tmp_path / "b", progress=False)[0]
    assert ckpt.load(whole)["hash"] == ckpt.load(again)["hash"]
    assert not (tmp_path / "b" / "codec_q1.resume.pt").exists()


def test_a_new_p_schedule_starts_from_the_kept_intra_stage(tmp_path, monkeypatch):
    """The end of the intra stage is kept (codec_q<N>.intra.pt): a run with a longer P stage trains no intra step
    again and ends with the same bytes as the same recipe from scratch."""
    import edgecodec.codec.recipe as ct
    t = dict(TINY)
    t["codec"] = {**TINY["codec"], "lambdas": [256]}

    def cfg(inter):
        return config.from_dict({**t, "codec_train": {**TINY["codec_train"], "intra_steps": 3, "inter_steps": inter}})

    train(cfg(2), tmp_path / "a", progress=False)
    assert (tmp_path / "a" / "codec_q1.intra.pt").is_file()
    stages = []
    real = ct.run_stage

    def counting(codec, stage, *a, **kw):
        stages.append(stage)
        return real(codec, stage, *a, **kw)

    monkeypatch.setattr(ct, "run_stage", counting)
    longer = train(cfg(4), tmp_path / "a", progress=False)[0]
    assert stages == ["inter"]
    scratch = train(cfg(4), tmp_path / "c", progress=False)[0]
    assert stages == ["inter", "intra", "inter"]
    assert ckpt.load(longer)["hash"] == ckpt.load(scratch)["hash"]
    assert ct.intra_key(cfg(2), 1) == ct.intra_key(cfg(4), 1) != ct.intra_key(
        config.from_dict({**t, "codec_train": {**TINY["codec_train"], "intra_steps": 4, "inter_steps": 2}}), 1)


def test_an_intra_restart_continues_from_the_kept_first_cycle(tmp_path, monkeypatch):
    """codec_train.intra_restart_steps: a recipe with a second intra cycle finds the first cycle kept by the same
    recipe without it (codec_q<N>.intra.pt), trains only the restart and the P stage, and ends with the same bytes
    as the whole recipe from scratch; the restart runs the intra loss on a fresh Adam at the full learning rate."""
    import edgecodec.codec.recipe as ct
    t = dict(TINY)
    t["codec"] = {**TINY["codec"], "lambdas": [256]}

    def cfg(restart):
        return config.from_dict({**t, "codec_train": {**TINY["codec_train"], "intra_steps": 3, "inter_steps": 2,
                                                      "intra_restart_steps": restart}})

    first = ckpt.load(train(cfg(0), tmp_path / "a", progress=False)[0])["hash"]
    stages = []
    real = ct.run_stage

    def counting(codec, stage, sampler, steps, start, batch, lr, w, opt_state, progress, desc, *a, **kw):
        stages.append((stage, desc.split()[-1], steps, opt_state is None))
        return real(codec, stage, sampler, steps, start, batch, lr, w, opt_state, progress, desc, *a, **kw)

    monkeypatch.setattr(ct, "run_stage", counting)
    again = train(cfg(2), tmp_path / "a", progress=False)[0]
    assert stages == [("intra", "intra_restart", 2, True), ("inter", "inter", 2, True)]
    stages.clear()
    scratch = train(cfg(2), tmp_path / "c", progress=False)[0]
    assert [s[:3] for s in stages] == [("intra", "intra", 3), ("intra", "intra_restart", 2), ("inter", "inter", 2)]
    assert ckpt.load(again)["hash"] == ckpt.load(scratch)["hash"] != first
    assert "intra_restart" in ckpt.load(again)["train_log"]["stages"]
    assert ct.recipe_key(cfg(0), 1) == ct.recipe_key(config.from_dict({**t, "codec_train": {
        **TINY["codec_train"], "intra_steps": 3, "inter_steps": 2}}), 1) != ct.recipe_key(cfg(2), 1)
    with pytest.raises(EdgecodecError, match="steps must be >= 0"):
        cfg(-1)


def test_a_p_restart_continues_from_the_first_cycles_checkpoint(tmp_path, monkeypatch):
    """codec_train.inter_restart_steps: a recipe with a second P cycle starts from the checkpoint of the same recipe
    without it (in the same folder), trains only the restart (fresh Adam, no rate warm-up), and ends with the same
    bytes as the whole recipe from scratch, which keeps its first cycle (codec_q<N>.inter.pt) for a longer restart."""
    import edgecodec.codec.recipe as ct
    t = dict(TINY)
    t["codec"] = {**TINY["codec"], "lambdas": [256]}

    def cfg(restart):
        return config.from_dict({**t, "codec_train": {**TINY["codec_train"], "intra_steps": 3, "inter_steps": 2,
                                                      "rate_warmup": 2, "inter_restart_steps": restart}})

    first = ckpt.load(train(cfg(0), tmp_path / "a", progress=False)[0])["hash"]
    stages = []
    real = ct.run_stage

    def counting(codec, stage, sampler, steps, start, batch, lr, w, opt_state, progress, desc, *a, **kw):
        stages.append((stage, desc.split()[-1], steps, opt_state is None, w.rate_warmup))
        return real(codec, stage, sampler, steps, start, batch, lr, w, opt_state, progress, desc, *a, **kw)

    monkeypatch.setattr(ct, "run_stage", counting)
    again = train(cfg(3), tmp_path / "a", progress=False)[0]
    assert stages == [("inter", "inter_restart", 3, True, 0)]
    stages.clear()
    scratch = train(cfg(3), tmp_path / "c", progress=False)[0]
    assert [s[:3] for s in stages] == [("intra", "intra", 3), ("inter", "inter", 2), ("inter", "inter_restart", 3)]
    assert stages[1][4] == 2
    h3 = ckpt.load(scratch)["hash"]
    assert ckpt.load(again)["hash"] == h3 != first
    assert "inter_restart" in ckpt.load(again)["train_log"]["stages"]
    stages.clear()
    longer = train(cfg(4), tmp_path / "c", progress=False)[0]      # from the kept first cycle (.inter.pt)
    assert stages == [("inter", "inter_restart", 4, True, 0)]
    assert ckpt.load(longer)["hash"] not in (h3, first)
    assert ct.intra_key(cfg(0), 1) == ct.intra_key(cfg(3), 1)
    assert ct.recipe_key(cfg(0), 1) != ct.recipe_key(cfg(3), 1)
    with pytest.raises(EdgecodecError, match="steps must be >= 0"):
        cfg(-1)


def test_intra_from_starts_a_wider_p_path_from_a_finished_intra_codec(tmp_path, monkeypatch):
    """codec_train.intra_from: the top quality's intra stage is replaced by the I-frame codec of a given checkpoint
    (or kept intra stage): only the P stage trains, the I-frame weights are the file's, the same bytes again on a
    second run, and the key follows the file's content, not its path. A file that does not fit is refused."""
    import shutil
    import edgecodec.codec.recipe as ct
    t = dict(TINY)
    t["codec"] = {**TINY["codec"], "lambdas": [256]}
    base = config.from_dict({**t, "codec_train": {**TINY["codec_train"], "intra_steps": 3, "inter_steps": 2}})
    src = train(base, tmp_path / "a", progress=False)[0]
    shutil.copy(src, tmp_path / "copy.pt")

    def wide(path):
        return config.from_dict({**t, "model": {"channels": 24},
                                 "codec_train": {**TINY["codec_train"], "intra_steps": 3, "inter_steps": 2,
                                                 "intra_from": str(path)}})

    stages = []
    real = ct.run_stage
    monkeypatch.setattr(ct, "run_stage", lambda codec, stage, *a, **kw: stages.append(stage) or
                        real(codec, stage, *a, **kw))
    out = train(wide(src), tmp_path / "b", progress=False)[0]
    assert stages == ["inter"]
    ck, teacher = ckpt.load(out), ckpt.load(src)
    assert ck["shape"]["channels"] == 24
    for k, v in teacher["codec"].intra.state_dict().items():
        assert torch.equal(ck["codec"].intra.state_dict()[k], v), k
    again = train(wide(tmp_path / "copy.pt"), tmp_path / "c", progress=False)[0]
    assert ckpt.load(again)["hash"] == ck["hash"]
    assert ct.recipe_key(wide(src), 1) == ct.recipe_key(wide(tmp_path / "copy.pt"), 1)
    (tmp_path / "other.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EdgecodecError, match="intra_from"):
        train(wide(tmp_path / "other.pt"), tmp_path / "d", progress=False)
    with pytest.raises(EdgecodecError, match="intra_from"):
        train(wide(tmp_path / "missing.pt"), tmp_path / "d", progress=False)
    narrow = config.from_dict({**t, "codec": {**t["codec"], "intra_features": 6},
                               "codec_train": {**TINY["codec_train"], "intra_from": str(src)}})
    with pytest.raises(EdgecodecError, match="does not fit"):
        train(narrow, tmp_path / "e", progress=False)
    stages.clear()                      # with a restart: one more intra cycle from the file's I-frame codec
    more = config.from_dict({**t, "codec_train": {**TINY["codec_train"], "intra_steps": 3, "inter_steps": 2,
                                                  "intra_from": str(src), "intra_restart_steps": 2}})
    third = ckpt.load(train(more, tmp_path / "f", progress=False)[0])
    assert stages == ["intra", "inter"] and (tmp_path / "f" / "codec_q1.intra.pt").is_file()
    assert any(not torch.equal(third["codec"].intra.state_dict()[k], v)
               for k, v in teacher["codec"].intra.state_dict().items())
    assert ckpt.load(train(more, tmp_path / "g", progress=False)[0])["hash"] == third["hash"]


def test_other_integer_widths_export_again_without_training(tiny, tmp_path, monkeypatch):
    """codec.int_act_bits / int_weight_bits / int_lut_* shape only the export: a recipe that differs from the one that
    trained the checkpoints in them alone exports them again, no training step, the float weights as they were."""
    import shutil
    import edgecodec.codec.recipe as ct
    cfg, out = tiny
    shutil.copytree(out, tmp_path / "ck")
    stages = []
    monkeypatch.setattr(ct, "run_stage", lambda codec, stage, *a, **kw: stages.append(stage) or [])
    ten = config.from_dict({**TINY, "codec": {**TINY["codec"], "int_weight_bits": 10}})
    again = train(ten, tmp_path / "ck", progress=False)
    assert stages == [] and len(again) == 4
    for q, path in enumerate(again, 1):
        old, new = ckpt.load(out, q), ckpt.load(path)
        assert int(new["int"]["weight_bits"]) == 10 and new["recipe"] == ct.recipe_key(ten, q) != old["recipe"]
        assert all(torch.equal(old["float"][k], new["float"][k]) for k in old["float"])
    other = config.from_dict({**TINY, "codec": {**TINY["codec"], "int_weight_bits": 10, "ssim_weight": 50}})
    assert all(ct._exported_at_other_widths(p, other, q) is None for q, p in enumerate(again, 1))   # trains
    six = config.from_dict({**TINY, "codec": {**TINY["codec"], "int_weight_bits": 10, "int_lut_frac": 6}})
    lut = train(six, tmp_path / "ck", progress=False)                  # the cells' LUT grid: exported again too
    assert stages == [] and ct.intra_key(six, 4) == ct.intra_key(ten, 4)
    for q, path in enumerate(lut, 1):
        old, new = ckpt.load(out, q), ckpt.load(path)
        cells = new["int"]["dec_cells"]
        assert {(c["lut_bits"], c["lut_frac"]) for c in cells} == {(8, 6)} and new["recipe"] == ct.recipe_key(six, q)
        assert all(torch.equal(old["float"][k], new["float"][k]) for k in old["float"])


@pytest.mark.slow       # three small trainings
def test_a_run_from_scratch_at_other_widths_gives_the_exported_again_bytes(tmp_path):
    """Training never reads the integer widths: exporting again equals training at the new widths."""
    t = {**TINY, "codec": {**TINY["codec"], "lambdas": [256, 128]},
         "codec_train": {**TINY["codec_train"], "intra_steps": 2, "inter_steps": 2, "finetune_intra_steps": 1,
                         "finetune_steps": 1}}

    def cfg(weight_bits):
        return config.from_dict({**t, "codec": {**t["codec"], "int_weight_bits": weight_bits}})

    train(cfg(8), tmp_path / "a", progress=False)
    again = train(cfg(10), tmp_path / "a", progress=False)
    scratch = train(cfg(10), tmp_path / "b", progress=False)
    assert [ckpt.load(p)["hash"] for p in again] == [ckpt.load(p)["hash"] for p in scratch]


def _every(fn, k):
    def wrapped(*a, **kw):
        kw["every"] = k
        return fn(*a, **kw)
    return wrapped


def test_missing_quality_is_a_clear_error(tmp_path):
    cfg = config.from_dict(TINY)
    with pytest.raises(EdgecodecError, match="quality \\[7\\] does not exist"):
        train(cfg, tmp_path, [7], progress=False)


@pytest.mark.slow      # the engine's P-frame tests check both decoder layers on real streams (also slow)
def test_decoder_gru_layer_rtl_matches_a_real_decode(tiny, clip, tmp_path):
    """The decoder's first ASE-GRU layer, generated as RTL from the checkpoint's integer parameters and
    simulated by cocotb (Verilator) on the codes of a real decode, gives the decoder's own codes."""
    from edgecodec.flow.codec_check import codec_rtl_check
    _, out = tiny
    res = codec_rtl_check(ckpt.load(out, 2), clip, 4, tmp_path, "verilator")
    assert res["steps"] == 3 and res["mismatches"] == 0
    assert res["codes_compared"] == 3 * 16 * res["feature_map"][1] * res["feature_map"][2]


def test_recipe_key_follows_what_each_quality_depends_on():
    """Top-down recipe: the highest quality depends on its own steps and lambda, each lower one on its fine-tuning
    steps, its lambda and the quality above it."""
    from edgecodec.codec.recipe import recipe_key
    base = config.from_dict(TINY)

    def keys(**train):
        c = config.from_dict({**TINY, "codec_train": {**TINY["codec_train"], **train}})
        return [recipe_key(c, q) for q in range(1, 5)]

    k0 = [recipe_key(base, q) for q in range(1, 5)]
    assert len(set(k0)) == 4
    for field in ("finetune_steps", "finetune_intra_steps"):
        fine = keys(**{field: 3})
        assert fine[3] == k0[3] and all(a != b for a, b in zip(fine[:3], k0[:3]))
    assert all(a != b for a, b in zip(keys(intra_steps=5), k0))
    lam = config.from_dict({**TINY, "codec": {**TINY["codec"], "lambdas": [512, 256, 100, 64]}})
    changed = [recipe_key(lam, q) for q in range(1, 5)]
    assert changed[3] == k0[3] and changed[2] != k0[2] and changed[0] != k0[0]
    gop = config.from_dict({**TINY, "codec": {**TINY["codec"], "gop": 16}})
    assert [recipe_key(gop, q) for q in range(1, 5)] == k0
    scaled = keys(scales=[1, 2])
    assert keys(scales=[1]) == k0 and all(a != b for a, b in zip(scaled, k0))
    for bad in ([], [0], [2, 2], [9]):
        with pytest.raises(EdgecodecError, match="codec_train.scales"):
            config.from_dict({**TINY, "codec_train": {**TINY["codec_train"], "scales": bad}})
    from edgecodec.codec.recipe import intra_key
    longer = config.from_dict({**TINY, "codec_train": {**TINY["codec_train"], "p_seq_len": 5}})
    assert keys(p_seq_len=0) == k0 and all(a != b for a, b in zip(keys(p_seq_len=5), k0))
    assert intra_key(longer, 4) == intra_key(base, 4)        # P stages only: the intra stage is kept
    for bad in (1, -1):
        with pytest.raises(EdgecodecError, match="codec_train.p_seq_len"):
            config.from_dict({**TINY, "codec_train": {**TINY["codec_train"], "p_seq_len": bad}})
    grad = config.from_dict({**TINY, "codec_train": {**TINY["codec_train"], "ref_grad": True}})
    assert keys(ref_grad=False) == k0 and all(a != b for a, b in zip(keys(ref_grad=True), k0))
    assert intra_key(grad, 4) == intra_key(base, 4)
    for bad in (1, "yes"):
        with pytest.raises(EdgecodecError, match="codec_train.ref_grad must be true or false"):
            config.from_dict({**TINY, "codec_train": {**TINY["codec_train"], "ref_grad": bad}})


def test_p_stages_train_on_p_seq_len_frames(tmp_path, monkeypatch):
    """codec_train.p_seq_len: the P stages draw windows of that many frames (an I-frame and p_seq_len - 1
    P-frames), the intra stage those of seq_len."""
    import edgecodec.codec.recipe as ct
    seen = []
    real = ct.run_stage

    def recording(codec, stage, sampler, *a, **kw):
        seen.append((stage, sampler.batch(1).shape[1]))
        return real(codec, stage, sampler, *a, **kw)

    monkeypatch.setattr(ct, "run_stage", recording)
    t = {**TINY, "codec": {**TINY["codec"], "lambdas": [256, 128]},
         "codec_train": {**TINY["codec_train"], "intra_steps": 1, "inter_steps": 1, "finetune_intra_steps": 1,
                         "finetune_steps": 1, "p_seq_len": 5}}
    train(config.from_dict(t), tmp_path, progress=False)
    assert seen == [("intra", 3), ("inter", 5)] * 2


def test_the_shipped_checkpoints_are_what_the_default_recipe_trains():
    """`edgecodec train` on the shipped config finds the shipped checkpoints up to date (a config field added since
    they were trained, at its neutral value, does not make it train them again)."""
    from edgecodec.codec.recipe import intra_key, recipe_key
    cfg = config.load(ROOT / "configs/default.yaml")
    for q in range(1, len(cfg.codec.lambdas) + 1):
        assert ckpt.load(ROOT / cfg.codec.checkpoints, q)["recipe"] == recipe_key(cfg, q), q
        # the kept intra stages start a new P schedule (the integer widths, export only, leave their key alone)
        snap = torch.load(ROOT / cfg.codec.checkpoints / f"codec_q{q}.intra.pt", map_location="cpu",
                          weights_only=True)
        assert snap["intra_key"] == intra_key(cfg, q), q
    eight = config.from_dict({**cfg.to_dict(), "codec": {**cfg.to_dict()["codec"], "int_weight_bits": 8}})
    assert intra_key(eight, 1) == intra_key(cfg, 1) and recipe_key(eight, 1) != recipe_key(cfg, 1)
    changed = config.from_dict({**cfg.to_dict(), "codec": {**cfg.to_dict()["codec"], "intra_analysis": 128}})
    assert recipe_key(changed, 4) != recipe_key(cfg, 4)
