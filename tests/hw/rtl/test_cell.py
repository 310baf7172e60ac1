"""hw.rtl.cell_top via hw.rtl.emit.write_verilog: bit-exact against quant.cell.golden under stalls and reset (Icarus sweep,
one Verilator run on real-frame features), a corrupted weight is caught, bad folding is an EdgecodecError, lint,
deterministic emission and a sanity bound on cycles per step."""

from __future__ import annotations

import copy
import gc
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hw.config import HwConfig
from quant.config import QuantConfig
from base.errors import EdgecodecError
from hw.rtl.emit import TOP_NAME, build_top, write_verilog
from quant import fixed_point as fp
from quant.cell import golden
from quant.cell.params import CellParams, extract
from quant.cell.qat import CellFracs, from_float
from sim.cell_check import run_cell_bench
from sim.runner import ensure_simulator

from tests.cellgen import random_inputs as _inputs
from tests.cellgen import random_params as _params

from tests.conftest import CLIP_160 as CLIP

# name: C, pe, simd, dw_parallel, dw kernel, SE reduction, act/weight bits, frame, steps, stalls, reset in mid-stream;
# optional q (QuantConfig), fr (CellFracs), gain (float weights scaled), std (input spread, real units)
SWEEP = {
    "c8_pe1_simd8_dw2_k3": dict(C=8, pe=1, simd=8, dwp=2, k=3, r=2, A=8, H=4, W=5, T=3, idle=0.2, bp=0.3, reset=True),
    "c8_pe2_simd2_dw8_k3": dict(C=8, pe=2, simd=2, dwp=8, k=3, r=4, A=8, H=4, W=5, T=3, idle=0.3, bp=0.4, reset=False),
    "c16_pe4_simd4_dw4_k3": dict(C=16, pe=4, simd=4, dwp=4, k=3, r=4, A=8, H=4, W=5, T=3, idle=0.2, bp=0.3,
                                 reset=True),
    "c8_pe8_simd1_dw1_k5": dict(C=8, pe=8, simd=1, dwp=1, k=5, r=2, A=8, H=4, W=5, T=3, idle=0.2, bp=0.5, reset=False),
    # fully parallel array (one beat per pixel): the output FIFO fills, so backpressure really stalls the pipeline
    "c8_pe8_simd8_dw8_k3": dict(C=8, pe=8, simd=8, dwp=8, k=3, r=2, A=8, H=4, W=5, T=3, idle=0.1, bp=0.6, reset=True),
    # narrower codes (6-bit activations and weights), odd frame 3 x 5
    "c8_pe2_simd4_dw2_k3_a6": dict(C=8, pe=2, simd=4, dwp=2, k=3, r=2, A=6, H=3, W=5, T=3, idle=0.2, bp=0.3,
                                   reset=False),
    # negative fractional bits (large-range tensors): the SE FC2 requant is a left shift (fc2_shift < 0)
    "c8_pe2_simd4_dw2_k3_negfrac": dict(C=8, pe=2, simd=4, dwp=2, k=3, r=2, A=8, H=3, W=4, T=3, idle=0.2, bp=0.3,
                                        reset=False, fr=CellFracs(x=-1, xp=-1, s1=-2, p=-1), gain=20.0, std=50.0),
}
# wider / narrower arithmetic; kept out of `make test`
SWEEP_SLOW = {
    "c8_a10_l10": dict(C=8, pe=2, simd=4, dwp=2, k=3, r=2, A=10, H=3, W=4, T=3, idle=0.2, bp=0.3, reset=True,
                       q=QuantConfig(act_bits=10, weight_bits=8, lut_bits=10, lut_frac=6),
                       fr=CellFracs(x=8, xp=7, s1=7, p=8), std=0.5),
    "c8_a4_w4_l6": dict(C=8, pe=4, simd=2, dwp=4, k=3, r=2, A=4, H=3, W=4, T=3, idle=0.2, bp=0.3, reset=False,
                        q=QuantConfig(act_bits=4, weight_bits=4, lut_bits=6, lut_frac=2), fr=CellFracs(2, 2, 1, 1)),
    "c8_w3_l4_f0": dict(C=8, pe=2, simd=4, dwp=2, k=3, r=2, A=8, H=3, W=4, T=3, idle=0.2, bp=0.3, reset=False,
                        q=QuantConfig(act_bits=8, weight_bits=3, lut_bits=4, lut_frac=0)),
    "c8_fine_fracs": dict(C=8, pe=2, simd=4, dwp=2, k=3, r=2, A=8, H=3, W=4, T=3, idle=0.2, bp=0.3, reset=False,
                          fr=CellFracs(x=10, xp=9, s1=9, p=12), gain=0.1, std=0.05),
    "c16_pe2_simd8_dw4_k5_6x7": dict(C=16, pe=2, simd=8, dwp=4, k=5, r=4, A=8, H=6, W=7, T=6, idle=0.3, bp=0.4,
                                     reset=True),
    "c16_pe16_simd1_dw16_k3": dict(C=16, pe=16, simd=1, dwp=16, k=3, r=2, A=8, H=3, W=4, T=3, idle=0.2, bp=0.3,
                                   reset=False),
}


