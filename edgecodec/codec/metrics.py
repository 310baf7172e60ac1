"""Distortion metrics for 8-bit YUV 4:2:0 video: PSNR per plane, YUV 6:1:1, RGB PSNR and luma MS-SSIM.

All metrics are computed in float64 on uint8 planes (peak 255) and are deterministic. Frames are numpy
arrays: luma (H, W) and chroma (ceil(H/2), ceil(W/2)) for one frame, or (T, H, W) / (T, H/2, W/2) for a clip.

Naming used by `frame_metrics`, `mean_metrics` and the RD tools (`edgecodec.codec.rd`): ``psnr_y``, ``psnr_u``,
``psnr_v``, ``psnr_yuv611``, ``psnr_rgb`` (dB), ``ms_ssim`` (luma, 0..1) and ``mse_y``.
"""

from __future__ import annotations

import math

import numpy as np

from base.errors import EdgecodecError

#: PSNR reported for identical inputs (MSE 0) and the cap for any PSNR, in dB.
PSNR_CAP_DB = 100.0

#: The five standard MS-SSIM scale weights (Wang et al. 2003), as used by pytorch_msssim.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

#: Gaussian window sizes tried in order; the first one pytorch_msssim accepts for the plane is used.
MS_SSIM_WINDOWS = (11, 9, 7, 5, 3)

#: Gaussian sigma of the MS-SSIM window (kept at the standard 1.5 when the window is shortened).
MS_SSIM_SIGMA = 1.5


def _as_float(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.size == 0:
        raise EdgecodecError(f"{name}: empty array")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise EdgecodecError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def mse(a, b) -> float:
    """Mean squared error of two equally shaped arrays, computed in float64.

    Parameters
    ----------
    a, b : array_like
        Same shape.

    Returns
    -------
    float
    """
    fa, fb = _as_float(a, "mse a"), _as_float(b, "mse b")
    if fa.shape != fb.shape:
        raise EdgecodecError(f"mse: shapes differ, {fa.shape} vs {fb.shape}")
    return float(np.mean((fa - fb) ** 2))


def psnr_from_mse(m: float, peak: float = 255.0) -> float:
    """PSNR in dB for a mean squared error `m`; MSE 0 (or a PSNR above the cap) gives ``PSNR_CAP_DB`` = 100 dB."""
    if m < 0 or not math.isfinite(m):
        raise EdgecodecError(f"psnr: invalid MSE {m}")
    if m == 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(peak * peak / m))


