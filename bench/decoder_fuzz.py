"""Decoder fuzz -> bench/results/decoder_fuzz.json: mutated and crafted streams, each decoded in-process.

Base streams are real encodes of the shipped clip (`data/video/CiscoVT2people_160x96_6fps.y4m`) with the shipped
checkpoints: a 64x64 crop of 3 frames (GOP 2: I P I) in ANS and in Rice, and the full 160x96 clip (5 frames, ANS).
Every input is one base stream changed by one mutation kind (`KINDS`) and, except for kind "raw", closed with a
recomputed CRC-32, so the checks behind the CRC see it: header fields (extremes included), frame size, frame
count, frame types, payload length varints, payload bytes (bit flips, overwritten runs, inserted and deleted
bytes with the length fixed), truncations, spliced frame lists and streams crafted from scratch (real model hash,
random small size, random payloads). Input i uses the generator `default_rng([seed, i])`, so any one of them can
be rebuilt alone (`make_input`).

Each input is decoded by `edgecodec.codec.coder.decode` (the checkpoints cached, `coders=`) under a per-input
alarm. Outcomes: "decoded" (frames), "refused" (an `EdgecodecError`, `BitstreamError` included), "crash" (any
other exception), "hang" (over `--hang-seconds`). Recorded: the outcome counts per kind, the share that reached
the entropy decoder (a `FrameDecoder` was built), the slowest input, the peak RSS of the process
(`ru_maxrss`) and the input that raised it most.

Usage: python bench/decoder_fuzz.py [--count 100000] [--seed 0] [--out bench/results/decoder_fuzz.json]
"""

from __future__ import annotations

import argparse
import platform
import re
import resource
import signal
import struct
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edgecodec.codec.coder as coder_mod  # noqa: E402
from base.errors import EdgecodecError  # noqa: E402
from base.files import write_json_atomic  # noqa: E402
from base.paths import VIDEO_DIR  # noqa: E402
from edgecodec.codec import checkpoint as ckpt  # noqa: E402
from edgecodec.codec.bitstream import _HEADER, MAGIC, MAX_FRAMES, VERSION, parse_stream  # noqa: E402
from model.video import read_yuv420  # noqa: E402

CLIP = VIDEO_DIR / "CiscoVT2people_160x96_6fps.y4m"
CHECKPOINTS = ROOT / "checkpoints"
OUT = ROOT / "bench" / "results" / "decoder_fuzz.json"
FIELDS = ("mode", "entropy", "model_hash", "quality", "width", "height", "fps_num", "fps_den", "gop", "frame_count")
_BITS = {"mode": 8, "entropy": 8, "quality": 8, "width": 16, "height": 16, "fps_num": 32, "fps_den": 32, "gop": 16,
         "frame_count": 32}
KINDS = {"header_field": 2, "frame_size": 2, "frame_count": 1, "frame_type": 1, "length": 2, "payload_flip": 4,
         "payload_overwrite": 3, "payload_resize": 2, "splice": 1, "truncate": 1, "crafted": 3, "raw": 1}


# ------------------------------------------------------------------------------------------------ streams

def base_streams(checkpoints: Path = CHECKPOINTS) -> list[bytes]:
    """The real streams every mutation starts from (see the module docstring)."""
    y, u, v = read_yuv420(CLIP)
    coder_ans = coder_mod.Coder(ckpt.load(checkpoints, 1), "int", "ans")
    coder_rice = coder_mod.Coder(ckpt.load(checkpoints, 1), "int", "rice")
    small = [np.ascontiguousarray(p[:3, :n, :n]) for p, n in ((y, 64), (u, 32), (v, 32))]
    return [coder_ans.encode(*small, gop=2).data, coder_rice.encode(*small, gop=2).data,
            coder_ans.encode(y, u, v, gop=4).data]


