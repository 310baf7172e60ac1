"""STAE semantic encoder in fixed point (seed 001, eqs. 6-7): Brevitas QAT model, integer golden model, QONNX.

The float modules are `model.stae.attention.FrameAttention` / `SpatialAttention`; this is their fixed-point
version under the one numeric contract (docs/numerics.md: power-of-two scales, round half to even, saturation,
`mean_reciprocal` means, LUT sigmoid). `A` = quant.act_bits, `L`/`fL` = quant.lut_bits/lut_frac.

Contract of the encoder (every step is one `requant`, i.e. one rounding, or exact):

- input: RGB pixel codes `x` uint8, real value `x / 256` (unsigned 8 bits, frac 8).
- FA pools, per frame over C*H*W: `S = sum x`, `mean = requant(S * R, K + 8 - f_pool, [0, 2^A - 1])` with
  `(R, K) = mean_reciprocal(C*H*W)`; `max = requant(max x, 8 - f_pool, [0, 2^A - 1])` (an exact shift when
  f_pool >= 8). Both on one grid `f_pool`, so the shared MLP has one input grid and one bias vector.
- FA MLP, applied to both pool vectors: `h = requant(W1 p + b1, f_w1 + f_pool - f_hid, [0, 2^A - 1])` (ReLU is
  the lower clamp); the two fc2 accumulators `W2 h + b2` lie on the same grid `f_w2 + f_hid` and are added there
  exactly (eq. 6 sums MLP(avg) + MLP(max), so b2 counts twice); `c = requant(sum, f_w2 + f_hid - fL, L signed)`;
  `M_FA = SIG[c]` (unsigned A bits, scale 2^-A).
- frame selection on the M_FA codes: the alpha largest, ties to the lower frame index, kept in time order.
- SA per kept frame: `mean_c = requant((sum_c x) * R3, K3 + 8 - f_sa, [0, 2^A - 1])` with
  `(R3, K3) = mean_reciprocal(C)`, `max_c = requant(max_c x, 8 - f_sa, [0, 2^A - 1])`; a k x k conv (2 -> 1,
  zero padding) accumulates on `f_wc + f_sa`; `c = requant(acc, f_wc + f_sa - fL, L signed)`;
  `M_SA = SIG[c]`.
- pixel selection on the M_SA codes: exactly `pixel_count(beta, H, W)` pixels per kept frame, ties to the
  earlier raster position. The transmitted values are the input codes of the kept pixels.

The logits are requantized once, straight from the accumulator to the LUT-input grid (as the ASE-GRU gates
do), so there is no separate calibrated "MLP output" or "conv output" grid: it would only add a rounding.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from torch import nn

from quant.config import QuantConfig
from base.errors import EdgecodecError
from model.stae.attention import pixel_count, select_frames, top_indices

from quant import fixed_point as fp
from quant.lut import LutActivation
from quant.cell.params import _bias, _weight
from quant.quantizers import act_quant, bias_quant, weight_quant

IN_BITS = 8   # input pixel codes: unsigned 8 bits ...
IN_FRAC = 8   # ... real value code / 256


# ---- budgets and inputs ----------------------------------------------------------------------------------------

def _budgets(alpha, beta, frames: int, height: int, width: int) -> tuple[int, int]:
    """(alpha, pixels kept per frame) after checking the frame and spatial budgets."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, np.integer)) or not 1 <= int(alpha) <= frames:
        raise EdgecodecError(f"STAE: frame budget alpha={alpha!r} must be an integer in [1, {frames}]")
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating)) or not 0.0 < float(beta) <= 1.0:
        raise EdgecodecError(f"STAE: spatial budget beta={beta!r} must be a number in (0, 1]")
    return int(alpha), pixel_count(float(beta), height, width)