def psnr(a, b, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio of `b` against `a`.

    Parameters
    ----------
    a, b : array_like
        Same shape (any number of dimensions); values on the scale 0..`peak`.
    peak : float
        Peak signal value (255 for 8-bit samples).

    Returns
    -------
    float
        ``10 log10(peak^2 / MSE)`` in dB. Identical inputs (MSE 0) are capped at 100 dB instead of +inf, and so
        is any larger value, so averages over frames stay finite.
    """
    if peak <= 0:
        raise EdgecodecError(f"psnr: peak must be positive, got {peak}")
    return psnr_from_mse(mse(a, b), peak)


def psnr_yuv(y, u, v, y2, u2, v2) -> dict:
    """Per-plane PSNR of a 4:2:0 frame (or clip) and the YUV 6:1:1 combination.

    Parameters
    ----------
    y, u, v : array_like
        Reference planes (uint8 scale).
    y2, u2, v2 : array_like
        Reconstructed planes, same shapes.

    Returns
    -------
    dict
        ``y``, ``u``, ``v`` (dB) and ``yuv611 = (6 PSNR_Y + PSNR_U + PSNR_V) / 8``, the "YUV 6:1:1" weighting
        of per-plane PSNRs used in JVET common test conditions and CompressAI-style video evaluations.
    """
    py, pu, pv = psnr(y, y2), psnr(u, u2), psnr(v, v2)
    return dict(y=py, u=pu, v=pv, yuv611=(6.0 * py + pu + pv) / 8.0)


def _rgb(y, u, v) -> np.ndarray:
    from model.video import yuv420_to_rgb  # lazy: model.video may land after this module

    return np.clip(np.asarray(yuv420_to_rgb(y, u, v), dtype=np.float64), 0.0, 255.0)


def psnr_rgb(y, u, v, y2, u2, v2) -> float:
    """PSNR in RGB of one 4:2:0 frame against its reconstruction.

    Both frames go through ``model.video.yuv420_to_rgb`` (BT.601 full range, nearest chroma upsampling), are
    clipped to [0, 255], and the MSE is taken over all three channels together (peak 255).

    Parameters
    ----------
    y, u, v, y2, u2, v2 : array_like
        Reference and reconstructed planes of a single frame: (H, W) and (H/2, W/2).

    Returns
    -------
    float
        dB, capped at 100 dB like `psnr`.
    """
    for name, p in (("y", y), ("y2", y2)):
        if np.ndim(p) != 2:
            raise EdgecodecError(f"psnr_rgb: plane {name} must be one frame (H, W), got shape {np.shape(p)}")
    return psnr(_rgb(y, u, v), _rgb(y2, u2, v2))


def ms_ssim_variant(height: int, width: int) -> tuple[int, str]:
    """The MS-SSIM window used for a plane of this size, deterministically.

    pytorch_msssim asserts ``min(H, W) > (win_size - 1) * 2**4`` whatever the number of scales, so fewer
    scales would not make a small plane acceptable; instead the window shrinks. The first odd size in
    ``MS_SSIM_WINDOWS`` (11, 9, 7, 5, 3) that passes is used, always with 5 scales, the standard weights and
    sigma 1.5 (the truncated Gaussian is renormalised). 11 is the standard MS-SSIM (smaller side > 160 px);
    a 96-px plane gets window 5.

    Parameters
    ----------
    height, width : int
        Luma plane size.

    Returns
    -------
    (int, str)
        Window size and a variant label: ``"standard: 5 scales, win 11, sigma 1.5"`` or
        ``"reduced window: 5 scales, win 5, sigma 1.5"``.
    """
    side = min(int(height), int(width))
    for win in MS_SSIM_WINDOWS:
        if side > (win - 1) * 16:
            kind = "standard" if win == 11 else "reduced window"
            return win, f"{kind}: 5 scales, win {win}, sigma {MS_SSIM_SIGMA}"
    raise EdgecodecError(f"MS-SSIM needs a plane whose smaller side exceeds 32 px (window 3 over 4 downsamplings); "
                    f"got {height}x{width}")


def _ms_ssim_frames(y: np.ndarray, y2: np.ndarray) -> tuple[np.ndarray, str]:
    """Per-frame luma MS-SSIM of (T, H, W) clips in float64; returns (values (T,), variant label)."""
    import torch
    from pytorch_msssim import ms_ssim

    a, b = _as_float(y, "ms_ssim reference"), _as_float(y2, "ms_ssim reconstruction")
    if a.shape != b.shape or a.ndim != 3:
        raise EdgecodecError(f"ms_ssim: expected two equal (T, H, W) luma stacks, got {a.shape} and {b.shape}")
    win, variant = ms_ssim_variant(a.shape[1], a.shape[2])
    ta = torch.from_numpy(a).unsqueeze(1)
    tb = torch.from_numpy(b).unsqueeze(1)
    with torch.no_grad():
        vals = ms_ssim(ta, tb, data_range=255, size_average=False, win_size=win, win_sigma=MS_SSIM_SIGMA,
                       weights=list(MS_SSIM_WEIGHTS))
    return vals.reshape(-1).numpy().astype(np.float64), variant


def ms_ssim_luma(y, y2) -> tuple[float, str]:
    """MS-SSIM of one luma plane against its reconstruction (pytorch_msssim, data_range 255, float64).

    Parameters
    ----------
    y, y2 : array_like
        (H, W) luma planes on the 0..255 scale.

    Returns
    -------
    (float, str)
        MS-SSIM in [0, 1] (1 for identical planes) and the variant used, see `ms_ssim_variant`.
    """
    if np.ndim(y) != 2:
        raise EdgecodecError(f"ms_ssim_luma: expected one (H, W) plane, got shape {np.shape(y)}")
    vals, variant = _ms_ssim_frames(np.asarray(y)[None], np.asarray(y2)[None])
    return float(vals[0]), variant


def _stack(triplet, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        y, u, v = (np.asarray(p) for p in triplet)
    except (TypeError, ValueError):
        raise EdgecodecError(f"{name}: expected a (y, u, v) triplet of planes") from None
    if y.ndim == 2:
        y, u, v = y[None], u[None], v[None]
    if y.ndim != 3 or u.ndim != 3 or v.ndim != 3:
        raise EdgecodecError(f"{name}: planes must be (H, W) or (T, H, W), got {y.shape}, {u.shape}, {v.shape}")
    t, h, w = y.shape
    if u.shape != (t, (h + 1) // 2, (w + 1) // 2) or v.shape != u.shape:
        raise EdgecodecError(f"{name}: not 4:2:0, luma {y.shape} with chroma {u.shape} / {v.shape}")
    return y, u, v


def frame_metrics(orig_yuv, rec_yuv) -> list[dict]:
    """All metrics for every frame of a reconstruction.

    Parameters
    ----------
    orig_yuv, rec_yuv : tuple of array_like
        ``(y, u, v)`` planes, (T, H, W) and (T, H/2, W/2) (or a single frame without T), same shapes.

    Returns
    -------
    list of dict
        One dict per frame: ``mse_y``, ``psnr_y``, ``psnr_u``, ``psnr_v``, ``psnr_yuv611`` (see `psnr_yuv`),
        ``psnr_rgb`` (see `psnr_rgb`), ``ms_ssim`` (luma) and ``ms_ssim_variant``.
    """
    y, u, v = _stack(orig_yuv, "frame_metrics reference")
    y2, u2, v2 = _stack(rec_yuv, "frame_metrics reconstruction")
    if (y.shape, u.shape) != (y2.shape, u2.shape):
        raise EdgecodecError(f"frame_metrics: reference {y.shape} and reconstruction {y2.shape} differ in size")
    ssim_vals, variant = _ms_ssim_frames(y, y2)
    out = []
    for t in range(y.shape[0]):
        p = psnr_yuv(y[t], u[t], v[t], y2[t], u2[t], v2[t])
        out.append(dict(mse_y=mse(y[t], y2[t]), psnr_y=p["y"], psnr_u=p["u"], psnr_v=p["v"],
                        psnr_yuv611=p["yuv611"], psnr_rgb=psnr_rgb(y[t], u[t], v[t], y2[t], u2[t], v2[t]),
                        ms_ssim=float(ssim_vals[t]), ms_ssim_variant=variant))
    return out


_MEAN_KEYS = ("mse_y", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv611", "psnr_rgb", "ms_ssim")


def mean_metrics(per_frame: list[dict]) -> dict:
    """Clip-level metrics from `frame_metrics` output.

    Parameters
    ----------
    per_frame : list of dict
        As returned by `frame_metrics` (extra keys are ignored).

    Returns
    -------
    dict
        ``frames``; the arithmetic mean over frames of each of ``mse_y``, ``psnr_y``, ``psnr_u``, ``psnr_v``,
        ``psnr_yuv611``, ``psnr_rgb``, ``ms_ssim``; ``psnr_y_of_mean_mse`` (PSNR of the mean luma MSE, which
        weights bad frames more); ``ms_ssim_variant``; and ``psnr``, which is the per-frame-averaged
        luma PSNR (= ``psnr_y``), the convention of JVET CTC and CompressAI video evaluation.
    """
    if not per_frame:
        raise EdgecodecError("mean_metrics: no frames")
    out: dict = {"frames": len(per_frame)}
    for k in _MEAN_KEYS:
        try:
            out[k] = float(np.mean([float(f[k]) for f in per_frame]))
        except KeyError:
            raise EdgecodecError(f"mean_metrics: a frame lacks '{k}'") from None
    out["psnr_y_of_mean_mse"] = psnr_from_mse(out["mse_y"])
    variants = sorted({f.get("ms_ssim_variant", "") for f in per_frame})
    out["ms_ssim_variant"] = variants[0] if len(variants) == 1 else "; ".join(variants)
    out["psnr"] = out["psnr_y"]
    return out
