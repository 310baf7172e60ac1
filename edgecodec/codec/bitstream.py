"""The edgecodec bitstream file: a fixed header, the coded frames and a CRC-32.

Layout (all multi-byte integers little-endian)::

    magic       4 bytes  b"EGVC"
    version     u8       VERSION
    header      struct "<BB8sBHHIIHI": mode (0 float, 1 int), entropy (0 ans, 1 rice), model_hash (8 bytes),
                quality, width, height, fps_num, fps_den, gop, frame_count
    frames      frame_count times: type u8 (0 = I, 1 = P), payload length (LEB128, minimal, at most
                5 bytes, <= 64 MiB), payload
    crc         u32      zlib.crc32 of every byte before it

`read_stream` / `parse_stream` validate in a fixed order, each failure a `BitstreamError` with its own message:
too short / wrong magic, unsupported version, truncated, CRC mismatch, header fields out of range, decoder
limits (width x height above `max_pixels`, decoded output above `max_output_bytes`), malformed frame, frame
count mismatch, first frame not an I-frame, I-frames not exactly at multiples of gop, trailing bytes.

Memory: the decoder limits are checked from the header alone, before any frame is split or decoded. Splitting
stops at the end of the data or after frame_count + 1 frames, so it never holds more than the stream's own bytes
plus one small (type, payload) tuple per frame; a payload length is checked against the bytes that remain.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from base.errors import BitstreamError
from base.files import write_bytes_atomic

MAGIC = b"EGVC"
VERSION = 3                               # 2: forward-adaptive motion prior; 3: block search, block-constant MC, conditional P (coder.py)
FRAME_I, FRAME_P = 0, 1
MAX_PAYLOAD = 64 * 1024 * 1024            # bytes per frame payload
MAX_DIM = 16384
MAX_FRAMES = 1_000_000
DEFAULT_MAX_PIXELS = 3840 * 2160          # decoder: width x height (4K UHD); the decoder works at ~450 B/pixel
DEFAULT_MAX_OUTPUT_BYTES = 4 << 30        # decoder: all decoded frames together (8-bit 4:2:0, held in memory)
_MAX_VARINT_BYTES = 5                     # LEB128 of MAX_PAYLOAD needs 4

_HEADER = struct.Struct("<BB8sBHHIIHI")
_PREFIX = len(MAGIC) + 1                  # magic + version byte
_MIN_SIZE = _PREFIX + _HEADER.size + 4    # a stream with no frame bytes at all (still invalid: frame_count >= 1)
_MODES = {"float": 0, "int": 1}
_ENTROPIES = {"ans": 0, "rice": 1}


@dataclass(frozen=True)
class StreamHeader:
    """The stream-level parameters stored in the file header.

    Attributes
    ----------
    version : int
        Container version (must be `VERSION`).
    mode : str
        "float" or "int": which decoder (float reference or integer model) produced the stream.
    entropy : str
        "ans" or "rice": how frame payloads are entropy coded.
    model_hash : bytes
        Exactly 8 bytes identifying the model weights and tables (see `model_hash`).
    quality : int
        Quality index, 0..255.
    width, height : int
        Original frame size before padding, 1..16384 each.
    fps_num, fps_den : int
        Frame rate as a fraction, u32 each, both > 0.
    gop : int
        I-frame period, 1..65535: frame i is an I-frame exactly when i % gop == 0.
    frame_count : int
        Number of frames, 1..1_000_000.
    """

    version: int
    mode: str
    entropy: str
    model_hash: bytes
    quality: int
    width: int
    height: int
    fps_num: int
    fps_den: int
    gop: int
    frame_count: int


def model_hash(*chunks: bytes) -> bytes:
    """First 8 bytes of the SHA-256 over `chunks` (concatenated), for `StreamHeader.model_hash`."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(bytes(c))
    return h.digest()[:8]


def _header_problem(h: StreamHeader) -> str | None:
    """The first out-of-range header field as a message, or None when the header is valid."""
    def is_int(x):
        return isinstance(x, int) and not isinstance(x, bool)

    if not is_int(h.version) or h.version != VERSION:
        return f"unsupported version {h.version!r} (this reader supports {VERSION})"
    if h.mode not in _MODES:
        return f"header field mode={h.mode!r} out of range (expected one of {sorted(_MODES)})"
    if h.entropy not in _ENTROPIES:
        return f"header field entropy={h.entropy!r} out of range (expected one of {sorted(_ENTROPIES)})"
    if not isinstance(h.model_hash, (bytes, bytearray)) or len(h.model_hash) != 8:
        return f"header field model_hash must be exactly 8 bytes, got {h.model_hash!r}"
    limits = {"quality": (0, 255), "width": (1, MAX_DIM), "height": (1, MAX_DIM),
              "fps_num": (1, 2**32 - 1), "fps_den": (1, 2**32 - 1), "gop": (1, 65535),
              "frame_count": (1, MAX_FRAMES)}
    for name, (lo, hi) in limits.items():
        v = getattr(h, name)
        if not is_int(v) or not lo <= v <= hi:
            return f"header field {name}={v!r} out of range [{lo}, {hi}]"
    return None


