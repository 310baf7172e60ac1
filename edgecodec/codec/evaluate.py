"""`edgecodec eval`: rate-distortion of the codec (every quality, hardware-exact and float modes, ANS and
Golomb-Rice rates) against x264, x265 and libaom-AV1 in low-delay P with the same GOP on the same frames;
BD-rates (bjontegaard), RD plots, eval.json and eval.md.

Rates are whole-file bits (header, frame headers, CRC) per luma pixel. Quality: PSNR on YUV 6:1:1 (the
weighting (6 Y + U + V) / 8 of the 8-bit 4:2:0 planes), PSNR on RGB (BT.601 full range, model/video.py) and
MS-SSIM on luma, per frame and averaged over frames.

Per clip also: the decoder's MACs per luma pixel (I and P, counted like bench/codec_bench.py) beside every
row of ours, the P-frame drift along every GOP (first vs last P-frame) and the aims table (overlap with x264 on
26-34 dB YUV 6:1:1, BD-rate vs x264 medium, drift). `evaluate_clips` runs several clips (optionally crops,
``PATH@WxH+X+Y``; `HELDOUT` is the project's held-out set) into ``<out>/<clip>/`` and writes a summary.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from model.video import read_video, write_y4m

from edgecodec.codec import checkpoint as ckpt
from edgecodec.codec.coder import Coder, decode
from base.errors import EdgecodecError
from edgecodec.codec.anchors import CODECS, sweep
from base.files import write_json_atomic, write_text_atomic
from edgecodec.codec.metrics import frame_metrics, mean_metrics
from edgecodec.codec.rd import bd_detail, rd_plot

METRICS = ("psnr_yuv611", "psnr_rgb", "ms_ssim")
KEEP = ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv611", "psnr_rgb", "ms_ssim")

#: The project's held-out evaluation set (none of it in codec_train.data): name, path, crop (w, h, x, y) or None.
#: The crops are those of bench/codec_diagnose.py.
HELDOUT = (
    ("carphone", "data/video/carphone_176x144_qp10.mp4", None),
    ("vpf_dog", "data/video/streams/vpf_test.mp4", (352, 288, 248, 88)),
    ("zhling", "data/video/streams/openh264_Zhling_1280x720.264", (352, 288, 464, 216)),
)
HELDOUT_FRAMES = 16

#: The aims of the issue "A codec worth building": curves overlapping x264's over this YUV 6:1:1 range (dB),
#: BD-rate against x264 medium at most this (percent), no P-frame drift above this (dB, first - last P of a GOP).
AIM_OVERLAP_DB = (26.0, 34.0)
AIM_BD_RATE_PCT = 50.0
AIM_DRIFT_DB = 1.0
DRIFT_METRICS = ("psnr_y", "psnr_yuv611")

_CROP = re.compile(r"(\d+)x(\d+)\+(\d+)\+(\d+)")


# ------------------------------------------------------------------------------------------- clips and crops ----

def parse_clip_spec(spec: str) -> tuple[str, tuple[int, int, int, int] | None]:
    """``PATH`` or ``PATH@WxH+X+Y`` -> (path, (w, h, x, y) or None). Sizes positive, everything even (4:2:0:
    the chroma planes are cropped at half the luma coordinates)."""
    spec = str(spec)
    if "@" not in spec:
        if not spec:
            raise EdgecodecError("clip spec is empty")
        return spec, None
    path, box = spec.rsplit("@", 1)
    if not path:
        raise EdgecodecError(f"clip spec '{spec}': no path before '@' (expected PATH@WxH+X+Y)")
    m = _CROP.fullmatch(box)
    if not m:
        raise EdgecodecError(f"clip spec '{spec}': crop '{box}' is not WxH+X+Y (e.g. 352x288+248+88)")
    w, h, x, y = (int(g) for g in m.groups())
    if w <= 0 or h <= 0:
        raise EdgecodecError(f"clip spec '{spec}': crop size {w}x{h} must be positive")
    if any(v % 2 for v in (w, h, x, y)):
        raise EdgecodecError(f"clip spec '{spec}': crop size and offset must be even (4:2:0 chroma), "
                             f"got {w}x{h}+{x}+{y}")
    return path, (w, h, x, y)


def crop_planes(y: np.ndarray, u: np.ndarray, v: np.ndarray, crop, where: str = "clip"):
    """(T, H, W) luma and (T, H/2, W/2) chroma cut to ``crop`` = (w, h, x, y); refused outside the frame."""
    if crop is None:
        return y, u, v
    w, h, x, y0 = crop
    _, fh, fw = y.shape
    if x + w > fw or y0 + h > fh:
        raise EdgecodecError(f"{where}: crop {w}x{h}+{x}+{y0} lies outside the {fw}x{fh} frame")
    y = y[:, y0:y0 + h, x:x + w]
    u, v = (c[:, y0 // 2:(y0 + h) // 2, x // 2:(x + w) // 2] for c in (u, v))
    return np.ascontiguousarray(y), np.ascontiguousarray(u), np.ascontiguousarray(v)


def clip_name(path: str | Path, crop) -> str:
    """Folder name of a clip: the file's stem, with the crop when there is one."""
    stem = Path(str(path)).stem
    return stem if crop is None else f"{stem}_{crop[0]}x{crop[1]}+{crop[2]}+{crop[3]}"


