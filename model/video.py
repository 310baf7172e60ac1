"""Y4M (YUV4MPEG2, 8-bit 4:2:0) reading: real footage for training and verification."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecodec.errors import FlowError


@dataclass(frozen=True)
class Y4MHeader:
    width: int
    height: int
    fps: str
    colorspace: str
    header_bytes: int


def read_header(path: Path) -> Y4MHeader:
    path = Path(path)
    if not path.is_file():
        raise FlowError(f"video not found: {path}")
    with open(path, "rb") as f:
        line = f.readline(4096)
    if not line.startswith(b"YUV4MPEG2 ") or not line.endswith(b"\n"):
        raise FlowError(f"{path}: not a Y4M file (missing 'YUV4MPEG2' header); only Y4M 4:2:0 8-bit is supported here")
    tags = {t[:1]: t[1:] for t in line.decode("ascii", "replace").split()[1:]}
    try:
        width, height = int(tags["W"]), int(tags["H"])
    except (KeyError, ValueError):
        raise FlowError(f"{path}: Y4M header lacks a valid W/H tag") from None
    cs = tags.get("C", "420jpeg")
    if not cs.startswith("420") or "p1" in cs or "p9" in cs:
        raise FlowError(f"{path}: colour space C{cs} is not supported; convert to 8-bit 4:2:0 "
                        f"(ffmpeg -i in -pix_fmt yuv420p out.y4m)")
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise FlowError(f"{path}: frame size {width}x{height} must be positive and even for 4:2:0")
    return Y4MHeader(width, height, tags.get("F", "?"), cs, len(line))


def read_luma(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """Luma planes (T, H, W) uint8 of a Y4M clip; truncated frames are an error, not silently dropped."""
    path = Path(path)
    hdr = read_header(path)
    y_size = hdr.width * hdr.height
    frame_size = y_size * 3 // 2
    frames = []
    with open(path, "rb") as f:
        f.seek(hdr.header_bytes)
        while max_frames is None or len(frames) < max_frames:
            marker = f.readline(1024)
            if not marker:
                break
            if not marker.startswith(b"FRAME"):
                raise FlowError(f"{path}: corrupt Y4M, expected FRAME marker at frame {len(frames)}")
            data = f.read(frame_size)
            if len(data) != frame_size:
                raise FlowError(f"{path}: truncated Y4M, frame {len(frames)} has {len(data)} of {frame_size} bytes")
            frames.append(np.frombuffer(data[:y_size], dtype=np.uint8).reshape(hdr.height, hdr.width))
    if not frames:
        raise FlowError(f"{path}: Y4M file holds no frames")
    return np.stack(frames)
