"""Integer PMF tables, the ANS / Rice frame coders (edgecodec/entropy.py) and the bitstream container
(edgecodec/codec/bitstream.py): exactness, round trips, rates against the entropy, and robustness to corrupt data."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest

from edgecodec.codec.bitstream import (MAGIC, VERSION, BitstreamError, StreamHeader, encode_stream, model_hash,
                                 parse_stream, read_stream, write_stream)
from base.errors import EdgecodecError
from edgecodec.entropy import (FrameDecoder, FrameEncoder, ans_weights, expected_bits, pmf_table, rice_code_lengths,
                           rice_expected_bits, rice_parameters, scale_table)

SCALES = scale_table()
GAUSS = pmf_table("gaussian", SCALES)
LAPLACE = pmf_table("laplace", SCALES)
M = 255
T = 1 << 16
MODES = ("ans", "rice")


def sample(table, rows, rng):
    """Values drawn from each symbol's own table row (int64, shape of rows)."""
    rows = np.asarray(rows)
    flat = rows.ravel()
    out = np.empty(flat.size, dtype=np.int64)
    cdf = np.cumsum(table, axis=1)
    m = (table.shape[1] - 1) // 2
    for r in np.unique(flat):
        idx = np.flatnonzero(flat == r)
        u = rng.integers(0, int(cdf[r, -1]), idx.size)
        out[idx] = np.searchsorted(cdf[r], u, side="right") - m
    return out.reshape(rows.shape)


def information_bits(table, values, rows) -> float:
    """-sum log2 p(value | row) under the integer table."""
    m = (table.shape[1] - 1) // 2
    p = table[rows.ravel(), values.ravel() + m] / table[0].sum()
    return float(-np.log2(p).sum())


# ------------------------------------------------------------------------------------------------- tables


def test_scale_table_is_log_spaced():
    s = scale_table()
    assert s.dtype == np.float64 and s.shape == (64,)
    assert s[0] == pytest.approx(0.11) and s[-1] == pytest.approx(64.0)
    assert np.allclose(np.diff(np.log(s)), math.log(64 / 0.11) / 63)


@pytest.mark.parametrize("family", ["gaussian", "laplace"])
@pytest.mark.parametrize("max_symbol,precision", [(255, 16), (15, 12), (255, 24)])
def test_pmf_table_invariants(family, max_symbol, precision):
    t = pmf_table(family, SCALES, max_symbol=max_symbol, precision=precision)
    assert t.dtype == np.int64 and t.shape == (64, 2 * max_symbol + 1)
    assert np.all(t.sum(axis=1) == 1 << precision)
    assert t.min() >= 1
    assert np.array_equal(t, t[:, ::-1])                               # symmetric
    half = t[:, max_symbol:-1]                                         # v = 0..M-1 (v = M holds the tail)
    assert np.all(np.diff(half, axis=1) <= 0)                          # unimodal at 0
    bits = expected_bits(t)[SCALES <= max_symbol / 4]                  # (before the lumped tails dominate)
    assert np.all(np.diff(bits) >= 0) and bits[-1] > bits[0] + 3        # wider scale, more bits


def test_pmf_table_peaked_and_accurate():
    assert GAUSS[0, M] > 0.99 * T and LAPLACE[0, M] > 0.98 * T         # scale 0.11: nearly all mass at 0
    assert GAUSS[-1, M] < 0.01 * T                                     # scale 64: broad
    s = 2.0                                                            # a mid scale against the closed form
    g = pmf_table("gaussian", [s])[0]
    exact = [0.5 * (math.erf((v + 0.5) / (s * math.sqrt(2))) - math.erf((v - 0.5) / (s * math.sqrt(2))))
             for v in range(-5, 6)]
    # the ~490 weight-1 tail entries (p ~ 0) take 0.75% of the mass, proportionally from the others
    assert np.allclose(g[M - 5:M + 6] / T, exact, rtol=0.01, atol=2 / T)
    lap = pmf_table("laplace", [s])[0]
    p1 = 0.5 * (math.exp(-0.5 / s) - math.exp(-1.5 / s))
    assert lap[M + 1] / T == pytest.approx(p1, rel=0.01)
    assert np.array_equal(pmf_table("gaussian", SCALES), GAUSS)        # deterministic


def test_pmf_table_errors():
    with pytest.raises(ValueError, match="family"):
        pmf_table("cauchy", SCALES)
    with pytest.raises(ValueError, match="scales"):
        pmf_table("gaussian", [1.0, -2.0])
    with pytest.raises(ValueError, match="too small"):
        pmf_table("gaussian", SCALES, max_symbol=255, precision=9)
    with pytest.raises(ValueError, match="precision"):
        pmf_table("gaussian", SCALES, precision=25)


