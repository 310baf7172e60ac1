"""Shared test data and checks: the shipped clips (data/video, resolved from the repository root), the tools
`make setup` promises, and the per-test time limits."""

from __future__ import annotations

import os

import pytest

from base.paths import CONFIG_DIR, REPO_ROOT, VIDEO_DIR

ROOT = REPO_ROOT
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"
CLIP_160 = VIDEO_DIR / "CiscoVT2people_160x96_6fps.y4m"      # 5 frames: the small real clip of most tests
CLIP_320 = VIDEO_DIR / "CiscoVT2people_320x192_12fps.y4m"    # 9 frames: the flow clip
CLIP_CARS = VIDEO_DIR / "cars_320x240.y4m"                   # 30 frames
CLIP_QCIF_MP4 = VIDEO_DIR / "carphone_176x144_qp10.mp4"      # 120 frames, H.264: the codec's held-out clip


# ---------------------------------------------------------------- external tools
# One rule for a missing tool: `make setup` installs every tool the suite uses (Icarus, Verilator, ffmpeg,
# Chromium, FINN, pyosys), so a missing one fails the test that needs it, with a message naming the tool.
TOOLS = {
    "ffmpeg": ("ffmpeg", "ffprobe"),
    "chromium": ("chromium",),
    "iverilog": ("iverilog", "vvp"),
}
MODULES = {"finn": "hw.finn_compare", "pyosys": "pyosys"}


def require_tool(name: str) -> None:
    """Fail (not skip) when a tool that `make setup` promises is missing."""
    import importlib
    import shutil
    if name in TOOLS:
        missing = [exe for exe in TOOLS[name] if shutil.which(exe) is None]
        if missing:
            pytest.fail(f"tool {name} is missing ({', '.join(missing)} not on PATH); `make setup` installs it",
                        pytrace=False)
    elif name in MODULES:
        try:
            mod = importlib.import_module(MODULES[name])
            if name == "finn":
                mod.finn_modules()  # every finn-plus part the comparison uses
        except Exception as exc:  # noqa: BLE001 - any import failure means the tool is unusable
            pytest.fail(f"tool {name} is missing or broken ({type(exc).__name__}: {exc}); `make setup` installs it",
                        pytrace=False)
    else:
        raise KeyError(name)


@pytest.fixture
def ffmpeg():
    require_tool("ffmpeg")


@pytest.fixture
def chromium():
    require_tool("chromium")


@pytest.fixture
def finn():
    require_tool("finn")


@pytest.fixture
def pyosys():
    require_tool("pyosys")


# ---------------------------------------------------------------- time limits
# pyproject.toml sets a 300 s default per test so a hung simulator or tool fails instead of stalling CI; the
# slow sweeps (kept out of `make test`) place and route whole designs and get 30 minutes unless they set their own.
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(1800))


# ---------------------------------------------------------------- parallel workers
# `make test` runs the suite on two pytest-xdist workers (a file's tests stay on one worker: --dist loadfile);
# each worker's torch then takes one thread, so two workers do not thrash two cores (set before torch is imported).
def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
