"""The default Verilog is pinned: generated from the default flow's integer parameters
(tests/expected/default_cell_params.json, what `make flow` trains on the default config), its SHA-256 must equal
the pinned one, the one README's figures were measured on, and the one in bench/results/impl.json. A generator
change makes this fail until the figures are regenerated (README "Measured by make flow", `make bench`)."""

from __future__ import annotations

import dataclasses
import json

from base.hashing import sha256_file
from base.paths import REPO_ROOT
from edgecodec.config import load
from hw.rtl.emit import write_verilog
from quant.cell.params import CellParams
from tests.conftest import DEFAULT_CONFIG

EXPECTED = REPO_ROOT / "tests" / "expected"
HEIGHT, WIDTH = 24, 40   # the default clip (320x192) / model.downsample 8


def _pinned() -> str:
    return (EXPECTED / "default_verilog.sha256").read_text().split()[0]


def _default_verilog(tmp_path, params=None):
    cfg = load(DEFAULT_CONFIG)
    params = params or CellParams.load(EXPECTED / "default_cell_params.json")
    return write_verilog(params, HEIGHT, WIDTH, cfg.hw, tmp_path / "ase_gru_cell.v")


def test_default_verilog_matches_the_pinned_hash_and_the_figures(tmp_path):
    sha = sha256_file(_default_verilog(tmp_path))
    assert sha == _pinned(), "the default Verilog changed: regenerate the README figures and bench/results/impl.json"
    assert sha in (REPO_ROOT / "README.md").read_text()
    assert json.loads((REPO_ROOT / "bench/results/impl.json").read_text())["verilog_sha256"] == sha


def test_a_changed_weight_changes_the_hash(tmp_path):
    p = CellParams.load(EXPECTED / "default_cell_params.json")
    wz = p.w["z"].copy()
    wz.flat[0] = wz.flat[0] + 1 if wz.flat[0] < 127 else wz.flat[0] - 1
    assert sha256_file(_default_verilog(tmp_path, dataclasses.replace(p, w={**p.w, "z": wz}))) != _pinned()