def test_rice_parameters_are_exact_minimizers():
    for table in (GAUSS, LAPLACE):
        ks = rice_parameters(table)
        assert ks.dtype == np.int64 and ks.min() >= 0 and ks.max() <= 9
        assert np.all(np.diff(ks) >= 0)                                # wider scale, larger k
        for r in (0, 17, 40, 63):
            costs = []
            for k in range(10):
                c = 0
                for j, w in enumerate(table[r].tolist()):
                    v = j - M
                    u = 2 * v if v >= 0 else -2 * v - 1
                    c += w * ((u >> k) + 1 + k if (u >> k) < 16 else 16 + 9)
                costs.append(c)
            assert ks[r] == int(np.argmin(costs))
        assert np.all(rice_expected_bits(table) >= expected_bits(table))
    assert rice_code_lengths(255, 0)[M] == 1 and rice_code_lengths(255, 0)[0] == 25   # u=510: escape


# --------------------------------------------------------------------------------------------- frame coders


def min_prob_table(precision):
    """One row: every symbol has probability 1/2**precision except the center."""
    t = np.ones((1, 2 * M + 1), dtype=np.int64)
    t[0, M] = (1 << precision) - 2 * M
    return t


@pytest.mark.parametrize("precision", [16, 24])
def test_ans_codes_probabilities_down_to_one_over_2_pow_precision(precision):
    table = min_prob_table(precision)
    vals = np.concatenate([np.arange(-M, M + 1), np.zeros(3000, np.int64), np.arange(M, -M - 1, -1)])
    enc = FrameEncoder(table, "ans")
    enc.add(vals, 0)
    data = enc.finish()
    dec = FrameDecoder(data, table, "ans")
    assert np.array_equal(dec.read(np.zeros(vals.size, np.int64)), vals)
    dec.close()
    # a rare symbol costs about `precision` bits: constriction's 24-bit requantization floor(C*(2**24-n)/T)+j
    # can only widen a weight-1 entry (to at most 2/2**24 at precision 24, by < 1/256 at precision 16)
    info = information_bits(table, vals, np.zeros(vals.size, np.int64))
    assert 0.95 * info < len(data) * 8 < info + 64


def test_ans_model_is_the_documented_integer_requantization():
    w = ans_weights(GAUSS)
    assert np.all(w.sum(axis=1) == 1 << 24) and w.min() >= 1
    row, wr, n = GAUSS[40:41], w[40], 40_000
    widened = int(np.argmax(wr / (256 * row[0])))                      # a tail entry 1/2**16 -> 257/2**24
    assert wr[widened] == 257 and row[0, widened] == 1
    for j in (widened, M):
        enc = FrameEncoder(row, "ans")
        enc.add(np.full(n, j - M), 0)
        bits = len(enc.finish()) * 8
        predicted = n * math.log2((1 << 24) / wr[j])                    # from the 24-bit weights
        assert predicted <= bits <= predicted + 96
    enc = FrameEncoder(row, "ans")
    enc.add(np.full(n, widened - M), 0)
    assert len(enc.finish()) * 8 < n * 16 - 100                         # cheaper than the 16-bit table says


def hyperprior_rows(z: np.ndarray) -> np.ndarray:
    """Rows for the latent part from the decoded hyper part (2x nearest upsampling, |z| picks the scale)."""
    up = np.repeat(np.repeat(z, 2, axis=-2), 2, axis=-1)
    return np.clip(np.abs(up) * 9 + 3, 0, 63)


def encode_frame(table, mode, rng, zshape=(3, 2, 3), extreme=True):
    """A three-part frame: hyper z (row 25), latent y (rows from z), side info (one scalar row)."""
    z = sample(table, np.full(zshape, 25), rng)
    rows_y = hyperprior_rows(z)
    y = sample(table, rows_y, rng)
    if extreme:                                                        # force escapes / rare symbols
        y.flat[0], y.flat[-1] = M, -M
    side = sample(table, np.full(7, 40), rng)
    enc = FrameEncoder(table, mode)
    enc.add(z, np.full(zshape, 25))
    enc.add(y, rows_y)
    enc.add(side, 40)                                                  # scalar row, broadcast
    return enc.finish(), (z, y, side)