def split(data: bytes) -> tuple[list, list[tuple[int, bytes]]]:
    """(header field values, frames) of a valid stream."""
    header, frames = parse_stream(data, max_pixels=1 << 62, max_output_bytes=1 << 62)
    fields = [{"float": 0, "int": 1}[header.mode], {"ans": 0, "rice": 1}[header.entropy], header.model_hash,
              header.quality, header.width, header.height, header.fps_num, header.fps_den, header.gop,
              header.frame_count]
    return fields, list(frames)


def varint(n: int, extra: int = 0) -> bytes:
    """LEB128 of n; `extra` > 0 appends that many redundant continuation bytes (a non-minimal encoding)."""
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n or extra else b)
        if not n:
            break
    for j in range(extra):
        out.append(0x80 if j < extra - 1 else 0x00)
    return bytes(out)


def assemble(fields, frames, lengths=None) -> bytes:
    """Stream bytes from header `fields` and (type, payload) `frames`, with its CRC; `lengths` overrides the
    encoded payload lengths (bytes of each frame's varint)."""
    out = bytearray(MAGIC + bytes([VERSION]))
    out += _HEADER.pack(*fields)
    for i, (ftype, payload) in enumerate(frames):
        out.append(ftype & 0xFF)
        out += lengths[i] if lengths is not None else varint(len(payload))
        out += payload
    return with_crc(bytes(out))


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _extreme(rng, bits: int) -> int:
    top = (1 << bits) - 1
    return int(rng.choice([0, 1, 2, top, top - 1, 1 << (bits - 1), int(rng.integers(0, top + 1)),
                           int(rng.integers(0, 300))])) & top


def _size(rng) -> int:
    return int(rng.choice([0, 1, 63, 64, 65, 16383, 16384, 16385, 65535, 4320, 8192, 3840, 2160,
                           int(rng.integers(1, 257)), int(rng.integers(1, 65536))]))


