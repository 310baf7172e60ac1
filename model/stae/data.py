"""Labelled action clips for STAE (seed 001): a synthetic set, a writer of it in the HMDB51/UCF101 layouts, and
loaders of those layouts.

Clips are float32 (F, 3, size, size) RGB on the 8-bit grid code / 256 (the project's convention,
`model.yuv`), so values lie in [0, 1) and 8-bit video stores them without loss.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from base.errors import EdgecodecError

CLASS_NAMES = ("move_right", "move_left", "move_down", "move_up", "grow", "blink", "shrink", "still")
LAYOUTS = {"hmdb51": ("hmdb51_org", "testTrainMulti_7030_splits"), "ucf101": ("UCF-101", "ucfTrainTestlist")}
SHORT_POLICIES = ("repeat", "refuse")


# ---- synthetic set ------------------------------------------------------------------------------------------------

def _background(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """(F, 3, S, S) low-saturation periodic texture drifting by a random sub-pixel velocity."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    vx, vy = rng.uniform(-0.3, 0.3, 2)
    base = rng.uniform(0.3, 0.6)
    gain = rng.uniform(0.8, 1.2, 3)                                   # a slight colour tint
    tex = np.zeros((frames, size, size))
    for _ in range(5):
        kx, ky = rng.integers(-3, 4, 2)
        amp, phase = rng.uniform(0.02, 0.05), rng.uniform(0, 2 * np.pi)
        t = np.arange(frames)[:, None, None]
        tex += amp * np.cos(2 * np.pi * (kx * (xx - vx * t) + ky * (yy - vy * t)) / size + phase)
    return gain[None, :, None, None] * (base + tex)[:, None]


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated red-orange of slightly random hue (one colour family: a linear filter finds it)."""
    return np.array([rng.uniform(0.85, 0.95), rng.uniform(0.05, 0.35), rng.uniform(0.0, 0.1)])


def _object_track(rng: np.random.Generator, motion: str, frames: int, size: int) -> list:
    """[(top, left, side) or None] for every frame: the object's path over the whole clip (it moves all the
    time; the caller shows it only inside its window)."""
    t = np.arange(frames)
    if motion in ("grow", "shrink"):
        big = max(4, 3 * size // 4)
        sides = np.round(np.linspace(2, big, frames)).astype(int)
        sides = sides if motion == "grow" else sides[::-1]
        cy, cx = rng.integers(big // 2 + 1, size - big // 2 - 1, 2)
        return [(cy - s // 2, cx - s // 2, s) for s in sides]
    side = max(3, 3 * size // 8)
    if motion in ("blink", "still"):
        y, x = rng.integers(1, size - side - 1, 2)
        phase = int(rng.integers(0, 2))
        return [(y, x, side) if motion == "still" or (u + phase) % 2 == 0 else None for u in t]
    room = size - side - 2                                            # top-left corner stays in 1..1+room
    speed = rng.uniform(0.8, 1.0) * room / max(frames - 1, 1)           # crosses 80..100% of the room
    along = rng.uniform(1, 1 + room - speed * (frames - 1)) + speed * t
    if motion in ("move_left", "move_up"):
        along = along[::-1]
    along = np.round(along).astype(int)
    across = rng.integers(1, size - side - 1)
    if motion in ("move_right", "move_left"):
        return [(across, a, side) for a in along]
    return [(a, across, side) for a in along]


def _synthetic_clip(rng: np.random.Generator, motion: str, frames: int, size: int) -> np.ndarray:
    clip = _background(rng, frames, size)
    lo, hi = max(2, round(0.375 * frames)), max(2, round(0.625 * frames))
    length = int(rng.integers(min(lo, frames), min(hi, frames) + 1))
    start = int(rng.integers(0, frames - length + 1))
    colour = _colour(rng)
    for u, box in enumerate(_object_track(rng, motion, frames, size)):
        if box is not None and start <= u < start + length:
            y, x, s = box
            clip[u, :, y:y + s, x:x + s] = colour[:, None, None]
    clip += rng.normal(0.0, 0.02, clip.shape)
    return np.minimum(np.floor(np.clip(clip, 0.0, 1.0) * 256), 255) / 256


def make_synthetic(n_per_class: int, frames: int = 16, size: int = 32, classes: int = 6,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A SYNTHETIC labelled action set (not real video): (clips float32 (N, F, 3, S, S), labels int64 (N,)).

    Every clip is a textured, slowly drifting, low-saturation background with noise (std 0.02), plus a
    saturated red-orange square that is visible only in a random contiguous window of about 3/8..5/8 of the
    frames (6..10 of 16); the other frames show background only. The object's motion over the clip is the
    class (`CLASS_NAMES`): moves right / left / down / up (side 3/8 S, crossing 80..100% of the frame over the
    F frames), grows / shrinks (side 2 .. 3/4 S), blinks (every other frame), stands still. Its path runs over
    the whole clip, so the window shows a random part of it: one frame says little (a position or size at
    a time), several frames of the window say the class, and the object's pixels are the ones that matter.
    Values are on the 8-bit grid code / 256.

    The object is large on purpose: with a 3-pixel object the default VideoViT (patch 8) stayed at chance
    for 400 Adam steps; on this set (60 clips per class) it reaches ~0.6 test accuracy in 400 steps of
    batch 16 (test: 20 clips per class of seed 1).

    Labels are interleaved (0, 1, .., classes-1, 0, 1, ..): balanced, N = n_per_class * classes. Clip j of class
    c depends only on (seed, c, j), so a larger n_per_class extends the set without changing it.
    """
    if not 2 <= classes <= len(CLASS_NAMES):
        raise EdgecodecError(f"make_synthetic: classes={classes} must be in 2..{len(CLASS_NAMES)} ({CLASS_NAMES})")
    if n_per_class < 1 or frames < 2 or size < 12:
        raise EdgecodecError(f"make_synthetic: n_per_class={n_per_class} >= 1, frames={frames} >= 2 and "
                        f"size={size} >= 12 are required")
    clips = np.empty((n_per_class * classes, frames, 3, size, size), np.float32)
    for j in range(n_per_class):
        for c in range(classes):
            clips[j * classes + c] = _synthetic_clip(np.random.default_rng((seed, c, j)), CLASS_NAMES[c],
                                                     frames, size)
    labels = np.tile(np.arange(classes, dtype=np.int64), n_per_class)
    return torch.from_numpy(clips), torch.from_numpy(labels)