def decode_frame(data, table, mode, zshape=(3, 2, 3)):
    dec = FrameDecoder(data, table, mode)
    z = dec.read(np.full(zshape, 25))
    y = dec.read(hyperprior_rows(z))
    side = dec.read(40, shape=(7,))
    dec.close()
    return z, y, side


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("table", [GAUSS, LAPLACE], ids=["gaussian", "laplace"])
def test_multipart_round_trip(mode, table):
    rng = np.random.default_rng(1)
    for _ in range(5):
        data, parts = encode_frame(table, mode, rng)
        got = decode_frame(data, table, mode)
        for a, b in zip(parts, got):
            assert a.shape == b.shape and np.array_equal(a, b)
    enc = FrameEncoder(table, mode)                                     # an empty frame round trips too
    dec = FrameDecoder(enc.finish(), table, mode)
    assert dec.read(np.zeros((0, 3), np.int64)).shape == (0, 3)
    dec.close()


def test_large_random_rates():
    """Rates on 500 000 symbols (speeds: bench/entropy_bench.py)."""
    rng = np.random.default_rng(2)
    n = 500_000
    rows = rng.choice(np.array([0, 10, 20, 30, 40, 50, 63]), n)
    vals = sample(GAUSS, rows, rng)
    info = information_bits(GAUSS, vals, rows)
    entropy = float(expected_bits(GAUSS)[rows].sum())
    report = {}
    for mode in MODES:
        enc = FrameEncoder(GAUSS, mode)
        enc.add(vals, rows)
        data = enc.finish()
        dec = FrameDecoder(data, GAUSS, mode)
        out = dec.read(rows)
        dec.close()
        assert np.array_equal(out, vals)
        report[mode] = len(data) * 8
    bits = report["ans"]
    assert bits / info < 1.005 and abs(bits / entropy - 1) < 0.02      # ANS: within 0.5% of the information
    bits_r = report["rice"]
    rice_expected = float(rice_expected_bits(GAUSS)[rows].sum())
    assert abs(bits_r / rice_expected - 1) < 0.01                      # Rice: as its own code lengths predict
    assert bits_r > bits                                               # and never better than ANS here


@pytest.mark.parametrize("mode", MODES)
def test_caller_errors(mode):
    enc = FrameEncoder(GAUSS, mode)
    with pytest.raises(ValueError, match="clamp"):
        enc.add(np.array([0, 256]), 3)
    with pytest.raises(ValueError, match="clamp"):
        enc.add(np.array([-256]), 3)
    with pytest.raises(ValueError, match="rows"):
        enc.add(np.array([0, 1]), np.array([0, 64]))
    with pytest.raises(ValueError, match="broadcast"):
        enc.add(np.zeros((2, 3), np.int64), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="integer"):
        enc.add(np.zeros(3), 0)
    with pytest.raises(ValueError, match="mode"):
        FrameEncoder(GAUSS, "huffman")
    with pytest.raises(ValueError, match="power of two"):
        FrameEncoder(GAUSS[:, :-2] + 0, mode)
    enc.add(np.array([1, -1]), 3)
    data = enc.finish()
    with pytest.raises(ValueError, match="finish"):
        enc.add(np.array([1]), 3)
    dec = FrameDecoder(data, GAUSS, mode)
    with pytest.raises(ValueError, match="rows"):
        dec.read(np.array([-1]))


@pytest.mark.parametrize("mode", MODES)
def test_close_detects_leftover_and_missing_data(mode):
    rng = np.random.default_rng(3)
    data, (z, y, side) = encode_frame(GAUSS, mode, rng)
    dec = FrameDecoder(data, GAUSS, mode)                             # a part left unread
    dec.read(np.full(z.shape, 25))
    dec.read(hyperprior_rows(z))
    with pytest.raises(BitstreamError):
        dec.close()
    extra = data + (b"\x07\x00\x00\x00" if mode == "ans" else b"\x00")  # a whole extra word / byte
    with pytest.raises(BitstreamError):
        decode_frame(extra, GAUSS, mode)
    dec = FrameDecoder(data, GAUSS, mode)                             # reading more than was written
    decode_parts = [dec.read(np.full(z.shape, 25))]
    decode_parts.append(dec.read(hyperprior_rows(decode_parts[0])))
    dec.read(40, shape=(7,))
    with pytest.raises(BitstreamError):
        dec.read(np.full(200, 63))
        dec.close()
    assert issubclass(BitstreamError, EdgecodecError)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", MODES)
