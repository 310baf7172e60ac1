"""STAE semantic data coding (edgecodec/stae/coding.py) and the (alpha, beta) planner (edgecodec/stae/plan.py):
exact round trips, sizes against eq. (1), robustness to corrupt streams, rate / time parsing, eqs. (2)-(5)."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
import torch

from base.errors import EdgecodecError
from edgecodec.stae.plan import completion_time, format_plan, load_table, parse_rate, parse_time, plan
from model.stae.attention import pixel_count, select_pixels
from edgecodec.stae.coding import MAGIC, decode_semantic, encode_semantic, time_coding, uncoded_bytes

# ---------------------------------------------------------------------------------------------------------
# Helpers


def smooth_clip(alpha, c, h, w, seed=0, noise=2.0):
    """uint8 (alpha, C, H, W): slowly varying sinusoids plus a little noise (a natural-image stand-in)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((alpha, c, h, w), dtype=np.uint8)
    for a in range(alpha):
        for ch in range(c):
            f = 110 + 60 * np.sin(xx / 13 + 0.3 * a + ch) + 50 * np.cos(yy / 17 - 0.5 * ch)
            out[a, ch] = np.clip(np.rint(f + rng.normal(0, noise, (h, w))), 0, 255)
    return out


def attention_mask(x, beta):
    """Mask (alpha, 1, H, W) float from STAE's own pixel selection, scores = channel mean (spatially coherent)."""
    xt = torch.from_numpy(x[None].astype(np.float32) / 255)
    scores = torch.from_numpy(x.astype(np.float32).mean(axis=1)[None])
    _, mask = select_pixels(xt, scores, beta)
    return mask[0].numpy()


def random_mask(alpha, h, w, beta, rng):
    k = pixel_count(beta, h, w)
    m = np.zeros((alpha, h * w), dtype=np.uint8)
    for a in range(alpha):
        m[a, rng.choice(h * w, k, replace=False)] = 1
    return m.reshape(alpha, h, w)


def roundtrip(idx, mask, x, f_total):
    data = encode_semantic(idx, mask, x, f_total)
    alpha, c, h, w = x.shape
    i2, m2, x2 = decode_semantic(data, f_total, c, h, w)
    m = np.asarray(mask).reshape(alpha, h, w).astype(np.uint8)
    assert i2.dtype == np.int64 and np.array_equal(i2, np.asarray(idx))
    assert m2.shape == (alpha, 1, h, w) and m2.dtype == np.uint8 and np.array_equal(m2[:, 0], m)
    assert x2.shape == x.shape and x2.dtype == np.uint8
    assert np.array_equal(x2, x * m[:, None])
    return data


