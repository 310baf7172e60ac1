"""Integer version of a convolutional `nn.Sequential` (Conv2d / ReLU / Hardtanh / PixelShuffle) under the
numeric contract of docs/numerics.md: power-of-two scales (per output channel for weights, per tensor for
activations), exact integer accumulation, requantization by a round-half-to-even shift with saturation.

The convolutions run as float64 convolutions on integer-valued tensors: every product and partial sum is an
integer below 2^53, so the result is exact whatever order the library sums in; the same codes come out on
any machine. Used by the codec's hardware-exact mode (quant/codec/int_codec.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from base.errors import EdgecodecError

from quant import fixed_point as fp


def shift_round_t(acc: torch.Tensor, shift) -> torch.Tensor:
    """torch int64 twin of `fixed_point.shift_round` (round half to even); `shift` may be an int."""
    if shift <= 0:
        return acc << (-shift)
    q = acc >> shift
    rem = acc - (q << shift)
    half = 1 << (shift - 1)
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    return q + up.to(torch.int64)


def requant_t(acc: torch.Tensor, shift: int, bits: int) -> torch.Tensor:
    lo, hi = fp.srange(bits)
    return shift_round_t(acc, shift).clamp(lo, hi)


def to_codes(x: torch.Tensor, frac: int, bits: int) -> torch.Tensor:
    """Float tensor -> signed codes on grid 2^-frac (round half to even, saturate)."""
    lo, hi = fp.srange(bits)
    return torch.round(x.double() * 2.0 ** frac).clamp(lo, hi).to(torch.int64)


class IntSequential:
    """Integer layers; `run(codes)` maps input codes on grid f_in to output codes on grid f_out."""

    def __init__(self, layers: list[dict], f_in: int, f_out: int):
        self.layers, self.f_in, self.f_out = layers, f_in, f_out
        self._w = {}

    def _aligned(self, i: int, layer: dict) -> torch.Tensor:
        if i not in self._w:
            fw = np.asarray(layer["f_w"])
            shift = (fw.max() - fw).astype(np.int64)
            w = np.asarray(layer["w"], dtype=np.int64) << shift[:, None, None, None]
            if np.abs(w).sum(axis=(1, 2, 3)).max() * (1 << (layer["in_bits"] - 1)) >= 2 ** 52:
                raise EdgecodecError("integer conv accumulator would exceed 2^52: lower codec.int_act_bits")
            self._w[i] = torch.from_numpy(w.astype(np.float64))
        return self._w[i]

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """Output codes (int64) of the input codes. The codes travel as integer-valued float64 tensors: the
        convolution, its bias and the requantization (a product by 2^-shift, exact for a power of two, then
        round half to even and the clamp) are exact below 2^53, which `_aligned` checks; so this equals the int64
        arithmetic of the contract (`run_int64`, tested against it) without converting every tensor twice."""
        def conv(i: int, layer: dict, x: torch.Tensor) -> torch.Tensor:
            acc = torch.nn.functional.conv2d(x, self._aligned(i, layer), self._bias(i, layer), layer["stride"],
                                             layer["pad"])
            lo, hi = fp.srange(layer["bits"])
            scaled = acc.mul_(2.0 ** -layer["shift"])
            return (scaled.round_() if layer["shift"] > 0 else scaled).clamp_(lo, hi)
        return self._layers(x.to(torch.float64), conv).to(torch.int64)

    def run_int64(self, x: torch.Tensor) -> torch.Tensor:
        """The contract's arithmetic step by step in int64 (products and sums through float64, exact below
        2^53; then `requant_t`): the reference `run` is tested against, and bench/int_stack_speed.py times."""
        def conv(i: int, layer: dict, x: torch.Tensor) -> torch.Tensor:
            acc = torch.nn.functional.conv2d(x.double(), self._aligned(i, layer), None, layer["stride"],
                                             layer["pad"])
            acc = acc.round().to(torch.int64) + torch.as_tensor(layer["b"], dtype=torch.int64)[None, :, None, None]
            return requant_t(acc, layer["shift"], layer["bits"])
        return self._layers(x.to(torch.int64), conv)

    def _layers(self, x: torch.Tensor, conv) -> torch.Tensor:
        """The layers in order, convolutions by `conv(i, layer, x)`; ReLU, Hardtanh and PixelShuffle are the
        same on int64 codes and on integer-valued float64."""
        for i, layer in enumerate(self.layers):
            kind = layer["kind"]
            if kind == "conv":
                x = conv(i, layer, x)
            elif kind == "relu":
                x = x.clamp_min(0)
            elif kind == "hardtanh":
                x = x.clamp(layer["lo"], layer["hi"])
            elif kind == "shuffle":
                x = torch.nn.functional.pixel_shuffle(x, layer["r"])
            else:
                raise EdgecodecError(f"integer model: unknown layer kind {kind!r}")
        return x

    def _bias(self, i: int, layer: dict) -> torch.Tensor:
        key = ("b", i)
        if key not in self._w:
            b = np.asarray(layer["b"], dtype=np.int64)
            if np.abs(b).max(initial=0) >= 2 ** 52:
                raise EdgecodecError("integer conv bias exceeds 2^52")
            self._w[key] = torch.from_numpy(b.astype(np.float64))
        return self._w[key]

    def to_state(self) -> dict:
        return {"layers": self.layers, "f_in": self.f_in, "f_out": self.f_out}

    @classmethod
    def from_state(cls, s: dict) -> "IntSequential":
        return cls(s["layers"], s["f_in"], s["f_out"])


def _weight_codes(w: torch.Tensor, bits: int) -> tuple[np.ndarray, list[int]]:
    """Per-output-channel power-of-two weight codes (scale from max |w| of the channel)."""
    w = w.detach().double().cpu().numpy()
    lo, hi = fp.srange(bits)
    fw = [fp.frac_for_range(float(np.abs(w[c]).max()), bits) for c in range(w.shape[0])]
    codes = np.stack([np.clip(np.round(w[c] * 2.0 ** fw[c]), lo, hi) for c in range(w.shape[0])])
    return codes.astype(np.int64), fw


@torch.no_grad()
def convert(seq: nn.Sequential, calib: list[torch.Tensor], f_in: int, in_bits: int, act_bits: int,
            weight_bits: int, out_frac: int | None = None, out_bits: int | None = None) -> IntSequential:
    """Integer model of `seq`, activation grids calibrated on the float inputs `calib`.

    Parameters
    ----------
    f_in, in_bits : grid and width of the input codes.
    act_bits : width of every intermediate activation; its power-of-two grid covers the calibrated max |v|.
    out_frac, out_bits : force the grid / width of the last layer's output (e.g. pixel codes).
    """
    mods = list(seq)
    convs = [i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
    if not convs:
        raise EdgecodecError("integer model: the sequence has no convolution")
    peaks = {i: 0.0 for i in convs}
    seq.double()
    try:
        for x in calib:
            v, last = x.double(), None
            for i, m in enumerate(mods):
                v = m(v)
                if isinstance(m, nn.Conv2d):
                    last = i
                if last is not None and (i + 1 == len(mods) or isinstance(mods[i + 1], nn.Conv2d)):
                    peaks[last] = max(peaks[last], float(v.abs().max()))
    finally:
        seq.float()
    layers, f, bits = [], f_in, in_bits
    for i, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            if m.groups != 1 or m.dilation != (1, 1) or m.padding_mode != "zeros":
                raise EdgecodecError("integer model: only dense, undilated, zero-padded convolutions")
            w, fw = _weight_codes(m.weight, weight_bits)
            final = i == convs[-1]
            ob = out_bits if (final and out_bits is not None) else act_bits
            of = out_frac if (final and out_frac is not None) else fp.frac_for_range(peaks[i], ob)
            acc_f = f + max(fw)
            b = m.bias.detach().double().cpu().numpy() if m.bias is not None else np.zeros(m.out_channels)
            b = np.round(b * 2.0 ** acc_f).astype(np.int64)
            layers.append({"kind": "conv", "w": w, "f_w": fw, "b": b, "stride": m.stride[0], "pad": m.padding[0],
                           "shift": acc_f - of, "bits": ob, "in_bits": bits})
            f, bits = of, ob
        elif isinstance(m, nn.ReLU):
            layers.append({"kind": "relu"})
        elif isinstance(m, nn.Hardtanh):
            lo, hi = fp.srange(bits)
            layers.append({"kind": "hardtanh", "lo": max(lo, math.ceil(m.min_val * 2 ** f)),
                           "hi": min(hi, math.floor(m.max_val * 2 ** f))})
        elif isinstance(m, nn.PixelShuffle):
            layers.append({"kind": "shuffle", "r": m.upscale_factor})
        else:
            raise EdgecodecError(f"integer model: unsupported layer {m.__class__.__name__}")
    return IntSequential(layers, f_in, f)