def make_input(bases: list[bytes], seed: int, index: int) -> tuple[str, bytes]:
    """(kind, stream bytes) of fuzz input `index`: one base stream, one mutation (see the module docstring)."""
    rng = np.random.default_rng([seed, index])
    kinds = list(KINDS)
    p = np.array([KINDS[k] for k in kinds], float)
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    data = bases[int(rng.integers(len(bases)))]
    fields, frames = split(data)
    fields = list(fields)
    n = len(frames)
    if kind == "header_field":
        for _ in range(int(rng.integers(1, 3))):
            f = int(rng.integers(len(FIELDS)))
            if FIELDS[f] == "model_hash":
                h = bytearray(fields[f])
                h[int(rng.integers(8))] ^= 1 << int(rng.integers(8))
                fields[f] = bytes(h)
            else:
                fields[f] = _extreme(rng, _BITS[FIELDS[f]])
        return kind, assemble(fields, frames)
    if kind == "frame_size":
        fields[4], fields[5] = _size(rng), _size(rng)
        return kind, assemble(fields, frames)
    if kind == "frame_count":
        fields[9] = int(rng.choice([0, n - 1, n + 1, 2 * n, MAX_FRAMES, MAX_FRAMES + 1, 2**32 - 1,
                                    int(rng.integers(1, 2**32))]))
        return kind, assemble(fields, frames)
    if kind == "frame_type":
        i = int(rng.integers(n))
        frames[i] = (int(rng.choice([frames[i][0] ^ 1, int(rng.integers(2, 256))])), frames[i][1])
        return kind, assemble(fields, frames)
    if kind == "length":
        i = int(rng.integers(n))
        true = len(frames[i][1])
        value = int(rng.choice([0, true - 1, true + 1, true + 4, 2 * true, 64 << 20, (64 << 20) + 1, 2**35 - 1,
                                int(rng.integers(0, 2**28))]))
        lengths = [varint(len(f[1])) for f in frames]
        lengths[i] = varint(max(value, 0), extra=int(rng.choice([0, 0, 0, 1, 4])))
        return kind, assemble(fields, frames, lengths)
    if kind in ("payload_flip", "payload_overwrite", "payload_resize"):
        i = int(rng.integers(n))
        b = bytearray(frames[i][1])
        if kind == "payload_flip" and b:
            for _ in range(int(rng.integers(1, 9))):
                b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
        elif kind == "payload_overwrite" and b:
            j = int(rng.integers(len(b)))
            run = int(rng.integers(1, 17))
            fill = rng.choice(3)
            new = (bytes(run) if fill == 0 else b"\xff" * run if fill == 1
                   else rng.integers(0, 256, run, dtype=np.uint8).tobytes())
            b[j:j + run] = new[:len(b) - j]
        else:
            j = int(rng.integers(len(b) + 1))
            if rng.random() < 0.5:
                b[j:j] = rng.integers(0, 256, int(rng.choice([1, 4, 8, 64])), dtype=np.uint8).tobytes()
            else:
                del b[j:j + int(rng.choice([1, 4, 8, 64]))]
        frames[i] = (frames[i][0], bytes(b))
        return kind, assemble(fields, frames)
    if kind == "splice":
        op = int(rng.integers(3))
        i, j = int(rng.integers(n)), int(rng.integers(n))
        if op == 0:
            frames.insert(j, frames[i])
        elif op == 1 and n > 1:
            del frames[i]
        else:
            frames[i], frames[j] = frames[j], frames[i]
        if rng.random() < 0.7:
            fields[9] = len(frames)
        return kind, assemble(fields, frames)
    if kind == "truncate":
        return kind, with_crc(data[:int(rng.integers(0, len(data) - 4))])
    if kind == "crafted":
        fields[4], fields[5] = int(rng.integers(1, 257)), int(rng.integers(1, 257))
        fields[8] = int(rng.integers(1, 4))
        count = int(rng.integers(1, 5))
        fields[9] = count
        ans = fields[1] == 0
        frames = []
        for t in range(count):
            size = int(rng.choice([0, 4, 8, int(rng.integers(0, 2049))]))
            size -= size % 4 if ans and rng.random() < 0.8 else 0
            frames.append((0 if t % fields[8] == 0 else 1, rng.integers(0, 256, size, dtype=np.uint8).tobytes()))
        return kind, assemble(fields, frames)
    b = bytearray(data)                                         # "raw": no CRC fix
    b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
    return kind, bytes(b)


# ------------------------------------------------------------------------------------------------ running

class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


class _EntropyProbe:
    """Replaces `coder.FrameDecoder` while the fuzz runs, counting decoders built (inputs that reach it)."""

    def __init__(self):
        self.built = 0
        self._real = coder_mod.FrameDecoder

    def __enter__(self):
        probe, real = self, self._real

        class Counting(real):
            def __init__(self, *a, **kw):
                probe.built += 1
                super().__init__(*a, **kw)

        coder_mod.FrameDecoder = Counting
        return self

    def __exit__(self, *exc):
        coder_mod.FrameDecoder = self._real