def reseal(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


# ---------------------------------------------------------------------------------------------------------
# Coding


def test_uncoded_bytes_eq1():
    assert uncoded_bytes(4, 3, 0.4, 224, 224) == pytest.approx(4 * 4 * 3 * 0.4 * 224 * 224)
    assert uncoded_bytes(16, 3, 1.0, 224, 224) == 4 * 16 * 3 * 224 * 224
    for bad in [(0, 3, 0.4, 8, 8), (4, 3, 0.0, 8, 8), (4, 3, 1.5, 8, 8), (4, 3.0, 0.4, 8, 8), (4, 3, "x", 8, 8)]:
        with pytest.raises(EdgecodecError):
            uncoded_bytes(*bad)


@pytest.mark.parametrize("f_total,alpha,beta,c,h,w", [
    (16, 4, 0.4, 3, 24, 40), (16, 1, 1.0, 3, 16, 16), (8, 8, 0.9, 3, 17, 23), (16, 16, 0.5, 1, 12, 20),
    (1, 1, 0.4, 3, 1, 1), (5, 2, 0.7, 2, 1, 37),
])
def test_roundtrip_random_values(f_total, alpha, beta, c, h, w):
    rng = np.random.default_rng(alpha * 100 + h)
    x = rng.integers(0, 256, (alpha, c, h, w), dtype=np.uint8)
    idx = np.sort(rng.choice(f_total, alpha, replace=False))
    m = random_mask(alpha, h, w, beta, rng)
    roundtrip(idx, m, x, f_total)                              # (alpha, H, W) mask, full values
    roundtrip(idx, m[:, None].astype(np.float32), x * m[:, None], f_total)   # (alpha, 1, H, W) float, zero-filled


@pytest.mark.parametrize("beta", [1.0, 0.9, 0.4])
def test_roundtrip_attention_masks_and_both_mask_modes(beta):
    x = smooth_clip(4, 3, 40, 48, seed=3)
    idx = np.array([1, 5, 6, 15])
    coherent = roundtrip(idx, attention_mask(x, beta), x, 16)
    scattered = roundtrip(idx, random_mask(4, 40, 48, beta, np.random.default_rng(1)), x, 16)
    if beta < 1.0:
        assert coherent[5] & 2 and not scattered[5] & 2        # runs for coherent masks, Bernoulli for noise
        assert len(coherent) < len(scattered)
    else:
        assert len(coherent) == len(scattered)                 # nothing to code for all-ones masks


def test_roundtrip_edge_cases():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (3, 3, 9, 11), dtype=np.uint8)
    m = np.zeros((3, 9, 11), dtype=bool)
    m[1, 4, 5] = True                                          # different counts per frame, one frame empty
    m[2] = True
    roundtrip([0, 2, 3], m, x, 4)
    roundtrip([0, 1, 2], np.zeros((3, 9, 11), bool), x, 3)     # nothing kept at all
    x[:] = 200                                                 # constant values
    roundtrip([1, 2, 3], random_mask(3, 9, 11, 0.5, rng), x, 4)
    m = np.zeros((1, 9, 11), np.uint8)
    m[0, ::2, ::3] = 1                                         # checkerboard-like runs
    roundtrip([0], m, x[:1], 1)
    # the STAE layout: torch tensors straight from the attention module
    xt = torch.from_numpy(x[:2].copy())
    roundtrip(torch.tensor([0, 3]), torch.from_numpy(random_mask(2, 9, 11, 0.4, rng)[:, None].astype(np.float32)), xt.numpy(), 4)


def test_deterministic_and_header():
    x = smooth_clip(2, 3, 16, 16)
    m = attention_mask(x, 0.6)
    a = encode_semantic([0, 3], m, x, 8)
    b = encode_semantic([0, 3], m.copy(), x.copy(), 8)
    assert a == b and a[:4] == MAGIC and a[4] == 1
    f_total, alpha, c, h, w = struct.unpack_from("<HHBHH", a, 6)
    assert (f_total, alpha, c, h, w) == (8, 2, 3, 16, 16)
    assert struct.unpack_from("<I", a, 15)[0] == pixel_count(0.6, 16, 16)    # one shared kept-pixel count


def test_smooth_sizes_vs_eq1(capsys):
    """Entropy-coded stream vs eq. (1) (float32) and raw uint8 values, on smooth 64x64 and 112x112 clips."""
    lines = []
    for (f_total, alpha, beta, h, w) in [(16, 4, 0.4, 64, 64), (16, 4, 1.0, 64, 64), (16, 8, 0.4, 112, 112)]:
        x = smooth_clip(alpha, 3, h, w, seed=alpha)
        idx = np.linspace(0, f_total - 1, alpha).round().astype(np.int64)
        data = roundtrip(idx, attention_mask(x, beta), x, f_total)
        eq1 = uncoded_bytes(alpha, 3, beta, h, w)
        raw8 = alpha * 3 * pixel_count(beta, h, w)
        lines.append(f"alpha={alpha} beta={beta:.0%} {h}x{w}: coded {len(data)} B, eq.(1) {eq1:.0f} B "
                     f"({eq1 / len(data):.1f}x), raw uint8 values {raw8} B ({raw8 / len(data):.2f}x)")
        assert len(data) < eq1 / 4 and len(data) < raw8
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def test_random_values_do_not_blow_up():
    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    m = random_mask(4, 32, 32, 0.5, rng)
    data = roundtrip([0, 1, 2, 3], m, x, 4)
    raw8 = 4 * 3 * 512
    assert len(data) < raw8 * 1.02 + 4 * 32 * 32 / 8 + 200    # values ~8 bits, mask <= 1 bit/pixel, small header


