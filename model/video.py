"""Video I/O for training and verification: Y4M (8-bit 4:2:0, any size) read/write, other containers through
PyAV, and the BT.601 full-range RGB <-> YUV 4:2:0 conversion the codec's RGB metrics use."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from base.errors import EdgecodecError
from base.files import atomic_path

_OK_420 = {"420", "420jpeg", "420paldv", "420mpeg2"}      # every 8-bit 4:2:0 variant (siting differs only)
_MARKER = b"FRAME\n"


@dataclass(frozen=True)
class Y4MHeader:
    width: int
    height: int
    fps: str
    colorspace: str
    header_bytes: int

    @property
    def chroma_size(self) -> tuple[int, int]:
        """(height, width) of each chroma plane: ceil(H/2) x ceil(W/2)."""
        return (self.height + 1) // 2, (self.width + 1) // 2

    @property
    def frame_bytes(self) -> int:
        ch, cw = self.chroma_size
        return self.width * self.height + 2 * ch * cw


def _convert_hint(path: Path) -> str:
    out = path.with_name(path.stem + "_yuv420p.y4m")
    return f"ffmpeg -i {shlex.quote(str(path))} -pix_fmt yuv420p {shlex.quote(str(out))}"


def _describe(cs: str) -> str:
    m = re.fullmatch(r"(420|422|444|411|440|mono)p?(\d*)(.*)", cs)
    if not m:
        return "of an unknown format"
    sub, bits, rest = m.groups()
    kind = "monochrome" if sub == "mono" else ":".join(sub)
    alpha = " with alpha" if "alpha" in rest else ""
    return f"{bits or 8}-bit {kind}{alpha}"


def read_header(path: Path) -> Y4MHeader:
    """Parse and check the Y4M stream header: 8-bit 4:2:0 only (odd sizes allowed)."""
    path = Path(path)
    if not path.is_file():
        raise EdgecodecError(f"video not found: {path}")
    with open(path, "rb") as f:
        line = f.readline(4096)
    if not line.startswith(b"YUV4MPEG2 ") or not line.endswith(b"\n"):
        raise EdgecodecError(f"{path}: not a Y4M file (missing 'YUV4MPEG2' header); only Y4M 4:2:0 8-bit is supported here")
    tags = {t[:1]: t[1:] for t in line.decode("ascii", "replace").split()[1:]}
    try:
        width, height = int(tags["W"]), int(tags["H"])
    except (KeyError, ValueError):
        raise EdgecodecError(f"{path}: Y4M header lacks a valid W/H tag") from None
    cs = tags.get("C", "420jpeg")
    if cs not in _OK_420:
        raise EdgecodecError(f"{path}: Y4M colour space C{cs} is not supported (the file is {_describe(cs)}); "
                        f"only 8-bit 4:2:0 is; convert it with: {_convert_hint(path)}")
    if width <= 0 or height <= 0:
        raise EdgecodecError(f"{path}: frame size {width}x{height} must be positive")
    return Y4MHeader(width, height, tags.get("F", "?"), cs, len(line))


def _read(path: Path, max_frames: int | None, start: int, chroma: bool) -> tuple[np.ndarray, ...]:
    """Planes of frames start.. of a Y4M file, into arrays preallocated from the file size."""
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise EdgecodecError(f"{path}: max_frames={max_frames!r} must be a positive integer or None")
    if not isinstance(start, int) or start < 0:
        raise EdgecodecError(f"{path}: start={start!r} must be a non-negative integer")
    hdr = read_header(path)
    (h, w), (ch, cw), fsize = (hdr.height, hdr.width), hdr.chroma_size, hdr.frame_bytes
    file_size = path.stat().st_size
    bound = max(0, (file_size - hdr.header_bytes) // (len(_MARKER) + fsize) - start)  # markers are >= 6 bytes
    cap = bound if max_frames is None else min(bound, max_frames)
    y = np.empty((cap, h, w), np.uint8)
    u, v = (np.empty((cap, ch, cw), np.uint8) for _ in range(2)) if chroma else (None, None)
    n = index = 0
    with open(path, "rb") as f:
        f.seek(hdr.header_bytes)
        while max_frames is None or n < max_frames:
            marker = f.readline(1024)
            if not marker:
                break
            if not marker.startswith(b"FRAME"):
                raise EdgecodecError(f"{path}: corrupt Y4M, expected FRAME marker at frame {index}")
            if index < start:
                have = min(fsize, file_size - f.tell())
                f.seek(fsize, os.SEEK_CUR)
            else:
                data = f.read(fsize)
                have = len(data)
            if have != fsize:
                raise EdgecodecError(f"{path}: truncated Y4M, frame {index} has {have} of {fsize} bytes")
            if index >= start:
                if n >= cap:                                   # cannot happen for a valid file; be explicit
                    raise EdgecodecError(f"{path}: corrupt Y4M, more frames than the file size allows")
                buf = np.frombuffer(data, np.uint8)
                y[n] = buf[:h * w].reshape(h, w)
                if chroma:
                    u[n] = buf[h * w:h * w + ch * cw].reshape(ch, cw)
                    v[n] = buf[h * w + ch * cw:].reshape(ch, cw)
                n += 1
            index += 1
    if index == 0:
        raise EdgecodecError(f"{path}: Y4M file holds no frames")
    if n == 0:
        raise EdgecodecError(f"{path}: start={start} but the clip holds only {index} frames")
    out = (y, u, v) if chroma else (y,)
    return tuple(a[:n].copy() if n < cap else a for a in out)


def read_luma(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """Luma planes (T, H, W) uint8 of a Y4M clip; truncated frames are an error, not silently dropped."""
    return _read(Path(path), max_frames, 0, chroma=False)[0]


def read_yuv420(path: str | Path, max_frames: int | None = None,
                start: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y (T, H, W), U and V (T, ceil(H/2), ceil(W/2)) uint8 of frames `start`.. of an 8-bit 4:2:0 Y4M file."""
    return _read(Path(path), max_frames, start, chroma=True)