def load_clip(path: str | Path, frames: int, crop=None):
    """(y, u, v, fps) of the first `frames` frames, cropped; refused when the clip is shorter."""
    y, u, v, fps = read_video(path, frames)
    if y.shape[0] < frames:
        raise EdgecodecError(f"{path}: {y.shape[0]} frames, fewer than the {frames} asked for")
    y, u, v = crop_planes(y, u, v, crop, str(path))
    return y, u, v, fps


# ------------------------------------------------------------------------------------------- decoder MACs ----

def macs_per_pixel(codec, h: int = 256, w: int = 256) -> dict:
    """MACs per luma pixel of the I/P encoder and decoder, from forward hooks on every Conv2d / Linear of the
    float modules on one h x w frame (the count of bench/codec_bench.py; the int decoder runs the same layers)."""
    import torch

    count = {"n": 0}

    def hook(m, a, out):
        if isinstance(m, torch.nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            count["n"] += out.numel() * (m.in_channels // m.groups) * k
        elif isinstance(m, torch.nn.Linear):
            count["n"] += out.numel() * m.in_features

    hooks = [m.register_forward_hook(hook) for m in codec.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    x = torch.rand(1, 6, h // 2, w // 2)
    res = {}
    try:
        with torch.no_grad():
            def measure(fn):
                count["n"] = 0
                fn()
                return count["n"] / (h * w)
            intra, p = codec.intra, codec.inter
            y = intra.g_a(x)
            z = torch.round(intra.hyper.h_a(y))
            res["intra_decoder"] = measure(lambda: (intra.hyper.h_s(z), intra.g_s(torch.round(y))))
            res["intra_encoder"] = measure(lambda: intra(x))
            state = p.init_state(x)
            still = torch.zeros(1, 2, h // 16, w // 16, dtype=torch.int64)
            res["p_encoder"] = measure(lambda: p(x, x, state, still))   # networks only (not the block search);
            yl = torch.round(p.to_latent(torch.zeros(1, p.enc_rnn.cells[0].channels, h // 8, w // 8)))  # mirrors
            zl = torch.round(p.hyper.h_a(yl))                                                    # the decoder

            def p_decode():
                p.hyper.h_s(zl)
                p.synth(torch.cat([p.dec_rnn(p.from_latent(yl), state[1])[0], p.context(x)], dim=1))
            res["p_decoder"] = measure(p_decode)
    finally:
        for hk in hooks:
            hk.remove()
    return {k: round(v, 1) for k, v in res.items()}


def decoder_macs(codec, gop: int) -> dict:
    """Decoder MACs per luma pixel: I-frame, P-frame and the mean over a GOP (1 I + gop-1 P)."""
    m = macs_per_pixel(codec)
    i, p = m["intra_decoder"], m["p_decoder"]
    return {"I": i, "P": p, "gop_mean": round((i + (gop - 1) * p) / gop, 1)}


# ------------------------------------------------------------------------------------------- drift and overlap ----

def drift(per_frame: list[dict], limit_db: float = AIM_DRIFT_DB, metrics=DRIFT_METRICS) -> dict:
    """P-frame drift per GOP: the first and the last P-frame of each GOP (GOPs start at each I-frame, frame
    ``type`` "I"/"P") and their difference ``drop`` = first - last in dB (positive = quality falls along the
    GOP). A GOP meets the aim when every metric's drop is <= `limit_db`. GOPs with fewer than two P-frames
    have nothing to compare and are left out."""
    gops, cur = [], None
    for i, f in enumerate(per_frame):
        kind = f.get("type", f.get("pict_type"))
        if kind == "I" or cur is None:
            cur = {"start": i, "p": []}
            gops.append(cur)
        if kind != "I":
            cur["p"].append(i)
    rows = []
    for g in gops:
        if len(g["p"]) < 2:
            continue
        a, b = g["p"][0], g["p"][-1]
        row = {"gop": len(rows), "start": g["start"], "first_p": a, "last_p": b}
        for m in metrics:
            first, last = float(per_frame[a][m]), float(per_frame[b][m])
            row.update({f"{m}_first": first, f"{m}_last": last, f"{m}_drop": first - last})
        row["max_drop_db"] = max(row[f"{m}_drop"] for m in metrics)
        row["met"] = bool(row["max_drop_db"] <= limit_db)
        rows.append(row)
    worst = max((r["max_drop_db"] for r in rows), default=None)
    return {"limit_db": limit_db, "metrics": list(metrics), "gops": rows, "max_drop_db": worst,
            "met": None if worst is None else bool(worst <= limit_db)}


def overlap(curve, anchor, metric: str = "psnr_yuv611", aim: tuple[float, float] = AIM_OVERLAP_DB) -> dict:
    """The quality range both curves cover inside `aim`: ``range`` [lo, hi] (None when they share none of it),
    ``covered_db`` = hi - lo, ``ours`` / ``anchor`` (each curve's own min..max), ``met`` (the whole aim range
    is covered by both)."""
    if not curve or not anchor:
        return {"metric": metric, "aim_db": list(aim), "ours": None, "anchor": None, "range": None,
                "covered_db": 0.0, "met": False}
    qa = [float(p[metric]) for p in curve]
    qb = [float(p[metric]) for p in anchor]
    lo, hi = max(min(qa), min(qb), aim[0]), min(max(qa), max(qb), aim[1])
    rng = [lo, hi] if hi > lo else None
    return {"metric": metric, "aim_db": list(aim), "ours": [min(qa), max(qa)], "anchor": [min(qb), max(qb)],
            "range": rng, "covered_db": (hi - lo) if rng else 0.0,
            "met": bool(rng is not None and lo <= aim[0] and hi >= aim[1])}


def _main_curve(curves: dict) -> str | None:
    return "ours-int" if "ours-int" in curves else next((k for k in curves if k.startswith("ours-")), None)


def aims(result: dict) -> dict:
    """The aims table of one clip (our hardware-exact curve, else the first of ours)."""
    curves = result["curves"]
    name = _main_curve(curves)
    ours_pts = curves.get(name) or []
    x264 = curves.get("x264")
    ov = overlap(ours_pts, x264) if x264 else None
    bd = (result.get("bd_rate_vs_x264") or {}).get(name, {}).get("psnr_yuv611") if x264 else None
    bd_val = bd["bd_rate_pct"] if bd else None
    worst = [p["drift"]["max_drop_db"] for p in ours_pts if p.get("drift", {}).get("max_drop_db") is not None]
    drift_max = max(worst) if worst else None
    return {
        "curve": name,
        "overlap_x264": {"aim": f"overlap with x264 over {AIM_OVERLAP_DB[0]:g}–{AIM_OVERLAP_DB[1]:g} dB YUV 6:1:1",
                         "value": ov, "met": None if ov is None else ov["met"]},
        "bd_rate_vs_x264": {"aim": f"BD-rate (YUV 6:1:1) vs x264 medium <= +{AIM_BD_RATE_PCT:g} %",
                            "value": bd_val, "overlap": bd.get("overlap") if bd else None,
                            "reason": bd.get("reason") if bd else ("no x264 sweep" if not x264 else None),
                            "met": None if bd_val is None else bool(bd_val <= AIM_BD_RATE_PCT)},
        "drift": {"aim": f"last P-frame of a GOP within {AIM_DRIFT_DB:g} dB of the first (Y and YUV 6:1:1)",
                  "value": drift_max, "met": None if drift_max is None else bool(drift_max <= AIM_DRIFT_DB)},
    }


def _point(name: str, quality: int, data_bytes: int, pixels: int, per_frame: list[dict], extra: dict) -> dict:
    m = mean_metrics(per_frame)
    p = {"codec": name, "quality": quality, "bytes": data_bytes, "bpp": 8 * data_bytes / pixels}
    p.update({k: m[k] for k in KEEP})
    p.update(extra)
    p["per_frame"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in f.items()} for f in per_frame]
    return p


def ours(clip_frames, gop: int, checkpoints: str | Path, qualities: list[int], modes: tuple[str, ...],
         progress: bool = True) -> dict:
    """RD points of our codec per mode; every stream is decoded again and must equal the encoder's frames."""
    y, u, v = clip_frames
    t, h, w = y.shape
    out = {m: [] for m in modes}
    for q in qualities:
        ck = ckpt.load(checkpoints, q)
        macs = decoder_macs(ck["codec"], gop)
        for mode in modes:
            r = Coder(ck, mode, "ans").encode(y, u, v, gop)
            t0 = time.perf_counter()
            _, rec = decode(r.data, checkpoints)
            dec_s = time.perf_counter() - t0
            if not all(np.array_equal(a, b) for a, b in zip(rec, r.recon)):
                raise EdgecodecError(f"quality {q} {mode}: decoded frames differ from the encoder's reconstruction")
            per = frame_metrics((y, u, v), rec)
            for f, bits, kind in zip(per, r.frame_bits, r.frame_types):
                f.update(bits=bits, bpp=bits / (h * w), type="I" if kind == 0 else "P")
            extra = {"mode": mode, "encode_fps": t / r.seconds, "decode_fps": t / dec_s,
                     "decoder_macs_per_pixel": macs, "drift": drift(per)}
            if mode == "int":   # the Golomb-Rice rate of the same symbols (same frames by construction)
                rr = Coder(ck, mode, "rice").encode(y, u, v, gop)
                if not all(np.array_equal(a, b) for a, b in zip(rr.recon, r.recon)):
                    raise EdgecodecError(f"quality {q}: Rice and ANS streams reconstruct different frames")
                extra.update(rice_bytes=len(rr.data), rice_bpp=8 * len(rr.data) / (t * h * w))
            out[mode].append(_point(f"ours-{mode}", q, len(r.data), t * h * w, per, extra))
            if progress:
                p = out[mode][-1]
                print(f"q{q} {mode}: {p['bpp']:.4f} bpp, {p['psnr_yuv611']:.2f} dB YUV611, "
                      f"MS-SSIM {p['ms_ssim']:.4f}", flush=True)
    return out


def _bd_table(curves: dict, anchor: str) -> dict:
    table = {}
    for name, pts in curves.items():
        if name == anchor:
            continue
        table[name] = {}
        for metric in METRICS:
            try:
                d = bd_detail(curves[anchor], pts, metric)
                table[name][metric] = {"bd_rate_pct": d["value"], "reason": d["reason"], "overlap": d["overlap"]}
            except EdgecodecError as exc:
                table[name][metric] = {"bd_rate_pct": None, "reason": str(exc)}
    return table


def evaluate(clip: str | Path, frames: int, gop: int, checkpoints: str | Path, qualities: list[int] | None,
             out_dir: str | Path, modes: tuple[str, ...] = ("int", "float"), baselines: tuple[str, ...] = CODECS,
             progress: bool = True, crop: tuple[int, int, int, int] | None = None, name: str | None = None) -> dict:
    """One clip (optionally cropped to ``crop`` = (w, h, x, y)) -> ``out_dir``/eval.json, eval.md, rd_*.png,
    source.y4m and the anchors' streams under ffmpeg/."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    y, u, v, fps = load_clip(clip, frames, crop)
    qualities = qualities or ckpt.available(checkpoints)
    if not qualities:
        raise EdgecodecError(f"no codec checkpoints in {checkpoints}; run `edgecodec train` first")
    t, h, w = y.shape
    source = write_y4m(out_dir / "source.y4m", y, u, v, fps if fps != "0:0" else "30:1")
    curves = {f"ours-{m}": pts for m, pts in ours((y, u, v), gop, checkpoints, qualities, modes, progress).items()}
    for codec in baselines:
        pts = sweep(codec, source, out_dir / "ffmpeg", gop=gop, frames=frames)
        curves[codec] = [{**{k: p[k] for k in ("codec", "qp", "bytes", "bpp", *KEEP)},
                          "per_frame": p["per_frame"]} for p in pts]
    result = {"clip": str(clip), "frames": t, "width": w, "height": h, "gop": gop, "qualities": qualities,
              "colour": "8-bit YCbCr 4:2:0; PSNR YUV 6:1:1 = (6 PSNR_Y + PSNR_U + PSNR_V) / 8; RGB = BT.601 full "
                        "range; MS-SSIM on luma",
              "rate": "whole-file bits per luma pixel", "curves": curves}
    if crop is not None or name is not None:
        result["name"] = name or clip_name(clip, crop)
        result["crop"] = None if crop is None else {"width": crop[0], "height": crop[1], "x": crop[2], "y": crop[3]}
    if "x264" in curves:
        result["bd_rate_vs_x264"] = _bd_table(curves, "x264")
    if "ours-int" in curves and "ours-float" in curves:
        result["bd_rate_int_vs_float"], reasons = {}, {}
        for m in METRICS:   # None (with the reason) where a curve is not monotone or they do not overlap
            try:
                d = bd_detail(curves["ours-float"], curves["ours-int"], m)
                result["bd_rate_int_vs_float"][m], reasons[m] = d["value"], d["reason"]
            except EdgecodecError as exc:
                result["bd_rate_int_vs_float"][m], reasons[m] = None, str(exc)
        if any(reasons.values()):
            result["bd_rate_int_vs_float_reasons"] = reasons
    main = _main_curve(curves)
    if main:
        result["decoder_macs_per_pixel"] = {f"q{p['quality']}": p["decoder_macs_per_pixel"] for p in curves[main]}
    result["aims"] = aims(result)
    label = Path(str(clip)).name + ("" if crop is None else f" @{crop[0]}x{crop[1]}+{crop[2]}+{crop[3]}")
    result["plots"] = [str(rd_plot(curves, out_dir / f"rd_{m}.png", m,
                                   f"{label}, {t} frames, GOP {gop}, low-delay P"))
                       for m in METRICS]
    write_json_atomic(out_dir / "eval.json", result, indent=1)
    write_text_atomic(out_dir / "eval.md", markdown(result))
    return result


def _range(pts: list[dict], key: str) -> list[float] | None:
    vals = [float(p[key]) for p in pts]
    return [min(vals), max(vals)] if vals else None


def summary_row(r: dict) -> dict:
    """One clip of the multi-clip summary: our curve's bpp / PSNR range, BD-rate vs x264 with its overlap,
    drift max, decoder MACs per pixel and the aims."""
    curves = r["curves"]
    name = _main_curve(curves)
    pts = curves.get(name) or []
    a = r["aims"]
    macs = pts[0]["decoder_macs_per_pixel"] if pts else None
    return {"clip": r.get("name", Path(r["clip"]).stem), "path": r["clip"], "crop": r.get("crop"),
            "size": f"{r['width']}x{r['height']}", "frames": r["frames"], "gop": r["gop"], "curve": name,
            "bpp": _range(pts, "bpp"), "psnr_yuv611": _range(pts, "psnr_yuv611"), "psnr_y": _range(pts, "psnr_y"),
            "x264_psnr_yuv611": _range(curves["x264"], "psnr_yuv611") if "x264" in curves else None,
            "bd_rate_vs_x264_pct": a["bd_rate_vs_x264"]["value"], "bd_overlap": a["bd_rate_vs_x264"]["overlap"],
            "bd_reason": a["bd_rate_vs_x264"]["reason"],
            "overlap_26_34_db": (a["overlap_x264"]["value"] or {}).get("range"),
            "drift_max_db": a["drift"]["value"], "decoder_macs_per_pixel": macs,
            "aims_met": {k: a[k]["met"] for k in ("overlap_x264", "bd_rate_vs_x264", "drift")},
            "eval_md": r.get("eval_md")}


def evaluate_clips(clips, frames: int, gop: int, checkpoints: str | Path, qualities: list[int] | None,
                   out_dir: str | Path, modes: tuple[str, ...] = ("int", "float"),
                   baselines: tuple[str, ...] = CODECS, progress: bool = True, summary: str = "clips") -> dict:
    """Several clips: `evaluate` of each into ``out_dir/<name>/`` and ``out_dir/<summary>.json`` / ``.md``.

    clips: a sequence of specs ``PATH`` or ``PATH@WxH+X+Y`` (str) or of (name, path, crop) tuples
    (`HELDOUT`); relative paths of the tuples resolve from the repository root."""
    from base.paths import resolve
    out_dir = Path(out_dir)
    items = []
    for c in clips:
        if isinstance(c, (tuple, list)):
            nm, path, crop = c
            path = resolve(path)
        else:
            path, crop = parse_clip_spec(c)
            nm = clip_name(path, crop)
        items.append((nm, path, crop))
    if not items:
        raise EdgecodecError("evaluate_clips: no clips given")
    seen: dict[str, int] = {}
    for i, (nm, path, crop) in enumerate(items):   # unique folder names
        seen[nm] = seen.get(nm, 0) + 1
        if seen[nm] > 1:
            items[i] = (f"{nm}_{seen[nm]}", path, crop)
    for nm, path, crop in items:                    # fail early on a bad path or crop, before hours of work
        if not Path(path).is_file():
            raise EdgecodecError(f"clip {nm}: video not found: {path}")
    rows, results = [], {}
    for nm, path, crop in items:
        if progress:
            print(f"== {nm}: {path}" + ("" if crop is None else f" crop {crop[0]}x{crop[1]}+{crop[2]}+{crop[3]}"),
                  flush=True)
        r = evaluate(path, frames, gop, checkpoints, qualities, out_dir / nm, modes, baselines, progress,
                     crop=crop, name=nm)
        r["eval_md"] = str(out_dir / nm / "eval.md")
        results[nm] = r
        rows.append(summary_row(r))
    out = {"clips": rows, "frames": frames, "gop": gop, "modes": list(modes), "baselines": list(baselines),
           "colour": next(iter(results.values()))["colour"], "rate": "whole-file bits per luma pixel",
           "aims": {"overlap_x264_db": list(AIM_OVERLAP_DB), "bd_rate_vs_x264_max_pct": AIM_BD_RATE_PCT,
                    "drift_max_db": AIM_DRIFT_DB}}
    out["all_aims_met"] = {k: _all_met([r["aims_met"][k] for r in rows])
                           for k in ("overlap_x264", "bd_rate_vs_x264", "drift")}
    write_json_atomic(out_dir / f"{summary}.json", out, indent=1)
    write_text_atomic(out_dir / f"{summary}.md", summary_markdown(out))
    out["results"] = results
    return out


def _all_met(flags: list) -> bool | None:
    """False when any clip misses the aim, True when every clip meets it, None when some could not be measured."""
    if any(f is False for f in flags):
        return False
    return True if flags and all(f is True for f in flags) else None


def _yn(v) -> str:
    return "n/a" if v is None else ("yes" if v else "no")


def _rng(r, nd=2, unit="") -> str:
    return "—" if r is None else f"{r[0]:.{nd}f} … {r[1]:.{nd}f}{unit}"


def summary_markdown(s: dict) -> str:
    lines = [f"# Held-out / multi-clip evaluation: {len(s['clips'])} clips, {s['frames']} frames each, GOP {s['gop']} "
             "(low-delay P)", "", f"Colour: {s['colour']}. Rate: {s['rate']}. Our curve: hardware-exact (int) "
             "mode where evaluated. Aims: curves overlap x264's over "
             f"{s['aims']['overlap_x264_db'][0]:g}–{s['aims']['overlap_x264_db'][1]:g} dB YUV 6:1:1; BD-rate vs "
             f"x264 medium <= +{s['aims']['bd_rate_vs_x264_max_pct']:g} %; drift (first − last P-frame of a GOP) "
             f"<= {s['aims']['drift_max_db']:g} dB.", "",
             "| clip | size | bpp | PSNR YUV611 [dB] | x264 PSNR YUV611 [dB] | BD-rate vs x264 (overlap) | "
             "overlap in 26–34 dB | drift max [dB] | dec MACs/px I / P | aims: overlap / BD / drift |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["clips"]:
        bd = (f"{r['bd_rate_vs_x264_pct']:+.1f} % ({r['bd_overlap']:.2f})" if r["bd_rate_vs_x264_pct"] is not None
              else "n/a" + (f" (overlap {r['bd_overlap']:.2f})" if r.get("bd_overlap") is not None else ""))
        macs = r["decoder_macs_per_pixel"]
        macs = "—" if macs is None else f"{macs['I']:g} / {macs['P']:g}"
        am = r["aims_met"]
        lines.append(f"| {r['clip']} | {r['size']} | {_rng(r['bpp'], 4)} | {_rng(r['psnr_yuv611'])} | "
                     f"{_rng(r['x264_psnr_yuv611'])} | {bd} | {_rng(r['overlap_26_34_db'])} | "
                     f"{_fmt(r['drift_max_db'])} | {macs} | "
                     f"{_yn(am['overlap_x264'])} / {_yn(am['bd_rate_vs_x264'])} / {_yn(am['drift'])} |")
    notes = [f"- {r['clip']}: BD-rate n/a: {r['bd_reason']}" for r in s["clips"]
             if r["bd_rate_vs_x264_pct"] is None and r.get("bd_reason")]
    lines += [""] + notes if notes else []
    met = s["all_aims_met"]
    lines += ["", "All clips: overlap " + _yn(met["overlap_x264"]) + ", BD-rate " + _yn(met["bd_rate_vs_x264"]) +
              ", drift " + _yn(met["drift"]) + ". Per clip: `<clip>/eval.md` (RD table, per-frame PSNR, drift, aims)."]
    return "\n".join(lines) + "\n"


def _fmt(v, nd=2):
    return "—" if v is None else f"{v:.{nd}f}"


def _macs_cells(p: dict) -> str:
    m = p.get("decoder_macs_per_pixel")
    return "— | —" if not m else f"{m['I']:g} | {m['P']:g}"


def markdown(r: dict) -> str:
    title = r.get("name") or Path(r["clip"]).name
    crop = r.get("crop")
    src = "" if crop is None else (f" (`{r['clip']}` cropped {crop['width']}x{crop['height']} at x={crop['x']}, "
                                   f"y={crop['y']})")
    lines = [f"# Rate-distortion: {title}, {r['frames']} frames {r['width']}x{r['height']}, "
             f"GOP {r['gop']} (low-delay P)", "", f"Colour: {r['colour']}. Rate: {r['rate']}.{src}", "",
             "Decoder MACs per luma pixel (dec MACs/px I, P): forward hooks on every Conv2d / Linear of the decoder's "
             "layers on one 256x256 frame (as bench/codec_bench.py); the hardware pays them for every pixel.", "",
             "| codec | q / crf | bpp | PSNR YUV611 | PSNR Y | PSNR RGB | MS-SSIM | Rice bpp | enc fps | dec fps | "
             "dec MACs/px I | dec MACs/px P |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, pts in r["curves"].items():
        for p in pts:
            lines.append(f"| {name} | {p.get('quality', p.get('qp'))} | {p['bpp']:.4f} | {p['psnr_yuv611']:.2f} | "
                         f"{p['psnr_y']:.2f} | {p['psnr_rgb']:.2f} | {p['ms_ssim']:.4f} | "
                         f"{_fmt(p.get('rice_bpp'), 4)} | {_fmt(p.get('encode_fps'), 1)} | "
                         f"{_fmt(p.get('decode_fps'), 1)} | {_macs_cells(p)} |")
    if "bd_rate_vs_x264" in r:
        lines += ["", "BD-rate against x264 medium (negative = fewer bits for the same quality; only over the "
                  "overlapping quality range; in brackets the overlap: fraction of the union of both quality "
                  "ranges):", "", "| codec | " + " | ".join(METRICS) + " |",
                  "|---|" + "---|" * len(METRICS)]
        for name, row in r["bd_rate_vs_x264"].items():
            cells = [(_fmt(row[m]["bd_rate_pct"], 1) + f" % ({row[m]['overlap']:.2f})") if row[m]["bd_rate_pct"]
                     is not None else f"n/a ({row[m]['reason']})" for m in METRICS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "bd_rate_int_vs_float" in r:
        cells = [_fmt(r["bd_rate_int_vs_float"][m], 2) + " %" if r["bd_rate_int_vs_float"][m] is not None else "n/a"
                 for m in METRICS]
        lines += ["", "Hardware-exact (int) vs float model, BD-rate: " +
                  ", ".join(f"{m} {c}" for m, c in zip(METRICS, cells))]
    lines += _drift_markdown(r)
    if "aims" in r:
        lines += _aims_markdown(r["aims"])
    return "\n".join(lines) + "\n"


def _drift_markdown(r: dict) -> list[str]:
    out = []
    for name, pts in r["curves"].items():
        if not name.startswith("ours-") or not pts:
            continue
        n = len(pts[0]["per_frame"])
        out += ["", f"Per-frame PSNR YUV 6:1:1 / Y [dB] of {name} (I = I-frame):", "",
                "| q | " + " | ".join(f"{i}{'I' if pts[0]['per_frame'][i].get('type') == 'I' else ''}"
                                      for i in range(n)) + " |", "|---|" + "---|" * n]
        for p in pts:
            out.append(f"| {p['quality']} | " + " | ".join(f"{f['psnr_yuv611']:.2f} / {f['psnr_y']:.2f}"
                                                          for f in p["per_frame"]) + " |")
        out += ["", f"Drift of {name} (first − last P-frame of each GOP, dB; aim <= {AIM_DRIFT_DB:g} dB):", "",
                "| q | GOP | P-frames | PSNR Y first → last (drop) | PSNR YUV611 first → last (drop) | within 1 dB |",
                "|---|---|---|---|---|---|"]
        for p in pts:
            for g in p.get("drift", {}).get("gops", []):
                out.append(f"| {p['quality']} | {g['gop']} | {g['first_p']} … {g['last_p']} | "
                           f"{g['psnr_y_first']:.2f} → {g['psnr_y_last']:.2f} ({g['psnr_y_drop']:+.2f}) | "
                           f"{g['psnr_yuv611_first']:.2f} → {g['psnr_yuv611_last']:.2f} "
                           f"({g['psnr_yuv611_drop']:+.2f}) | {_yn(g['met'])} |")
    return out


def _aims_markdown(a: dict) -> list[str]:
    ov = a["overlap_x264"]["value"]
    if ov is None:
        ov_txt = "n/a (no x264 sweep)"
    else:
        ov_txt = (f"both cover {_rng(ov['range'])} dB" if ov["range"] else "no common range") + \
                 f" (ours {_rng(ov['ours'])}, x264 {_rng(ov['anchor'])})"
    bd = a["bd_rate_vs_x264"]
    bd_txt = (f"{bd['value']:+.1f} % (overlap {bd['overlap']:.2f})" if bd["value"] is not None
              else f"n/a ({bd['reason']})")
    dr = a["drift"]["value"]
    return ["", f"Aims ({a['curve']}):", "", "| aim | measured | met |", "|---|---|---|",
            f"| {a['overlap_x264']['aim']} | {ov_txt} | {_yn(a['overlap_x264']['met'])} |",
            f"| {bd['aim']} | {bd_txt} | {_yn(bd['met'])} |",
            f"| {a['drift']['aim']} | max drop {_fmt(dr)} dB | {_yn(a['drift']['met'])} |"]
