"""quant.cell.golden: bit-exact against the Brevitas QAT cell in float64 (random inputs and features of real frames),
sensitive to corrupted parameters; CellParams persistence; extract rejects k x k gates."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch

from quant.config import QuantConfig
from base.errors import EdgecodecError
from model.cell.ase_gru import ASEGRUCell
from quant import fixed_point as fp
from quant.cell import golden
from quant.cell.params import GATES, CellParams, extract
from quant.cell.qat import CellFracs, from_float

from tests.conftest import CLIP_160 as CLIP

# name: channels, SE reduction, projector kernel, widths, calibrated fracs, frame, steps, input std, weight gain
RANDOM_CONFIGS = {
    "c8_r2_k3_a8": dict(C=8, r=2, k=3, A=8, Wb=8, fr=CellFracs(x=6, xp=5, s1=5, p=5), H=4, W=5, T=6, std=0.7),
    # power-of-two pixel count: the SE mean is an exact shift
    "c16_r4_k5_a8": dict(C=16, r=4, k=5, A=8, Wb=8, fr=CellFracs(x=6, xp=5, s1=6, p=6), H=4, W=4, T=5, std=0.5),
    "c8_r4_k5_a8_strong": dict(C=8, r=4, k=5, A=8, Wb=8, fr=CellFracs(x=5, xp=4, s1=4, p=4), H=5, W=7, T=6,
                               std=1.5, gain=3.0),
    "c8_r2_k3_a6": dict(C=8, r=2, k=3, A=6, Wb=6, fr=CellFracs(x=4, xp=3, s1=3, p=3), H=4, W=5, T=6, std=0.7),
    "c16_r2_k3_a6": dict(C=16, r=2, k=3, A=6, Wb=6, fr=CellFracs(x=3, xp=3, s1=3, p=3), H=3, W=5, T=5, std=1.0,
                         gain=2.0),
}


def _qcell(cfg: dict, seed: int = 0):
    torch.manual_seed(seed)
    cell = ASEGRUCell(cfg["C"], cfg["r"], 1, cfg["k"])
    gain = cfg.get("gain", 1.0)
    if gain != 1.0:
        with torch.no_grad():
            for prm in cell.parameters():
                prm.mul_(gain)
    q = QuantConfig(act_bits=cfg["A"], weight_bits=cfg["Wb"])
    return from_float(cell, q, cfg["fr"], cfg["r"]).double().eval()


@functools.lru_cache(maxsize=None)
def _cached(name: str, seed: int = 0):
    """(QAT cell, its CellParams) of a RANDOM_CONFIGS entry, built once per module (callers never mutate them)."""
    qc = _qcell(RANDOM_CONFIGS[name], seed)
    return qc, extract(qc)


@functools.lru_cache(maxsize=None)
def _cached_run(name: str, input_seed: int):
    """(input codes, QAT hidden-state codes) of the cached cell on `_random_inputs` (QAT is ~0.15 s a step)."""
    qc, p = _cached(name)
    xs = _random_inputs(RANDOM_CONFIGS[name], input_seed)
    return _x_codes(xs, p.f_x, p.act_bits), _qat_codes(qc, xs)


def _x_codes(xs: np.ndarray, f_x: int, bits: int) -> np.ndarray:
    """Real inputs (T, C, H, W) float64 -> signed codes on the grid 2^-f_x (round half even, saturate)."""
    return np.clip(np.round(xs * 2.0 ** f_x), *fp.srange(bits)).astype(np.int64)


def _qat_codes(qc, xs: np.ndarray) -> np.ndarray:
    """Hidden-state codes (T, C, H, W) of the QAT cell run in float64 from h = 0."""
    a = qc.qcfg.act_bits
    x = torch.as_tensor(xs, dtype=torch.float64)
    h = torch.zeros((1,) + tuple(x.shape[1:]), dtype=torch.float64)
    out = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = qc(x[t][None], h)
            out.append(h[0].numpy() * 2.0 ** (a - 1))
    codes = np.stack(out)
    assert np.array_equal(codes, np.round(codes)), "QAT hidden state is off the 2^-(A-1) grid"
    return codes.astype(np.int64)


def _random_inputs(cfg: dict, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xs = rng.normal(0.0, cfg["std"], size=(cfg["T"], cfg["C"], cfg["H"], cfg["W"]))
    # exact ties of the input rounding and saturated inputs, in every run
    xs[0, 0, 0, 0] = 2.5 * 2.0 ** -cfg["fr"].x
    xs[0, 1, 0, 0] = -1.5 * 2.0 ** -cfg["fr"].x
    xs[1, 0, -1, -1] = 1e3
    xs[1, 1, -1, -1] = -1e3
    return xs


def _assert_nontrivial(codes: np.ndarray, bits: int) -> None:
    assert len(np.unique(codes)) >= 8, f"hidden state too uniform to test anything: {np.unique(codes)}"
    assert np.abs(codes).max() <= 1 << (bits - 1)


@pytest.mark.parametrize("name", list(RANDOM_CONFIGS))
def test_golden_matches_qat_random(name):
    cfg = RANDOM_CONFIGS[name]
    qc = _qcell(cfg, seed=len(name))
    p = extract(qc)
    assert (p.channels, p.se_hidden, p.dw_kernel, p.act_bits) == (cfg["C"], cfg["C"] // cfg["r"], cfg["k"], cfg["A"])
    xs = _random_inputs(cfg, seed=7)
    want = _qat_codes(qc, xs)
    got = golden.run_sequence(p, _x_codes(xs, p.f_x, p.act_bits))
    assert got.dtype == np.int64 and got.shape == want.shape
    _assert_nontrivial(want, cfg["A"])
    np.testing.assert_array_equal(got, want)


# name: QuantConfig, fracs, float weight gain, input std (C = 8, r = 2, k = 3, 4 x 5 frame, 5 steps)
WIDTH_CONFIGS = {
    "a10_w8_l10": (QuantConfig(act_bits=10, weight_bits=8, lut_bits=10, lut_frac=6), CellFracs(8, 7, 7, 8), 1.0, 0.5),
    "a4_w4_l6": (QuantConfig(act_bits=4, weight_bits=4, lut_bits=6, lut_frac=2), CellFracs(2, 2, 1, 1), 1.0, 0.7),
    "w3_l4_f0": (QuantConfig(act_bits=8, weight_bits=3, lut_bits=4, lut_frac=0), CellFracs(6, 5, 5, 5), 1.0, 0.7),
    "bias16": (QuantConfig(bias_bits=16), CellFracs(6, 5, 5, 5), 1.0, 0.7),
    # negative fracs: dw/fc2 requant shifts <= 0 (exact left shifts); large weights and inputs
    "neg_fracs": (QuantConfig(), CellFracs(-1, -1, -2, -1), 20.0, 50.0),
    "fine_fracs": (QuantConfig(), CellFracs(10, 9, 9, 12), 0.1, 0.05),
    "a12_w12_l12": (QuantConfig(act_bits=12, weight_bits=12, lut_bits=12, lut_frac=8), CellFracs(10, 9, 9, 10),
                    1.0, 0.5),
}


@pytest.mark.parametrize("name", list(WIDTH_CONFIGS))
def test_golden_matches_qat_other_widths(name):
    q, fr, gain, std = WIDTH_CONFIGS[name]
    cfg = dict(C=8, r=2, k=3, A=q.act_bits, Wb=q.weight_bits, fr=fr, H=4, W=5, T=5, std=std, gain=gain)
    torch.manual_seed(0)
    cell = ASEGRUCell(8, 2, 1, 3)
    with torch.no_grad():
        for prm in cell.parameters():
            prm.mul_(gain)
    qc = from_float(cell, q, fr, 2).double().eval()
    p = extract(qc)
    if name == "neg_fracs":
        assert p.fc2_shift < 0
    xs = _random_inputs(cfg, seed=2)
    want = _qat_codes(qc, xs)
    assert len(np.unique(want)) >= 4
    np.testing.assert_array_equal(golden.run_sequence(p, _x_codes(xs, p.f_x, p.act_bits)), want)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 9))
@pytest.mark.parametrize("name", list(RANDOM_CONFIGS))
def test_golden_matches_qat_many_seeds(name, seed):
    cfg = RANDOM_CONFIGS[name]
    qc = _qcell(cfg, seed=seed)
    xs = _random_inputs(cfg, seed=100 + seed)
    p = extract(qc)
    np.testing.assert_array_equal(golden.run_sequence(p, _x_codes(xs, p.f_x, p.act_bits)), _qat_codes(qc, xs))


def test_cell_step_chains_to_run_sequence():
    cfg = RANDOM_CONFIGS["c8_r2_k3_a8"]
    p = _cached("c8_r2_k3_a8")[1]
    x = _x_codes(_random_inputs(cfg, 3), p.f_x, p.act_bits)
    seq = golden.run_sequence(p, x)
    h = np.zeros_like(x[0])
    for t in range(len(x)):
        h = golden.cell_step(p, x[t], h)
        np.testing.assert_array_equal(h, seq[t])
    # sigma of the all-zero state is the same for every frame size: only the biases reach it
    np.testing.assert_array_equal(golden.se_sigma(p, np.zeros((8, 4, 5), np.int64)),
                                  golden.se_sigma(p, np.zeros((8, 3, 3), np.int64)))


# ---- features of real frames ---------------------------------------------------------------------------------

def _real_frames() -> torch.Tensor:
    from model.video import read_luma
    if not CLIP.is_file():
        pytest.fail(f"real clip not available: {CLIP}")
    luma = read_luma(CLIP)
    return torch.from_numpy(luma.astype(np.float32) / 255.0)[None, :, None]     # (1, T, 1, 96, 160)


def _real_setup(C: int, r: int, k: int, q: QuantConfig, seed: int = 0):
    """Random-init predictor, fracs calibrated on the real clip, QAT cell of layer 0, its input features."""
    from model.proxy.predictor import NextFramePredictor
    from quant.cell.calibrate import cell_fracs
    frames = _real_frames()
    torch.manual_seed(seed)
    model = NextFramePredictor(channels=C, layers=1, reduction=r, dw_kernel=k, downsample=8)
    fracs = cell_fracs(model, frames, q.act_bits)[0]
    with torch.no_grad():
        feats = model.features(frames[0]).double().numpy()                  # (T, C, 12, 20)
    qc = from_float(model.rnn.cells[0], q, fracs, r).double().eval()
    return qc, feats


@pytest.mark.parametrize("C, r, k, bits", [(8, 2, 3, 8), (16, 4, 5, 8), (16, 2, 3, 6)])
def test_golden_matches_qat_real_frames(C, r, k, bits):
    qc, feats = _real_setup(C, r, k, QuantConfig(act_bits=bits, weight_bits=bits))
    assert feats.shape == (5, C, 12, 20)
    p = extract(qc)
    x = _x_codes(feats, p.f_x, bits)
    assert np.abs(x).max() >= 1 << (bits - 3), "calibration should use the input range"
    want = _qat_codes(qc, feats)
    _assert_nontrivial(want, bits)
    np.testing.assert_array_equal(golden.run_sequence(p, x), want)


# ---- sensitivity: a corrupted parameter must show --------------------------------------------------------------

def _largest(a: np.ndarray) -> tuple:
    return np.unravel_index(np.argmax(np.abs(a)), a.shape)


def _nudge(arr: np.ndarray, idx: tuple, bits: int, delta: int = 1) -> None:
    """Move one code by `delta` LSBs, towards zero when it would leave the signed `bits` range."""
    lo, hi = fp.srange(bits)
    arr[idx] += delta if lo <= arr[idx] + delta <= hi else -delta


@pytest.mark.parametrize("what", ["w_z_00", "w_n_max", "u_z_max", "b_n", "dw_w", "fc2_b", "f_p"])
def test_golden_detects_corrupted_parameter(what):
    p = _cached("c8_r2_k3_a8")[1]
    x, want = _cached_run("c8_r2_k3_a8", 11)
    np.testing.assert_array_equal(golden.run_sequence(p, x), want)
    bad = copy.deepcopy(p)
    # One LSB of a z weight moves the gate by far less than one LUT-input step for these small states, so the z
    # corruptions are several LSBs; one LSB of the largest candidate weight already shows. (r reaches h only
    # through r * p, which is tiny in this cell, so it is not used here.)
    if what == "w_z_00":
        _nudge(bad.w["z"], (0, 0), p.weight_bits, 8)
    elif what == "w_n_max":
        _nudge(bad.w["n"], _largest(bad.w["n"]), p.weight_bits)
    elif what == "u_z_max":
        _nudge(bad.u["z"], _largest(bad.u["z"]), p.weight_bits, 16)
    elif what == "b_n":
        bad.b["n"][3] += 1 << (p.f_w["n"] + p.f_xp - 3)         # 1/8 in real terms
    elif what == "dw_w":
        _nudge(bad.dw_w, _largest(bad.dw_w), p.weight_bits)
    elif what == "fc2_b":
        bad.fc2_b[:] += 1 << (p.f_fc2 + p.f_s1 - 2)                 # SE logits +1/4
    elif what == "f_p":
        bad.f_p += 1
    # the original is untouched by the deep copy
    np.testing.assert_array_equal(golden.run_sequence(p, x), want)
    assert (golden.run_sequence(bad, x) != want).any(), f"corrupting {what} went unnoticed"


def _lut_addresses_used(p: CellParams, x: np.ndarray) -> np.ndarray:
    """Addresses at which the golden model reads its tanh table over the sequence."""
    seen = []

    class Recorder(np.ndarray):
        def __getitem__(self, idx):
            seen.append(np.asarray(idx).ravel())
            return np.asarray(self)[idx]

    class Spy(CellParams):
        @property
        def tanh_lut(self):
            return CellParams.tanh_lut.fget(self).view(Recorder)

    golden.run_sequence(Spy(**copy.deepcopy(p.__dict__)), x)
    return np.concatenate(seen)


def test_golden_detects_corrupted_lut_entry():
    cfg = RANDOM_CONFIGS["c8_r2_k3_a8"]
    p = _cached("c8_r2_k3_a8")[1]
    x, want = _cached_run("c8_r2_k3_a8", 11)
    np.testing.assert_array_equal(golden.run_sequence(p, x), want)
    addrs = _lut_addresses_used(p, x)
    assert addrs.size == cfg["T"] * cfg["C"] * cfg["H"] * cfg["W"]
    addr = int(np.bincount(addrs).argmax())                 # the most used tanh entry
    entry = int(p.tanh_lut[addr])

    class Corrupt(CellParams):
        @property
        def tanh_lut(self):
            t = CellParams.tanh_lut.fget(self).copy()
            t[addr] += 1 if entry < fp.srange(self.act_bits)[1] else -1
            return t

    bad = Corrupt(**copy.deepcopy(p.__dict__))
    assert (bad.tanh_lut != p.tanh_lut).sum() == 1
    assert (golden.run_sequence(bad, x) != want).any(), f"corrupted tanh entry {addr} went unnoticed"


# ---- persistence and rejected cells ------------------------------------------------------------------------------

def _assert_params_equal(a: CellParams, b: CellParams) -> None:
    assert a.__dict__.keys() == b.__dict__.keys()
    for key, va in a.__dict__.items():
        vb = b.__dict__[key]
        if isinstance(va, np.ndarray):
            assert isinstance(vb, np.ndarray) and vb.dtype == np.int64, key
            np.testing.assert_array_equal(va, vb, err_msg=key)
        elif isinstance(va, dict):
            assert set(va) == set(vb) == set(GATES), key
            for g in va:
                np.testing.assert_array_equal(va[g], vb[g], err_msg=f"{key}[{g}]")
        else:
            assert va == vb, key


def test_params_save_load_round_trip(tmp_path):
    cfg = RANDOM_CONFIGS["c8_r2_k3_a6"]
    p = extract(_qcell(cfg))
    path = tmp_path / "cell.json"
    p.save(path)
    q = CellParams.load(path)
    _assert_params_equal(p, q)
    for prop in ("sig_lut", "tanh_lut"):
        np.testing.assert_array_equal(getattr(p, prop), getattr(q, prop))
    assert [p.dw_shift, p.fc1_shift, p.fc2_shift, p.p_shift] == [q.dw_shift, q.fc1_shift, q.fc2_shift, q.p_shift]
    assert all(p.gate_grid(g) == q.gate_grid(g) for g in GATES)
    x = _x_codes(_random_inputs(cfg, 1), p.f_x, p.act_bits)
    np.testing.assert_array_equal(golden.run_sequence(p, x), golden.run_sequence(q, x))
    # saving is deterministic
    q.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_params_load_errors(tmp_path):
    with pytest.raises(EdgecodecError, match="not found"):
        CellParams.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EdgecodecError, match="corrupt"):
        CellParams.load(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text('{"channels": 8}')
    with pytest.raises(EdgecodecError, match="corrupt"):
        CellParams.load(tmp_path / "partial.json")


def test_extract_rejects_kxk_gates():
    torch.manual_seed(0)
    cell = ASEGRUCell(8, 2, gate_kernel=3, dw_kernel=3)
    qc = from_float(cell, QuantConfig(), CellFracs(x=6, xp=5, s1=5, p=5), 2).double().eval()
    with pytest.raises(EdgecodecError, match="1x1"):
        extract(qc)
