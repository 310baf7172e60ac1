"""The layers point one way (application > sim > hw > quant > model > base) and the codec and STAE systems stay
independent: import-linter checks the contracts of pyproject.toml, so an upward import fails `make test`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from base.paths import REPO_ROOT


def _lint_imports(cwd: Path, config: Path | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe), "--no-cache"] + (["--config", str(config)] if config else [])
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=240)


def test_import_contracts_are_kept():
    r = _lint_imports(REPO_ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "4 kept, 0 broken" in r.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The check can fail: a copy of the packages where model imports the application is reported."""
    import shutil
    for pkg in ("base", "model", "quant", "hw", "sim", "edgecodec"):
        shutil.copytree(REPO_ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "model" / "upward.py"
    bad.write_text("from edgecodec.config import Config  # noqa: F401\n")
    r = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=240, env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert r.returncode != 0
    assert "model.upward -> edgecodec.config" in r.stdout
