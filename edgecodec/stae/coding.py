"""Entropy coding of STAE's semantic data (seed 001, sections II-A and IV): the kept frames of a clip, the kept
pixels' positions in each of them and their RGB uint8 codes, as one self-describing byte stream.

Stream layout (multi-byte integers little-endian)::

    magic      4 bytes  b"STAE"
    version    u8       VERSION
    flags      u8       bit 0: one kept-pixel count shared by all frames; bit 1: mask coded as runs (else as
                        Bernoulli bits); other bits zero
    F, alpha   u16, u16 frames in the clip, kept frames (1 <= alpha <= F)
    C, H, W    u8, u16, u16
    counts     u32      the shared kept-pixel count k, or alpha of them (frame order); 0 <= k <= H*W
    transforms C x u8   per channel: 0, or j + 1 = "this channel's residual minus channel j's" (j < c)
    payload    u32 words, one constriction ANS stack (32-bit words, 24-bit models)
    crc        u32      zlib.crc32 of every byte before it

The payload holds, in decode order (every model is a fixed integer function of the header and of what was
decoded before, so a decoder anywhere reproduces it):

1. kept frames: F bits, Bernoulli(alpha / F) (absent when alpha == F);
2. masks, raster order, only frames with 0 < k < H*W (the others are all zeros / all ones):
   Bernoulli mode: H*W bits per frame, Bernoulli(k / (H*W)) (the coder is given the exact count);
   runs mode: per frame the number of runs R - 2 (alternating zero / one runs, the first zero run may be
   empty), then all zero runs (the first as its length, the others as length - 1), then all one runs
   (length - 1), each integer as a bucket b = bit_length(x) from a histogram sent just before it plus b - 1
   uniform extra bits (split in 16 + rest, as constriction's uniform models stop at 2**24).
   The encoder picks the mode with the smaller estimated size;
3. values: per channel a histogram, then every kept pixel of every frame (frame order, raster order) as the
   DPCM residual from the previous kept pixel of the same frame and channel (128 before the first), mod 256,
   optionally minus another channel's residual (transforms), zigzag-mapped to 0..255;
4. an end marker of two Uniform(256) symbols; the coder must then be empty.

Histograms are sent as log-quantized weights: the number n of entries (up to the last used symbol), then per
entry q = round(2 log2(p_max / p)) clipped to 0..30, or 31 for "unused", as zigzagged differences from the
previous entry under a fixed geometric model. A symbol's weight is isqrt(2**(48 - q)) (exact integers, so
every platform builds the same model). Decoding checks everything it can: CRC, header fields against the
caller's dimensions, counts, run sums, unused symbols, end marker, leftovers - each failure a `BitstreamError`
(a `EdgecodecError`), never a hang.
"""

from __future__ import annotations

import math
import statistics
import struct
import time
import zlib

import constriction
import numpy as np

from base.errors import BitstreamError
from base.errors import EdgecodecError
from edgecodec.entropy import check_ans_end

MAGIC = b"STAE"
VERSION = 1
_FLAG_SHARED_COUNT = 1
_FLAG_RUNS = 2
_HEADER = struct.Struct("<4sBBHHBHH")          # magic, version, flags, F, alpha, C, H, W
_ABSENT = 31                                   # histogram entry: symbol unused
_QMAX = 30
_Q_WEIGHTS = np.array([math.isqrt(1 << (48 - q)) for q in range(_QMAX + 1)] + [0], dtype=np.float64)
_DELTA_SYMBOLS = 2 * _ABSENT + 1               # zigzag(q_u - q_{u-1}), q in 0..31
_DELTA_PROBS = np.array([1 << max(0, 24 - d) for d in range(_DELTA_SYMBOLS)], dtype=np.float64)
_BUCKETS = 33                                  # bit_length of integers < 2**32
_MAX_HIST = 256
_END_MARKER = np.array([0x5E, 0xA7], dtype=np.int32)
_MAX_DIM = 0xFFFF

_M = constriction.stream.model


# ---------------------------------------------------------------------------------------------------------
# Eq. (1)