def decoded_bytes(width: int, height: int, frames: int = 1) -> int:
    """Bytes of `frames` decoded 8-bit 4:2:0 frames of `width` x `height` (chroma ceil(w/2) x ceil(h/2))."""
    return frames * (width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2))


def _limits_problem(h: StreamHeader, max_pixels: int, max_output_bytes: int) -> str | None:
    """The decoder limit a (range-checked) header exceeds, as a message, or None."""
    if h.width * h.height > max_pixels:
        return (f"frame size {h.width}x{h.height} = {h.width * h.height} pixels exceeds the decoder limit of "
                f"{max_pixels} pixels (raise it with --max-pixels if this stream is trusted)")
    total = decoded_bytes(h.width, h.height, h.frame_count)
    if total > max_output_bytes:
        return (f"{h.frame_count} frames of {h.width}x{h.height} decode to {total} bytes, above the decoder "
                f"limit of {max_output_bytes} bytes of decoded frames (--max-output-bytes)")
    return None


def _frames_problem(frames, gop: int, frame_count: int) -> str | None:
    """The first problem with the frame list (count, I-frame placement) as a message, or None."""
    if len(frames) != frame_count:
        held = len(frames) if len(frames) < frame_count else f"more than {frame_count}"
        return f"frame count mismatch: header says {frame_count}, stream holds {held}"
    if frames[0][0] != FRAME_I:
        return f"first frame is not an I-frame (type {frames[0][0]})"
    for i, (ftype, _) in enumerate(frames):
        if (ftype == FRAME_I) != (i % gop == 0):
            kind = "I" if ftype == FRAME_I else "P"
            return f"frame {i} is a {kind}-frame but I-frames must sit exactly at multiples of gop={gop}"
    return None


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_stream(header: StreamHeader, frames: list[tuple[int, bytes]]) -> bytes:
    """The complete bitstream bytes for `header` and `frames` (see the module docstring for the layout).

    Raises
    ------
    ValueError
        If the header is out of range or the frames do not match it (count, types, I-frame placement, size).
    """
    problem = _header_problem(header)
    if problem is None:
        for i, fr in enumerate(frames):
            if not (isinstance(fr, tuple) and len(fr) == 2 and fr[0] in (FRAME_I, FRAME_P)
                    and isinstance(fr[1], (bytes, bytearray, memoryview))):
                problem = f"frame {i} must be a (type in {{0, 1}}, bytes) tuple, got {type(fr).__name__}"
                break
            if len(fr[1]) > MAX_PAYLOAD:
                problem = f"frame {i} payload of {len(fr[1])} bytes exceeds the {MAX_PAYLOAD}-byte limit"
                break
        else:
            problem = _frames_problem(frames, header.gop, header.frame_count)
    if problem is not None:
        raise ValueError(f"cannot write bitstream: {problem}")
    out = bytearray(MAGIC)
    out.append(VERSION)
    out += _HEADER.pack(_MODES[header.mode], _ENTROPIES[header.entropy], bytes(header.model_hash),
                        header.quality, header.width, header.height, header.fps_num, header.fps_den,
                        header.gop, header.frame_count)
    for ftype, payload in frames:
        out.append(ftype)
        out += _varint(len(payload))
        out += payload
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def write_stream(path, header: StreamHeader, frames: list[tuple[int, bytes]]) -> Path:
    """Write the bitstream to `path` atomically (`<name>.tmp`, then a rename); returns the path."""
    return write_bytes_atomic(Path(path), encode_stream(header, frames))


