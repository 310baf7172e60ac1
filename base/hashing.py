"""Content hashes: what checkpoints, streams and pinned outputs are identified by."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _feed(h, obj) -> None:
    if hasattr(obj, "detach"):  # a torch tensor (base imports no torch)
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        h.update(f"a{obj.dtype.str}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, dict):
        for k in sorted(obj):
            h.update(f"k{k}".encode())
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"l{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(f"v{obj!r}".encode())


def content_hash(*objs) -> bytes:
    """8-byte hash of nested dicts/lists/arrays/scalars (bytes of the values, key order independent)."""
    h = hashlib.sha256()
    for o in objs:
        _feed(h, o)
    return h.digest()[:8]