def uncoded_bytes(alpha, channels, beta, height, width) -> float:
    """Eq. (1): S = 4 * alpha * C * beta * H * W, the kept values as float32, in bytes."""
    for name, v in (("alpha", alpha), ("channels", channels), ("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise EdgecodecError(f"uncoded_bytes: {name} must be an integer >= 1, got {v!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.integer, np.floating)) \
            or not 0.0 < float(beta) <= 1.0:
        raise EdgecodecError(f"uncoded_bytes: beta must be a fraction in (0, 1], got {beta!r}")
    return 4.0 * int(alpha) * int(channels) * float(beta) * int(height) * int(width)


# ---------------------------------------------------------------------------------------------------------
# Small helpers shared by encoder and decoder


def _categorical(weights) -> object:
    return _M.Categorical(np.asarray(weights, dtype=np.float64), perfect=False)


_DELTA_MODEL = _categorical(_DELTA_PROBS)
_BUCKET_UNIFORM = _M.Uniform(_BUCKETS)


def _zigzag(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    return np.where(u & 1, -((u + 1) >> 1), u >> 1)


def _bit_length(x: np.ndarray) -> np.ndarray:
    """bit_length of non-negative int64 values < 2**53 (exact: frexp of an exactly representable integer)."""
    return np.frexp(np.asarray(x, dtype=np.int64).astype(np.float64))[1].astype(np.int64)


def _hist_q(counts: np.ndarray) -> np.ndarray:
    """Log-quantized histogram entries (int64, up to the last used symbol): 0..30, or 31 for unused."""
    counts = np.asarray(counts, dtype=np.int64)
    used = np.flatnonzero(counts)
    q = np.full(int(used[-1]) + 1, _ABSENT, dtype=np.int64)
    c = counts[used].astype(np.float64)
    q[used] = np.clip(np.rint(2.0 * np.log2(c.max() / c)), 0, _QMAX).astype(np.int64)
    return q


def _hist_model(q: np.ndarray):
    """The histogram's model, or the one used symbol (int) when only one is used: then nothing is coded."""
    used = np.flatnonzero(q != _ABSENT)
    return int(used[0]) if used.size == 1 else _categorical(_Q_WEIGHTS[q])


def _bits_under(q: np.ndarray, counts: np.ndarray) -> float:
    """Bits the symbols with these counts cost under the quantized histogram q (estimate, ignores rounding)."""
    w = _Q_WEIGHTS[q]
    p = w / w.sum()
    c = np.asarray(counts[:q.size], dtype=np.float64)
    nz = c > 0
    return float(-(c[nz] * np.log2(p[nz])).sum()) + 2.0 * q.size + 8.0


class _Parts:
    """Symbols to encode, in decode order; pushed onto the ANS stack in reverse by `finish`."""

    def __init__(self):
        self.parts: list[tuple[np.ndarray, object, np.ndarray | None]] = []

    def add(self, symbols, model, params=None) -> None:
        """Queue symbols under a model (an int model: the single possible symbol, nothing is coded)."""
        symbols = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
        if symbols.size and not isinstance(model, int):
            self.parts.append((symbols, model, params))

    def add_hist(self, q: np.ndarray, max_entries: int) -> None:
        self.add([q.size - 1], _M.Uniform(max_entries))
        prev = np.concatenate([[0], q[:-1]])
        self.add(_zigzag(q - prev), _DELTA_MODEL)

    def add_uints(self, x: np.ndarray, bucket_model) -> None:
        """Non-negative integers < 2**32: buckets (bit lengths) under `bucket_model`, then uniform extra bits."""
        x = np.asarray(x, dtype=np.int64).ravel()
        b = _bit_length(x)
        self.add(b, bucket_model)
        e = np.maximum(b - 1, 0)
        extra = np.where(b >= 2, x - (np.int64(1) << e), 0)
        lo_bits = np.minimum(e, 16)
        sel = lo_bits > 0
        self.add(extra[sel] & 0xFFFF, _M.Uniform(), (np.int64(1) << lo_bits[sel]).astype(np.int32))
        hi_bits = e - lo_bits
        sel = hi_bits > 0
        self.add(extra[sel] >> 16, _M.Uniform(), (np.int64(1) << hi_bits[sel]).astype(np.int32))

    def finish(self) -> bytes:
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(_END_MARKER, _M.Uniform(256))
        for symbols, model, params in reversed(self.parts):
            if params is None:
                coder.encode_reverse(symbols, model)
            else:
                coder.encode_reverse(symbols, model, params)
        return coder.get_compressed().astype("<u4").tobytes()


class _Reader:
    """The decoder side of `_Parts`; every constriction failure becomes a BitstreamError."""

    def __init__(self, words: np.ndarray):
        try:
            self.coder = constriction.stream.stack.AnsCoder(words)
        except Exception as e:
            raise BitstreamError(f"corrupt STAE stream: invalid ANS payload ({e})") from e

    def read(self, n: int, model, params=None) -> np.ndarray:
        if n == 0:
            return np.empty(0, dtype=np.int64)
        if isinstance(model, int):
            return np.full(n, model, dtype=np.int64)
        try:
            out = self.coder.decode(model, n) if params is None else self.coder.decode(model, params)
        except Exception as e:
            raise BitstreamError(f"corrupt STAE stream: ANS decoding failed ({e})") from e
        return np.asarray(out, dtype=np.int64)

    def read_hist(self, max_entries: int, what: str) -> np.ndarray:
        n = int(self.read(1, _M.Uniform(max_entries))[0]) + 1
        q = np.cumsum(_unzigzag(self.read(n, _DELTA_MODEL)))
        if q.min() < 0 or q.max() > _ABSENT or q[-1] == _ABSENT:
            raise BitstreamError(f"corrupt STAE stream: invalid {what} histogram")
        return q

    def read_uints(self, n: int, bucket_model, nbuckets: int, q: np.ndarray | None = None) -> np.ndarray:
        b = self.read(n, bucket_model)
        if b.size and b.max() >= nbuckets:
            raise BitstreamError("corrupt STAE stream: integer bucket out of range")
        if q is not None and b.size and np.any(q[b] == _ABSENT):
            raise BitstreamError("corrupt STAE stream: an unused run-length bucket was decoded")
        e = np.maximum(b - 1, 0)
        lo_bits = np.minimum(e, 16)
        hi_bits = e - lo_bits
        extra = np.zeros(b.size, dtype=np.int64)
        sel = np.flatnonzero(lo_bits > 0)
        extra[sel] = self.read(sel.size, _M.Uniform(), (np.int64(1) << lo_bits[sel]).astype(np.int32))
        sel = np.flatnonzero(hi_bits > 0)
        extra[sel] |= self.read(sel.size, _M.Uniform(), (np.int64(1) << hi_bits[sel]).astype(np.int32)) << 16
        return np.where(b == 0, 0, (np.int64(1) << e) + extra)

    def close(self) -> None:
        check_ans_end(self.coder, _END_MARKER, "STAE stream")


def _bernoulli():
    return _M.Bernoulli(perfect=False)


# ---------------------------------------------------------------------------------------------------------
# Input checks


def _int_array(a, what: str) -> np.ndarray:
    try:
        arr = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a)
    except Exception as e:
        raise EdgecodecError(f"{what} is not an array: {e}") from None
    return arr


def _check_inputs(frame_idx, mask, values, frames_total):
    if isinstance(frames_total, bool) or not isinstance(frames_total, (int, np.integer)) \
            or not 1 <= frames_total <= _MAX_DIM:
        raise EdgecodecError(f"frames_total must be an integer in 1..{_MAX_DIM}, got {frames_total!r}")
    f_total = int(frames_total)
    idx = _int_array(frame_idx, "frame_idx")
    if idx.ndim != 1 or idx.size == 0 or not (np.issubdtype(idx.dtype, np.integer)):
        raise EdgecodecError(f"frame_idx must be a non-empty 1-D integer array (alpha,), got shape {idx.shape} "
                        f"dtype {idx.dtype}")
    idx = idx.astype(np.int64)
    if idx.min() < 0 or idx.max() >= f_total or np.any(np.diff(idx) <= 0):
        raise EdgecodecError(f"frame_idx must be strictly increasing indices in 0..{f_total - 1}, got {idx.tolist()}")
    alpha = idx.size
    vals = _int_array(values, "values")
    if vals.ndim != 4 or vals.shape[0] != alpha:
        raise EdgecodecError(f"values must have shape (alpha={alpha}, C, H, W), got {vals.shape}")
    if not np.issubdtype(vals.dtype, np.integer):
        raise EdgecodecError(f"values must be uint8 codes (integer dtype, 0..255), got dtype {vals.dtype}; "
                        "quantize first, e.g. round(x * 255)")
    _, c, h, w = vals.shape
    if not 1 <= c <= 255 or not 1 <= h <= _MAX_DIM or not 1 <= w <= _MAX_DIM:
        raise EdgecodecError(f"values: need 1 <= C <= 255 and 1 <= H, W <= {_MAX_DIM}, got C={c}, H={h}, W={w}")
    m = _int_array(mask, "mask")
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.shape != (alpha, h, w):
        raise EdgecodecError(f"mask must have shape (alpha, 1, H, W) or (alpha, H, W) = ({alpha}, {h}, {w}), "
                        f"got {tuple(np.shape(mask))}")
    if m.dtype != bool:
        if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)) \
                or not np.all((m == 0) | (m == 1)):
            raise EdgecodecError("mask must hold only 0 and 1 (or booleans)")
    m = m.astype(bool)
    kept = vals.transpose(0, 2, 3, 1)[m]                       # (K, C), frame order then raster order
    if kept.size and (int(kept.min()) < 0 or int(kept.max()) > 255):
        raise EdgecodecError(f"kept values must be uint8 codes 0..255, got range [{int(kept.min())}, {int(kept.max())}]")
    return f_total, idx, m, kept.astype(np.int64), (c, h, w)


