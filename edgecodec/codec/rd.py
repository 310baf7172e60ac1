"""Rate-distortion comparison: Bjøntegaard deltas (via the `bjontegaard` package) and RD plots.

An RD point is a dict with ``bpp`` (bits per luma pixel) and a quality key such as ``psnr_yuv611``,
``psnr_y``, ``psnr_rgb`` or ``ms_ssim`` (see `edgecodec.codec.metrics`); `edgecodec.codec.anchors.run_codec`
results are RD points as they are.

BD values are integrated only where the two curves overlap (in quality for BD-rate, in log-rate for
BD-PSNR), with Akima interpolation; nothing is extrapolated. Curves that do not overlap give None and a
reason instead of a number.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from base.errors import EdgecodecError
from base.files import atomic_path

MIN_POINTS = 4

_METRIC_LABELS = {
    "psnr_yuv611": "PSNR YUV 6:1:1 [dB] (YCbCr 4:2:0, (6Y+U+V)/8)",
    "psnr_y": "PSNR-Y [dB] (luma, YCbCr 4:2:0)",
    "psnr_u": "PSNR-U [dB] (Cb, YCbCr 4:2:0)",
    "psnr_v": "PSNR-V [dB] (Cr, YCbCr 4:2:0)",
    "psnr": "PSNR-Y [dB] (luma, YCbCr 4:2:0)",
    "psnr_y_of_mean_mse": "PSNR-Y of mean MSE [dB] (luma, YCbCr 4:2:0)",
    "psnr_rgb": "PSNR RGB [dB] (BT.601 full-range RGB from YCbCr 4:2:0)",
    "ms_ssim": "MS-SSIM (luma, YCbCr 4:2:0)",
}


def metric_label(metric: str) -> str:
    """Axis label for a quality key, naming the colour space it is measured in."""
    return _METRIC_LABELS.get(metric, f"{metric} (YCbCr 4:2:0)")


def _curve(points, metric: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(bpp, quality) sorted by rate, validated: >= 4 points, positive strictly increasing rate and quality."""
    if points is None or len(points) < MIN_POINTS:
        raise EdgecodecError(f"{name}: BD needs at least {MIN_POINTS} RD points, got {0 if points is None else len(points)}")
    try:
        rate = np.array([float(p["bpp"]) for p in points])
        qual = np.array([float(p[metric]) for p in points])
    except KeyError as e:
        raise EdgecodecError(f"{name}: an RD point lacks key {e}; points need 'bpp' and '{metric}'") from None
    except (TypeError, ValueError):
        raise EdgecodecError(f"{name}: RD points must be dicts with numeric 'bpp' and '{metric}'") from None
    if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(qual))):
        raise EdgecodecError(f"{name}: non-finite rate or {metric} in the RD points")
    if np.any(rate <= 0):
        raise EdgecodecError(f"{name}: rates must be positive for BD (log rate), got {rate.tolist()}")
    order = np.argsort(rate, kind="stable")
    rate, qual = rate[order], qual[order]
    if np.any(np.diff(rate) <= 0):
        raise EdgecodecError(f"{name}: rates must be distinct, got {rate.tolist()}")
    if np.any(np.diff(qual) <= 0):
        raise EdgecodecError(f"{name}: {metric} must increase strictly with rate for BD interpolation, got "
                        f"bpp {rate.tolist()} -> {qual.tolist()}")
    return rate, qual


