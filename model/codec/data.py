"""Training data: discovery of sequences (videos, PNG folders, Vimeo-90K septuplets), loading as 8-bit 4:2:0,
and a seeded sampler of packed (N, T, 6, crop/2, crop/2) crops."""

from __future__ import annotations

import os
import re
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from base.errors import EdgecodecError

from model.video import read_header, read_video, rgb_to_yuv420
from model.yuv import pack420

VIDEO_EXTS = (".y4m", ".mp4", ".mkv", ".avi", ".264", ".h264")  # .264: raw Annex-B H.264 (PyAV decodes it)
LAZY_ABOVE = 64          # more sequences than this: load on demand through an LRU cache
_LOOKED_FOR = ("*.y4m, *.mp4, *.mkv, *.avi, *.264 files; sub-folders of *.png frames; "
               "a Vimeo-90K root (sep_trainlist.txt/sep_testlist.txt + sequences/)")


def _natural(name: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t]


def _pngs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file()),
                  key=lambda p: _natural(p.name))


def _vimeo(root: Path, split: str) -> list[Path]:
    listing = root / f"sep_{split}list.txt"
    if not listing.is_file():
        raise EdgecodecError(f"{root}: Vimeo-90K layout without {listing.name} (split={split!r})")
    names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    seqs = [root / "sequences" / name for name in names]
    missing = [name for name, seq in zip(names, seqs) if not seq.is_dir()]
    if missing or not names:
        detail = f"{len(missing)} of {len(names)} listed septuplets are missing under {root / 'sequences'} " \
                 f"(first: {', '.join(missing[:3])})" if missing else "lists no septuplets"
        raise EdgecodecError(f"{listing}: {detail}")
    return seqs