# ---------------------------------------------------------------------------------------------------------
# Masks


def _runs(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(zero-run values, one-run values) of one raster-order mask: first zero run as length, others length - 1."""
    n = bits.size
    cuts = np.flatnonzero(np.diff(bits.astype(np.int8))) + 1
    lengths = np.diff(np.concatenate([[0], cuts, [n]]))
    if bits[0]:
        lengths = np.concatenate([[0], lengths])
    zeros, ones = lengths[0::2].copy(), lengths[1::2] - 1
    zeros[1:] -= 1
    return zeros, ones


def _bucket_counts(x: np.ndarray) -> np.ndarray:
    return np.bincount(_bit_length(x), minlength=_BUCKETS)


def _entropy_bits(p: float) -> float:
    return 0.0 if p <= 0.0 or p >= 1.0 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def _code_masks(parts: _Parts, masks: np.ndarray, counts: np.ndarray) -> bool:
    """Add the masks of the frames with 0 < k < H*W; returns True when runs mode was chosen."""
    n = masks.shape[1] * masks.shape[2]
    active = [f for f in range(masks.shape[0]) if 0 < counts[f] < n]
    if not active:
        return False
    flat = masks.reshape(masks.shape[0], n)
    bern_bits = sum(n * _entropy_bits(counts[f] / n) for f in active)
    runs = [_runs(flat[f]) for f in active]
    zeros = np.concatenate([z for z, _ in runs])
    ones = np.concatenate([o for _, o in runs])
    nruns = np.array([z.size + o.size - 2 for z, o in runs], dtype=np.int64)
    zc, oc = _bucket_counts(zeros), _bucket_counts(ones)
    qz, qo = _hist_q(zc), _hist_q(oc)
    extra = float(np.maximum(np.floor(np.log2(np.maximum(np.concatenate([zeros, ones]), 1))), 0).sum())
    run_bits = (_bits_under(qz, zc) + _bits_under(qo, oc) + extra
                + sum(math.log2(_BUCKETS) + max(0, int(r).bit_length() - 1) for r in nruns))
    if run_bits < bern_bits:
        parts.add_uints(nruns, _BUCKET_UNIFORM)
        parts.add_hist(qz, _BUCKETS)
        parts.add_hist(qo, _BUCKETS)
        parts.add_uints(zeros, _hist_model(qz))
        parts.add_uints(ones, _hist_model(qo))
        return True
    for f in active:
        parts.add(flat[f], _M.Bernoulli(float(counts[f]) / float(n), perfect=False))
    return False


def _read_masks(reader: _Reader, alpha: int, h: int, w: int, counts: np.ndarray, runs_mode: bool) -> np.ndarray:
    n = h * w
    masks = np.zeros((alpha, n), dtype=np.uint8)
    active = []
    for f in range(alpha):
        if counts[f] == n:
            masks[f] = 1
        elif counts[f] > 0:
            active.append(f)
    if not active:
        if runs_mode:
            raise BitstreamError("corrupt STAE stream: runs mode flagged but no mask needs coding")
        return masks
    if not runs_mode:
        for f in active:
            bits = reader.read(n, _M.Bernoulli(float(counts[f]) / float(n), perfect=False))
            if int(bits.sum()) != counts[f]:
                raise BitstreamError(f"corrupt STAE stream: frame {f} mask has {int(bits.sum())} kept pixels, "
                                     f"header says {int(counts[f])}")
            masks[f] = bits
        return masks
    nruns = reader.read_uints(len(active), _BUCKET_UNIFORM, _BUCKETS) + 2
    if nruns.max() > n + 1:
        raise BitstreamError("corrupt STAE stream: more mask runs than pixels")
    qz = reader.read_hist(_BUCKETS, "zero-run")
    qo = reader.read_hist(_BUCKETS, "one-run")
    nz = (nruns + 1) // 2
    no = nruns // 2
    zeros = reader.read_uints(int(nz.sum()), _hist_model(qz), qz.size, qz)
    ones = reader.read_uints(int(no.sum()), _hist_model(qo), qo.size, qo)
    zpos, opos = 0, 0
    for f, r, a, b in zip(active, nruns.tolist(), nz.tolist(), no.tolist()):
        lengths = np.empty(r, dtype=np.int64)
        lengths[0::2] = zeros[zpos:zpos + a] + 1
        lengths[0] -= 1
        lengths[1::2] = ones[opos:opos + b] + 1
        zpos, opos = zpos + a, opos + b
        if int(lengths.sum()) != n or int(lengths[1::2].sum()) != counts[f]:
            raise BitstreamError(f"corrupt STAE stream: frame {f} mask runs do not add up to {n} pixels with "
                                 f"{int(counts[f])} kept")
        masks[f] = np.repeat(np.arange(r, dtype=np.int64) & 1, lengths)
    return masks


# ---------------------------------------------------------------------------------------------------------
# Values


def _residuals(kept: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """DPCM residuals mod 256 (K, C): previous kept pixel of the same frame, 128 before each frame's first."""
    prev = np.empty_like(kept)
    prev[1:] = kept[:-1]
    prev[starts] = 128
    return (kept - prev) & 255


def _choose_transforms(res: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Per channel the transform (0, or j + 1 to subtract channel j's residual) with the lowest empirical entropy."""
    c = res.shape[1]
    out = np.empty_like(res)
    choice = []
    for ch in range(c):
        best, best_bits, best_sym = 0, math.inf, None
        for t in range(ch + 1):
            sym = res[:, ch] if t == 0 else (res[:, ch] - res[:, t - 1]) & 255
            counts = np.bincount(sym, minlength=256)
            nz = counts[counts > 0].astype(np.float64)
            bits = float(-(nz * np.log2(nz / sym.size)).sum())
            if bits < best_bits - 1e-9:
                best, best_bits, best_sym = t, bits, sym
        choice.append(best)
        out[:, ch] = best_sym
    return choice, out


def _to_u(s: np.ndarray) -> np.ndarray:
    return _zigzag(np.where(s < 128, s, s - 256))


def _from_u(u: np.ndarray) -> np.ndarray:
    return _unzigzag(u) & 255


# ---------------------------------------------------------------------------------------------------------
# Public API


def encode_semantic(frame_idx, mask, values_uint8, frames_total) -> bytes:
    """Entropy-code STAE's selection into one byte stream (see the module docstring for the layout).

    Parameters
    ----------
    frame_idx : array_like of int
        Kept frame indices (alpha,), strictly increasing, in 0..frames_total-1.
    mask : array_like
        Kept pixels (alpha, 1, H, W) or (alpha, H, W), only 0 / 1 (any count per frame).
    values_uint8 : array_like of int
        (alpha, C, H, W) uint8 codes; only the kept positions are read (zero-filled input is fine).
    frames_total : int
        F, the number of frames in the clip.

    Returns
    -------
    bytes
        The stream; ``len()`` of it is what is transmitted.
    """
    f_total, idx, masks, kept, (c, h, w) = _check_inputs(frame_idx, mask, values_uint8, frames_total)
    alpha = idx.size
    counts = masks.reshape(alpha, -1).sum(axis=1).astype(np.int64)
    shared = bool(np.all(counts == counts[0]))
    parts = _Parts()
    if alpha < f_total:
        member = np.zeros(f_total, dtype=np.int32)
        member[idx] = 1
        parts.add(member, _M.Bernoulli(alpha / f_total, perfect=False))
    runs_mode = _code_masks(parts, masks, counts)
    transforms = [0] * c
    if kept.shape[0]:
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        starts = starts[counts > 0]
        transforms, sym = _choose_transforms(_residuals(kept, starts))
        u = _to_u(sym)
        qs = [_hist_q(np.bincount(u[:, ch], minlength=256)) for ch in range(c)]
        for q in qs:
            parts.add_hist(q, _MAX_HIST)
        for ch, q in enumerate(qs):
            parts.add(u[:, ch], _hist_model(q))
    try:
        payload = parts.finish()
    except Exception as e:                     # constriction refusing a model would be a bug here
        raise EdgecodecError(f"STAE entropy encoding failed: {e}") from e
    flags = (_FLAG_SHARED_COUNT if shared else 0) | (_FLAG_RUNS if runs_mode else 0)
    head = _HEADER.pack(MAGIC, VERSION, flags, f_total, alpha, c, h, w)
    head += struct.pack(f"<{1 if shared else alpha}I", *(counts[:1] if shared else counts).tolist())
    head += bytes(transforms)
    body = head + payload
    return body + struct.pack("<I", zlib.crc32(body))


def decode_semantic(data, frames_total, channels, height, width):
    """Decode a stream written by `encode_semantic`.

    Parameters
    ----------
    data : bytes
        The stream.
    frames_total, channels, height, width : int
        The dimensions the receiver expects; the header must match them.

    Returns
    -------
    frame_idx : np.ndarray
        int64 (alpha,), increasing.
    mask : np.ndarray
        uint8 (alpha, 1, H, W) of 0 / 1.
    x : np.ndarray
        uint8 (alpha, C, H, W): the kept values, zeros elsewhere.

    Raises
    ------
    EdgecodecError
        (`BitstreamError`) when the stream is truncated, corrupt or does not match the dimensions.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EdgecodecError(f"decode_semantic needs bytes, got {type(data).__name__}")
    for name, v in (("frames_total", frames_total), ("channels", channels), ("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise EdgecodecError(f"decode_semantic: {name} must be an integer >= 1, got {v!r}")
    data = bytes(data)
    if len(data) < _HEADER.size + 4 + 4:
        raise BitstreamError(f"STAE stream of {len(data)} bytes is too short (truncated?)")
    if data[:4] != MAGIC:
        raise BitstreamError(f"not a STAE stream (magic {data[:4]!r}, expected {MAGIC!r})")
    if data[4] != VERSION:
        raise BitstreamError(f"unsupported STAE stream version {data[4]} (this decoder reads {VERSION})")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise BitstreamError("STAE stream CRC mismatch (corrupt or truncated data)")
    _, _, flags, f_total, alpha, c, h, w = _HEADER.unpack_from(body)
    want = (frames_total, channels, height, width)
    if (f_total, c, h, w) != tuple(int(v) for v in want):
        raise BitstreamError(f"STAE stream is for F={f_total}, C={c}, H={h}, W={w}; the receiver expects "
                             f"F={frames_total}, C={channels}, H={height}, W={width}")
    if flags & ~(_FLAG_SHARED_COUNT | _FLAG_RUNS):
        raise BitstreamError(f"STAE stream has unknown flags {flags:#x}")
    if not 1 <= alpha <= f_total or c < 1 or h < 1 or w < 1:
        raise BitstreamError(f"STAE stream header out of range: alpha={alpha}, F={f_total}, C={c}, H={h}, W={w}")
    pos = _HEADER.size
    ncounts = 1 if flags & _FLAG_SHARED_COUNT else alpha
    if len(body) < pos + 4 * ncounts + c:
        raise BitstreamError("STAE stream truncated inside its header")
    counts = np.array(struct.unpack_from(f"<{ncounts}I", body, pos), dtype=np.int64)
    counts = np.broadcast_to(counts, (alpha,)).copy()
    pos += 4 * ncounts
    transforms = list(body[pos:pos + c])
    pos += c
    n = h * w
    if counts.max() > n:
        raise BitstreamError(f"STAE stream: kept-pixel count {int(counts.max())} exceeds H*W = {n}")
    if any(t > ch for ch, t in enumerate(transforms)):
        raise BitstreamError(f"STAE stream: invalid channel transforms {transforms}")
    payload = body[pos:]
    if len(payload) == 0 or len(payload) % 4:
        raise BitstreamError(f"STAE payload of {len(payload)} bytes is not a whole number of 32-bit words")
    reader = _Reader(np.frombuffer(payload, dtype="<u4").astype(np.uint32))

    if alpha < f_total:
        member = reader.read(f_total, _M.Bernoulli(alpha / f_total, perfect=False))
        idx = np.flatnonzero(member).astype(np.int64)
        if idx.size != alpha:
            raise BitstreamError(f"corrupt STAE stream: {idx.size} kept frames decoded, header says {alpha}")
    else:
        idx = np.arange(alpha, dtype=np.int64)
    masks = _read_masks(reader, alpha, h, w, counts, bool(flags & _FLAG_RUNS))
    total = int(counts.sum())
    x = np.zeros((alpha, h, w, c), dtype=np.uint8)
    if total:
        qs = [reader.read_hist(_MAX_HIST, f"channel {ch}") for ch in range(c)]
        res = np.empty((total, c), dtype=np.int64)
        for ch, q in enumerate(qs):
            u = reader.read(total, _hist_model(q))
            if u.max() >= q.size or np.any(q[u] == _ABSENT):
                raise BitstreamError(f"corrupt STAE stream: channel {ch} decoded a symbol its histogram marks unused")
            s = _from_u(u)
            t = transforms[ch]
            res[:, ch] = s if t == 0 else (s + res[:, t - 1]) & 255
        vals = np.empty_like(res)
        start = 0
        for k in counts.tolist():
            if k:
                vals[start:start + k] = (128 + np.cumsum(res[start:start + k], axis=0)) & 255
            start += k
        x[masks.reshape(alpha, h, w).astype(bool)] = vals.astype(np.uint8)
    reader.close()
    return idx, masks.reshape(alpha, 1, h, w), np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def time_coding(frame_idx, mask, values_uint8, frames_total, repeats: int = 5) -> dict:
    """Encode and decode seconds (medians of `repeats` runs) for the timing model (t_EE, t_ED of eq. 3).

    Returns
    -------
    dict
        ``{"encode_s", "decode_s", "bytes", "repeats"}``; the decode is checked against the input.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise EdgecodecError(f"time_coding: repeats must be an integer >= 1, got {repeats!r}")
    _, idx, masks, _, (c, h, w) = _check_inputs(frame_idx, mask, values_uint8, frames_total)
    enc, dec = [], []
    data = b""
    for _ in range(int(repeats)):
        t0 = time.perf_counter()
        data = encode_semantic(frame_idx, mask, values_uint8, frames_total)
        t1 = time.perf_counter()
        out_idx, out_mask, _ = decode_semantic(data, frames_total, c, h, w)
        t2 = time.perf_counter()
        enc.append(t1 - t0)
        dec.append(t2 - t1)
    if not (np.array_equal(out_idx, idx) and np.array_equal(out_mask[:, 0].astype(bool), masks)):
        raise EdgecodecError("time_coding: decoded selection differs from the input (coder bug)")
    return {"encode_s": statistics.median(enc), "decode_s": statistics.median(dec), "bytes": len(data),
            "repeats": int(repeats)}