def _cfg_params(cfg: dict) -> CellParams:
    return _params(cfg["C"], cfg["r"], cfg["k"], cfg["A"], q=cfg.get("q"), fr=cfg.get("fr"), gain=cfg.get("gain", 1.0))


def _bench(tmp_path: Path, p: CellParams, x: np.ndarray, hw: HwConfig, simulator: str = "icarus",
           expected: np.ndarray | None = None, **kw) -> dict:
    H, W = x.shape[2:]
    v = write_verilog(p, H, W, hw, tmp_path / f"{TOP_NAME}.v")
    want = golden.run_sequence(p, x) if expected is None else expected
    return run_cell_bench(v, TOP_NAME, x, want, p.act_bits, tmp_path, simulator, **kw)


def _check_clean(res: dict, x: np.ndarray, hw: HwConfig) -> None:
    T, C, H, W = x.shape
    assert res["mismatches"] == 0 and res["missing_pixels"] == 0, res["first_mismatches"]
    assert res["outputs_compared"] == T * C * H * W
    assert len(res["cycles_per_step"]) == T
    # no step can beat the MAC bound of the PE x SIMD array
    assert min(res["cycles_per_step"]) >= H * W * C * C // (hw.pe * hw.simd), res["cycles_per_step"]


def _sweep_case(tmp_path: Path, cfg: dict, seed: int) -> None:
    p = _cfg_params(cfg)
    assert p.act_bits == cfg["A"]
    x = _inputs(p, cfg["T"], cfg["H"], cfg["W"], seed=seed, std=cfg.get("std", 0.7))
    want = golden.run_sequence(p, x)
    assert len(np.unique(want)) >= 4, f"hidden state too uniform to test anything: {np.unique(want)}"
    hw = HwConfig(pe=cfg["pe"], simd=cfg["simd"], dw_parallel=cfg["dwp"])
    res = _bench(tmp_path, p, x, hw, expected=want, idle=cfg["idle"], backpressure=cfg["bp"],
                 reset_mid=cfg["reset"], seed=3, raise_on_mismatch=True)
    _check_clean(res, x, hw)


@pytest.mark.parametrize("name", list(SWEEP))
def test_bit_exact_icarus(tmp_path, name):
    _sweep_case(tmp_path, SWEEP[name], seed=len(name))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SWEEP_SLOW))
def test_bit_exact_icarus_more_widths(tmp_path, name):
    _sweep_case(tmp_path, SWEEP_SLOW[name], seed=len(name))


# ---- real frames -------------------------------------------------------------------------------------------------

def _real_features(C: int, r: int, k: int, bits: int = 8):
    """Random-init predictor with fracs calibrated on the CiscoVT 160x96 clip; (QAT cell, features (T, C, 12, 20))."""
    from model.proxy.predictor import NextFramePredictor
    from model.video import read_luma
    from quant.cell.calibrate import cell_fracs
    if not CLIP.is_file():
        pytest.fail(f"real clip not available: {CLIP}")
    frames = torch.from_numpy(read_luma(CLIP).astype(np.float32) / 255.0)[None, :, None]
    torch.manual_seed(1)
    model = NextFramePredictor(channels=C, layers=1, reduction=r, dw_kernel=k, downsample=8)
    fracs = cell_fracs(model, frames, bits)[0]
    with torch.no_grad():
        feats = model.features(frames[0]).double().numpy()
    qc = from_float(model.rnn.cells[0], QuantConfig(act_bits=bits, weight_bits=bits), fracs, r).double().eval()
    return qc, feats


def _codes(feats: np.ndarray, p: CellParams) -> np.ndarray:
    return np.clip(np.round(feats * 2.0 ** p.f_x), *fp.srange(p.act_bits)).astype(np.int64)


