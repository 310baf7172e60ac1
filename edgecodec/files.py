"""Output files are written atomically: a temporary name first, then a rename, so a failed or interrupted run
never leaves a half-written file under the final name."""

from __future__ import annotations

import json
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` (parent folders created) through `<name>.tmp` and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def write_json_atomic(path: Path, obj, **dumps_kw) -> Path:
    """`json.dumps(obj, **dumps_kw)` written atomically (see write_text_atomic)."""
    return write_text_atomic(path, json.dumps(obj, **dumps_kw))


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """`data` written atomically (see write_text_atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
