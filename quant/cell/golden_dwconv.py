"""Integer reference of the projector, step 1 of docs/numerics.md: depth-wise k x k convolution with residual.

`x' = requant(DWConv(x) + b + (x << f_w), s, A-bit signed)`, zero padding outside the frame. The RTL
(`hw/rtl/dwconv.py`) and the golden model of the whole cell (`quant/cell/golden.py`) both rely on this one function.
"""

from __future__ import annotations

import numpy as np

from quant.fixed_point import requant, srange


def dwconv_reference(x, weights, bias, residual_shift: int, out_shift: int, act_bits: int) -> np.ndarray:
    """Depth-wise convolution with residual add and requantization, in exact int64 arithmetic.

    Parameters
    ----------
    x : array_like of int, shape (C, H, W)
        Input codes (signed ``act_bits``).
    weights : array_like of int, shape (C, k, k)
        Weight codes; ``k`` odd. Cross-correlation like ``torch.nn.functional.conv2d``:
        ``out[c, y, x] = sum w[c, dy, dx] * in[c, y + dy - k//2, x + dx - k//2]``.
    bias : array_like of int, shape (C,)
        Bias codes, on the grid of the product (``f_x + f_w``).
    residual_shift : int
        ``f_w``: the residual ``x`` is added as ``x << f_w``; must be >= 0.
    out_shift : int
        Requantization shift ``s`` (round half to even; ``s <= 0`` is an exact left shift).
    act_bits : int
        Output codes are saturated to signed ``act_bits``.

    Returns
    -------
    numpy.ndarray of int64, shape (C, H, W)
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(weights, dtype=np.int64)
    b = np.asarray(bias, dtype=np.int64)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (C, H, W), got {x.shape}")
    c, h, wd = x.shape
    if w.ndim != 3 or w.shape[0] != c or w.shape[1] != w.shape[2] or w.shape[1] % 2 == 0:
        raise ValueError(f"weights must have shape (C, k, k) with C={c} and k odd, got {w.shape}")
    if b.shape != (c,):
        raise ValueError(f"bias must have shape ({c},), got {b.shape}")
    if residual_shift < 0:
        raise ValueError(f"residual_shift must be >= 0, got {residual_shift}")
    k = w.shape[1]
    pad = k // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    acc = b[:, None, None] + (x << residual_shift)
    for dy in range(k):
        for dx in range(k):
            acc = acc + w[:, dy, dx][:, None, None] * xp[:, dy:dy + h, dx:dx + wd]
    return requant(acc, out_shift, *srange(act_bits)).astype(np.int64)
