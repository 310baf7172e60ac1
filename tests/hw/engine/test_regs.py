"""The engine's register map: one SystemRDL source for the AXI4-Lite block and for docs/engine_regs.md."""

from __future__ import annotations

import pytest

from base.errors import EdgecodecError
from hw.engine.regs import RegisterBlock, markdown
from hw.rtl.emit import write_component_verilog
from sim.runner import run_bench
from tests.conftest import ROOT


def test_the_document_is_generated_from_the_rdl():
    assert (ROOT / "docs" / "engine_regs.md").read_text() == markdown(), \
        "docs/engine_regs.md is stale: python -c 'from hw.engine.regs import markdown; print(markdown())'"


def test_register_block_on_the_bus(tmp_path):
    v = write_component_verilog(RegisterBlock(lockable=("CTRL.START", "PROGRAM_ADDR.ADDR")), "regs",
                                tmp_path / "regs.v")
    run_bench(v, "regs", "sim.tb.regs", tmp_path / "sim", "icarus")


def test_bad_descriptions_are_refused(tmp_path):
    bad = tmp_path / "bad.rdl"
    bad.write_text("addrmap x { reg { field { sw = rw; } F[3:0] } R; };")
    with pytest.raises(EdgecodecError, match="SystemRDL error"):
        RegisterBlock(bad)
    with pytest.raises(EdgecodecError, match="not in"):
        RegisterBlock(lockable=("CTRL.GO",))
