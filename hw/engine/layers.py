"""Convolution layers of the integer decoder in the form the engine's convolution unit runs them.

`quant.codec.intnet.IntSequential` stores a stack as conv / relu / hardtanh / shuffle entries, each conv with
8-bit weight codes on per-output-channel grids f_w. The unit needs, per convolution: the weight codes, a
per-channel pre-shift ``max(f_w) - f_w[c]`` (so ``(w << pre) * x = (w * x) << pre``), the bias on the aligned grid,
one requantisation shift >= 0 (a negative shift of the integer model is an exact left shift: it joins the
pre-shifts, and the bias, added before it, moves left with it: `aligned_bias`), and one output clamp [lo, hi] that folds the saturation to ``bits`` and a following ReLU or
Hardtanh. A PixelShuffle after the convolution is kept as the layer's ``shuffle`` factor (an output ordering).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from base.errors import EdgecodecError
from quant.fixed_point import shift_round, srange


@dataclass(frozen=True)
class ConvLayer:
    weights: np.ndarray        # (C_out, C_in, k, k) weight codes
    pre: np.ndarray            # (C_out,) left shift of each output channel's sum
    bias: np.ndarray           # (C_out,) bias codes on the aligned accumulator grid
    stride: int
    shift: int                 # requantisation shift (round half to even), >= 0
    lo: int
    hi: int                    # output clamp
    out_bits: int
    shuffle: int = 1           # PixelShuffle factor applied to the output (1: none)

    @property
    def cin(self) -> int:
        return self.weights.shape[1]

    @property
    def cout(self) -> int:
        return self.weights.shape[0]

    @property
    def kernel(self) -> int:
        return self.weights.shape[2]


def pre_shifts(fw: np.ndarray, shift: int) -> tuple[np.ndarray, int]:
    """(per-channel pre-shifts, requantisation shift >= 0) of a convolution with per-output-channel weight grids
    fw and requantisation shift `shift` (a negative one is an exact left shift: it joins the pre-shifts)."""
    pre = fw.max() - fw
    return (pre - shift, 0) if shift < 0 else (pre, shift)


def aligned_bias(bias: np.ndarray, shift: int) -> np.ndarray:
    """The bias codes where the unit adds them, after the pre-shifts: the integer model adds the bias before its
    requantisation, so when a negative `shift` joins the pre-shifts (`pre_shifts`) the bias moves left with it
    (seen on pruned checkpoints, whose calibration can give a layer a coarser accumulator than its output grid)."""
    bias = np.asarray(bias, dtype=np.int64)
    return bias << -shift if shift < 0 else bias


def conv_layers(layers: list[dict]) -> list[ConvLayer]:
    """The ConvLayers of an IntSequential layer list (its `layers`), activations folded into the clamps."""
    out: list[ConvLayer] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        if layer["kind"] != "conv":
            raise EdgecodecError(f"engine: a {layer['kind']!r} layer must follow a convolution")
        w = np.asarray(layer["w"], dtype=np.int64)
        if w.shape[2] != w.shape[3]:
            raise EdgecodecError(f"engine: only square kernels, got {w.shape[2]}x{w.shape[3]}")
        if layer["pad"] != w.shape[2] // 2:
            raise EdgecodecError(f"engine: padding must be k//2, got {layer['pad']} for k={w.shape[2]}")
        fw = np.asarray(layer["f_w"], dtype=np.int64)
        pre, shift = pre_shifts(fw, int(layer["shift"]))
        lo, hi = srange(int(layer["bits"]))
        shuffle = 1
        i += 1
        while i < len(layers) and layers[i]["kind"] != "conv":
            nxt = layers[i]
            if nxt["kind"] == "relu":
                lo = max(lo, 0)
            elif nxt["kind"] == "hardtanh":
                lo, hi = max(lo, int(nxt["lo"])), min(hi, int(nxt["hi"]))
            elif nxt["kind"] == "shuffle":
                if shuffle != 1:
                    raise EdgecodecError("engine: two PixelShuffles after one convolution")
                shuffle = int(nxt["r"])
            else:
                raise EdgecodecError(f"engine: unknown layer kind {nxt['kind']!r}")
            i += 1
        out.append(ConvLayer(weights=w, pre=pre, bias=aligned_bias(layer["b"], int(layer["shift"])),
                             stride=int(layer["stride"]), shift=shift, lo=lo, hi=hi, out_bits=int(layer["bits"]),
                             shuffle=shuffle))
    return out


def reference(layer: ConvLayer, x: np.ndarray) -> np.ndarray:
    """Output codes (C_out, Ho, Wo) of `layer` on input codes x (C_in, H, W), before any PixelShuffle: the
    unit's arithmetic, written out (exact int64)."""
    k, s, pad = layer.kernel, layer.stride, layer.kernel // 2
    cin, h, w = x.shape
    ho, wo = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    xp = np.zeros((cin, h + 2 * pad, w + 2 * pad), dtype=np.int64)
    xp[:, pad:pad + h, pad:pad + w] = x
    acc = np.zeros((layer.cout, ho, wo), dtype=np.int64)
    for ky in range(k):
        for kx in range(k):
            patch = xp[:, ky:ky + s * (ho - 1) + 1:s, kx:kx + s * (wo - 1) + 1:s]
            acc += np.einsum("oc,chw->ohw", layer.weights[:, :, ky, kx], patch)
    acc = (acc << layer.pre[:, None, None]) + layer.bias[:, None, None]
    return np.clip(shift_round(acc, layer.shift), layer.lo, layer.hi)