def _message_class(exc: BaseException) -> str:
    """An error message with its numbers replaced, to group similar refusals."""
    return re.sub(r"\d+", "N", str(exc))[:90]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(count: int, seed: int = 0, hang_seconds: float = 5.0, checkpoints: Path = CHECKPOINTS,
        progress: bool = False) -> dict:
    """Decode `count` fuzz inputs; returns the summary (see the module docstring for what it holds).

    Parameters
    ----------
    count : int
        Number of inputs.
    seed : int
        Input i is built from `default_rng([seed, i])`.
    hang_seconds : float
        An input still decoding after this long is stopped and counted as a hang.
    checkpoints : Path
        Checkpoint folder (the base streams are encoded with its quality 1).
    progress : bool
        Print a line every 5 000 inputs.
    """
    bases = base_streams(checkpoints)
    coders: dict = {}
    outcomes, per_kind, messages, crashes, hangs = Counter(), {}, Counter(), [], []
    slowest = {"seconds": 0.0}
    worst_mem = {"rss_increase_mb": 0.0}
    for i in range(min(count, 3)):                             # warm the coder cache before the baseline
        coder_mod.decode(bases[i], checkpoints, coders=coders)
    baseline = _rss_mb()
    times = np.empty(count)
    old = signal.signal(signal.SIGALRM, _alarm)
    t_start = time.perf_counter()
    try:
        with _EntropyProbe() as probe:
            reached = 0
            for i in range(count):
                kind, data = make_input(bases, seed, i)
                before_built, before_rss = probe.built, _rss_mb()
                t0 = time.perf_counter()
                signal.setitimer(signal.ITIMER_REAL, hang_seconds)
                try:
                    coder_mod.decode(data, checkpoints, coders=coders)
                    outcome = "decoded"
                except _Hang:
                    outcome = "hang"
                    hangs.append({"index": i, "kind": kind})
                except EdgecodecError as e:
                    outcome = "refused"
                    messages[_message_class(e)] += 1
                except Exception as e:  # noqa: BLE001 - anything else is what the fuzz looks for
                    outcome = "crash"
                    if len(crashes) < 20:
                        crashes.append({"index": i, "kind": kind, "error": f"{type(e).__name__}: {e}"[:300]})
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                dt = time.perf_counter() - t0
                times[i] = dt
                reached += probe.built > before_built
                outcomes[outcome] += 1
                per_kind.setdefault(kind, Counter())[outcome] += 1
                if dt > slowest["seconds"]:
                    slowest = {"seconds": round(dt, 4), "index": i, "kind": kind, "outcome": outcome}
                rise = _rss_mb() - before_rss
                if rise > worst_mem["rss_increase_mb"]:
                    worst_mem = {"rss_increase_mb": round(rise, 1), "index": i, "kind": kind, "outcome": outcome}
                if progress and (i + 1) % 5000 == 0:
                    print(f"{i + 1}/{count}: {dict(outcomes)}, {reached} reached the entropy decoder, "
                          f"{time.perf_counter() - t_start:.0f} s", flush=True)
    finally:
        signal.signal(signal.SIGALRM, old)
    elapsed = time.perf_counter() - t_start
    return {"count": count, "seed": seed, "hang_seconds": hang_seconds, "seconds": round(elapsed, 1),
            "inputs_per_second": round(count / elapsed, 1), "outcomes": dict(outcomes),
            "crashes": outcomes["crash"], "hangs": outcomes["hang"],
            "reached_entropy_decoder": reached, "reached_entropy_decoder_share": round(reached / count, 4),
            "per_kind": {k: dict(v) for k, v in sorted(per_kind.items())},
            "slowest_input": slowest, "seconds_per_input": {
                "median": round(float(np.median(times)), 5), "p99": round(float(np.quantile(times, 0.99)), 5),
                "max": round(float(times.max()), 4)},
            "peak_rss_mb": round(_rss_mb(), 1), "rss_after_setup_mb": round(baseline, 1),
            "worst_memory_input": worst_mem, "crash_examples": crashes, "hang_examples": hangs[:20],
            "top_refusals": dict(messages.most_common(25)),
            "base_streams": [{"bytes": len(b), "frames": split(b)[0][9], "width": split(b)[0][4],
                              "height": split(b)[0][5], "entropy": ("ans", "rice")[split(b)[0][1]]} for b in bases]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hang-seconds", type=float, default=5.0)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    r = run(args.count, args.seed, args.hang_seconds, progress=True)
    r["command"] = "python bench/decoder_fuzz.py " + " ".join(sys.argv[1:] if argv is None else argv)
    r["machine"] = {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "torch_threads": 1}
    write_json_atomic(Path(args.out), r)
    print({k: r[k] for k in ("count", "outcomes", "reached_entropy_decoder_share", "slowest_input", "peak_rss_mb",
                             "seconds")})
    return 1 if r["crashes"] or r["hangs"] else 0


if __name__ == "__main__":
    sys.exit(main())