def parse_stream(data, check_crc: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES) -> tuple[StreamHeader, list[tuple[int, bytes]]]:
    """Validate and split bitstream bytes into its header and (type, payload) frames.

    Parameters
    ----------
    data : bytes-like
        The whole stream.
    check_crc : bool
        Verify the trailing CRC-32 (tests turn it off to reach the deeper checks with corrupted data).
    max_pixels : int
        Largest width x height accepted (the decoder's working memory grows with it).
    max_output_bytes : int
        Largest size of all decoded frames together (`decoded_bytes` of the header).

    Raises
    ------
    BitstreamError
        On the first failed check, in the order listed in the module docstring.
    """
    data = bytes(data)
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise BitstreamError(f"not an edgecodec bitstream (magic {data[:len(MAGIC)]!r}, expected {MAGIC!r})")
    if len(data) < _PREFIX:
        raise BitstreamError("truncated bitstream: no version byte after the magic")
    if data[len(MAGIC)] != VERSION:
        raise BitstreamError(f"unsupported bitstream version {data[len(MAGIC)]} (this reader supports {VERSION})")
    if len(data) < _MIN_SIZE:
        raise BitstreamError(f"truncated bitstream: {len(data)} bytes, a header and CRC need {_MIN_SIZE}")
    body_end = len(data) - 4
    if check_crc:
        stored, = struct.unpack_from("<I", data, body_end)
        actual = zlib.crc32(data[:body_end])
        if stored != actual:
            raise BitstreamError(f"corrupt: CRC mismatch (stored {stored:08x}, computed {actual:08x})")
    mode, entropy, mhash, quality, width, height, fps_num, fps_den, gop, frame_count = \
        _HEADER.unpack_from(data, _PREFIX)
    modes = {v: k for k, v in _MODES.items()}
    entropies = {v: k for k, v in _ENTROPIES.items()}
    if mode not in modes:
        raise BitstreamError(f"header field mode={mode} out of range (expected 0 float or 1 int)")
    if entropy not in entropies:
        raise BitstreamError(f"header field entropy={entropy} out of range (expected 0 ans or 1 rice)")
    header = StreamHeader(VERSION, modes[mode], entropies[entropy], mhash, quality, width, height,
                          fps_num, fps_den, gop, frame_count)
    problem = _header_problem(header) or _limits_problem(header, max_pixels, max_output_bytes)
    if problem is not None:
        raise BitstreamError(problem)

    frames: list[tuple[int, bytes]] = []
    pos = _PREFIX + _HEADER.size
    malformed = None
    while pos < body_end:
        try:
            ftype, payload, pos = _parse_frame(data, pos, body_end, len(frames))
        except BitstreamError as e:
            malformed = e
            break
        frames.append((ftype, payload))
        if len(frames) > frame_count:   # no need to split (and hold) more of them
            break
    if malformed is not None and len(frames) < frame_count:
        raise malformed
    problem = _frames_problem(frames, gop, frame_count) if frames else \
        f"frame count mismatch: header says {frame_count}, stream holds 0"
    if problem is not None:
        frame_bytes = body_end - _PREFIX - _HEADER.size
        capacity = frame_bytes // 2                     # a frame needs at least a type byte and a length byte
        if problem.startswith("frame count mismatch") and frame_count > capacity:
            problem += f" (its {frame_bytes} frame bytes cannot hold more than {capacity} frames)"
        raise BitstreamError(problem)
    if malformed is not None:       # whole frames up to frame_count, then bytes that are no frame
        raise BitstreamError(f"trailing bytes after the last frame ({body_end - pos} bytes before the CRC)")
    return header, frames


def _parse_frame(data: bytes, pos: int, end: int, index: int) -> tuple[int, bytes, int]:
    """One frame at `pos` (before `end`): (type, payload, position after it)."""
    ftype = data[pos]
    if ftype not in (FRAME_I, FRAME_P):
        raise BitstreamError(f"frame {index}: bad frame type {ftype} (expected 0 = I or 1 = P)")
    pos += 1
    length = shift = 0
    for nbytes in range(1, _MAX_VARINT_BYTES + 1):
        if pos >= end:
            raise BitstreamError(f"truncated frame {index}: payload length cut off")
        b = data[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if b == 0 and nbytes > 1:
                raise BitstreamError(f"frame {index}: non-minimal payload length encoding")
            break
    else:
        raise BitstreamError(f"frame {index}: payload length varint longer than {_MAX_VARINT_BYTES} bytes")
    if length > MAX_PAYLOAD:
        raise BitstreamError(f"frame {index}: payload length {length} exceeds the {MAX_PAYLOAD}-byte limit")
    if length > end - pos:
        raise BitstreamError(f"truncated frame {index}: payload length {length} but only {end - pos} bytes remain")
    return ftype, data[pos:pos + length], pos + length


def read_stream(path_or_bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES) -> tuple[StreamHeader, list[tuple[int, bytes]]]:
    """Read and fully validate a bitstream from a path or from bytes (see `parse_stream`)."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    else:
        try:
            data = Path(path_or_bytes).read_bytes()
        except OSError as e:
            raise BitstreamError(f"cannot read bitstream {path_or_bytes}: {e}") from e
    return parse_stream(data, check_crc=True, max_pixels=max_pixels, max_output_bytes=max_output_bytes)
