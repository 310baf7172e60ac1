"""The cell's cycle model (`hw.rtl.cell_top.cycles_per_step`) against the simulated RTL, no stalls."""

from __future__ import annotations

import pytest

from hw.config import HwConfig
from hw.rtl.cell_top import cycles_model_exact, cycles_per_step
from hw.rtl.emit import TOP_NAME, write_verilog
from quant.cell import golden
from sim.cell_check import run_cell_bench
from tests.cellgen import random_inputs, random_params


@pytest.mark.parametrize("C,H,W,hw", [(8, 4, 5, HwConfig(2, 2, 2)), (8, 3, 4, HwConfig(4, 2, 8))])
def test_cycle_model_equals_rtl(tmp_path, C, H, W, hw):
    p = random_params(C, 2, 3, 8, 0)
    x = random_inputs(p, 2, H, W, seed=1)
    v = write_verilog(p, H, W, hw, tmp_path / f"{TOP_NAME}.v")
    res = run_cell_bench(v, TOP_NAME, x, golden.run_sequence(p, x), p.act_bits, tmp_path, "icarus")
    assert cycles_model_exact(C, H, W, hw)
    assert res["cycles_per_step"] == [cycles_per_step(C, p.se_hidden, H, W, hw)] * 2


def test_cycle_model_default_cell():
    # bench/results/cell.json: Verilator, 8 steps of the 16 x 24 x 40 features, 15529 cycles each
    hw = HwConfig(4, 4, 4)
    assert cycles_model_exact(16, 24, 40, hw) and cycles_per_step(16, 4, 24, 40, hw) == 15529
    assert not cycles_model_exact(8, 4, 5, HwConfig(8, 8, 1))
