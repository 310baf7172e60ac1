"""Checkpoints of the trained proxy model: float weights, QAT weights, calibrated fracs and the config hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .config import Config
from .errors import FlowError
from .files import atomic_path

FORMAT = "edgecodec-ase-gru-v1"


def model_hash(cfg: Config) -> str:
    """Hash of everything that changes the trained weights (model, quant, train sections)."""
    d = cfg.to_dict()
    key = json.dumps({k: d[k] for k in ("model", "quant", "train")}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def save(path: Path, cfg: Config, float_state: dict, qat_state: dict, fracs: list[dict], metrics: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "config_hash": model_hash(cfg), "config": cfg.to_dict(),
                    "float": float_state, "qat": qat_state, "fracs": fracs, "metrics": metrics}, tmp)


def load_file(path: Path, fmt: str, what: str = "checkpoint") -> dict:
    """torch.load (weights only) of a dict whose "format" is `fmt`; a missing, damaged or foreign file is a
    FlowError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FlowError(f"{what} not found: {path}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        raise FlowError(f"{what} {path} is corrupt or not a torch checkpoint: {exc.__class__.__name__}") from None
    if not isinstance(ck, dict) or ck.get("format") != fmt:
        raise FlowError(f"{what} {path} is not an {fmt} checkpoint")
    return ck


def load(path: Path, cfg: Config | None = None) -> dict:
    """Load and check a checkpoint; missing, corrupt or mismatched files are FlowErrors naming the problem."""
    ck = load_file(path, FORMAT)
    if cfg is not None and ck.get("config_hash") != model_hash(cfg):
        raise FlowError(f"checkpoint {path} was trained with a different model/quant/train config "
                        f"(hash {ck.get('config_hash')} != {model_hash(cfg)}); retrain or pass the matching config")
    return ck