def test_real_frames_icarus_cropped(tmp_path):
    qc, feats = _real_features(8, 2, 3)
    p = extract(qc)
    x = _codes(feats, p)[:, :, 4:8, 7:13]                      # 4 x 6 crop of the 12 x 20 feature map
    assert np.abs(x).max() >= 1 << (p.act_bits - 3)
    hw = HwConfig(pe=2, simd=4, dw_parallel=4)
    res = _bench(tmp_path, p, x, hw, idle=0.2, backpressure=0.3, reset_mid=True, seed=1)
    _check_clean(res, x, hw)


@pytest.mark.slow   # the cropped Icarus run above checks the same frames in make test
def test_real_frames_verilator_full_map(tmp_path):
    """QAT (float64) == golden == RTL on the whole 12 x 20 feature map of the real clip, C = 16, with stalls."""
    try:
        ensure_simulator("verilator")
    except EdgecodecError as err:
        pytest.fail(str(err))
    qc, feats = _real_features(16, 4, 3)
    p = extract(qc)
    x = _codes(feats, p)
    assert x.shape == (5, 16, 12, 20)
    want = golden.run_sequence(p, x)
    h = torch.zeros((1, 16, 12, 20), dtype=torch.float64)
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = qc(torch.from_numpy(feats[t][None]), h)
            np.testing.assert_array_equal(h[0].numpy() * 2.0 ** (p.act_bits - 1), want[t])
    hw = HwConfig(pe=4, simd=4, dw_parallel=4)
    res = _bench(tmp_path, p, x, hw, "verilator", expected=want, idle=0.1, backpressure=0.2, reset_mid=True, seed=2)
    _check_clean(res, x, hw)


# ---- sensitivity ------------------------------------------------------------------------------------------------

def test_corrupted_weight_is_caught(tmp_path):
    p = _params(8, 2, 3)
    x = _inputs(p, 3, 4, 5, seed=9)
    want = golden.run_sequence(p, x)
    bad = copy.deepcopy(p)
    idx = np.unravel_index(np.argmax(np.abs(bad.w["n"])), bad.w["n"].shape)
    bad.w["n"][idx] += 1 if bad.w["n"][idx] < fp.srange(p.weight_bits)[1] else -1
    assert (golden.run_sequence(bad, x) != want).any(), "the corrupted weight must change some output code"
    hw = HwConfig(pe=2, simd=4, dw_parallel=4)
    with pytest.raises(EdgecodecError, match="failed"):
        _bench(tmp_path / "raise", bad, x, hw, expected=want, raise_on_mismatch=True)
    res = _bench(tmp_path / "report", bad, x, hw, expected=want, idle=0.1, raise_on_mismatch=False)
    assert res["mismatches"] > 0 and res["first_mismatches"], res
    assert res["missing_pixels"] == 0
    m = res["first_mismatches"][0]
    assert m["rtl"] != m["expected"]
    # the reported mismatch is exactly where the corrupted golden model differs from the clean one
    assert golden.run_sequence(bad, x)[m["step"], m["channel"]].ravel()[m["pixel"]] == m["rtl"]


# ---- configuration errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("hw, frame, change, message", [
    (HwConfig(pe=3, simd=4, dw_parallel=4), (4, 5), None, "pe=3 must divide channels=8"),
    (HwConfig(pe=4, simd=3, dw_parallel=4), (4, 5), None, "simd=3 must divide channels=8"),
    (HwConfig(pe=4, simd=4, dw_parallel=3), (4, 5), None, r"parallel \(3\) must divide channels \(8\)"),
    (HwConfig(pe=0, simd=4, dw_parallel=4), (4, 5), None, "pe=0"),
    (HwConfig(pe=16, simd=4, dw_parallel=4), (4, 5), None, "pe=16"),
    (HwConfig(), (0, 5), None, "height"),
    (HwConfig(), (4, 5), "gate3x3", "1x1"),
    (HwConfig(), (4, 5), "wide_weight", "exceed weight_bits"),
])
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")   # the half-built objects are dropped
def test_invalid_configs_raise_flow_error(hw, frame, change, message):
    p = copy.deepcopy(_params(8, 2, 3))
    if change == "gate3x3":
        p.w["z"] = np.zeros((8, 8, 3, 3), dtype=np.int64)
    elif change == "wide_weight":
        p.u["r"][0, 0] = fp.srange(p.weight_bits)[1] + 1
    with pytest.raises(EdgecodecError, match="unsupported hardware configuration") as exc:
        build_top(p, *frame, hw)
    assert re.search(message, str(exc.value)), str(exc.value)
    del exc
    gc.collect()


# ---- lint, determinism, cycles -------------------------------------------------------------------------------------