def _check_codes(x_codes, frames: int | None = None) -> np.ndarray:
    """uint8-range pixel codes (F, C, H, W) as int64."""
    x = np.asarray(x_codes)
    if x.ndim != 4 or 0 in x.shape:
        raise EdgecodecError(f"STAE: expected pixel codes (F, C, H, W), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        raise EdgecodecError(f"STAE: pixel codes must be integers (uint8), got {x.dtype}")
    x = x.astype(np.int64)
    if x.min() < 0 or x.max() > (1 << IN_BITS) - 1:
        raise EdgecodecError(f"STAE: pixel codes must lie in [0, {(1 << IN_BITS) - 1}], got [{x.min()}, {x.max()}]")
    if frames is not None and x.shape[0] != frames:
        raise EdgecodecError(f"STAE: the encoder scores {frames} frames, the clip has {x.shape[0]}")
    return x


def codes_to_input(x_codes) -> torch.Tensor:
    """Pixel codes (F, C, H, W) -> the QAT model's real input code / 256 (float64, exact)."""
    return torch.from_numpy(_check_codes(x_codes).astype(np.float64) * 2.0 ** -IN_FRAC)


def _clips_tensor(clips) -> torch.Tensor:
    """Calibration clips (N, F, C, H, W) or one clip (F, C, H, W): uint8 codes (-> code / 256) or reals."""
    if isinstance(clips, np.ndarray):
        clips = torch.from_numpy(clips)
    if not isinstance(clips, torch.Tensor):
        raise EdgecodecError(f"STAE calibration: clips must be an array or tensor, got {type(clips).__name__}")
    if clips.ndim == 4:
        clips = clips[None]
    if clips.ndim != 5 or 0 in clips.shape:
        raise EdgecodecError(f"STAE calibration: expected clips (N, F, C, H, W), got {tuple(clips.shape)}")
    if not clips.is_floating_point():
        clips = clips.double() * 2.0 ** -IN_FRAC
    if not torch.isfinite(clips).all():
        raise EdgecodecError("STAE calibration: clips hold NaN or inf")
    return clips.double()


# ---- calibration -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class STAEFracs:
    """Calibrated fractional bits of the encoder's activations (all unsigned A-bit codes).

    Attributes
    ----------
    pool : FA mean and max pools (one grid: the shared MLP has one input grid).
    hidden : FA MLP hidden layer after the ReLU.
    sa_pool : SA channel mean and max (the two input planes of the one conv).
    """

    pool: int
    hidden: int
    sa_pool: int

    def to_dict(self) -> dict:
        return asdict(self)


def _check_float_modules(fa, sa) -> tuple[int, int, int]:
    """(frames, hidden, kernel) of float FrameAttention / SpatialAttention modules of the expected shape."""
    mlp = getattr(fa, "mlp", None)
    if not (isinstance(mlp, nn.Sequential) and len(mlp) == 3 and isinstance(mlp[0], nn.Linear)
            and isinstance(mlp[1], nn.ReLU) and isinstance(mlp[2], nn.Linear) and mlp[0].bias is not None
            and mlp[2].bias is not None and mlp[0].in_features == mlp[2].out_features == fa.frames
            and mlp[2].in_features == mlp[0].out_features):
        raise EdgecodecError("STAE: frame attention must have mlp = Sequential(Linear(F, F/r), ReLU, Linear(F/r, F))")
    conv = getattr(sa, "conv", None)
    if not isinstance(conv, nn.Conv2d) or conv.in_channels != 2 or conv.out_channels != 1 or conv.bias is None:
        raise EdgecodecError("STAE: spatial attention must have conv = Conv2d(2, 1, k, padding=k // 2) with a bias")
    k = conv.kernel_size
    if (k[0] != k[1] or k[0] % 2 != 1 or conv.padding != (k[0] // 2,) * 2 or conv.stride != (1, 1)
            or conv.dilation != (1, 1) or conv.groups != 1):
        raise EdgecodecError(f"STAE: spatial attention conv must be odd square, 'same' padded, stride 1, got {conv}")
    return fa.frames, mlp[0].out_features, k[0]


@torch.no_grad()
def calibrate(fa, sa, clips, alpha: int, q: QuantConfig) -> STAEFracs:
    """Fractional bits from float runs of the encoder on real clips: max |v| of each grid -> frac_for_range.

    Parameters
    ----------
    fa, sa : float FrameAttention / SpatialAttention.
    clips : (N, F, C, H, W) or (F, C, H, W), uint8 pixel codes or reals in [0, 1).
    alpha : frame budget; the SA grid is calibrated on the frames the float FA keeps.
    q : widths (quant.act_bits is the width of every calibrated grid).
    """
    q.validate()
    frames, _, _ = _check_float_modules(fa, sa)
    x = _clips_tensor(clips)
    if x.shape[1] != frames:
        raise EdgecodecError(f"STAE calibration: the encoder scores {frames} frames, the clips have {x.shape[1]}")
    _budgets(alpha, 1.0, frames, x.shape[3], x.shape[4])
    x = x.to(fa.mlp[0].weight.dtype)
    pooled = torch.stack([x.mean(dim=(2, 3, 4)), x.amax(dim=(2, 3, 4))])          # (2, N, F); mean <= max
    hidden = torch.relu(fa.mlp[0](pooled))
    kept, _ = select_frames(x, fa(x), alpha)
    sa_peak = kept.amax(dim=2)                                                      # channel max >= mean
    a = q.act_bits
    return STAEFracs(pool=fp.frac_for_range(float(pooled.abs().max()), a, signed=False),
                     hidden=fp.frac_for_range(float(hidden.max()), a, signed=False),
                     sa_pool=fp.frac_for_range(float(sa_peak.abs().max()), a, signed=False))


# ---- Brevitas QAT model ----------------------------------------------------------------------------------------

class QuantSTAEEncoder(nn.Module):
    """Fixed-point STAE encoder (FA, frame selection, SA, pixel selection) from Brevitas layers.

    Parameters
    ----------
    fa_float, sa_float : float FrameAttention / SpatialAttention whose weights are loaded.
    q : widths of the contract.
    fracs : calibrated grids (`calibrate`).

    Run it in float64 (`.double()`) for bit-exact verification; `fa_scores` / `sa_scores` are the trainable
    scoring parts (LUT sigmoid with straight-through gradient), `forward` adds the selections.
    """

    def __init__(self, fa_float, sa_float, q: QuantConfig, fracs: STAEFracs):
        super().__init__()
        q.validate()
        frames, hidden, kernel = _check_float_modules(fa_float, sa_float)
        a = q.act_bits
        wq, bq = weight_quant(q.weight_bits), bias_quant(q.bias_bits)
        self.frames, self.qcfg, self.fracs = frames, q, fracs
        self.x_q = QuantIdentity(act_quant=act_quant(IN_BITS, IN_FRAC, signed=False), return_quant_tensor=True)
        self.pool_q = QuantIdentity(act_quant=act_quant(a, fracs.pool, signed=False), return_quant_tensor=True)
        self.fc1 = QuantLinear(frames, hidden, bias=True, weight_quant=wq, bias_quant=bq)
        self.relu_q = QuantReLU(act_quant=act_quant(a, fracs.hidden, signed=False), return_quant_tensor=True)
        self.fc2 = QuantLinear(hidden, frames, bias=True, weight_quant=wq, bias_quant=bq)
        self.sa_pool_q = QuantIdentity(act_quant=act_quant(a, fracs.sa_pool, signed=False), return_quant_tensor=True)
        self.conv = QuantConv2d(2, 1, kernel, padding=kernel // 2, bias=True, weight_quant=wq, bias_quant=bq)
        self.lut_in = QuantIdentity(act_quant=act_quant(q.lut_bits, q.lut_frac), return_quant_tensor=False)
        self.sigmoid = LutActivation("sigmoid", q.lut_bits, q.lut_frac, a)
        self.score_q = QuantIdentity(act_quant=act_quant(a, a, signed=False), return_quant_tensor=False)
        with torch.no_grad():
            for dst, src in ((self.fc1, fa_float.mlp[0]), (self.fc2, fa_float.mlp[2]), (self.conv, sa_float.conv)):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)

    def fa_scores(self, x: torch.Tensor) -> torch.Tensor:
        """M_FA (F,) on the grid 2^-A from the input (F, C, H, W) (reals code / 256)."""
        xq = self.x_q(x).value
        flat = xq.reshape(xq.shape[0], -1)
        r, k = fp.mean_reciprocal(int(flat.shape[1]))               # a constant of the exported graph
        pooled = self.pool_q(torch.stack([flat.sum(dim=1) * (r * 2.0 ** -k), flat.amax(dim=1)]))  # (2, F)
        acc = self.fc2(self.relu_q(self.fc1(pooled)))               # exact accumulators, one grid
        return self.score_q(self.sigmoid(self.lut_in(acc.sum(dim=0))))

    def sa_scores(self, x: torch.Tensor) -> torch.Tensor:
        """M_SA (A, H, W) on the grid 2^-A from frames (A, C, H, W) (reals code / 256)."""
        xq = self.x_q(x).value
        r, k = fp.mean_reciprocal(int(xq.shape[1]))
        planes = torch.stack([xq.sum(dim=1) * (r * 2.0 ** -k), xq.amax(dim=1)], dim=1)   # (A, 2, H, W)
        acc = self.conv(self.sa_pool_q(planes))
        return self.score_q(self.sigmoid(self.lut_in(acc[:, 0])))

    def _check_input(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or 0 in x.shape or not x.is_floating_point():
            raise EdgecodecError(f"STAE: expected a float input (F, C, H, W) = codes / 256, got "
                            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if x.shape[0] != self.frames:
            raise EdgecodecError(f"STAE: the encoder scores {self.frames} frames, the clip has {x.shape[0]}")
        x = x.to(self.fc1.weight.dtype)
        c = x * 2.0 ** IN_FRAC
        if not torch.isfinite(c).all() or (c != torch.round(c)).any() or c.min() < 0 or c.max() > 2 ** IN_BITS - 1:
            raise EdgecodecError("STAE: the input must be uint8 pixel codes / 256")
        return x

    def forward(self, x: torch.Tensor, alpha: int, beta: float):
        """(frame_idx (alpha,), mask (alpha, H, W) bool, values (alpha, C, k) pixel codes) of a clip (F, C, H, W).

        values[a, c] are the codes of channel c at the kept pixels of kept frame a, in raster order.
        """
        x = self._check_input(x)
        _, c, h, w = x.shape
        alpha, k = _budgets(alpha, beta, self.frames, h, w)
        m_fa = self.fa_scores(x).detach()
        idx = top_indices(m_fa, alpha)
        kept = x[idx]
        m_sa = self.sa_scores(kept).detach().reshape(alpha, h * w)
        pix = top_indices(m_sa, k)
        mask = torch.zeros(alpha, h * w, dtype=torch.bool).scatter_(1, pix, True).reshape(alpha, h, w)
        codes = torch.round(kept.detach() * 2.0 ** IN_FRAC).long().reshape(alpha, c, h * w)
        values = torch.gather(codes, 2, pix[:, None, :].expand(-1, c, -1))
        return idx, mask, values


# ---- integer parameters ----------------------------------------------------------------------------------------

_ARRAYS = ("fc1_w", "fc1_b", "fc2_w", "fc2_b", "conv_w", "conv_b", "sig_lut")


@dataclass
class STAEParams:
    """Integer parameters of the encoder: what the golden model and an RTL generator read.

    Weight codes have scale 2^-f_<layer>; bias codes lie on the accumulator grid (input frac + weight frac);
    `sig_lut` is the contract's sigmoid table (2^L unsigned A-bit codes, address = two's-complement pattern).
    """

    frames: int
    hidden: int
    kernel: int
    act_bits: int
    weight_bits: int
    lut_bits: int
    lut_frac: int
    bias_bits: int
    f_pool: int
    f_hidden: int
    f_sa: int
    fc1_w: np.ndarray       # (hidden, F)
    fc1_b: np.ndarray       # (hidden,), grid f_fc1 + f_pool
    f_fc1: int
    fc2_w: np.ndarray       # (F, hidden)
    fc2_b: np.ndarray       # (F,), grid f_fc2 + f_hidden
    f_fc2: int
    conv_w: np.ndarray      # (2, k, k): plane 0 = channel mean, 1 = channel max
    conv_b: np.ndarray      # (1,), grid f_conv + f_sa
    f_conv: int
    sig_lut: np.ndarray     # (2^L,)
    in_bits: int = IN_BITS
    in_frac: int = IN_FRAC

    @property
    def fc1_shift(self) -> int:
        return self.f_fc1 + self.f_pool - self.f_hidden

    @property
    def fa_lut_shift(self) -> int:
        return self.f_fc2 + self.f_hidden - self.lut_frac

    @property
    def sa_lut_shift(self) -> int:
        return self.f_conv + self.f_sa - self.lut_frac

    def mean_shift(self, count: int, frac: int) -> tuple[int, int, int]:
        """(R, K, shift): a mean over `count` codes onto grid `frac` is requant(sum * R, shift)."""
        r, k = fp.mean_reciprocal(count)
        return r, k, k + self.in_frac - frac

    def shifts(self) -> dict:
        return dict(fc1=self.fc1_shift, fa_lut=self.fa_lut_shift, sa_lut=self.sa_lut_shift,
                    fa_max=self.in_frac - self.f_pool, sa_max=self.in_frac - self.f_sa)

    def to_json(self) -> dict:
        out = {k: (v.astype(int).tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        out["shifts"] = self.shifts()                          # derived; checked on load
        return out

    @classmethod
    def from_json(cls, data: dict) -> "STAEParams":
        if not isinstance(data, dict):
            raise EdgecodecError(f"STAE parameters: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        shifts = data.pop("shifts", None)
        try:
            kw = {k: (np.asarray(v, dtype=np.int64) if k in _ARRAYS else v) for k, v in data.items()}
            p = cls(**kw)
        except (TypeError, ValueError, OverflowError) as exc:
            raise EdgecodecError(f"STAE parameters are corrupt: {exc}") from None
        p.validate()
        if shifts is not None and shifts != p.shifts():
            raise EdgecodecError(f"STAE parameters are corrupt: stored shifts {shifts} != derived {p.shifts()}")
        return p

    def validate(self) -> None:
        """Shapes, widths and the LUT against the contract; EdgecodecError when something does not fit."""
        ints = [k for k, v in self.__dict__.items() if k not in _ARRAYS]
        bad = [k for k in ints if isinstance(getattr(self, k), bool) or not isinstance(getattr(self, k), int)]
        if bad:
            raise EdgecodecError(f"STAE parameters are corrupt: {bad} must be integers")
        f, h, k = self.frames, self.hidden, self.kernel
        shapes = dict(fc1_w=(h, f), fc1_b=(h,), fc2_w=(f, h), fc2_b=(f,), conv_w=(2, k, k), conv_b=(1,),
                      sig_lut=(1 << self.lut_bits,) if 1 <= self.lut_bits <= 16 else None)
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise EdgecodecError(f"STAE parameters are corrupt: {name} has shape {getattr(self, name).shape}, "
                                f"expected {shape}")
        for names, bits in ((("fc1_w", "fc2_w", "conv_w"), self.weight_bits), (("fc1_b", "fc2_b", "conv_b"),
                                                                                self.bias_bits)):
            lo, hi = fp.srange(bits)
            for name in names:
                if getattr(self, name).min() < lo or getattr(self, name).max() > hi:
                    raise EdgecodecError(f"STAE parameters are corrupt: {name} exceeds {bits} bits")
        if not np.array_equal(self.sig_lut, fp.sigmoid_lut(self.lut_bits, self.lut_frac, self.act_bits)):
            raise EdgecodecError("STAE parameters are corrupt: sig_lut is not the contract's sigmoid table")

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> "STAEParams":
        path = Path(path)
        if not path.is_file():
            raise EdgecodecError(f"STAE parameter file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise EdgecodecError(f"STAE parameter file {path} is corrupt: {exc}") from None
        return cls.from_json(data)


def extract(qenc: QuantSTAEEncoder) -> STAEParams:
    """Integer parameters of a `QuantSTAEEncoder`."""
    q, fr = qenc.qcfg, qenc.fracs
    fc1_w, f_fc1 = _weight(qenc.fc1)
    fc2_w, f_fc2 = _weight(qenc.fc2)
    conv_w, f_conv = _weight(qenc.conv)
    return STAEParams(
        frames=qenc.frames, hidden=fc1_w.shape[0], kernel=conv_w.shape[-1], act_bits=q.act_bits,
        weight_bits=q.weight_bits, lut_bits=q.lut_bits, lut_frac=q.lut_frac, bias_bits=q.bias_bits,
        f_pool=fr.pool, f_hidden=fr.hidden, f_sa=fr.sa_pool,
        fc1_w=fc1_w, fc1_b=_bias(qenc.fc1, f_fc1 + fr.pool, q.bias_bits), f_fc1=f_fc1,
        fc2_w=fc2_w, fc2_b=_bias(qenc.fc2, f_fc2 + fr.hidden, q.bias_bits), f_fc2=f_fc2,
        conv_w=conv_w[0], conv_b=_bias(qenc.conv, f_conv + fr.sa_pool, q.bias_bits), f_conv=f_conv,
        sig_lut=fp.sigmoid_lut(q.lut_bits, q.lut_frac, q.act_bits))


# ---- integer golden model ----------------------------------------------------------------------------------------

def _sigmoid(p: STAEParams, acc: np.ndarray, shift: int) -> np.ndarray:
    c = fp.requant(acc, shift, *fp.srange(p.lut_bits))
    return p.sig_lut[fp.lut_address(c, p.lut_bits)]


def golden_fa_codes(p: STAEParams, x: np.ndarray) -> np.ndarray:
    """M_FA codes (F,) (scale 2^-A) of pixel codes (F, C, H, W)."""
    x = _check_codes(x, p.frames)
    flat = x.reshape(x.shape[0], -1)
    u = fp.urange(p.act_bits)
    r, _, shift = p.mean_shift(flat.shape[1], p.f_pool)
    pooled = np.stack([fp.requant(flat.sum(axis=1) * r, shift, *u),
                       fp.requant(flat.max(axis=1), p.in_frac - p.f_pool, *u)])        # (2, F)
    hid = fp.requant(pooled @ p.fc1_w.T + p.fc1_b, p.fc1_shift, *u)                     # ReLU = lower clamp
    acc = hid @ p.fc2_w.T + p.fc2_b                                                     # (2, F), one grid
    return _sigmoid(p, acc.sum(axis=0), p.fa_lut_shift)


def golden_sa_codes(p: STAEParams, x: np.ndarray) -> np.ndarray:
    """M_SA codes (A, H, W) (scale 2^-A) of the pixel codes (A, C, H, W) of kept frames."""
    x = _check_codes(x)
    n, _, h, w = x.shape
    u = fp.urange(p.act_bits)
    r, _, shift = p.mean_shift(x.shape[1], p.f_sa)
    planes = np.stack([fp.requant(x.sum(axis=1) * r, shift, *u),
                       fp.requant(x.max(axis=1), p.in_frac - p.f_sa, *u)], axis=1)      # (A, 2, H, W)
    k, pad = p.kernel, p.kernel // 2
    z = np.pad(planes, ((0, 0), (0, 0), (pad, pad), (pad, pad)))                        # zero codes outside
    acc = np.full((n, h, w), p.conv_b[0], dtype=np.int64)
    for ci in range(2):
        for dy in range(k):
            for dx in range(k):
                acc += p.conv_w[ci, dy, dx] * z[:, ci, dy:dy + h, dx:dx + w]
    return _sigmoid(p, acc, p.sa_lut_shift)


def golden_scores(p: STAEParams, x_codes) -> tuple[np.ndarray, np.ndarray]:
    """(M_FA (F,), M_SA of every frame (F, H, W)) codes: what the exported scoring graph computes."""
    x = _check_codes(x_codes, p.frames)
    return golden_fa_codes(p, x), golden_sa_codes(p, x)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest along the last axis, ties to the lower index, sorted (= top_indices)."""
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    return np.sort(order, axis=-1)


def golden_encode(p: STAEParams, x_codes, alpha: int, beta: float):
    """(frame_idx (alpha,), mask (alpha, H, W) bool, values (alpha, C, k)) of pixel codes (F, C, H, W), int64.

    Bit-exact with `QuantSTAEEncoder.forward` in float64: same M_FA / M_SA codes, frames, pixels and values.
    """
    x = _check_codes(x_codes, p.frames)
    f, c, h, w = x.shape
    alpha, k = _budgets(alpha, beta, f, h, w)
    idx = _top(golden_fa_codes(p, x), alpha)
    kept = x[idx]
    pix = _top(golden_sa_codes(p, kept).reshape(alpha, h * w), k)                      # (alpha, k)
    mask = np.zeros((alpha, h * w), dtype=bool)
    np.put_along_axis(mask, pix, True, axis=1)
    values = np.take_along_axis(kept.reshape(alpha, c, h * w), pix[:, None, :], axis=2)
    return idx.astype(np.int64), mask.reshape(alpha, h, w), values


# ---- QONNX -------------------------------------------------------------------------------------------------------

class _ScoreGraph(nn.Module):
    """x (F, C, H, W) -> (M_FA (F,), M_SA (F, H, W)): SA is per frame, so scoring every frame covers any kept set."""

    def __init__(self, qenc: QuantSTAEEncoder):
        super().__init__()
        self.enc = qenc

    def forward(self, x):
        return self.enc.fa_scores(x), self.enc.sa_scores(x)


def export_qonnx(qenc: QuantSTAEEncoder, path: Path, frames: int, height: int, width: int,
                 channels: int = 3) -> Path:
    """QONNX of the scoring parts (FA and SA on every frame) for clips (frames, channels, height, width).

    The selections (a stable top-k / sort on the codes) stay outside the graph: `golden_encode` and
    `QuantSTAEEncoder.forward` define them. Inputs are code / 256; outputs M_FA, M_SA on the grid 2^-A.
    """
    from quant.export import export_module
    if frames != qenc.frames:
        raise EdgecodecError(f"STAE export: the encoder scores {qenc.frames} frames, asked for {frames}")
    if min(channels, height, width) < 1:
        raise EdgecodecError(f"STAE export: bad clip size {channels}x{height}x{width}")
    args = (torch.zeros(frames, channels, height, width),)
    return export_module(_ScoreGraph(qenc), args, path, input_names=["x"], output_names=["m_fa", "m_sa"])


def run_qonnx(path: Path, x_codes, act_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(M_FA, M_SA) codes of an exported scoring graph, executed (float32) with qonnx.core.onnx_exec."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    path = Path(path)
    if not path.is_file():
        raise EdgecodecError(f"STAE QONNX graph not found: {path}")
    model = ModelWrapper(str(path))
    ins, outs = [i.name for i in model.graph.input], [o.name for o in model.graph.output]
    if len(ins) != 1 or len(outs) != 2:
        raise EdgecodecError(f"{path}: expected a STAE scoring graph x -> (m_fa, m_sa), found {ins} -> {outs}")
    x = _check_codes(x_codes).astype(np.float32) * np.float32(2.0 ** -IN_FRAC)
    res = execute_onnx(model, {ins[0]: x})
    return tuple(np.round(res[o].astype(np.float64) * 2.0 ** act_bits).astype(np.int64) for o in outs)


def check_qonnx(path: Path, p: STAEParams, x_codes) -> tuple[np.ndarray, np.ndarray]:
    """Execute the exported graph on pixel codes and require the golden M_FA / M_SA codes; returns them.

    The graph runs in float32: sums of codes are exact below 2^24, but the mean's product sum * R is rounded
    to 24 bits, so a sum * R within that error of a rounding tie could differ; this check would say so.
    """
    got = run_qonnx(path, x_codes, p.act_bits)
    want = golden_scores(p, x_codes)
    for name, g, w in zip(("M_FA", "M_SA"), got, want):
        if g.shape != w.shape or not np.array_equal(g, w):
            n = int((g != w).sum()) if g.shape == w.shape else "shape"
            raise EdgecodecError(f"{path}: QONNX {name} codes differ from the golden model ({n} mismatches)")
    return want