def _fps_string(fps) -> str:
    text = f"{fps}:1" if isinstance(fps, int) and not isinstance(fps, bool) else str(fps)
    if not re.fullmatch(r"\d+:\d+", text):
        raise EdgecodecError(f"frame rate {fps!r} must be 'num:den' (e.g. '30:1', '30000:1001') or an integer")
    return text


def write_y4m(path: str | Path, y, u, v, fps: str | int = "30:1") -> Path:
    """Write uint8 planes (T, H, W) / (T, ceil(H/2), ceil(W/2)) (or one 2-D frame) as C420jpeg 8-bit Y4M,
    atomically (`<name>.tmp`, then a rename)."""
    path = Path(path)
    y, u, v = (np.asarray(a) for a in (y, u, v))
    if y.ndim == 2:
        y, u, v = y[None], u[None], v[None]
    if any(a.dtype != np.uint8 for a in (y, u, v)):
        raise EdgecodecError(f"write_y4m({path}): planes must be uint8, got {y.dtype}/{u.dtype}/{v.dtype}")
    if y.ndim != 3 or y.shape[0] < 1 or 0 in y.shape:
        raise EdgecodecError(f"write_y4m({path}): luma must be (T, H, W) with T, H, W > 0, got {y.shape}")
    t, h, w = y.shape
    want = (t, (h + 1) // 2, (w + 1) // 2)
    if u.shape != want or v.shape != want:
        raise EdgecodecError(f"write_y4m({path}): chroma must be {want} for luma {y.shape}, got {u.shape} and {v.shape}")
    header = f"YUV4MPEG2 W{w} H{h} F{_fps_string(fps)} Ip A1:1 C420jpeg\n".encode()
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(header)
            for i in range(t):
                f.write(_MARKER)
                for plane in (y[i], u[i], v[i]):
                    f.write(np.ascontiguousarray(plane).tobytes())
    except OSError as e:
        raise EdgecodecError(f"{path}: cannot write Y4M ({e})") from None
    return path


def _plane(frame_plane, height: int, width: int) -> np.ndarray:
    """One plane of a PyAV frame without its line padding (works for odd sizes, unlike to_ndarray)."""
    buf = np.frombuffer(frame_plane, np.uint8)
    return buf.reshape(height, frame_plane.line_size)[:, :width].copy()


def _decode_av(path: Path, max_frames: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    import av
    ys, us, vs, rate = [], [], [], None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise EdgecodecError(f"{path}: the file holds no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            for frame in container.decode(stream):
                f = frame.reformat(format="yuv420p")
                h, w = f.height, f.width
                planes = (_plane(f.planes[0], h, w), _plane(f.planes[1], (h + 1) // 2, (w + 1) // 2),
                          _plane(f.planes[2], (h + 1) // 2, (w + 1) // 2))
                if ys and planes[0].shape != ys[0].shape:
                    raise EdgecodecError(f"{path}: frame size changes from {ys[0].shape[::-1]} to "
                                    f"{planes[0].shape[::-1]} at frame {len(ys)}")
                for lst, p in zip((ys, us, vs), planes):
                    lst.append(p)
                if max_frames is not None and len(ys) >= max_frames:
                    break
    except EdgecodecError:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as e:
        raise EdgecodecError(f"{path}: cannot decode video ({type(e).__name__}: {e}); "
                        f"expected Y4M or a container/codec FFmpeg can read") from None
    if not ys:
        raise EdgecodecError(f"{path}: no video frames could be decoded")
    fps = f"{rate.numerator}:{rate.denominator}" if rate else "0:0"
    return np.stack(ys), np.stack(us), np.stack(vs), fps


def read_video(path: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(Y, U, V, fps) of any clip: Y4M by content through read_yuv420, anything else decoded by PyAV and
    converted to 8-bit yuv420p. fps is 'num:den', '0:0' when unknown."""
    path = Path(path)
    if not path.is_file():
        raise EdgecodecError(f"video not found: {path}")
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise EdgecodecError(f"{path}: max_frames={max_frames!r} must be a positive integer or None")
    with open(path, "rb") as f:
        magic = f.read(10)
    if magic.startswith(b"YUV4MPEG2"):
        fps = read_header(path).fps
        return (*read_yuv420(path, max_frames), fps if re.fullmatch(r"\d+:\d+", fps) else "0:0")
    return _decode_av(path, max_frames)


# ---- colour: BT.601 full range (JFIF) -----------------------------------------------------------------------------

_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB


def _box2(c: np.ndarray) -> np.ndarray:
    """2x2 mean over the last two axes; at odd edges the mean of the pixels that exist."""
    h, w = c.shape[-2:]
    pad = [(0, 0)] * (c.ndim - 2) + [(0, h % 2), (0, w % 2)]
    s = np.pad(c, pad).reshape(*c.shape[:-2], (h + 1) // 2, 2, (w + 1) // 2, 2).sum(axis=(-3, -1))
    n = np.pad(np.ones((h, w)), pad[-2:]).reshape((h + 1) // 2, 2, (w + 1) // 2, 2).sum(axis=(-3, -1))
    return s / n


def rgb_to_yuv420(rgb) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 RGB (..., H, W, 3) -> uint8 Y (..., H, W), U, V (..., ceil(H/2), ceil(W/2)).

    BT.601 full range (JFIF): Y = .299R + .587G + .114B, Cb/Cr = 128 + scaled B-Y / R-Y, no footroom;
    chroma is the 2x2 box mean (odd edges: mean of what exists); rounding half-to-even, then clipping.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim < 3 or rgb.shape[-1] != 3 or 0 in rgb.shape:
        raise EdgecodecError(f"rgb_to_yuv420: expected uint8 (..., H, W, 3), got {rgb.dtype} {rgb.shape}")
    r, g, b = np.moveaxis(rgb.astype(np.float64), -1, 0)
    y = _KR * r + _KG * g + _KB * b
    cb = 128.0 + (b - y) / (2 * (1 - _KB))
    cr = 128.0 + (r - y) / (2 * (1 - _KR))
    to8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)  # noqa: E731
    return to8(y), to8(_box2(cb)), to8(_box2(cr))


def yuv420_to_rgb(y, u, v) -> np.ndarray:
    """Y (..., H, W), U, V (..., ceil(H/2), ceil(W/2)) -> float64 RGB (..., H, W, 3) clipped to [0, 255].

    Exact inverse of rgb_to_yuv420's BT.601 full-range matrix; chroma upsampled by pixel replication.
    """
    y, u, v = (np.asarray(a, dtype=np.float64) for a in (y, u, v))
    h, w = y.shape[-2:]
    want = y.shape[:-2] + ((h + 1) // 2, (w + 1) // 2)
    if u.shape != want or v.shape != want:
        raise EdgecodecError(f"yuv420_to_rgb: chroma must be {want} for luma {y.shape}, got {u.shape} and {v.shape}")
    up = lambda c: c.repeat(2, -2).repeat(2, -1)[..., :h, :w] - 128.0  # noqa: E731
    cb, cr = up(u), up(v)
    r = y + 2 * (1 - _KR) * cr
    b = y + 2 * (1 - _KB) * cb
    g = y - (2 * _KB * (1 - _KB) / _KG) * cb - (2 * _KR * (1 - _KR) / _KG) * cr
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 255.0)