# Every warning class Verilator -Wall reports on Amaranth/Yosys output, and why it is intended:
LINT_WAIVERS = [
    # Yosys keeps named nets for waveforms (memory port nets, full-width intermediates of which only a slice is
    # used: the discarded low bits of a rounding shift, the unused half of a product, FSM next-state aliases).
    "-Wno-UNUSEDSIGNAL",
    # Yosys relies on Verilog's context-determined widths: operands are sign/zero-extended to the result width
    # and constant ROM words shifted by an index are truncated by the assignment; the benches check the
    # arithmetic bit-exactly.
    "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
    # Amaranth declares each register with its power-on value (`reg x = 0;`) and also resets it synchronously.
    "-Wno-PROCASSINIT",
    # Yosys writes combinational processes as a default assignment followed by a `casez` over only the FSM states
    # that change the signal; the default covers the rest.
    "-Wno-CASEINCOMPLETE",
    # One Verilog file holds the top and its submodules (`ase_gru_cell.dw`, `ase_gru_cell.gru`, ...); only the
    # top can match the file name.
    "-Wno-DECLFILENAME",
]


@pytest.mark.parametrize("name", ["c16_pe4_simd4_dw4_k3", "c8_pe8_simd1_dw1_k5"])
def test_verilator_lint(tmp_path, name):
    try:
        ensure_simulator("verilator")
    except EdgecodecError as err:
        pytest.fail(str(err))
    cfg = SWEEP[name]
    p = _cfg_params(cfg)
    v = write_verilog(p, 3, 4, HwConfig(pe=cfg["pe"], simd=cfg["simd"], dw_parallel=cfg["dwp"]),
                      tmp_path / f"{TOP_NAME}.v")
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", TOP_NAME, str(v)]
    proc = subprocess.run(cmd[:3] + LINT_WAIVERS + cmd[3:], capture_output=True, text=True, timeout=180)  # after -Wall
    assert proc.returncode == 0, proc.stdout + proc.stderr[-5000:]
    assert "%Warning" not in proc.stderr and "%Error" not in proc.stderr, proc.stderr[-5000:]
    # every waiver is needed: without them exactly these classes show up (no stale waivers)
    raw = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    seen = set(re.findall(r"%Warning-(\w+)", raw.stderr))
    assert seen <= {w.removeprefix("-Wno-") for w in LINT_WAIVERS}, seen
    # pe == C and simd == C would make the group/beat counters zero-width (`wire [-1:0]`); they are 1 bit wide.
    assert "[-1:0]" not in v.read_text()


def test_write_verilog_is_deterministic(tmp_path):
    p = _params(8, 2, 3)
    hw = HwConfig(pe=2, simd=4, dw_parallel=2)
    a = write_verilog(p, 3, 4, hw, tmp_path / "a" / "top.v").read_bytes()
    b = write_verilog(p, 3, 4, hw, tmp_path / "b" / "top.v").read_bytes()
    assert a == b
    assert f"module {TOP_NAME}(".encode() in a
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file may be left behind"
    # ... and in a fresh interpreter with another hash seed, from parameters saved to disk
    p.save(tmp_path / "cell.json")
    root = Path(__file__).resolve().parents[1]
    script = ("import sys; from pathlib import Path; from quant.cell.params import CellParams; "
              "from hw.config import HwConfig; from hw.rtl.emit import write_verilog; "
              "write_verilog(CellParams.load(Path(sys.argv[1])), 3, 4, HwConfig(pe=2, simd=4, dw_parallel=2), "
              "Path(sys.argv[2]))")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(root))
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "cell.json"), str(tmp_path / "c.v")],
                   check=True, env=env, cwd=root, timeout=120)
    assert (tmp_path / "c.v").read_bytes() == a
    # a different parameter set gives a different file
    other = copy.deepcopy(p)
    other.fc1_b[0] += 1
    assert write_verilog(other, 3, 4, hw, tmp_path / "d.v").read_bytes() != a


def test_cycles_per_step_without_stalls(tmp_path):
    C, pe, simd, r, H, W = 16, 4, 4, 4, 4, 5
    p = _params(C, r, 3)
    x = _inputs(p, 3, H, W, seed=4)
    hw = HwConfig(pe=pe, simd=simd, dw_parallel=4)
    res = _bench(tmp_path, p, x, hw, idle=0.0, backpressure=0.0)
    _check_clean(res, x, hw)
    mac = H * W * C * C // (pe * simd)
    cyc = res["cycles_per_step"]
    assert mac <= cyc[-1] <= 1.3 * mac + 2 * C * C / r + 300, cyc
    assert len(set(cyc[1:])) == 1, f"without stalls every step after the first takes the same time: {cyc}"