# ---- writing a set as a dataset folder ----------------------------------------------------------------------------

def _write_avi(path: Path, clip: np.ndarray) -> None:
    """clip (F, 3, H, W) in [0, 1] -> lossless HuffYUV RGB24 in AVI, 8-bit codes round(x * 256) (<= 255)."""
    import av
    codes = np.minimum(np.round(np.clip(clip, 0.0, 1.0) * 256), 255).astype(np.uint8).transpose(0, 2, 3, 1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("huffyuv", rate=25)
        stream.width, stream.height, stream.pix_fmt = codes.shape[2], codes.shape[1], "rgb24"
        for frame in codes:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        out.mux(stream.encode())


def _test_rows(n: int, split: int) -> set:
    """Rows (within one class) held out for testing in split 1..3: ~30%, a window rotated per split."""
    k = max(1, round(0.3 * n)) if n >= 2 else 0
    return {(i + (split - 1) * k) % n for i in range(n - k, n)}


def write_dataset_folder(root, clips, labels, class_names, layout: str = "hmdb51") -> tuple[Path, Path]:
    """Write clips (N, F, 3, H, W) in [0, 1] with labels (N,) as an HMDB51 or UCF101 dataset folder.

    hmdb51: root/hmdb51_org/<class>/<class>_<j>.avi and root/testTrainMulti_7030_splits/
    <class>_test_split{1,2,3}.txt. ucf101: root/UCF-101/<class>/v_<class>_g<j>_c01.avi and
    root/ucfTrainTestlist/{classInd,trainlist0k,testlist0k}.txt. Videos are lossless 8-bit HuffYUV RGB in AVI,
    so the loaders read back the codes round(x * 256) / 256 exactly (at the same frame count and size).
    In each class about 30% of the clips are test clips, a different window for each of the 3 splits.
    Class names are used as given (no spaces or slashes). Returns (video root, split folder).
    """
    if layout not in LAYOUTS:
        raise EdgecodecError(f"write_dataset_folder: layout={layout!r} must be one of {sorted(LAYOUTS)}")
    clips = np.asarray(clips, np.float32)
    labels = np.asarray(labels)
    names = list(class_names)
    if clips.ndim != 5 or clips.shape[2] != 3 or labels.shape != clips.shape[:1]:
        raise EdgecodecError(f"write_dataset_folder: clips {clips.shape} must be (N, F, 3, H, W) and labels "
                        f"{labels.shape} (N,)")
    if len(set(names)) != len(names) or any(not n or re.search(r"[\s/\\]", n) for n in names):
        raise EdgecodecError(f"write_dataset_folder: class names {names} must be unique, non-empty, without spaces or "
                        f"slashes")
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise EdgecodecError(f"write_dataset_folder: labels must be in 0..{len(names) - 1}")
    videos, splits = (Path(root) / d for d in LAYOUTS[layout])
    splits.mkdir(parents=True, exist_ok=True)
    per_class = {c: [] for c in range(len(names))}
    for c, name in enumerate(names):
        (videos / name).mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(np.flatnonzero(labels == c)):
            file = f"{name}_{j}.avi" if layout == "hmdb51" else f"v_{name}_g{j + 1:02d}_c01.avi"
            _write_avi(videos / name / file, clips[i])
            per_class[c].append(file)
    for k in (1, 2, 3):
        if layout == "hmdb51":
            for c, name in enumerate(names):
                test = _test_rows(len(per_class[c]), k)
                (splits / f"{name}_test_split{k}.txt").write_text(
                    "".join(f"{f} {2 if j in test else 1}\n" for j, f in enumerate(per_class[c])))
            continue
        train, test = [], []
        for c, name in enumerate(names):
            held = _test_rows(len(per_class[c]), k)
            for j, f in enumerate(per_class[c]):
                (test.append(f"{name}/{f}\n") if j in held else train.append(f"{name}/{f} {c + 1}\n"))
        (splits / f"trainlist0{k}.txt").write_text("".join(train))
        (splits / f"testlist0{k}.txt").write_text("".join(test))
    if layout == "ucf101":
        (splits / "classInd.txt").write_text("".join(f"{c + 1} {n}\n" for c, n in enumerate(names)))
    return videos, splits


# ---- loaders ------------------------------------------------------------------------------------------------------

def decode_rgb(path: Path) -> np.ndarray:
    """All frames of a video as uint8 (T, H, W, 3), decoded by PyAV; EdgecodecError naming the file if it cannot be."""
    import av
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise EdgecodecError(f"{path}: the file holds no video stream")
            for frame in container.decode(container.streams.video[0]):
                frames.append(frame.to_ndarray(format="rgb24"))
    except EdgecodecError:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as e:
        raise EdgecodecError(f"{path}: cannot decode video ({type(e).__name__}: {e})") from None
    if not frames:
        raise EdgecodecError(f"{path}: no video frames could be decoded")
    return np.stack(frames)


def sample_clip(video: np.ndarray, frames: int, size: int, short: str = "repeat", name: str = "clip") -> torch.Tensor:
    """(F, 3, size, size) float32 code / 256 from uint8 (T, H, W, 3): F frames at the centres of F equal
    segments of the clip, centre-cropped to a square and resized (bilinear, antialiased) to size x size.

    A clip shorter than F frames keeps all its frames and repeats the last one (short="repeat"), or is refused
    with an EdgecodecError (short="refuse").
    """
    t, h, w = video.shape[:3]
    if t < frames:
        if short == "refuse":
            raise EdgecodecError(f"{name}: {t} frames, fewer than frames={frames} (min_frames='refuse')")
        idx = np.minimum(np.arange(frames), t - 1)
    else:
        idx = ((np.arange(frames) + 0.5) * t / frames).astype(int)
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = torch.from_numpy(np.ascontiguousarray(video[idx, top:top + s, left:left + s])).permute(0, 3, 1, 2)
    x = x.float() / 256
    if s != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0.0, 255 / 256).contiguous()