def test_garbage_and_truncation_raise_bitstream_error(mode):
    rng = np.random.default_rng(4)
    raised = 0
    for i in range(300):
        n = int(rng.integers(0, 80)) * (4 if mode == "ans" and i % 4 else 1)
        garbage = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        try:
            decode_frame(garbage, GAUSS, mode)
        except BitstreamError:
            raised += 1
    assert raised >= 295                                                # a random string rarely decodes exactly
    data, _ = encode_frame(LAPLACE, mode, rng, zshape=(4, 3, 3))
    for cut in range(len(data)):                                         # every truncation is detected
        with pytest.raises(BitstreamError):
            decode_frame(data[:cut], LAPLACE, mode, zshape=(4, 3, 3))
    with pytest.raises(BitstreamError):
        decode_frame(data[1:], LAPLACE, mode, zshape=(4, 3, 3))


# ------------------------------------------------------------------------------------------------ container


def make_header(**kw):
    fields = dict(version=VERSION, mode="int", entropy="ans", model_hash=model_hash(b"weights", b"tables"),
                  quality=3, width=100, height=60, fps_num=30000, fps_den=1001, gop=2, frame_count=3)
    fields.update(kw)
    return StreamHeader(**fields)


FRAMES = [(0, b"\x01\x02\x03"), (1, b""), (0, bytes(range(200)))]


def recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def raw_stream(header_values, frames, version=VERSION) -> bytes:
    """Hand-built stream (no validation): header_values in struct order, frames as (type, length, payload)."""
    body = bytearray(MAGIC) + bytes([version]) + struct.pack("<BB8sBHHIIHI", *header_values)
    for ftype, length, payload in frames:
        body += bytes([ftype])
        while True:
            b, length = length & 0x7F, length >> 7
            body.append(b | (0x80 if length else 0))
            if not length:
                break
        body += payload
    return recrc(bytes(body))


HV = [1, 0, b"ABCDEFGH", 3, 100, 60, 30, 1, 2, 3]
H0 = 5 + struct.calcsize("<BB8sBHHIIHI")                               # where the first frame starts


def test_container_round_trip(tmp_path):
    h = make_header()
    path = write_stream(tmp_path / "sub" / "a.egv", h, FRAMES)
    assert not list(path.parent.glob("*.tmp"))
    h2, frames = read_stream(path)
    assert h2 == h and frames == FRAMES
    assert read_stream(path.read_bytes()) == (h, FRAMES)
    assert path.read_bytes()[:5] == MAGIC + bytes([VERSION])
    assert len(h.model_hash) == 8 and model_hash(b"weightstables") == h.model_hash
    big = [(0, b"x" * 300_000)]                                         # a multi-byte length varint
    assert read_stream(encode_stream(make_header(frame_count=1), big))[1] == big
    with pytest.raises(BitstreamError, match="cannot read"):
        read_stream(tmp_path / "missing.egv")


def test_container_write_rejects_bad_input():
    with pytest.raises(ValueError, match="width"):
        encode_stream(make_header(width=0), FRAMES)
    with pytest.raises(ValueError, match="model_hash"):
        encode_stream(make_header(model_hash=b"short"), FRAMES)
    with pytest.raises(ValueError, match="frame count"):
        encode_stream(make_header(), FRAMES[:2])
    with pytest.raises(ValueError, match="gop"):
        encode_stream(make_header(gop=3), FRAMES)


