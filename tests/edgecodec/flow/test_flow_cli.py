"""The flow and the command line: bad input gives a clear error and exit 2; a tiny flow runs end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from edgecodec.flow import proxy_checkpoint as checkpoint
from edgecodec.cli import main
from edgecodec.config import from_dict
from base.errors import EdgecodecError

from tests.conftest import CLIP_160, ROOT

SMALL_CLIP = str(CLIP_160)


def tiny_config(tmp_path: Path, **flow) -> dict:
    return {
        "model": {"channels": 8, "layers": 1, "se_reduction": 2, "downsample": 8},
        "hw": {"pe": 2, "simd": 2, "dw_parallel": 2},
        "train": {"clips": [SMALL_CLIP], "seq_len": 3, "crop": 32, "batch": 2, "float_steps": 3, "qat_steps": 2},
        "flow": {"clip": SMALL_CLIP, "frames": 2, "simulator": "icarus", "build_dir": str(tmp_path / "flow"),
                 "checkpoint": str(tmp_path / "flow" / "ck.pt"), **flow},
    }


def write_cfg(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_cli_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("flow", "train", "train-proxy", "encode", "decode", "verilog", "synth"):
        assert cmd in out


def test_missing_config_is_a_clear_error(tmp_path, capsys):
    assert main(["flow", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_unsupported_hw_config_is_rejected_before_work(tmp_path, capsys):
    data = tiny_config(tmp_path)
    data["hw"]["pe"] = 3
    assert main(["flow", "--config", write_cfg(tmp_path, data)]) == 2
    err = capsys.readouterr().err
    assert "hw.pe=3 must divide model.channels=8" in err
    assert not (tmp_path / "flow").exists()


def test_unreadable_video_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.y4m"
    bad.write_bytes(b"this is not a video\n" * 10)
    data = tiny_config(tmp_path, clip=str(bad))
    assert main(["flow", "--config", write_cfg(tmp_path, data)]) == 2
    assert "not a Y4M file" in capsys.readouterr().err
    assert not (tmp_path / "flow" / "summary.json").exists()


def test_corrupt_and_foreign_checkpoints(tmp_path):
    cfg = from_dict(tiny_config(tmp_path))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(EdgecodecError, match="corrupt"):
        checkpoint.load(bad, cfg)
    with pytest.raises(EdgecodecError, match="not found"):
        checkpoint.load(tmp_path / "missing.pt", cfg)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(EdgecodecError, match="not an edgecodec"):
        checkpoint.load(foreign, cfg)
    good = tmp_path / "good.pt"
    checkpoint.save(good, cfg, {}, {}, [], {})
    other = from_dict({**tiny_config(tmp_path), "model": {"channels": 16, "layers": 1, "se_reduction": 2}})
    with pytest.raises(EdgecodecError, match="different model/quant/train config"):
        checkpoint.load(good, other)


def test_missing_simulator_is_named(monkeypatch):
    from sim import runner
    monkeypatch.setattr(runner.shutil, "which", lambda name: None)
    with pytest.raises(EdgecodecError, match="icarus' is not installed"):
        runner.ensure_simulator("icarus")
    with pytest.raises(EdgecodecError, match="unknown simulator"):
        runner.ensure_simulator("modelsim")


def test_training_is_deterministic(tmp_path):
    """Same config and seed -> the same checkpoint, byte for byte."""
    from edgecodec.flow.proxy import train
    cfg = from_dict(tiny_config(tmp_path))
    blobs = []
    for _ in range(2):
        train(cfg, progress=False)
        blobs.append(Path(cfg.flow.checkpoint).read_bytes())
    assert blobs[0] == blobs[1]


def test_tiny_flow_end_to_end(tmp_path, capsys):
    """Train -> QAT -> QONNX -> golden -> Verilog -> Icarus -> synth_ecp5 -> baseline -> reports, small config."""
    data = tiny_config(tmp_path)
    data["model"]["channels"] = 4          # the smallest cell the folding takes: yosys is most of this test's time
    cfg_path = write_cfg(tmp_path, data)
    assert main(["flow", "--config", cfg_path, "--quiet", "--no-fpga", "--no-asic", "--no-finn", "--no-codec",
                 "--no-engine"]) == 0
    s = json.loads((tmp_path / "flow" / "summary.json").read_text())
    assert s["mismatches"] == 0
    assert s["outputs_compared"] == 2 * 4 * 12 * 20
    for key in ("cycles_per_step", "ideal_cycles_per_step", "macs_per_step", "resources", "verilog"):
        assert s[key], key
    assert s["ideal_cycles_per_step"] == 12 * 20 * 4 * 4 / (2 * 2)
    assert s["cycles_per_step"] >= s["ideal_cycles_per_step"]
    assert set(s["resources"]) >= {"LUT", "FF", "DSP", "BRAM"} and s["resources"]["LUT"] > 0
    assert Path(s["verilog"]).is_file()
    report = (tmp_path / "flow" / "report.md").read_text()
    assert "Bit-exactness" in report and "synth_ecp5" in report
    assert "fpga" not in s and "asic" not in s and "finn" not in s
    assert s["baseline"]["resolution"] == "160x96" and s["baseline"]["ms_per_frame"] > 0
    html = (tmp_path / "flow" / "report.html").read_text()
    assert "did not run" in html and "Software baseline" in html
    # The second run reuses the checkpoint and produces the same Verilog bytes.
    first = Path(s["verilog"]).read_bytes()
    shutil.rmtree(tmp_path / "flow" / "sim")
    assert main(["verilog", "--config", cfg_path, "--height", "12", "--width", "20", "-o",
                 str(tmp_path / "again.v")]) == 0
    assert (tmp_path / "again.v").read_bytes() == first


def test_unknown_stage_to_skip_is_an_error(tmp_path):
    from edgecodec.flow.builder import run
    with pytest.raises(EdgecodecError, match="unknown stage"):
        run(from_dict(tiny_config(tmp_path)), skip=("fpgaa",))


def test_asic_library_choices_match_the_config():
    from hw.asic import LIBRARIES
    for lib in LIBRARIES:
        from_dict({"asic": {"library": lib}})
    with pytest.raises(EdgecodecError, match="choose one of sky130hd, gf180mcu, sg13g2"):
        from_dict({"asic": {"library": "tsmc7"}})


@pytest.mark.slow
def test_tiny_flow_all_stages(tmp_path):
    """Every implementation stage on a small config: ECP5 45k bitstream, sky130 estimate, FINN, baseline, HTML."""
    data = tiny_config(tmp_path)
    data["fpga"] = {"device": "45k", "freq_mhz": 40}   # 54 multipliers: more than the 25k has
    data["codec"] = {"checkpoints": str(ROOT / "checkpoints"), "eval_clip": SMALL_CLIP, "eval_frames": 5, "gop": 4}
    cfg_path = write_cfg(tmp_path, data)
    assert main(["flow", "--config", cfg_path, "--quiet"]) == 0
    s = json.loads((tmp_path / "flow" / "summary.json").read_text())
    f, a, b = s["fpga"], s["asic"], s["baseline"]
    assert s["mismatches"] == 0 and a["gate_level_bit_exact"]
    assert Path(f["bitstream"]).stat().st_size > 100_000 and f["fmax_mhz"] > 0
    assert f["fps"] == pytest.approx(f["fmax_mhz"] * 1e6 / s["cycles_per_step"])
    assert f["xilinx"]["lut"] > 0 and Path(f["vivado_tcl"]).is_file()
    assert a["library"] == "sky130hd" and a["area_um2"] > 0 and a["power_mw"]["total"] > 0
    assert a["energy_per_frame_mj"] == pytest.approx(a["power_mw"]["total"] * s["cycles_per_step"]
                                                     / (a["clock_mhz"] * 1e6), rel=1e-6)
    assert s["finn"]["blocks"]["gates"]["finn_cycles_max"] == 12 * 20 * 8 * 8 // (2 * 2)
    assert b["ms_per_frame"] > 0
    c = s["codec"]
    assert c["rtl_check"]["mismatches"] == 0 and c["rtl_check"]["codes_compared"] > 0
    assert len(c["rd"]["ours-int"]) == 4 and c["bd_rate_vs_x264"]["x265"]["psnr_yuv611"]["bd_rate_pct"] is not None
    html = (tmp_path / "flow" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6
