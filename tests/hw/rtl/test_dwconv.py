"""hw.rtl.dwconv.DWConvResidual: bit-exact against quant.cell.golden_dwconv under stalls, reset, lint, parameter checks."""

from __future__ import annotations

import gc
import subprocess
from pathlib import Path

import numpy as np
import pytest

from base.errors import EdgecodecError
from hw.rtl.dwconv import DWConvResidual
from quant.fixed_point import srange
from quant.cell.golden_dwconv import dwconv_reference
from sim.runner import ensure_simulator, run_bench

# name: C, H, W, k, P, A, weight bits, f_w (residual shift), s (out shift), frames, idle, backpressure, |x| max
CONFIGS = {
    "c4_k3_p1": dict(C=4, H=6, W=6, k=3, P=1, A=8, Wb=8, fw=7, s=9, frames=3, idle=0.3, bp=0.3),
    "c8_k3_p4": dict(C=8, H=5, W=7, k=3, P=4, A=8, Wb=8, fw=6, s=8, frames=3, idle=0.3, bp=0.4),
    "c4_k5_p2_a6": dict(C=4, H=7, W=5, k=5, P=2, A=6, Wb=6, fw=4, s=6, frames=3, idle=0.2, bp=0.3),
    # frame smaller than the kernel: every output sees padding on several sides
    "c2_k5_tiny": dict(C=2, H=2, W=3, k=5, P=1, A=8, Wb=8, fw=7, s=8, frames=4, idle=0.3, bp=0.3),
    # 1 x 1 kernel, all channels in one cycle
    "c3_k1_p3": dict(C=3, H=3, W=4, k=1, P=3, A=8, Wb=8, fw=7, s=7, frames=3, idle=0.3, bp=0.3),
    # s < 0: exact left shift then saturation
    "c4_k3_neg_shift": dict(C=4, H=4, W=5, k=3, P=2, A=8, Wb=3, fw=0, s=-1, frames=2, idle=0.2, bp=0.2, xmax=6),
}