def test_container_validation_messages():
    good = raw_stream(HV, [(0, 3, b"abc"), (1, 0, b""), (0, 1, b"z")])
    assert parse_stream(good)[0].model_hash == b"ABCDEFGH"
    cases = [
        (b"EG", "not an edgecodec bitstream"),
        (b"RIFF" + good[4:], "not an edgecodec bitstream"),
        (good[:4] + b"\x01" + good[5:], "unsupported bitstream version 1"),   # version 1: the fixed motion prior
        (good[:20], "truncated bitstream"),
        (good[:-5] + bytes([good[-5] ^ 1]) + good[-4:], "corrupt: CRC"),
        (raw_stream([1, 0, b"ABCDEFGH", 3, 0, 60, 30, 1, 2, 3], []), "width=0 out of range"),
        (raw_stream([1, 0, b"ABCDEFGH", 3, 100, 16385, 30, 1, 2, 3], []), "height=16385 out of range"),
        (raw_stream([1, 0, b"ABCDEFGH", 3, 100, 60, 30, 0, 2, 3], []), "fps_den=0 out of range"),
        (raw_stream([1, 0, b"ABCDEFGH", 3, 100, 60, 30, 1, 0, 3], []), "gop=0 out of range"),
        (raw_stream([1, 0, b"ABCDEFGH", 3, 100, 60, 30, 1, 2, 0], []), "frame_count=0 out of range"),
        (raw_stream([5, 0, b"ABCDEFGH", 3, 100, 60, 30, 1, 2, 3], []), "mode=5 out of range"),
        (raw_stream([1, 9, b"ABCDEFGH", 3, 100, 60, 30, 1, 2, 3], []), "entropy=9 out of range"),
        (raw_stream(HV, [(0, 3, b"abc"), (1, 0, b"")]), "frame count mismatch: header says 3, stream holds 2"),
        (raw_stream(HV, [(0, 3, b"abc")] * 4), "frame count mismatch: header says 3, stream holds more"),
        (raw_stream(HV, [(1, 3, b"abc"), (1, 0, b""), (0, 1, b"z")]), "first frame is not an I-frame"),
        (raw_stream(HV, [(0, 3, b"abc"), (1, 0, b""), (1, 1, b"z")]), "multiples of gop=2"),
        (raw_stream(HV, [(0, 3, b"abc"), (0, 0, b""), (0, 1, b"z")]), "multiples of gop=2"),
        (raw_stream(HV, [(0, 3, b"abc"), (1, 0, b""), (0, 1, b"z"), (7, 0, b"")]), "trailing bytes"),
        (raw_stream(HV, [(0, 3, b"abc"), (1, 9, b"")]), "truncated frame 1"),
        (raw_stream(HV, [(0, 3, b"abc"), (4, 0, b"")]), "bad frame type 4"),
        (raw_stream(HV, [(0, 1 << 27, b"")]), "exceeds"),
        (recrc(good[:H0] + b"\x00\x83\x80\x00abc" + good[H0 + 5:-4]), "non-minimal"),
        (recrc(good[:H0] + b"\x00\xff\xff\xff\xff\xff\x01" + good[H0 + 5:-4]), "longer than 5"),
    ]
    for data, msg in cases:
        with pytest.raises(BitstreamError, match=msg):
            parse_stream(data)
    bad_crc = cases[4][0]                                               # check_crc=False reaches deeper checks
    assert parse_stream(bad_crc, check_crc=False)[1][2] == (0, bytes([ord("z") ^ 1]))


# ------------------------------------------------------------------------------------------------------ fuzz


def real_stream(mode: str):
    rng = np.random.default_rng(5)
    frames, parts = [], []
    for i in range(3):
        data, p = encode_frame(GAUSS, mode, rng, extreme=False)
        frames.append((0 if i % 2 == 0 else 1, data))
        parts.append(p)
    h = make_header(entropy=mode, width=96, height=64, gop=2, frame_count=3)
    return encode_stream(h, frames), h, frames, parts


def mutate(data: bytes, rng) -> bytes:
    b = bytearray(data)
    kind = int(rng.integers(0, 5))
    i = int(rng.integers(0, len(b)))
    if kind == 0:
        b[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:
        b[i] = (b[i] + int(rng.integers(1, 256))) % 256
    elif kind == 2:
        del b[i:]
    elif kind == 3:
        b[i:i] = rng.integers(0, 256, int(rng.integers(1, 5)), dtype=np.uint8).tobytes()
    else:
        del b[i:i + int(rng.integers(1, 5))]
    return bytes(b)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", MODES)
def test_fuzz_container(mode):
    data, h, frames, _ = real_stream(mode)
    assert read_stream(data) == (h, frames)
    rng = np.random.default_rng(6 if mode == "ans" else 7)
    for _ in range(1000):
        bad = mutate(data, rng)
        try:
            got = read_stream(bad)
        except BitstreamError:
            continue
        assert bad == data and got == (h, frames)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", MODES)
def test_fuzz_payload_decoding(mode):
    data, h, frames, parts = real_stream(mode)
    rng = np.random.default_rng(8 if mode == "ans" else 9)
    payload_start = H0
    outcomes = {"container": 0, "payload": 0, "decoded": 0, "identical": 0}
    for i in range(150):
        if i % 2:                                                       # anywhere
            bad = mutate(data, rng)
        else:                                                           # inside the frame section, same length
            b = bytearray(data)
            for _ in range(int(rng.integers(1, 3))):
                j = int(rng.integers(payload_start, len(data) - 4))
                b[j] ^= 1 << int(rng.integers(0, 8))
            bad = bytes(b)
        try:
            h2, frames2 = parse_stream(bad, check_crc=False)
        except BitstreamError:
            outcomes["container"] += 1
            continue
        for f, (_, payload) in enumerate(frames2):
            try:
                got = decode_frame(payload, GAUSS, h2.entropy)
            except BitstreamError:
                outcomes["payload"] += 1
                continue
            outcomes["decoded"] += 1
            if f < len(parts) and all(np.array_equal(a, b) for a, b in zip(got, parts[f])):
                outcomes["identical"] += 1
    assert outcomes["payload"] > 5 and outcomes["decoded"] > 5 and outcomes["container"] > 10
