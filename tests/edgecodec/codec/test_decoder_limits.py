"""The decoder bounds its memory before it allocates: frame size (--max-pixels), decoded output
(--max-output-bytes), frame count and payload lengths against the stream's bytes, payload sizes against the
frame size; a clear error, exit status 2, within a couple of seconds. Streams are real encodes of the shipped clip
with the shipped checkpoints, their headers rewritten behind a recomputed CRC-32."""

from __future__ import annotations

import importlib.util
import re
import resource
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

from edgecodec.cli import main
from edgecodec.codec import checkpoint as ckpt
from edgecodec.codec.bitstream import DEFAULT_MAX_PIXELS, BitstreamError, parse_stream
from edgecodec.codec.coder import Coder, decode
from model.video import read_yuv420

from tests.conftest import CLIP_160 as CLIP
from tests.conftest import ROOT

CHECKPOINTS = ROOT / "checkpoints"
HEADER = struct.Struct("<BB8sBHHIIHI")        # the documented header layout, after magic + version (5 bytes)
FIELDS = ("mode", "entropy", "model_hash", "quality", "width", "height", "fps_num", "fps_den", "gop", "frame_count")
FRAMES_AT = 5 + HEADER.size


def rewrite(data: bytes, **fields) -> bytes:
    """`data` with header fields replaced and the CRC-32 recomputed (a stream any CRC check accepts)."""
    values = dict(zip(FIELDS, HEADER.unpack_from(data, 5)))
    values.update(fields)
    return with_crc(data[:5] + HEADER.pack(*values.values()) + data[FRAMES_AT:-4])


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.fixture(scope="module")
def clip():
    return read_yuv420(CLIP)


@pytest.fixture(scope="module")
def stream(clip):
    """A real 160x96 stream, 5 frames (I P P P I), ANS, quality 1, and the encoder's reconstruction."""
    return Coder(ckpt.load(CHECKPOINTS, 1), "int", "ans").encode(*clip, 4)


def cli_decode(data: bytes, tmp_path, *extra: str) -> tuple[int, float, str]:
    """(exit status, seconds, stderr) of `edgecodec decode` in this process on `data`."""
    src, out = tmp_path / "in.bin", tmp_path / "out.y4m"
    src.write_bytes(data)
    t0 = time.perf_counter()
    rc = main(["decode", str(src), "-o", str(out), "--checkpoints", str(CHECKPOINTS), *extra])
    return rc, time.perf_counter() - t0, out


def test_16384_square_header_is_refused_at_once(stream, tmp_path, capsys):
    """The issue's stream: a real 160x96 stream (a few KB) claiming 16384 x 16384. Without the limit the decoder
    grows to tens of GB; with it: exit 2 and a message naming the size and the limit, in well under 2 s."""
    bad = rewrite(stream.data, width=16384, height=16384)
    assert len(bad) < 8192
    rc, seconds, out = cli_decode(bad, tmp_path)
    err = capsys.readouterr().err
    assert rc == 2 and seconds < 2.0, (rc, seconds)
    assert re.search(rf"edgecodec: error: frame size 16384x16384 = 268435456 pixels exceeds the decoder limit "
                     rf"of {DEFAULT_MAX_PIXELS} pixels", err), err
    assert not out.exists()