def _weights(cfg: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo, hi = srange(cfg["Wb"])
    w = rng.integers(lo, hi + 1, size=(cfg["C"], cfg["k"], cfg["k"]))
    bmax = 1 << (cfg["A"] + cfg["Wb"] - 2)
    b = rng.integers(-bmax, bmax, size=cfg["C"])
    return w, b


def _block(cfg: dict, w: np.ndarray, b: np.ndarray) -> DWConvResidual:
    return DWConvResidual(channels=cfg["C"], height=cfg["H"], width=cfg["W"], kernel=cfg["k"],
                          act_bits=cfg["A"], weights=w, weight_bits=cfg["Wb"], bias=b,
                          residual_shift=cfg["fw"], out_shift=cfg["s"], parallel=cfg["P"])


def _write_verilog(block: DWConvResidual, path: Path) -> Path:
    from amaranth.back import verilog
    path.write_text(verilog.convert(block, name="dwconv"))
    return path


def _prepare(tmp_path: Path, cfg: dict, seed: int = 1, corrupt: bool = False) -> tuple[Path, dict, DWConvResidual]:
    """Verilog of the block, stimulus and golden codes; `corrupt` builds the RTL with one weight off by one."""
    w, b = _weights(cfg, seed)
    rtl_w = w.copy()
    if corrupt:
        lo, hi = srange(cfg["Wb"])
        tap = (1, cfg["k"] // 2, cfg["k"] - 1)
        rtl_w[tap] += 1 if rtl_w[tap] < hi else -1
    block = _block(cfg, rtl_w, b)
    verilog_path = _write_verilog(block, tmp_path / "dwconv.v")
    rng = np.random.default_rng(seed + 1000)
    lo, hi = srange(cfg["A"])
    xmax = cfg.get("xmax")
    if xmax is not None:
        lo, hi = -xmax, xmax
    x = rng.integers(lo, hi + 1, size=(cfg["frames"], cfg["C"], cfg["H"], cfg["W"]))
    x[0, :, 0, 0] = lo                          # extremes in every run
    x[0, :, -1, -1] = hi
    expected = np.stack([dwconv_reference(f, w, b, cfg["fw"], cfg["s"], cfg["A"]) for f in x])
    npz = tmp_path / "stimulus.npz"
    np.savez(npz, x=x, expected=expected)
    params = dict(npz=str(npz), act_bits=cfg["A"], seed=seed, idle=cfg["idle"], backpressure=cfg["bp"])
    return verilog_path, params, block


def _run(tmp_path: Path, verilog_path: Path, params: dict, simulator: str = "icarus",
         testcase: str | None = None) -> Path:
    return run_bench(verilog_path, toplevel="dwconv", test_module="sim.tb.dwconv",
                     build_dir=tmp_path / f"sim_{simulator}", simulator=simulator, env=params, testcase=testcase)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_bit_exact_icarus(tmp_path, name):
    verilog_path, params, _ = _prepare(tmp_path, CONFIGS[name])
    _run(tmp_path, verilog_path, params)


def test_cycles_per_frame_without_stalls(tmp_path):
    cfg = dict(CONFIGS["c8_k3_p4"], H=4, W=6, idle=0.0, bp=0.0, frames=3)
    verilog_path, params, block = _prepare(tmp_path, cfg)
    pad = cfg["k"] // 2
    assert block.cycles_per_frame == (4 + pad) * (6 + pad) + 4 * 6 * (cfg["C"] // cfg["P"] - 1)
    params["expect_cycles"] = block.cycles_per_frame
    _run(tmp_path, verilog_path, params, testcase="test_stream")   # the bench asserts the count


@pytest.mark.slow      # the Icarus runs above cover the same RTL in make test
def test_bit_exact_verilator(tmp_path):
    try:
        ensure_simulator("verilator")
    except EdgecodecError as err:
        pytest.fail(str(err))
    verilog_path, params, _ = _prepare(tmp_path, CONFIGS["c8_k3_p4"], seed=3)
    _run(tmp_path, verilog_path, params, simulator="verilator")


def test_corrupted_weight_is_caught(tmp_path):
    cfg = CONFIGS["c4_k3_p1"]
    verilog_path, params, block = _prepare(tmp_path, cfg, corrupt=True)
    data = np.load(params["npz"])
    wrong = np.stack([dwconv_reference(f, block.weights, block.bias, cfg["fw"], cfg["s"], cfg["A"])
                      for f in data["x"]])
    assert (wrong != data["expected"]).any(), "the corrupted weight must change some output code"
    with pytest.raises(EdgecodecError, match="failed"):
        _run(tmp_path, verilog_path, params, testcase="test_stream")


def test_verilator_lint(tmp_path):
    try:
        ensure_simulator("verilator")
    except EdgecodecError as err:
        pytest.fail(str(err))
    w, b = _weights(CONFIGS["c8_k3_p4"], 0)
    verilog_path = _write_verilog(_block(CONFIGS["c8_k3_p4"], w, b), tmp_path / "dwconv.v")
    waivers = [
        # Yosys' Verilog leaves dangling bits of intermediate words (the slice of the shifted window word a lane
        # uses, the discarded low bits of the rounding shift, the high bits of a wrapped address) and keeps
        # named aliases (acc_<lane>, the memory port nets) for waveforms while using the expression directly.
        "-Wno-UNUSEDSIGNAL",
        # Yosys relies on Verilog's context-determined widths: operands of + and < are sign/zero-extended to the
        # result and shifted words are truncated by the assignment; that is the intended arithmetic, and the
        # bit-exact benches check it.
        "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
        # Amaranth declares each register with its power-on value (`reg x = 0;`) and also resets it
        # synchronously to the same value; both are intended.
        "-Wno-PROCASSINIT",
    ]
    proc = subprocess.run(["verilator", "--lint-only", "-Wall", *waivers, "--top-module", "dwconv",
                           str(verilog_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "%Warning" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("bad, message", [
    (dict(P=3), "parallel"),
    (dict(k=4), "odd"),
    (dict(k=0), "kernel"),
    (dict(weights_delta=1), "weight codes"),
    (dict(weights_shape=(4, 3, 2)), "shape"),
    (dict(bias_shape=(3,)), "bias"),
    (dict(weights_float=True), "integer"),
    (dict(fw=-1), "residual_shift"),
    (dict(C=0), "channels"),
    (dict(A=1), "act_bits"),
    (dict(H=2.5), "height"),
])
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")   # the half-built object is dropped
def test_invalid_parameters(bad, message):
    cfg = dict(CONFIGS["c4_k3_p1"])
    cfg.update({key: value for key, value in bad.items() if key in cfg})
    k = cfg["k"] if isinstance(cfg["k"], int) and cfg["k"] > 0 else 3
    w = np.zeros(bad.get("weights_shape", (4, k, k)), dtype=np.int64)
    if "weights_delta" in bad:
        w[0, 0, 0] = srange(cfg["Wb"])[1] + bad["weights_delta"]
    if bad.get("weights_float"):
        w = w.astype(np.float64)
    b = np.zeros(bad.get("bias_shape", (4,)), dtype=np.int64)
    with pytest.raises(ValueError, match=message) as excinfo:
        DWConvResidual(channels=cfg["C"], height=cfg["H"], width=cfg["W"], kernel=cfg["k"], act_bits=cfg["A"],
                       weights=w, weight_bits=cfg["Wb"], bias=b, residual_shift=cfg["fw"],
                       out_shift=cfg["s"], parallel=cfg["P"])
    del excinfo                                 # drop the rejected object here, under the filter above
    gc.collect()


def _float_reference(x, w, b, fw, s, bits):
    """Same arithmetic in float64 (exact for these magnitudes): explicit zero-padded correlation, np.round."""
    c, h, wd = x.shape
    k = w.shape[1]
    pad = k // 2
    xf = np.zeros((c, h + 2 * pad, wd + 2 * pad))
    xf[:, pad:pad + h, pad:pad + wd] = x
    acc = np.zeros((c, h, wd))
    for ch in range(c):
        for y in range(h):
            for xx in range(wd):
                acc[ch, y, xx] = float((w[ch].astype(np.float64) * xf[ch, y:y + k, xx:xx + k]).sum())
    acc += b[:, None, None] + x * 2.0 ** fw
    lo, hi = srange(bits)
    return np.clip(np.round(acc * 2.0 ** -s), lo, hi)    # np.round is round half to even


@pytest.mark.parametrize("k, s, bits", [(3, 9, 8), (5, 6, 6), (1, 3, 8), (3, 0, 8), (3, -2, 8), (3, 1, 4)])
def test_golden_matches_float64(k, s, bits):
    rng = np.random.default_rng(k * 100 + s + 10)
    c, h, wd = 3, 5, 6
    lo, hi = srange(bits)
    x = rng.integers(lo, hi + 1, size=(c, h, wd))
    w = rng.integers(-128, 128, size=(c, k, k))
    b = rng.integers(-5000, 5000, size=c)
    fw = 5
    got = dwconv_reference(x, w, b, fw, s, bits)
    assert got.dtype == np.int64 and got.shape == (c, h, wd)
    np.testing.assert_array_equal(got, _float_reference(x, w, b, fw, s, bits))


def test_golden_rounds_half_to_even():
    # 1 x 1 kernel with zero weight: acc = b + x << 0; s = 1 makes every odd acc a tie.
    x = np.array([[[1, 3, -1, -3, 5]]])
    out = dwconv_reference(x, np.zeros((1, 1, 1), dtype=np.int64), np.array([0]), 0, 1, 8)
    np.testing.assert_array_equal(out, [[[0, 2, 0, -2, 2]]])
