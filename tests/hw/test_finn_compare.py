"""FINN (finn-plus) side by side: hw/finn_compare.py on a small Brevitas cell (C=8, 6 x 10 feature map)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from tests.cellgen import FRACS
from hw.config import HwConfig
from quant.config import QuantConfig
from base.errors import EdgecodecError
from model.cell.ase_gru import ASEGRUCell
from quant.cell.qat import from_float
from hw import finn_compare as fs

C, H, W, K = 8, 6, 10, 3

needs_finn = pytest.mark.usefixtures("finn")


@pytest.fixture(scope="module")
def cell():
    torch.manual_seed(0)
    # ASEGRUCell(channels, reduction, gate_kernel, dw_kernel)
    return from_float(ASEGRUCell(C, 2, 1, K), QuantConfig(), FRACS[8], 2).eval()


@pytest.fixture(scope="module")
def res_2(cell, tmp_path_factory):
    return fs.finn_compare(cell, H, W, HwConfig(pe=2, simd=2, dw_parallel=2),
                           tmp_path_factory.mktemp("finn2"), whole_cell=False)


@pytest.fixture(scope="module")
def res_4(cell, tmp_path_factory):
    return fs.finn_compare(cell, H, W, HwConfig(pe=4, simd=2, dw_parallel=4),
                           tmp_path_factory.mktemp("finn4"), whole_cell=False)


def _core(res, kind):
    rows = [r for r in res["layers"] if r["finn_op"].startswith(kind) and r["ours_cycles"] is not None]
    assert rows, f"no {kind} row in {[r['finn_op'] for r in res['layers']]}"
    return rows


@needs_finn
def test_vvau_cycles_equal_analytic(res_2):
    (v,) = _core(res_2, "VVAU")
    assert (v["pe"], v["simd"]) == (2, K * K)
    assert v["finn_cycles"] == fs.finn_vvau_cycles(C, H, W, K, 2, K * K) == H * W * C // 2
    assert v["ours_cycles"] == fs.ours_projector_cycles(C, H, W, K, 2) == (H + 1) * (W + 1) + H * W * (C // 2 - 1)
    ops = {r["finn_op"].rsplit("_", 1)[0] for r in res_2["layers"] if r["name"] == "projector"}
    assert {"FMPadding", "ConvolutionInputGenerator", "VVAU"} <= ops
    mv = _core(res_2, "MVAU")
    assert len(mv) == 6 and {r["name"] for r in mv} == {"gate_Wz", "gate_Uz", "gate_Wr", "gate_Ur", "gate_Wn", "gate_Un"}
    for r in mv:
        assert r["finn_cycles"] == r["ours_cycles"] == (C // 2) * (C // 2) * H * W


@pytest.mark.parametrize("P", [1, 2, 4, 8])
def test_ours_projector_cycles_match_rtl_block(P):
    from hw.rtl.dwconv import DWConvResidual
    blk = DWConvResidual(channels=C, height=H, width=W, kernel=K, act_bits=8, weights=np.ones((C, K, K), int),
                         weight_bits=8, bias=np.zeros(C, int), residual_shift=6, out_shift=7, parallel=P)
    assert fs.ours_projector_cycles(C, H, W, K, P) == blk.cycles_per_frame


@needs_finn
def test_pe_changes_finn_cycles(res_2, res_4):
    (v2,), (v4,) = _core(res_2, "VVAU"), _core(res_4, "VVAU")
    assert v4["pe"] == 4 and v4["finn_cycles"] * 2 == v2["finn_cycles"]
    m2, m4 = _core(res_2, "MVAU")[0], _core(res_4, "MVAU")[0]
    assert (m4["pe"], m4["simd"]) == (4, 2)
    assert m4["finn_cycles"] * 2 == m2["finn_cycles"]     # PE 2 -> 4, SIMD unchanged
    # more parallel lanes cost more LUTs in FINN's model
    assert v4["finn_lut"] > v2["finn_lut"] and m4["finn_lut"] > m2["finn_lut"]


@needs_finn
def test_estimates_positive_and_files_written(res_2, tmp_path):
    assert res_2["fpgapart"] == fs.DEFAULT_FPGAPART and res_2["finn_version"]
    for r in res_2["layers"]:
        vals = [r[k] for k in ("finn_lut", "finn_bram18", "finn_uram", "finn_dsp")]
        assert all(np.isfinite(v) and v >= 0 for v in vals), r
        assert r["finn_cycles"] > 0, r
    for r in _core(res_2, "VVAU") + _core(res_2, "MVAU"):
        assert r["finn_lut"] > 0 and r["res_type"] == "lut" and r["finn_dsp"] == 0
    assert res_2["whole_cell"] is None and res_2["seconds"] > 0 and res_2["notes"]
    from pathlib import Path
    out = Path(res_2["out_dir"])
    for stem in ("projector", "gate_Wz", "gate_Un"):
        for suffix in ("qonnx", "finn", "hw", "folded"):
            assert (out / f"{stem}.{suffix}.onnx").stat().st_size > 0


@needs_finn
def test_dsp_res_type_moves_multipliers(cell, tmp_path):
    r = fs.finn_compare(cell, H, W, HwConfig(pe=2, simd=2, dw_parallel=2), tmp_path, whole_cell=False,
                        res_type="dsp")
    (v,) = _core(r, "VVAU")
    assert v["finn_dsp"] > 0 and v["res_type"] == "dsp"


def test_missing_finn_raises_flow_error(monkeypatch, cell, tmp_path):
    # a None entry in sys.modules makes `import` raise ImportError, as when finn-plus is not installed
    monkeypatch.setitem(sys.modules, "finn.transformation.fpgadataflow.annotate_cycles", None)
    with pytest.raises(EdgecodecError, match="finn-plus is not importable"):
        fs.finn_compare(cell, H, W, HwConfig(2, 2, 2), tmp_path, whole_cell=False)


@needs_finn
@pytest.mark.parametrize("kwargs, match", [
    (dict(hw=HwConfig(pe=3, simd=2, dw_parallel=2)), "hw.pe=3 must be a positive divisor"),
    (dict(height=0), "height must be a positive int"),
    (dict(height=2), "kernel larger than"),
    (dict(res_type="bram"), "res_type"),
    (dict(cell=42), "int is not a quant.cell.qat.QuantASEGRUCell"),
    (dict(cell=torch.nn.Linear(2, 2)), "Linear is not a quant.cell.qat.QuantASEGRUCell"),
])
def test_bad_input(cell, tmp_path, kwargs, match):
    args = dict(cell=cell, height=H, width=W, hw=HwConfig(2, 2, 2), out_dir=tmp_path,
                whole_cell=False)
    args.update(kwargs)
    with pytest.raises(EdgecodecError, match=match):
        fs.finn_compare(**args)


@needs_finn
@pytest.mark.slow
def test_whole_cell_partial_conversion(cell, tmp_path):
    r = fs.finn_compare(cell, H, W, HwConfig(2, 2, 2), tmp_path)
    wc = r["whole_cell"]
    assert 0 < wc["nodes_converted_to_hw"] < wc["nodes_total"]
    rest = " ".join(wc["remaining_ops"])
    assert "Gather" in rest                       # the sigmoid/tanh LUTs have no FINN HW layer here
    assert any(op.startswith("VVAU") for op in wc["hw_ops"]) and any(op.startswith("MVAU") for op in wc["hw_ops"])
