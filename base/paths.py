"""Where the project's own files are. Default paths resolve from the repository root, never from the current
working directory, so `edgecodec` works from anywhere; paths given on the command line keep their usual meaning."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
VIDEO_DIR = DATA_DIR / "video"
LIBERTY_DIR = DATA_DIR / "liberty"
CONFIG_DIR = REPO_ROOT / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
BUILD_DIR = REPO_ROOT / "build"
YOWASP_CACHE = BUILD_DIR / ".yowasp-cache"


def resolve(path: str | Path) -> Path:
    """A path from a config file or a default: absolute as given, relative from the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p