class _ActionFolder:
    """Shared part of the loaders: (path, label) items, decoding and sampling."""

    def __init__(self, frames: int, size: int, min_frames: str, split: int):
        if frames < 1 or size < 1:
            raise EdgecodecError(f"{type(self).__name__}: frames={frames} and size={size} must be >= 1")
        if min_frames not in SHORT_POLICIES:
            raise EdgecodecError(f"{type(self).__name__}: min_frames={min_frames!r} must be one of {SHORT_POLICIES}")
        if split not in (1, 2, 3):
            raise EdgecodecError(f"{type(self).__name__}: split={split!r} must be 1, 2 or 3")
        self.frames, self.size, self.min_frames = frames, size, min_frames
        self.items: list[tuple[Path, int]] = []
        self.classes: list[str] = []

    @staticmethod
    def _dirs(root, split_dir) -> tuple[Path, Path]:
        root, split_dir = Path(root), Path(split_dir)
        for what, p in (("video root", root), ("split folder", split_dir)):
            if not p.is_dir():
                raise EdgecodecError(f"{what} not found: {p}")
        return root, split_dir

    def _add(self, path: Path, label: int, listed_in: Path) -> None:
        if not path.is_file():
            raise EdgecodecError(f"{listed_in}: lists {path.name}, but {path} does not exist")
        self.items.append((path, label))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[i]
        return sample_clip(decode_rgb(path), self.frames, self.size, self.min_frames, str(path)), label


