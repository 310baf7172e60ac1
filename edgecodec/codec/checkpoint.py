"""Per-quality codec checkpoints `codec_q<N>.pt`: float weights, the integer decoder model, the integer
probability tables and the hash that bitstreams carry (a stream only decodes with the checkpoint it names)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from model.codec.network import CodecShape
from model.codec.prune import codec_from_state

from edgecodec.config import Config
from base.errors import EdgecodecError
from base.files import atomic_path, load_torch_dict
from base.hashing import content_hash

FORMAT = "edgecodec-codec-v2"   # v2: block-search motion, conditional P decoder (stream version 3)


def shape_of(cfg: Config) -> CodecShape:
    m, c = cfg.model, cfg.codec
    return CodecShape(channels=m.channels, layers=m.layers, reduction=m.se_reduction, gate_kernel=m.gate_kernel,
                      dw_kernel=m.dw_kernel, features=c.features, latent=c.latent, hyper=c.hyper,
                      context=c.context, intra_features=c.intra_features,
                      intra_latent=c.intra_latent, intra_analysis=c.intra_analysis)


def to_torch(obj):
    """numpy arrays -> tensors, recursively (torch.load(weights_only=True) reads only plain types)."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_torch(v) for v in obj]
    return obj


def compact(obj):
    """Integer arrays stored in the smallest signed dtype that holds them (weight codes are 8-bit)."""
    if isinstance(obj, np.ndarray) and obj.dtype.kind in "iu" and obj.size:
        lo, hi = int(obj.min()), int(obj.max())
        for dt in (np.int8, np.int16, np.int32, np.int64):
            if np.iinfo(dt).min <= lo and hi <= np.iinfo(dt).max:
                return obj.astype(dt)
    if isinstance(obj, dict):
        return {k: compact(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [compact(v) for v in obj]
    return obj


def to_numpy(obj):
    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_numpy(v) for v in obj]
    return obj


def path_for(folder: str | Path, quality: int) -> Path:
    return Path(folder) / f"codec_q{quality}.pt"


def available(folder: str | Path) -> list[int]:
    out = []
    for p in Path(folder).glob("codec_q*.pt"):
        tail = p.stem[len("codec_q"):]
        if tail.isdigit():
            out.append(int(tail))
    return sorted(out)


def save(path: Path, payload: dict) -> Path:
    with atomic_path(path) as tmp:
        torch.save(to_torch({"format": FORMAT, **payload}), tmp)
    return Path(path)


def load(folder_or_file: str | Path, quality: int | None = None) -> dict:
    """Checkpoint dict with `codec` (float VideoCodec, eval mode) and numpy int model/tables; clear errors for a
    missing quality or a damaged file."""
    path = Path(folder_or_file)
    if quality is not None:
        path = path_for(path, quality)
        if not path.is_file():
            have = available(path.parent)
            hint = f"available qualities: {have}" if have else "no codec_q<N>.pt there; run `edgecodec train`"
            raise EdgecodecError(f"no checkpoint for quality {quality}: {path} not found ({hint})")
    ck = load_torch_dict(path, FORMAT, "codec checkpoint")
    try:
        codec = codec_from_state(CodecShape(**ck["shape"]), ck["float"])   # a pruned codec: its own widths
    except (KeyError, TypeError, RuntimeError, EdgecodecError) as exc:
        raise EdgecodecError(f"codec checkpoint {path} does not match its own shape: {exc}") from None
    codec.eval()
    ck = {k: (v if k == "float" else to_numpy(v)) for k, v in ck.items()}
    ck["codec"], ck["path"] = codec, path
    if ck.get("hash") != checkpoint_hash(ck).hex():
        raise EdgecodecError(f"codec checkpoint {path} fails its integrity hash (modified after export?)")
    return ck


def checkpoint_hash(ck: dict) -> bytes:
    """What a bitstream names: shape, float weights, integer model and tables."""
    return content_hash(ck["shape"], ck["float"], ck["int"], ck["tables"])
