"""quant.stae.fixed: the integer golden STAE encoder is bit-exact with the Brevitas QAT encoder in float64 (M_FA,
M_SA codes, kept frames, kept pixels, values) on random, structured (ties) and real clips; QONNX reproduces the
golden codes; corrupted parameters show; calibration, persistence and input errors."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch

from quant.config import QuantConfig
from base.errors import EdgecodecError
from model.stae.attention import FrameAttention, SpatialAttention, pixel_count
from quant import fixed_point as fp
from quant.stae import fixed as sf

from tests.conftest import CLIP_CARS as CLIP

# name: frames, QuantConfig, fracs, float weight gain, clip size (H, W), (alpha, beta) budgets
CONFIGS = {
    "f4_a8": (4, QuantConfig(), sf.STAEFracs(8, 8, 8), 2.0, (5, 6), [(1, 1.0), (2, 0.5), (3, 0.3), (4, 0.9)]),
    "f8_a8": (8, QuantConfig(), sf.STAEFracs(8, 9, 8), 3.0, (7, 9), [(1, 0.1), (3, 0.5), (5, 0.75), (8, 0.4)]),
    "f16_a8": (16, QuantConfig(), sf.STAEFracs(8, 8, 8), 2.0, (4, 8), [(1, 0.5), (4, 0.6), (9, 0.25), (16, 1.0)]),
    # narrow: the pools round (frac 6 < 8), the LUT grid is coarse
    "f8_a6_l6": (8, QuantConfig(act_bits=6, weight_bits=6, lut_bits=6, lut_frac=3), sf.STAEFracs(6, 6, 6), 3.0,
                 (6, 5), [(2, 0.5), (7, 0.8)]),
    # wide: the max pool is an exact left shift onto a finer grid, small biases
    "f4_a10_b12": (4, QuantConfig(act_bits=10, weight_bits=8, lut_bits=10, lut_frac=6, bias_bits=12),
                   sf.STAEFracs(10, 9, 10), 2.0, (6, 6), [(1, 0.5), (3, 0.45)]),
    "f8_k5": (8, QuantConfig(), sf.STAEFracs(8, 8, 8), 2.0, (6, 7), [(4, 0.5)]),
}


def _float_modules(frames: int, gain: float, seed: int = 0, kernel: int = 3):
    torch.manual_seed(seed)
    fa, sa = FrameAttention(frames), SpatialAttention(kernel)
    with torch.no_grad():
        for prm in list(fa.parameters()) + list(sa.parameters()):
            prm.mul_(gain)
    return fa.double().eval(), sa.double().eval()


def _encoder(name: str, seed: int = 0):
    frames, q, fr, gain, _, _ = CONFIGS[name]
    fa, sa = _float_modules(frames, gain, seed, kernel=5 if name.endswith("k5") else 3)
    return sf.QuantSTAEEncoder(fa, sa, q, fr).double().eval()


@functools.lru_cache(maxsize=None)
def _cached(name: str):
    """(QAT encoder, its STAEParams), built once (callers never mutate them)."""
    qe = _encoder(name)
    return qe, sf.extract(qe)


def _random_clip(frames: int, h: int, w: int, seed: int, c: int = 3) -> np.ndarray:
    """Codes with a per-frame brightness and contrast (so the frame scores differ), and the code extremes."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, size=(frames, c, h, w))
    scale = rng.uniform(0.1, 1.0, size=(frames, 1, 1, 1))
    offset = rng.uniform(0, 0.5, size=(frames, 1, 1, 1))
    x = np.clip(np.rint(255 * (offset + scale * base) / 1.5), 0, 255).astype(np.uint8)
    x[0, 0, 0, 0], x[-1, -1, -1, -1] = 255, 0
    return x