class HMDB51(_ActionFolder):
    """HMDB51: root/<class>/<video>.avi; split_dir/<class>_test_split<k>.txt with lines '<video>.avi <0|1|2>'
    (1 train, 2 test, 0 unused). Classes are numbered in sorted name order.

    Parameters
    ----------
    root, split_dir : the video folder and the split files folder; split : 1, 2 or 3; train : train or test part.
    frames, size : clips come out (frames, 3, size, size), see `sample_clip`.
    min_frames : 'repeat' (a short clip repeats its last frame) or 'refuse' (EdgecodecError).
    """

    def __init__(self, root, split_dir, split: int = 1, train: bool = True, frames: int = 16, size: int = 32,
                 min_frames: str = "repeat"):
        super().__init__(frames, size, min_frames, split)
        root, split_dir = self._dirs(root, split_dir)
        pat = re.compile(rf"^(.+)_test_split{split}\.txt$")
        listed = {m.group(1): p for p in split_dir.iterdir() if (m := pat.match(p.name))}
        folders = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
        if not listed and not folders:
            raise EdgecodecError(f"{root}: no class folders and {split_dir}: no *_test_split{split}.txt files")
        self.classes = sorted(set(listed) | folders)
        for label, name in enumerate(self.classes):
            if name not in listed:
                raise EdgecodecError(f"missing split file {split_dir / f'{name}_test_split{split}.txt'} "
                                f"for class folder {root / name}")
            if name not in folders:
                raise EdgecodecError(f"missing class folder {root / name} (named by {listed[name]})")
            want = "1" if train else "2"
            for n, line in enumerate(listed[name].read_text().splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise EdgecodecError(f"{listed[name]}:{n}: expected '<video> <0|1|2>', got {line!r}")
                if parts[1] == want:
                    self._add(root / name / parts[0], label, listed[name])


class UCF101(_ActionFolder):
    """UCF101: root/<Class>/v_<Class>_gXX_cYY.avi; split_dir/classInd.txt ('1 ApplyEyeMakeup'),
    trainlist0<k>.txt ('<Class>/<video>.avi <label 1-based>'), testlist0<k>.txt ('<Class>/<video>.avi').
    Labels are classInd numbers - 1; a list line's class is its folder (matched ignoring case, as the official
    lists spell some folders differently).

    Parameters
    ----------
    root, split_dir : the video folder and the split files folder; split : 1, 2 or 3; train : train or test part.
    frames, size : clips come out (frames, 3, size, size), see `sample_clip`.
    min_frames : 'repeat' (a short clip repeats its last frame) or 'refuse' (EdgecodecError).
    """

    def __init__(self, root, split_dir, split: int = 1, train: bool = True, frames: int = 16, size: int = 32,
                 min_frames: str = "repeat"):
        super().__init__(frames, size, min_frames, split)
        root, split_dir = self._dirs(root, split_dir)
        ind, listing = split_dir / "classInd.txt", split_dir / f"{'train' if train else 'test'}list0{split}.txt"
        for p in (ind, listing):
            if not p.is_file():
                raise EdgecodecError(f"missing split file {p}")
        number = {}
        for n, line in enumerate(ind.read_text().splitlines(), 1):
            parts = line.split()
            if parts and (len(parts) != 2 or not parts[0].isdigit()):
                raise EdgecodecError(f"{ind}:{n}: expected '<number> <Class>', got {line!r}")
            if parts:
                number[parts[1]] = int(parts[0]) - 1
        if sorted(number.values()) != list(range(len(number))) or not number:
            raise EdgecodecError(f"{ind}: class numbers must run 1..{len(number)} without gaps")
        self.classes = sorted(number, key=number.get)
        lower = {c.lower(): c for c in self.classes}
        for name in self.classes:
            if not (root / name).is_dir():
                raise EdgecodecError(f"missing class folder {root / name} (class {number[name] + 1} in {ind})")
        for n, line in enumerate(listing.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            rel = parts[0].replace("\\", "/")
            folder = rel.split("/")[0] if "/" in rel else ""
            if len(parts) != (2 if train else 1) or folder.lower() not in lower or (
                    train and not parts[1].isdigit()):
                raise EdgecodecError(f"{listing}:{n}: expected '<Class>/<video>.avi{' <label>' if train else ''}' "
                                f"with a class of {ind.name}, got {line!r}")
            label = number[lower[folder.lower()]]
            if train and int(parts[1]) - 1 != label:
                raise EdgecodecError(f"{listing}:{n}: label {parts[1]} but folder {folder} is class {label + 1}")
            self._add(root / lower[folder.lower()] / rel.split("/", 1)[1], label, listing)