def test_encode_bad_inputs():
    x = smooth_clip(2, 3, 8, 8)
    m = np.ones((2, 8, 8), np.uint8)
    cases = [
        ([1, 0], m, x, 4),                                     # not increasing
        ([0, 4], m, x, 4),                                     # out of range
        ([0, 1, 2], m, x, 4),                                  # alpha mismatch
        ([0.0, 1.0], m, x, 4),                                 # float indices
        ([0, 1], m * 2, x, 4),                                 # mask not 0/1
        ([0, 1], np.ones((2, 8, 9)), x, 4),                    # mask shape
        ([0, 1], m, x.astype(np.float32) / 255, 4),            # float values
        ([0, 1], m, x.astype(np.int16) + 100, 4),              # values beyond 255
        ([0, 1], m, x, 0),                                     # frames_total
        ([0, 1], m, x[:, :, :, :, None], 4),                   # values rank
    ]
    for args in cases:
        with pytest.raises(EdgecodecError):
            encode_semantic(*args)


def test_decode_rejects_corrupt_truncated_and_mismatched():
    x = smooth_clip(3, 3, 20, 20, seed=5)
    data = roundtrip([0, 4, 7], attention_mask(x, 0.5), x, 8)
    rng = np.random.default_rng(0)
    for trial in range(300):
        kind = trial % 3
        if kind == 0:                                          # flip bits of one byte
            buf = bytearray(data)
            buf[int(rng.integers(len(buf)))] ^= int(rng.integers(1, 256))
            bad = bytes(buf)
        elif kind == 1:                                        # truncate
            bad = data[:int(rng.integers(len(data)))]
        else:                                                  # append garbage
            bad = data + bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        with pytest.raises(EdgecodecError):
            decode_semantic(bad, 8, 3, 20, 20)
    for args in [(8, 3, 20, 21), (8, 1, 20, 20), (9, 3, 20, 20), (8, 3, 0, 20)]:
        with pytest.raises(EdgecodecError):
            decode_semantic(data, *args)
    with pytest.raises(EdgecodecError):
        decode_semantic("not bytes", 8, 3, 20, 20)


@pytest.mark.parametrize("beta,mask_kind", [(0.5, "attention"), (0.5, "random")])
def test_decode_survives_payload_garbage_behind_a_valid_crc(beta, mask_kind):
    """With the CRC recomputed, corrupt headers and payloads still give an EdgecodecError or a consistent result."""
    rng = np.random.default_rng(1)
    x = smooth_clip(3, 3, 16, 20, seed=2)
    m = attention_mask(x, beta) if mask_kind == "attention" else random_mask(3, 16, 20, beta, rng)
    data = encode_semantic([1, 2, 6], m, x, 8)
    body = data[:-4]
    errors = 0
    for trial in range(300):
        buf = bytearray(body)
        for _ in range(1 + trial % 3):
            buf[int(rng.integers(4, len(buf)))] ^= int(rng.integers(1, 256))
        if trial % 5 == 0:
            buf = buf[:len(buf) - 4 * int(rng.integers(1, 4))]     # drop whole payload words
        try:
            idx, mk, xx = decode_semantic(reseal(bytes(buf)), 8, 3, 16, 20)
        except EdgecodecError:
            errors += 1
            continue
        assert mk.shape[1:] == (1, 16, 20) and xx.shape[1:] == (3, 16, 20) and idx.size == mk.shape[0]
        assert np.all(np.diff(idx) > 0) and np.all(xx[np.repeat(mk == 0, 3, axis=1)] == 0)
    assert errors >= 250