_CHILD = """
import resource, sys, time
import edgecodec.codec.coder                          # what `decode` imports, outside the timed part
from edgecodec.cli import main
t0 = time.perf_counter()
rc = main(sys.argv[1:])
print(f"seconds={time.perf_counter() - t0:.3f} maxrss_kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}",
      file=sys.stderr)
sys.exit(rc)
"""


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.timeout(300)
def test_16384_square_header_under_a_4_gib_address_space_limit(stream, tmp_path):
    """The same stream in a separate process limited to 4 GiB of address space: a clean exit 2, not a failed
    allocation or a kill, with the decode taking well under 2 s and the process staying small."""
    src = tmp_path / "big.bin"
    src.write_bytes(rewrite(stream.data, width=16384, height=16384))
    p = subprocess.run([sys.executable, "-c", _CHILD, "decode", str(src), "-o", str(tmp_path / "o.y4m"),
                        "--checkpoints", str(CHECKPOINTS)], preexec_fn=_limit_address_space,
                       capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "edgecodec: error: frame size 16384x16384" in p.stderr and "Traceback" not in p.stderr
    m = re.search(r"seconds=([\d.]+) maxrss_kb=(\d+)", p.stderr)
    assert float(m.group(1)) < 2.0 and int(m.group(2)) < 1536 * 1024, m.group(0)


def test_lifted_pixel_limit_still_refuses_a_payload_too_short_for_the_frame_size(stream):
    """--max-pixels raised to 16384^2: the payload sizes are checked against what the frame size needs
    (2 M+ symbols cannot fit in a few hundred bytes), before anything of that size is allocated."""
    bad = rewrite(stream.data, width=16384, height=16384)
    n0 = len(parse_stream(stream.data)[1][0][1])
    t0 = time.perf_counter()
    with pytest.raises(BitstreamError, match=rf"frame 0: payload of {n0} bytes is too short for a 16384x16384 "
                                             r"I-frame \(\d+ ans symbols need at least \d+ bytes\)"):
        decode(bad, CHECKPOINTS, max_pixels=16384 * 16384)
    assert time.perf_counter() - t0 < 2.0


def test_huge_frame_count_is_refused(stream, tmp_path, capsys):
    """1 000 000 frames claimed by a 5-frame stream: refused by the decoded-output limit from the header alone
    (it would be 23 GB of frames); with that limit lifted, by the frame count the bytes can hold."""
    bad = rewrite(stream.data, frame_count=1_000_000)
    rc, seconds, _ = cli_decode(bad, tmp_path)
    err = capsys.readouterr().err
    assert rc == 2 and seconds < 2.0
    assert "1000000 frames of 160x96 decode to 23040000000 bytes, above the decoder limit" in err, err
    with pytest.raises(BitstreamError, match=r"frame count mismatch: header says 1000000, stream holds 5 \(its "
                                             r"\d+ frame bytes cannot hold more than \d+ frames\)"):
        decode(bad, CHECKPOINTS, max_output_bytes=1 << 50)


def test_payload_length_beyond_the_end_is_refused(stream):
    """Frame 0's length varint rewritten to the largest value of the same byte count (still minimal) behind a
    valid CRC."""
    data = stream.data
    n0 = len(parse_stream(data)[1][0][1])
    k = 1 + (n0.bit_length() - 1) // 7                        # LEB128 bytes of n0
    varint = bytes([0xFF] * (k - 1) + [0x7F])
    assert data[FRAMES_AT] == 0 and k >= 2
    bad = with_crc(data[:FRAMES_AT + 1] + varint + data[FRAMES_AT + 1 + k:-4])
    with pytest.raises(BitstreamError, match=rf"truncated frame 0: payload length {(1 << 7 * k) - 1} but only \d+ "
                                             r"bytes remain"):
        decode(bad, CHECKPOINTS)


def test_max_pixels_below_the_stream_is_refused_and_at_it_decodes(stream, tmp_path, capsys):
    rc, seconds, out = cli_decode(stream.data, tmp_path, "--max-pixels", str(160 * 96 - 1))
    err = capsys.readouterr().err
    assert rc == 2 and seconds < 2.0 and not out.exists()
    assert "frame size 160x96 = 15360 pixels exceeds the decoder limit of 15359 pixels" in err, err
    rc, _, out = cli_decode(stream.data, tmp_path, "--max-pixels", str(160 * 96))
    assert rc == 0 and all(np.array_equal(a, b) for a, b in zip(read_yuv420(out), stream.recon))


def test_max_output_bytes_below_the_stream_is_refused(stream, tmp_path, capsys):
    need = 5 * (160 * 96 + 2 * 80 * 48)
    rc, _, _ = cli_decode(stream.data, tmp_path, "--max-output-bytes", str(need - 1))
    assert rc == 2 and f"decode to {need} bytes, above the decoder limit of {need - 1}" in capsys.readouterr().err
    rc, _, _ = cli_decode(stream.data, tmp_path, "--max-output-bytes", str(need))
    assert rc == 0


@pytest.mark.parametrize("entropy, content", [("ans", "real"), ("rice", "real"), ("ans", "flat"), ("rice", "flat")])
def test_normal_streams_still_decode_bit_identically(clip, entropy, content, tmp_path):
    """Real and flat (the most compressible: the payload-size bound's tightest case) content, odd size."""
    y, u, v = clip if content == "real" else (np.full_like(p, 128) for p in clip)
    y, u, v = (np.ascontiguousarray(p) for p in (y[:, :95, :157], u[:, :48, :79], v[:, :48, :79]))
    r = Coder(ckpt.load(CHECKPOINTS, 2), "int", entropy).encode(y, u, v, 4)
    _, rec = decode(r.data, CHECKPOINTS)
    assert all(np.array_equal(a, b) for a, b in zip(rec, r.recon)) and rec[0].shape == (5, 95, 157)
    rc, _, out = cli_decode(r.data, tmp_path)
    assert rc == 0 and all(np.array_equal(a, b) for a, b in zip(read_yuv420(out), r.recon))


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("decoder_fuzz", ROOT / "bench" / "decoder_fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_decoder_fuzz_small():
    """2 000 inputs of bench/decoder_fuzz.py: no crash, no hang, a good share reaching the entropy decoder,
    memory bounded."""
    r = _fuzz_module().run(2000, seed=1)
    assert r["crashes"] == 0, r["crash_examples"]
    assert r["hangs"] == 0 and r["seconds_per_input"]["max"] < 5.0
    assert r["reached_entropy_decoder_share"] > 0.3 and r["outcomes"].get("decoded", 0) > 0
    assert r["peak_rss_mb"] - r["rss_after_setup_mb"] < 512, r["worst_memory_input"]