def _qat_codes(qe, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M_FA (F,), M_SA of every frame (F, H, W)) codes of the QAT encoder in float64."""
    a = qe.qcfg.act_bits
    xin = sf.codes_to_input(x)
    with torch.no_grad():
        m_fa = qe.fa_scores(xin).numpy() * 2.0 ** a
        m_sa = qe.sa_scores(xin).numpy() * 2.0 ** a
    for m in (m_fa, m_sa):
        assert np.array_equal(m, np.round(m)), "QAT scores are off the 2^-A grid"
    return m_fa.astype(np.int64), m_sa.astype(np.int64)


def _qat_encode(qe, x: np.ndarray, alpha: int, beta: float):
    with torch.no_grad():
        idx, mask, values = qe(sf.codes_to_input(x), alpha, beta)
    return idx.numpy(), mask.numpy(), values.numpy()


def _reference_selection(scores: np.ndarray, k: int) -> np.ndarray:
    """The rule written out: sort by (-score, index), keep k, time / raster order."""
    return np.array(sorted(sorted(range(len(scores)), key=lambda i: (-int(scores[i]), i))[:k]), dtype=np.int64)


def _assert_encode_equal(qe, p, x, alpha, beta):
    """golden_encode == QAT forward, and both follow the selection rule with exact counts; returns golden."""
    got = sf.golden_encode(p, x, alpha, beta)
    want = _qat_encode(qe, x, alpha, beta)
    for g, w, what in zip(got, want, ("frame_idx", "mask", "values")):
        assert g.shape == w.shape, what
        np.testing.assert_array_equal(g, w, err_msg=what)
    idx, mask, values = got
    f, c, h, w = x.shape
    k = pixel_count(beta, h, w)
    m_fa, m_sa = sf.golden_scores(p, x)
    np.testing.assert_array_equal(idx, _reference_selection(m_fa, alpha))
    assert mask.dtype == bool and mask.shape == (alpha, h, w)
    assert (mask.reshape(alpha, -1).sum(axis=1) == k).all()
    assert values.shape == (alpha, c, k) and values.dtype == np.int64
    for a, i in enumerate(idx):
        pix = _reference_selection(m_sa[i].ravel(), k)
        np.testing.assert_array_equal(np.flatnonzero(mask[a]), pix)
        np.testing.assert_array_equal(values[a], x[i].reshape(c, -1)[:, pix])
    return got


# ---- golden == QAT -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CONFIGS))
def test_golden_matches_qat_random(name):
    frames, q, _, _, (h, w), budgets = CONFIGS[name]
    qe, p = _cached(name)
    assert (p.frames, p.act_bits, p.lut_bits) == (frames, q.act_bits, q.lut_bits)
    for seed in range(2):
        x = _random_clip(frames, h, w, seed=10 * seed + frames)
        want_fa, want_sa = _qat_codes(qe, x)
        got_fa, got_sa = sf.golden_scores(p, x)
        assert got_fa.dtype == got_sa.dtype == np.int64
        np.testing.assert_array_equal(got_fa, want_fa)
        np.testing.assert_array_equal(got_sa, want_sa)
        assert len(np.unique(want_fa)) >= 3, f"frame scores too uniform: {want_fa}"
        assert len(np.unique(want_sa)) >= 8, "spatial scores too uniform"
        assert want_fa.max() <= (1 << q.act_bits) - 1 and want_sa.min() >= 0
        for alpha, beta in budgets:
            _assert_encode_equal(qe, p, x, alpha, beta)


def _tied_at_boundary(scores: np.ndarray, kept: np.ndarray) -> bool:
    """A score of a kept entry equals the score of a dropped one (the rule had to break a tie)."""
    dropped = np.setdiff1d(np.arange(len(scores)), kept)
    return bool(dropped.size) and bool(np.isin(scores[dropped], scores[kept]).any())


def _tied_encoder(rows: str):
    """QAT encoder (F = 8, "f8_a8" widths) whose fc2 rows are equal in pairs ("pairs") or all equal ("all"):
    M_FA = sigmoid(W2 h + 2 b2) then ties between those frames for every input."""
    frames, q, fr, gain, _, _ = CONFIGS["f8_a8"]
    fa, sa = _float_modules(frames, gain, seed=2)
    with torch.no_grad():
        w, b = fa.mlp[2].weight, fa.mlp[2].bias
        src = np.arange(frames) // 2 * 2 if rows == "pairs" else np.zeros(frames, dtype=int)
        w.copy_(w[src]), b.copy_(b[src])
    qe = sf.QuantSTAEEncoder(fa, sa, q, fr).double().eval()
    return qe, sf.extract(qe)


def test_ties_duplicated_scores_keep_lower_frame():
    """Frame scores tie in pairs: an odd alpha splits a tied pair, and the earlier frame is kept."""
    qe, p = _tied_encoder("pairs")
    for seed in (3, 4):
        x = _random_clip(8, 7, 9, seed=seed)
        m_fa = sf.golden_scores(p, x)[0]
        np.testing.assert_array_equal(m_fa[0::2], m_fa[1::2])
        assert len(np.unique(m_fa)) == 4
        for alpha in (1, 3, 5, 7):
            idx = _assert_encode_equal(qe, p, x, alpha, 0.5)[0]
            split = [i for i in idx if (i ^ 1) not in idx]
            assert len(split) == 1 and split[0] % 2 == 0, f"alpha={alpha}: kept {idx}"


def test_ties_constant_clip():
    """Every frame scores the same and every frame is flat: the first alpha frames are kept, and M_SA ties
    over the whole interior (zero padding makes the border differ), so the budget cuts through a tie."""
    qe, p = _tied_encoder("all")
    x = np.full((8, 3, 7, 9), 131, dtype=np.uint8)
    x[5] = 17                                                       # another level, same frame score
    m_fa, m_sa = sf.golden_scores(p, x)
    assert len(np.unique(m_fa)) == 1 and len(np.unique(m_sa[0, 1:-1, 1:-1])) == 1
    for alpha, beta in [(3, 0.5), (5, 0.2), (8, 0.9), (6, 0.05)]:
        idx, mask, values = _assert_encode_equal(qe, p, x, alpha, beta)
        np.testing.assert_array_equal(idx, np.arange(alpha))
        assert set(np.unique(values)) <= {17, 131}
        assert _tied_at_boundary(m_sa[0].ravel(), np.flatnonzero(mask[0]))


def test_ties_flat_regions_exact_pixel_counts():
    """Flat regions tie in M_SA: the budget cuts through them and the earlier raster positions are kept."""
    qe, p = _cached("f4_a8")
    rng = np.random.default_rng(5)
    x = np.full((4, 3, 5, 6), 40, dtype=np.uint8)
    x[:, :, :, 3:] = rng.integers(0, 256, size=(4, 3, 5, 3))        # textured right half, flat left half
    x[1] = 200                                                      # a bright flat frame
    x[2, :, 2:, :] = 90                                             # a flat bottom of another level
    m_sa = sf.golden_scores(p, x)[1]
    cut = 0
    for alpha in (1, 2, 4):
        for beta in (0.1, 0.2, 0.3, 0.5, 0.7, 0.9):
            idx, mask, _ = _assert_encode_equal(qe, p, x, alpha, beta)
            cut += sum(_tied_at_boundary(m_sa[i].ravel(), np.flatnonzero(mask[a])) for a, i in enumerate(idx))
    assert cut >= 10, "the budgets never cut through a tie; the test would not test the tie rule"


def _real_clip(frames: int) -> np.ndarray:
    """RGB codes (F, 3, 60, 80) of a real clip (every other frame where it is long enough, 4x subsampled)."""
    from model.video import read_yuv420, yuv420_to_rgb
    if not CLIP.is_file():
        pytest.fail(f"real clip not available: {CLIP}")
    y, u, v = read_yuv420(CLIP, max_frames=2 * frames)
    step = max(1, len(y) // frames)
    y, u, v = (a[::step][:frames] for a in (y, u, v))
    rgb = np.clip(np.rint(yuv420_to_rgb(y, u, v)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb[:, ::4, ::4].transpose(0, 3, 1, 2))


@pytest.mark.parametrize("frames, alpha, beta", [(8, 3, 0.4), (16, 8, 0.6)])
def test_golden_matches_qat_real_clip_and_calibration(frames, alpha, beta):
    x = _real_clip(frames)
    assert x.shape == (frames, 3, 60, 80)
    fa, sa = _float_modules(frames, 2.0, seed=1)
    q = QuantConfig()
    fr = sf.calibrate(fa, sa, x, alpha, q)
    # sane: every grid covers its float peak without saturating and uses the top bit
    xf = torch.from_numpy(x.astype(np.float64) / 256)[None]
    pooled = torch.stack([xf.mean(dim=(2, 3, 4)), xf.amax(dim=(2, 3, 4))])
    with torch.no_grad():
        peaks = dict(pool=float(pooled.max()), hidden=float(torch.relu(fa.mlp[0](pooled)).max()))
    assert fr.pool == fr.sa_pool == 8                            # RGB peaks close to 255 / 256
    for key, peak in peaks.items():
        code = peak * 2.0 ** getattr(fr, key)
        assert 2 ** (q.act_bits - 1) <= code <= 2 ** q.act_bits - 1, (key, peak, fr)
    dark = sf.calibrate(fa, sa, x // 4, alpha, q)
    assert dark.pool == dark.sa_pool == 10                       # a 4x darker clip gets 2 more bits
    qe = sf.QuantSTAEEncoder(fa, sa, q, fr).double().eval()
    p = sf.extract(qe)
    got = sf.golden_scores(p, x)
    for g, w in zip(got, _qat_codes(qe, x)):
        np.testing.assert_array_equal(g, w)
    _assert_encode_equal(qe, p, x, alpha, beta)
    # the fixed-point scores follow the float ones (LUT grid 1/16, 8-bit weights)
    with torch.no_grad():
        ffa = fa(xf)[0].numpy()
        fsa = sa(xf)[0].numpy()
    assert np.abs(got[0] / 2.0 ** q.act_bits - ffa).max() < 0.04
    assert np.abs(got[1] / 2.0 ** q.act_bits - fsa).max() < 0.04


# ---- QONNX -------------------------------------------------------------------------------------------------------

def test_qonnx_reproduces_golden_codes(tmp_path):
    qe, p = _cached("f8_a8")
    path = sf.export_qonnx(qe, tmp_path / "stae.onnx", 8, 7, 9)
    assert path.is_file()
    clips = [_random_clip(8, 7, 9, seed=s) for s in (20, 21)] + [np.full((8, 3, 7, 9), 77, np.uint8)]
    for x in clips:
        m_fa, m_sa = sf.check_qonnx(path, p, x)
        assert m_fa.shape == (8,) and m_sa.shape == (8, 7, 9)
    # the check compares: a golden model with another LUT entry disagrees with the graph
    bad = copy.deepcopy(p)
    bad.sig_lut = bad.sig_lut.copy()
    addr = fp.lut_address(fp.requant(_fa_logits(p, clips[0]), p.fa_lut_shift, *fp.srange(p.lut_bits)), p.lut_bits)
    bad.sig_lut[addr[0]] ^= 1
    with pytest.raises(EdgecodecError, match="differ"):
        sf.check_qonnx(path, bad, clips[0])
    with pytest.raises(EdgecodecError, match="frames"):
        sf.export_qonnx(qe, tmp_path / "x.onnx", 4, 7, 9)


def test_qonnx_narrow_widths(tmp_path):
    qe, p = _cached("f8_a6_l6")
    path = sf.export_qonnx(qe, tmp_path / "narrow.onnx", 8, 6, 5)
    sf.check_qonnx(path, p, _random_clip(8, 6, 5, seed=4))


# ---- sensitivity: corrupted parameters show ------------------------------------------------------------------

def _fa_hidden(p, x):
    """FA hidden codes (2, hidden), written out step by step from the contract."""
    flat = x.reshape(x.shape[0], -1).astype(np.int64)
    u = fp.urange(p.act_bits)
    r, _, shift = p.mean_shift(flat.shape[1], p.f_pool)
    pooled = np.stack([fp.requant(flat.sum(1) * r, shift, *u), fp.requant(flat.max(1), 8 - p.f_pool, *u)])
    return fp.requant(pooled @ p.fc1_w.T + p.fc1_b, p.fc1_shift, *u)


def _fa_logits(p, x):
    """FA accumulator (F,) before the LUT-input requant."""
    return (_fa_hidden(p, x) @ p.fc2_w.T + p.fc2_b).sum(0)


def _nudge(arr: np.ndarray, idx: tuple, bits: int, delta: int) -> None:
    lo, hi = fp.srange(bits)
    arr[idx] += delta if lo <= arr[idx] + delta <= hi else -delta


def _outputs(p, x):
    return sf.golden_scores(p, x) + sf.golden_encode(p, x, 3, 0.5)


@pytest.mark.parametrize("what", ["fc1_w", "fc2_w", "fc2_b", "conv_w", "conv_b", "f_sa", "lut_sa", "lut_fa"])
def test_golden_detects_corrupted_parameter(what):
    qe, p = _cached("f8_a8")
    x = _random_clip(8, 7, 9, seed=30)
    want = _qat_codes(qe, x) + _qat_encode(qe, x, 3, 0.5)
    for g, w in zip(_outputs(p, x), want):
        np.testing.assert_array_equal(g, w)
    bad = copy.deepcopy(p)
    big = lambda a: np.unravel_index(np.argmax(np.abs(a)), a.shape)  # noqa: E731
    live = int(_fa_hidden(p, x).sum(0).argmax())                         # the ReLU silences the other units
    assert _fa_hidden(p, x)[:, live].max() > 0
    # Eight frame logits only show a change that crosses a LUT-input step (1/16): a live fc1 weight needs
    # ~3 LSBs (2^-6 each, times a pool <= 1, times |w2| <= 1.5), an fc2 weight ~11 (times a hidden value ~0.36).
    if what == "fc1_w":
        _nudge(bad.fc1_w, (live, int(np.abs(p.fc1_w[live]).argmax())), p.weight_bits, 4)
    elif what == "fc2_w":
        _nudge(bad.fc2_w, (int(np.abs(p.fc2_w[:, live]).argmax()), live), p.weight_bits, 12)
    elif what == "fc2_b":
        bad.fc2_b[1] += 1 << (p.f_fc2 + p.f_hidden - 3)                  # logit + 1/8 (twice: both pools)
    elif what == "conv_w":
        _nudge(bad.conv_w, big(bad.conv_w), p.weight_bits, 1)
    elif what == "conv_b":
        bad.conv_b[0] += 1 << (p.f_conv + p.f_sa - 4)                    # logit + 1/16: one LUT step
    elif what == "f_sa":
        bad.f_sa -= 1
    else:                                                                # the most used entry, one LSB
        if what == "lut_sa":
            c = fp.requant(_sa_logits(p, x), p.sa_lut_shift, *fp.srange(p.lut_bits))
        else:
            c = fp.requant(_fa_logits(p, x), p.fa_lut_shift, *fp.srange(p.lut_bits))
        addr = int(np.bincount(fp.lut_address(c, p.lut_bits).ravel()).argmax())
        bad.sig_lut = bad.sig_lut.copy()
        bad.sig_lut[addr] += 1 if bad.sig_lut[addr] < (1 << p.act_bits) - 1 else -1
        assert (bad.sig_lut != p.sig_lut).sum() == 1
        with pytest.raises(EdgecodecError, match="sigmoid table"):
            bad.validate()
    for g, w in zip(_outputs(p, x), want):                              # the original is untouched
        np.testing.assert_array_equal(g, w)
    assert any(g.shape != w.shape or (g != w).any() for g, w in zip(_outputs(bad, x), want)), \
        f"corrupting {what} went unnoticed"


def _sa_logits(p, x):
    """SA conv accumulator (F, H, W) before the LUT-input requant, by an independent route (torch conv)."""
    xi = x.astype(np.int64)
    u = fp.urange(p.act_bits)
    r, _, shift = p.mean_shift(x.shape[1], p.f_sa)
    planes = np.stack([fp.requant(xi.sum(1) * r, shift, *u), fp.requant(xi.max(1), 8 - p.f_sa, *u)], axis=1)
    acc = torch.nn.functional.conv2d(torch.from_numpy(planes).double(), torch.from_numpy(p.conv_w[None]).double(),
                                     padding=p.kernel // 2)[:, 0].numpy() + p.conv_b[0]
    return np.round(acc).astype(np.int64)


# ---- persistence, calibration and input errors ---------------------------------------------------------------

def test_params_json_round_trip_and_errors(tmp_path):
    qe, p = _cached("f8_k5")
    assert p.kernel == 5 and p.conv_w.shape == (2, 5, 5)
    path = tmp_path / "stae.json"
    p.save(path)
    q = sf.STAEParams.load(path)
    for key, va in p.__dict__.items():
        vb = q.__dict__[key]
        if isinstance(va, np.ndarray):
            assert vb.dtype == np.int64
            np.testing.assert_array_equal(va, vb, err_msg=key)
        else:
            assert va == vb, key
    x = _random_clip(8, 6, 7, seed=1)
    for g, w in zip(sf.golden_encode(q, x, 4, 0.5), _qat_encode(qe, x, 4, 0.5)):
        np.testing.assert_array_equal(g, w)
    q.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()
    data = p.to_json()
    with pytest.raises(EdgecodecError, match="not found"):
        sf.STAEParams.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EdgecodecError, match="corrupt"):
        sf.STAEParams.load(tmp_path / "bad.json")
    for change in ({"f_sa": data["f_sa"] + 1}, {"conv_w": data["conv_w"][:1]}, {"frames": "8"},
                   {"sig_lut": [0] + data["sig_lut"][1:]}, {"extra": 1}):
        with pytest.raises(EdgecodecError, match="corrupt"):
            sf.STAEParams.from_json({**data, **change})
    with pytest.raises(EdgecodecError, match="corrupt"):
        sf.STAEParams.from_json({k: v for k, v in data.items() if k != "fc2_b"})


def test_input_errors():
    qe, p = _cached("f4_a8")
    x = _random_clip(4, 5, 6, seed=0)
    for alpha, beta in [(0, 0.5), (5, 0.5), (True, 0.5), (2.0, 0.5), (2, 0.0), (2, 1.5), (2, "0.5")]:
        with pytest.raises(EdgecodecError, match="budget"):
            sf.golden_encode(p, x, alpha, beta)
        with pytest.raises(EdgecodecError, match="budget"):
            _qat_encode(qe, x, alpha, beta)
    for bad in (x[0], x.astype(np.float32), x.astype(np.int64) + 200, np.repeat(x, 2, axis=0)):
        with pytest.raises(EdgecodecError):
            sf.golden_encode(p, bad, 1, 0.5)
    xin = sf.codes_to_input(x)
    for bad in (xin + 2.0 ** -10, xin * 2, xin[:3], xin[0]):
        with pytest.raises(EdgecodecError):
            qe(bad, 1, 0.5)
    fa, sa = _float_modules(4, 1.0)
    with pytest.raises(EdgecodecError, match="frames"):
        sf.calibrate(fa, sa, _random_clip(8, 5, 6, 0), 2, QuantConfig())
    with pytest.raises(EdgecodecError, match="alpha"):
        sf.calibrate(fa, sa, x, 5, QuantConfig())
    with pytest.raises(EdgecodecError, match="invalid config"):
        sf.QuantSTAEEncoder(fa, sa, QuantConfig(lut_frac=9), sf.STAEFracs(8, 8, 8))
    sa.conv = torch.nn.Conv2d(2, 1, 3, padding=0)
    with pytest.raises(EdgecodecError, match="padded"):
        sf.QuantSTAEEncoder(fa, sa, QuantConfig(), sf.STAEFracs(8, 8, 8))
