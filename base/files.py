"""Output files are written atomically: a temporary name first, then a rename, so a failed or interrupted run
never leaves a half-written file under the final name."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from base.errors import EdgecodecError


@contextmanager
def atomic_path(path: Path):
    """Yield `<name>.tmp` beside `path` (parent folders created) to write; on success it is renamed to `path`,
    on an exception it is removed and the exception goes on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` through `<name>.tmp` and a rename (see atomic_path)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: Path, obj, **dumps_kw) -> Path:
    """`json.dumps(obj, **dumps_kw)` written atomically (see write_text_atomic)."""
    return write_text_atomic(path, json.dumps(obj, **dumps_kw))


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """`data` written atomically (see atomic_path)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def load_torch_dict(path: Path, fmt: str, what: str = "checkpoint") -> dict:
    """torch.load (weights only) of a dict whose "format" is `fmt`; a missing, damaged or foreign file is a
    EdgecodecError naming it."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise EdgecodecError(f"{what} not found: {path}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        raise EdgecodecError(f"{what} {path} is corrupt or not a torch checkpoint: {exc.__class__.__name__}") from None
    if not isinstance(ck, dict) or ck.get("format") != fmt:
        raise EdgecodecError(f"{what} {path} is not an {fmt} checkpoint")
    return ck
