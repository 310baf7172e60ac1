"""The project stands on its own: nothing reads a folder outside the repository, and `edgecodec` works from any
working directory with the default config, data and checkpoints of the repository."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from base.hashing import sha256_file
from base.paths import REPO_ROOT
from tests.conftest import CLIP_160

EDGECODEC = str(Path(sys.executable).with_name("edgecodec"))
# the sibling folder the data was copied from, and absolute machine paths under these roots
SIBLING = "../" + "shared"
ROOTS = ("work", "home", "data", "root", "mnt")
FORBIDDEN = re.compile(re.escape(SIBLING) + r"|[\"'\s(=]/(" + "|".join(ROOTS) + r")/")


def _tracked(*patterns) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *patterns], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return [REPO_ROOT / p for p in out.stdout.split()]


def test_no_path_outside_the_repository_in_code_configs_or_tests():
    files = _tracked("*.py", "*.yaml", "*.toml", "Makefile", ".ci/*")
    assert len(files) > 50
    hits = [f"{f.relative_to(REPO_ROOT)}:{i}: {line.strip()}" for f in files if f.name != Path(__file__).name
            for i, line in enumerate(f.read_text().splitlines(), 1) if FORBIDDEN.search(line)]
    assert not hits, "\n".join(hits)


def test_forbidden_pattern_catches_what_it_should():
    for bad in (f"clip: {SIBLING}/data/video/a.y4m", f'VIDEO = Path("/{ROOTS[0]}/x/data/video")',
                f'data: ["/{ROOTS[2]}/x"]'):
        assert FORBIDDEN.search(bad), bad
    assert not FORBIDDEN.search('clip: data/video/a.y4m') and not FORBIDDEN.search("tmp_path / 'data'")


def test_every_data_file_has_a_source_line():
    sources = (REPO_ROOT / "data" / "SOURCES.md").read_text()
    files = [p for p in (REPO_ROOT / "data").rglob("*") if p.is_file() and p.parent.name != "licenses"
             and p.name != "SOURCES.md"]
    assert len(files) >= 12
    missing = [p.name for p in files if f"`{p.name}`" not in sources]
    assert not missing, missing
    for lic in re.findall(r"`licenses/([^`]+)`", sources):
        assert (REPO_ROOT / "data" / "licenses" / lic).is_file(), lic


def test_cli_from_another_directory_uses_the_repository_defaults(tmp_path):
    # verilog: default config of the repository, parameters and output given relative to the working directory
    (tmp_path / "p.json").write_text((REPO_ROOT / "tests/expected/default_cell_params.json").read_text())
    r = subprocess.run([EDGECODEC, "verilog", "--params", "p.json", "--height", "24", "--width", "40", "-o", "v.v"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    pinned = (REPO_ROOT / "tests/expected/default_verilog.sha256").read_text().split()[0]
    assert sha256_file(tmp_path / "v.v") == pinned
    # encode: the default config's checkpoints folder resolves from the repository root, not from here
    r = subprocess.run([EDGECODEC, "encode", str(CLIP_160), "-o", "s.bin", "--frames", "2", "--quality", "1"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["frames"] == 2 and (tmp_path / "s.bin").stat().st_size > 0
    assert not (tmp_path / "build").exists() and not (tmp_path / "checkpoints").exists()