def _walk(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")), key=_natural)
        files = sorted(filenames, key=_natural)
        if any(f.lower().endswith(".png") for f in files):
            found.append(Path(dirpath))
        found += [Path(dirpath, f) for f in files if Path(f).suffix.lower() in VIDEO_EXTS]
    return found


def list_sequences(root_or_files, split: str = "train") -> list[Path]:
    """Sequences in files and/or folders: a file is one clip; a folder holding *.png is one PNG sequence.

    Folders are searched recursively for video files and PNG folders, except a Vimeo-90K root
    (sep_trainlist.txt), which yields only the septuplets its `split` list ("train"/"test") names.
    """
    if split not in ("train", "test"):
        raise EdgecodecError(f"split={split!r} must be 'train' or 'test'")
    items = [root_or_files] if isinstance(root_or_files, (str, os.PathLike)) else list(root_or_files)
    out = []
    for item in items:
        p = Path(item)
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            vimeo = (p / "sep_trainlist.txt").is_file() or (p / "sep_testlist.txt").is_file()
            out += _vimeo(p, split) if vimeo else _walk(p)
        else:
            raise EdgecodecError(f"training data not found: {p}")
    if not out:
        raise EdgecodecError(f"no sequences found in {', '.join(map(str, items)) or '(nothing given)'}; "
                        f"looked for {_LOOKED_FOR}")
    return out


def _even(y, u, v):
    h, w = y.shape[-2] & ~1, y.shape[-1] & ~1
    return y[:, :h, :w], u[:, :h // 2, :w // 2], v[:, :h // 2, :w // 2]


def _load_png(path: Path) -> np.ndarray:
    from PIL import Image
    try:
        with Image.open(path) as im:
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                raise EdgecodecError(f"{path}: {im.mode} (16-bit/float) PNG is not supported; use 8-bit RGB PNGs")
            return np.asarray(im.convert("RGB"))
    except EdgecodecError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise EdgecodecError(f"{path}: cannot read PNG ({type(e).__name__}: {e})") from None


def load_sequence(seq, max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 Y (T, H, W), U, V (T, H/2, W/2) of a clip file or PNG folder, cropped to even H, W.

    PNG frames (natural name order) are converted with rgb_to_yuv420 (BT.601 full range).
    """
    seq = Path(seq)
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise EdgecodecError(f"{seq}: max_frames={max_frames!r} must be a positive integer or None")
    if not seq.is_dir():
        return _even(*read_video(seq, max_frames)[:3])
    files = _pngs(seq)[:max_frames]
    if not files:
        raise EdgecodecError(f"{seq}: folder holds no *.png frames")
    planes, size = [], None
    for f in files:
        rgb = _load_png(f)
        size = size or rgb.shape[:2]
        if rgb.shape[:2] != size:
            raise EdgecodecError(f"{f}: frame size {rgb.shape[1]}x{rgb.shape[0]} differs from "
                            f"{size[1]}x{size[0]} of {files[0].name}")
        planes.append(rgb_to_yuv420(rgb[:rgb.shape[0] & ~1, :rgb.shape[1] & ~1]))
    return tuple(np.stack(p) for p in zip(*planes))


def _probe(seq: Path) -> tuple[int | None, int, int]:
    """(frames or None if unknown, H, W) after even cropping, from metadata only (for lazy loading)."""
    if seq.is_dir():
        files = _pngs(seq)
        if not files:
            raise EdgecodecError(f"{seq}: folder holds no *.png frames")
        from PIL import Image
        try:
            with Image.open(files[0]) as im:
                w, h = im.size
        except (OSError, ValueError, SyntaxError) as e:
            raise EdgecodecError(f"{files[0]}: cannot read PNG ({type(e).__name__}: {e})") from None
        return len(files), h & ~1, w & ~1
    with open(seq, "rb") as f:
        y4m = f.read(9) == b"YUV4MPEG2"
    if y4m:
        hdr = read_header(seq)
        return (seq.stat().st_size - hdr.header_bytes) // (6 + hdr.frame_bytes), hdr.height & ~1, hdr.width & ~1
    return None, 1 << 30, 1 << 30                      # other containers: checked when loaded


def box_down(planes: np.ndarray, s: int) -> np.ndarray:
    """(T, H, W) uint8 -> (T, H/s, W/s): the mean of each s x s box, rounded half up (integer arithmetic)."""
    if s == 1:
        return planes
    t, h, w = planes.shape
    total = planes.reshape(t, h // s, s, w // s, s).sum(axis=(2, 4), dtype=np.int64)
    return ((total + s * s // 2) // (s * s)).astype(np.uint8)


class CropSampler:
    """Random (sequence, start, even crop position, horizontal flip) windows from a seeded torch.Generator.

    `scales` > 1 (training-data augmentation): a window may instead be a crop of crop x s pixels averaged down by
    s (box filter), which packs s times the detail into a crop; each draw picks the sequence, then one of the
    scales its frame size allows. With the default (1,) the draws are those of a sampler without scales.

    `sequences`: paths (see list_sequences) and/or in-memory (y, u, v) uint8 tuples. Sequences shorter than
    seq_len or smaller than crop are skipped with a warning; an EdgecodecError names them when none is usable.
    Up to LAZY_ABOVE path sequences are loaded at once (kept uint8); more are loaded when drawn, through an
    LRU cache of `cache_size`, after probing (metadata only) until one usable sequence is found.
    """

    def __init__(self, sequences, seq_len: int, crop: int, seed: int, max_frames_per_seq: int | None = None,
                 cache_size: int = 32, lazy: bool | None = None, scales: tuple[int, ...] = (1,)):
        for name, val, low in (("seq_len", seq_len, 1), ("crop", crop, 2), ("cache_size", cache_size, 1)):
            if not isinstance(val, int) or isinstance(val, bool) or val < low:
                raise EdgecodecError(f"CropSampler: {name}={val!r} must be an integer >= {low}")
        if crop % 2:
            raise EdgecodecError(f"CropSampler: crop={crop} must be even (4:2:0 chroma is half size)")
        scales = tuple(scales)
        if not scales or len(set(scales)) != len(scales) or \
                any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in scales):
            raise EdgecodecError(f"CropSampler: scales={scales!r} must be distinct positive integers")
        self.scales = tuple(sorted(scales))
        self.items = list(sequences)
        if not self.items:
            raise EdgecodecError("CropSampler: no sequences given")
        self.seq_len, self.crop, self.max_frames = seq_len, crop, max_frames_per_seq
        self.gen = torch.Generator().manual_seed(seed)
        self.lazy = sum(not isinstance(s, tuple) for s in self.items) > LAZY_ABOVE if lazy is None else lazy
        self._cache: OrderedDict[int, tuple] = OrderedDict()
        self._cache_size = cache_size
        self._data: dict[int, tuple] = {}
        self.usable = list(range(len(self.items)))
        skipped = []
        for i, item in enumerate(self.items):
            if isinstance(item, tuple) or not self.lazy:
                self._data[i] = self._load(i)
                shape = self._data[i][0].shape
            else:
                frames, h, w = _probe(Path(item))
                shape = (min(frames, self.max_frames or frames) if frames is not None else seq_len, h, w)
            if not self._fits(shape):
                skipped.append(self._describe(i, shape))
                self.usable.remove(i)
            elif self.lazy:
                break                                      # one usable sequence found: the rest is checked when drawn
        if not self.usable:
            raise EdgecodecError(f"CropSampler: no sequence has >= {seq_len} frames of >= {crop}x{crop}: "
                            + "; ".join(skipped))
        if skipped:
            self._warn(skipped)

    def _describe(self, i: int, shape) -> str:
        name = f"<array sequence {i}>" if isinstance(self.items[i], tuple) else str(self.items[i])
        return f"{name} ({shape[0]} frames of {shape[2]}x{shape[1]})"

    def _warn(self, skipped: list[str]) -> None:
        warnings.warn(f"CropSampler: skipping {len(skipped)} sequence(s) shorter than seq_len={self.seq_len} or "
                      f"smaller than crop={self.crop}: " + "; ".join(skipped[:5])
                      + ("; ..." if len(skipped) > 5 else ""), stacklevel=3)

    def _fits(self, shape) -> bool:
        return shape[0] >= self.seq_len and min(shape[1], shape[2]) >= self.crop * self.scales[0]

    def _load(self, i: int) -> tuple:
        item = self.items[i]
        if not isinstance(item, tuple):
            return load_sequence(item, self.max_frames)
        y, u, v = (np.asarray(a) for a in item)
        if any(a.dtype != np.uint8 or a.ndim != 3 for a in (y, u, v)) or \
                u.shape != (y.shape[0], y.shape[1] // 2, y.shape[2] // 2) or v.shape != u.shape or \
                y.shape[1] % 2 or y.shape[2] % 2:
            raise EdgecodecError(f"CropSampler: array sequence {i} must be uint8 y (T, H, W) with even H, W and "
                            f"u, v (T, H/2, W/2); got {y.dtype} {y.shape}, {u.shape}, {v.shape}")
        return (y, u, v) if self.max_frames is None else (y[:self.max_frames], u[:self.max_frames],
                                                           v[:self.max_frames])

    def _get(self, i: int) -> tuple:
        if i in self._data:
            return self._data[i]
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        seq = self._cache[i] = self._load(i)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return seq

    def _int(self, high: int) -> int:
        return int(torch.randint(0, high, (1,), generator=self.gen))

    def _window(self) -> torch.Tensor:
        while True:
            k = self._int(len(self.usable))
            y, u, v = self._get(self.usable[k])
            if self._fits(y.shape):
                break
            self._warn([self._describe(self.usable.pop(k), y.shape)])   # lazy mode: found short when loaded
        L, (t, h, w) = self.seq_len, y.shape
        s = self.scales[0]
        if len(self.scales) > 1:
            fit = [v for v in self.scales if self.crop * v <= min(h, w)]
            s = fit[self._int(len(fit))]
        c = self.crop * s
        t0, r0, c0 = self._int(t - L + 1), 2 * self._int((h - c) // 2 + 1), 2 * self._int((w - c) // 2 + 1)
        flip = self._int(2) == 1
        ys = box_down(y[t0:t0 + L, r0:r0 + c, c0:c0 + c], s)
        us, vs = (box_down(p[t0:t0 + L, r0 // 2:(r0 + c) // 2, c0 // 2:(c0 + c) // 2], s) for p in (u, v))
        if flip:
            ys, us, vs = ys[..., ::-1], us[..., ::-1], vs[..., ::-1]
        return pack420(ys, us, vs)

    def batch(self, n: int) -> torch.Tensor:
        """(n, seq_len, 6, crop/2, crop/2) float32 windows packed with pack420."""
        if not isinstance(n, int) or n < 1:
            raise EdgecodecError(f"CropSampler.batch: n={n!r} must be a positive integer")
        return torch.stack([self._window() for _ in range(n)])