def bd_detail(anchor_points, test_points, metric: str = "psnr_yuv611", kind: str = "rate",
              method: str = "akima") -> dict:
    """Bjøntegaard delta with its overlap and, where no number can be given, the reason.

    Parameters
    ----------
    anchor_points, test_points : list of dict
        RD points with ``bpp`` and `metric`; at least 4 each, rate and quality strictly increasing together.
    metric : str
        Quality key.
    kind : {"rate", "psnr"}
        BD-rate (percent rate change at equal quality; negative = test saves bits) or BD-quality (mean
        `metric` gain at equal rate; for PSNR keys, dB).
    method : {"akima", "pchip", "cubic"}
        Interpolation passed to `bjontegaard`.

    Returns
    -------
    dict
        ``value`` (float or None), ``reason`` (None or why value is None), ``overlap`` (fraction of the
        union interval both curves cover), ``interval`` (the integration interval, quality for BD-rate,
        log10 bpp for BD-PSNR), ``kind``, ``metric``, ``method``.
    """
    import bjontegaard

    if kind not in ("rate", "psnr"):
        raise EdgecodecError(f"bd: kind must be 'rate' or 'psnr', got {kind!r}")
    ra, qa = _curve(anchor_points, metric, "anchor")
    rt, qt = _curve(test_points, metric, "test")
    xa, xt = (qa, qt) if kind == "rate" else (np.log10(ra), np.log10(rt))
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    union = max(xa[-1], xt[-1]) - min(xa[0], xt[0])
    overlap = float(max(hi - lo, 0.0) / union) if union > 0 else 0.0
    axis = metric if kind == "rate" else "log10 bpp"
    out = dict(kind=kind, metric=metric, method=method, overlap=overlap, interval=None, value=None, reason=None)
    if hi <= lo:
        out["reason"] = (f"curves do not overlap in {axis}: anchor {xa[0]:.4g}..{xa[-1]:.4g}, "
                         f"test {xt[0]:.4g}..{xt[-1]:.4g}; BD would need extrapolation")
        return out
    fn = bjontegaard.bd_rate if kind == "rate" else bjontegaard.bd_psnr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overlap is checked and reported here
        try:
            value = fn(ra, qa, rt, qt, method=method, require_matching_points=False, min_overlap=0.0)
        except ValueError as e:
            raise EdgecodecError(f"bjontegaard {kind}: {e}") from None
    value = float(value)
    if not math.isfinite(value):
        out["reason"] = f"bjontegaard returned {value} (overlap {overlap:.2f} in {axis})"
        return out
    out.update(value=value, interval=[float(lo), float(hi)])
    return out


def bd_rate(anchor_points, test_points, metric: str = "psnr_yuv611", method: str = "akima",
            return_reason: bool = False):
    """BD-rate of `test_points` against `anchor_points` in percent (negative = test needs fewer bits).

    Parameters
    ----------
    anchor_points, test_points : list of dict
        ``dict(bpp=..., <metric>=...)``, at least 4 points each, quality increasing with rate.
    metric : str
        Quality key, default the YUV 6:1:1 PSNR.
    method : str
        `bjontegaard` interpolation (default Akima).
    return_reason : bool
        Also return the reason string (None when a value is returned).

    Returns
    -------
    float or None, or (float or None, str or None)
        None when the curves do not overlap in quality (no extrapolation); see `bd_detail`.
    """
    d = bd_detail(anchor_points, test_points, metric, "rate", method)
    return (d["value"], d["reason"]) if return_reason else d["value"]


def bd_psnr(anchor_points, test_points, metric: str = "psnr_yuv611", method: str = "akima",
            return_reason: bool = False):
    """BD-PSNR (mean quality gain of test over anchor at equal rate, in units of `metric`, dB for PSNR).

    Same parameters and None-on-no-overlap behaviour as `bd_rate`; overlap is taken in log10 bpp.
    """
    d = bd_detail(anchor_points, test_points, metric, "psnr", method)
    return (d["value"], d["reason"]) if return_reason else d["value"]


def rd_plot(curves: dict, path, metric: str = "psnr_yuv611", title: str = "") -> Path:
    """Plot RD curves (bpp vs quality) to a deterministic PNG.

    Parameters
    ----------
    curves : dict
        ``{name: [dict(bpp=..., <metric>=...), ...]}``; each curve is drawn sorted by rate, in insertion order.
    path : path
        Output PNG (written through a temporary name and a rename).
    metric : str
        Quality key for the y axis.
    title : str
        Plot title.

    Returns
    -------
    Path
        `path`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise EdgecodecError("rd_plot: no curves given")
    path = Path(path)
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    markers = "osD^vP*Xh<>"
    for i, (name, points) in enumerate(curves.items()):
        if not points:
            raise EdgecodecError(f"rd_plot: curve '{name}' has no points")
        try:
            pts = sorted((float(p["bpp"]), float(p[metric])) for p in points)
        except KeyError as e:
            raise EdgecodecError(f"rd_plot: a point of curve '{name}' lacks key {e}") from None
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[i % len(markers)], label=str(name))
    ax.set_xlabel("rate [bits per luma pixel (bpp)]")
    ax.set_ylabel(metric_label(metric))
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    return path
