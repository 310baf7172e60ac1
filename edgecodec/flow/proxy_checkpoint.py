"""Checkpoints of the trained proxy model: float weights, QAT weights, calibrated fracs and the config hash."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from edgecodec.config import Config
from base.errors import EdgecodecError
from base.files import atomic_path, load_torch_dict
from base.hashing import sha256_bytes

FORMAT = "edgecodec-ase-gru-v1"


def model_hash(cfg: Config) -> str:
    """Hash of everything that changes the trained weights (model, quant, train sections)."""
    d = cfg.to_dict()
    key = json.dumps({k: d[k] for k in ("model", "quant", "train")}, sort_keys=True)
    return sha256_bytes(key.encode())[:16]


def save(path: Path, cfg: Config, float_state: dict, qat_state: dict, fracs: list[dict], metrics: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "config_hash": model_hash(cfg), "config": cfg.to_dict(),
                    "float": float_state, "qat": qat_state, "fracs": fracs, "metrics": metrics}, tmp)


def load(path: Path, cfg: Config | None = None) -> dict:
    """Load and check a checkpoint; missing, corrupt or mismatched files are FlowErrors naming the problem."""
    ck = load_torch_dict(path, FORMAT)
    if cfg is not None and ck.get("config_hash") != model_hash(cfg):
        raise EdgecodecError(f"checkpoint {path} was trained with a different model/quant/train config "
                        f"(hash {ck.get('config_hash')} != {model_hash(cfg)}); retrain or pass the matching config")
    return ck