def test_time_coding():
    x = smooth_clip(2, 3, 32, 32)
    r = time_coding([0, 1], attention_mask(x, 0.4), x, 4, repeats=3)
    assert r["encode_s"] > 0 and r["decode_s"] > 0 and r["repeats"] == 3
    assert r["bytes"] == len(encode_semantic([0, 1], attention_mask(x, 0.4), x, 4))
    with pytest.raises(EdgecodecError):
        time_coding([0, 1], attention_mask(x, 0.4), x, 4, repeats=0)


# ---------------------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize("text,bps", [
    ("100Mbps", 100e6), ("1.2 Mbps", 1.2e6), ("500kbps", 500e3), ("2e6bps", 2e6), ("12MB/s", 96e6),
    ("1 Gbit/s", 1e9), (" 250 Kbps ", 250e3), ("100mbps", 100e6), ("3Bps", 24.0), (".5Gbps", 5e8), (42e6, 42e6),
])
def test_parse_rate(text, bps):
    assert parse_rate(text) == pytest.approx(bps, rel=1e-12)


@pytest.mark.parametrize("text", ["", "Mbps", "100", "100 parsecs", "-5Mbps", "0Mbps", "inf Mbps", "nan bps",
                                  "1e999Mbps", "100 M bps", "5 Mbps Mbps", "100Mb", 0, -3.0, True, None])
def test_parse_rate_errors(text):
    with pytest.raises(EdgecodecError) as e:
        parse_rate(text)
    if isinstance(text, str) and text not in ("0Mbps", "1e999Mbps", "-5Mbps"):
        assert "Mbps" in str(e.value)                          # the message shows accepted forms


@pytest.mark.parametrize("text,s", [
    ("100ms", 0.1), ("0.1s", 0.1), ("250 us", 250e-6), ("250µs", 250e-6), ("1.5 sec", 1.5), ("800ns", 8e-7),
    ("2e-3 s", 2e-3), (0.05, 0.05),
])
def test_parse_time(text, s):
    assert parse_time(text) == pytest.approx(s, rel=1e-12)


@pytest.mark.parametrize("text", ["", "ms", "100", "10 fortnights", "-1ms", "0s", "1 m s", [1], "nan ms"])
def test_parse_time_errors(text):
    with pytest.raises(EdgecodecError) as e:
        parse_time(text)
    if isinstance(text, str) and text not in ("0s",):
        assert "100ms" in str(e.value)


# ---------------------------------------------------------------------------------------------------------
# Planner


def row(alpha, beta, nbytes, acc, *, fa=1e-3, sa=0.0, ee=2e-3, ed=2e-3, fr=0.0, vit=None):
    vit = 5e-3 * alpha if vit is None else vit
    return {"alpha": alpha, "beta": beta, "bytes": nbytes, "accuracy": acc, "t_fa": fa, "t_sa": sa, "t_ee": ee,
            "t_ed": ed, "t_fr": fr, "t_vit": vit}


def seed_table():
    """Hand table after seed 001, Fig. 5(b): (4, 40%) best at 100 Mbps / 100 ms, (4, 100%) at 200 Mbps."""
    rows = []
    for alpha, acc_full in [(1, 0.40), (2, 0.52), (4, 0.62), (8, 0.70), (16, 0.74)]:
        for beta in (1.0, 0.7, 0.4):
            full = beta == 1.0
            nbytes = int(250_000 * alpha * beta)               # entropy-coded, ~ eq. (1) / 24
            rows.append(row(alpha, beta, nbytes, acc_full - (0 if full else 0.1 * (1 - beta) + 0.02),
                            sa=0 if full else 4e-3, fr=0 if full else 15e-3 * alpha / 4, vit=9e-3 * alpha))
    return rows


