"""Software baseline (timing, tegrastats parsing, roofline arithmetic) and the HTML report in headless Chromium."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
import torch

from edgecodec.flow import gpu_baseline as baseline
from edgecodec.cli import main
from edgecodec.config import from_dict, parse_resolution
from base.errors import EdgecodecError
from edgecodec.flow.html_report import frame_cycles, write_html
from model.cell.ase_gru import ASEGRUCell


def test_parse_resolution():
    assert parse_resolution("1920x1080") == (1920, 1080)
    for bad in ("1920", "0x10", "axb", "1920x1080x3"):
        with pytest.raises(EdgecodecError, match="WIDTHxHEIGHT"):
            parse_resolution(bad)
    with pytest.raises(EdgecodecError, match="WIDTHxHEIGHT"):
        from_dict({"baseline": {"resolutions": ["320x"]}})
    with pytest.raises(EdgecodecError, match="baseline.device"):
        from_dict({"baseline": {"device": "tpu"}})


def test_tegrastats_power_parsing():
    lines = ["RAM 2000/15823MB CPU [1%@1190] GR3D_FREQ 0% VDD_IN 5000mW/5000mW VDD_CPU_GPU_CV 800mW/800mW",
             "RAM 2000/15823MB CPU [1%@1190] GR3D_FREQ 99% VDD_IN 7000mW/6000mW",
             "RAM 1/2MB POM_5V_IN 3000/3000 POM_5V_GPU 100/100"]
    assert baseline.parse_tegrastats(lines[:2]) == pytest.approx(6000.0)
    assert baseline.parse_tegrastats(lines[2:]) == pytest.approx(3000.0)
    assert baseline.parse_tegrastats(["no power here"]) is None


def test_roofline_by_hand():
    plat = baseline.Platform("t", peak_gflops_fp32=1.0, peak_gflops_fp16=2.0, mem_gbps=4.0, power_modes_w=(10.0,),
                             source="test")
    # 1e9 MACs = 2e9 FLOP at 2 GFLOP/s = 1 s; 2e9 bytes at 4 GB/s = 0.5 s; 10 kernels x 10 us = 0.1 ms
    r = baseline.roofline(10**9, 2 * 10**9, kernels=10, plat=plat, fp16=True, launch_us=10.0)
    assert r["ms_compute_bound"] == pytest.approx(1000.0)
    assert r["ms_memory_bound"] == pytest.approx(500.0)
    assert r["ms_per_frame"] == pytest.approx(1000.1)
    assert r["bound"] == "compute" and r["estimate"] is True
    assert r["energy_per_frame_mj"]["10W"] == pytest.approx(10.0 * 1000.1)


def test_eager_traffic_counts_ops_and_bytes():
    cell = ASEGRUCell(8, 2, 1, 3)
    a = baseline.eager_traffic(cell, 8, 4, 5, elem_bytes=2)
    b = baseline.eager_traffic(cell, 8, 8, 10, elem_bytes=2)
    assert a["kernels"] == b["kernels"] >= 6 + 2 + 1   # six gate convs, SE FCs, the depth-wise conv at least
    # activation traffic grows with pixels; weights do not
    assert 2.5 < b["bytes"] / a["bytes"] < 4.0
    assert baseline.eager_traffic(cell, 8, 4, 5, elem_bytes=4)["bytes"] == 2 * a["bytes"]


def test_run_baseline_cpu_and_device_errors():
    cell = ASEGRUCell(8, 2, 1, 3)
    r = baseline.run_baseline(cell, 8, 8, ["64x40", "128x80"], "cpu", warmup=1, iters=3)
    assert r["device"].startswith("CPU") and len(r["rows"]) == 2
    assert r["rows"][0]["feature_map"] == [8, 5, 8]
    for row in r["rows"]:
        assert 0 < row["ms_min"] <= row["ms_median"] <= row["ms_p90"]
        assert row["roofline_xavier"]["estimate"] is True
    assert r["rows"][1]["macs"] == 4 * r["rows"][0]["macs"] - 3 * (8 * 4 + 4 * 8)  # SE FC MACs do not scale
    with pytest.raises(EdgecodecError, match="unknown baseline device"):
        baseline.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(EdgecodecError, match="no CUDA"):
            baseline.pick_device("cuda")
    with pytest.raises(EdgecodecError, match="iters"):
        baseline.time_cell(cell, 8, 4, 4, torch.device("cpu"), 0, 0)


def _summary(with_all: bool = True) -> dict:
    s = {"config": {"hw": {"pe": 4, "simd": 4, "dw_parallel": 4}, "model": {"downsample": 8}},
         "clip": "clip.y4m", "colour_space": "luma", "frames": 2, "layer": 0, "feature_map": [16, 24, 40],
         "outputs_compared": 100, "mismatch_breakdown": {"rtl_vs_golden": 0, "golden_vs_qat_float64": 0,
                                                         "qonnx_vs_golden": 0, "qonnx_codes_compared": 50},
         "simulator": "verilator", "cycles_per_step": 15515, "ideal_cycles_per_step": 15360.0,
         "mac_efficiency": 0.99, "macs_per_step": 1612928, "stage_seconds": {"train": 1.0, "verify": 2.0}}
    if with_all:
        s["fpga"] = {"family": "ecp5", "device": "85k", "package": "CABGA381", "speed": 6, "lut": 100, "ff": 50,
                     "dsp": 3, "bram": 1, "capacity": {"lut": 1000}, "utilisation": {"lut": 0.1},
                     "fmax_mhz": 50.0, "fps": 3222.7, "bitstream": "x.bit", "io_pins": 22,
                     "per_block": {"dw": {"lut": 10, "ff": 5}, "gru": {"lut": 90, "ff": 45}}}
        s["asic"] = {"library": "sky130hd", "area_um2": 1e5, "area_breakdown": {"logic": 6e4, "ff": 4e4},
                     "clock_mhz": 100.0, "critical_path_ns": 9.0, "fmax_mhz": 111.0,
                     "power_mw": {"leakage": 0.01, "internal": 1.0, "switching": 0.5, "total": 1.51},
                     "energy_per_frame_mj": 1.51 * 15515 / 100e6}
        s["finn"] = {"layers": [{"name": "dwconv", "finn_op": "VVAU", "pe": 4, "simd": 9, "finn_cycles": 3840,
                                 "ours_cycles": 3905, "finn_lut": 500}],
                     "blocks": {"projector": {"finn_cycles_max": 4370, "ours_cycles": 3905, "finn_lut": 600,
                                              "ours_lut_ecp5": 700}},
                     "notes": ["a note"]}
        cell = ASEGRUCell(16, 4, 1, 3)
        s["baseline"] = baseline.run_baseline(cell, 16, 8, ["320x192", "640x384"], "cpu", warmup=0, iters=2)
    return s


def test_frame_cycles_scales_with_pixels():
    s = _summary(False)
    assert frame_cycles(s, 320, 192) == pytest.approx(15515)
    assert frame_cycles(s, 640, 384) == pytest.approx(4 * 15515)


def _chromium() -> str:
    require_tool("chromium")
    return shutil.which("chromium")


def _dump_dom(path: Path, tmp_path: Path) -> str:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000", "--dump-dom",
           path.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_html_report_renders_in_chromium(tmp_path):
    s = _summary()
    path = write_html(s, tmp_path / "report.html")
    text = path.read_text()
    assert "src=\"http" not in text and "<link" not in text   # self-contained
    n_img = text.count("data:image/png;base64,")
    assert n_img == 5   # Fmax, resources per block, area and power, FINN, fps vs resolution
    dom = _dump_dom(path, tmp_path)
    m = re.search(r'data-images-total="(\d+)" data-images-decoded="(\d+)"', dom)
    assert m, "the page's load handler did not run"
    assert int(m.group(1)) == n_img and int(m.group(2)) == n_img
    for heading in ("FPGA implementation", "ASIC estimate", "FINN side by side", "Software baseline"):
        assert heading in dom
    assert "estimate" in dom and "sky130hd" in dom


def test_html_report_broken_image_is_detected(tmp_path):
    """The render check can fail: a corrupt PNG is counted as not decoded."""
    path = write_html(_summary(), tmp_path / "report.html")
    text = path.read_text()
    i = text.index("data:image/png;base64,") + len("data:image/png;base64,")
    path.write_text(text[:i] + "AAAA" + text[i + 4:])
    m = re.search(r'data-images-total="(\d+)" data-images-decoded="(\d+)"', _dump_dom(path, tmp_path))
    assert int(m.group(2)) == int(m.group(1)) - 1


def test_html_report_without_optional_sections_and_errors(tmp_path):
    s = _summary(False)
    text = write_html(s, tmp_path / "r.html").read_text()
    assert "did not run" in text and "data:image/png" not in text
    bad = copy.deepcopy(s)
    del bad["feature_map"]
    with pytest.raises(EdgecodecError, match="feature_map"):
        write_html(bad, tmp_path / "bad.html")
    (tmp_path / "s.json").write_text("{not json")
    assert main(["report", "--summary", str(tmp_path / "s.json"), "-o", str(tmp_path / "x.html")]) == 2
    assert not (tmp_path / "x.html").exists()
    (tmp_path / "ok.json").write_text(json.dumps(s))
    assert main(["report", "--summary", str(tmp_path / "ok.json"), "-o", str(tmp_path / "ok.html")]) == 0
    assert (tmp_path / "ok.html").read_text() == text  # same summary -> same bytes