def test_completion_time_eqs_2_to_4():
    r = row(4, 0.4, 125_000, 0.6, fa=1e-3, sa=2e-3, ee=3e-3, ed=4e-3, fr=5e-3, vit=6e-3)
    assert completion_time(r, 100e6) == pytest.approx(125_000 * 8 / 100e6 + 21e-3)
    assert completion_time(r, "100 Mbps") == completion_time(r, 100e6)
    for bad in [{k: v for k, v in r.items() if k != "t_vit"}, dict(r, bytes=-1), dict(r, beta=0),
                dict(r, t_fa=float("nan")), dict(r, alpha=0), dict(r, accuracy="high"), [1, 2]]:
        with pytest.raises(EdgecodecError):
            completion_time(bad, 100e6)
    with pytest.raises(EdgecodecError):
        completion_time(r, 0)


def test_plan_seed_example():
    rows = seed_table()
    res = plan(rows, parse_rate("100Mbps"), parse_time("100ms"))
    assert (res["choice"]["alpha"], res["choice"]["beta"]) == (4, 0.4)
    assert all(r["completion"] <= 0.1 for r in res["feasible"]) and res["feasible"][0] is res["choice"]
    full4 = next(r for r in res["table"] if (r["alpha"], r["beta"]) == (4, 1.0))
    assert not full4["feasible"] and full4["completion"] == pytest.approx(completion_time(rows[6], 100e6))
    assert len(res["table"]) == len(rows) and "t_com" in full4 and "t_cmp" in full4
    text = format_plan(res, 100e6, 0.1)
    assert text.splitlines()[-1].startswith("chosen: alpha=4, beta=40%")
    assert "completion ms" in text and "t_vit ms" in text and "no" in text

    res = plan(rows, "200Mbps", "100ms")
    assert (res["choice"]["alpha"], res["choice"]["beta"]) == (4, 1.0)
    assert "chosen: alpha=4, beta=100%" in format_plan(res, "200Mbps", "100ms")


def test_plan_nothing_feasible():
    rows = seed_table()
    res = plan(rows, 100e6, 0.01)
    assert res["choice"] is None and res["feasible"] == []
    fastest = min(completion_time(r, 100e6) for r in rows)
    line = format_plan(res, 100e6, 0.01).splitlines()[-1]
    assert line.startswith("no (alpha, beta) meets the deadline of 10.00 ms at 100 Mbps; the fastest needs ")
    assert f"{fastest * 1e3:.2f} ms" in line


def test_plan_ties_and_boundary():
    rows = [row(4, 0.4, 1000, 0.6), row(2, 0.9, 900, 0.6), row(8, 0.5, 900, 0.6), row(1, 1.0, 100, 0.5)]
    res = plan(rows, 1e9, 1.0)
    assert (res["choice"]["alpha"], res["choice"]["bytes"]) == (8, 900)      # fewer bytes, then larger alpha
    assert [r["alpha"] for r in res["feasible"]] == [8, 2, 4, 1]
    exact = row(1, 1.0, 1000, 0.5, fa=0, ee=0, ed=0, vit=0)                   # completion exactly 8 ms
    assert plan([exact], 1e6, 8e-3)["choice"] is not None
    assert plan([exact], 1e6, 7.9e-3)["choice"] is None
    for bad in [[], "rows", [{"alpha": 1}]]:
        with pytest.raises(EdgecodecError):
            plan(bad, 1e6, 1.0)
    with pytest.raises(EdgecodecError):
        plan(rows, "fast", 1.0)


def test_load_table(tmp_path):
    p = tmp_path / "stae_eval.json"
    with pytest.raises(EdgecodecError, match="edgecodec stae eval"):
        load_table(p)
    p.write_text("{not json")
    with pytest.raises(EdgecodecError, match="edgecodec stae eval"):
        load_table(p)
    p.write_text(json.dumps({"rows": [{"alpha": 4}]}))
    with pytest.raises(EdgecodecError, match="edgecodec stae eval"):
        load_table(p)
    p.write_text(json.dumps({"table": []}))
    with pytest.raises(EdgecodecError, match="edgecodec stae eval"):
        load_table(p)
    p.write_text(json.dumps({"rows": seed_table(), "meta": {"clip": "x"}}))
    rows = load_table(p)
    assert rows == seed_table()
    assert plan(rows, 100e6, 0.1)["choice"]["beta"] == 0.4
