"""`edgecodec eval`: rate-distortion of the codec (every quality, hardware-exact and float modes, ANS and
Golomb-Rice rates) against x264, x265 and libaom-AV1 in low-delay P with the same GOP on the same frames;
BD-rates (bjontegaard), RD plots, eval.json and eval.md.

Rates are whole-file bits (header, frame headers, CRC) per luma pixel. Quality: PSNR on YUV 6:1:1 (the
weighting (6 Y + U + V) / 8 of the 8-bit 4:2:0 planes), PSNR on RGB (BT.601 full range, model/video.py) and
MS-SSIM on luma, per frame and averaged over frames.
"""

from __future__ import annotations

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
            extra = {"mode": mode, "encode_fps": t / r.seconds, "decode_fps": t / dec_s}
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
             progress: bool = True) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    y, u, v, fps = read_video(clip, frames)
    if y.shape[0] < frames:
        raise EdgecodecError(f"{clip}: {y.shape[0]} frames, fewer than the {frames} asked for")
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
    if "x264" in curves:
        result["bd_rate_vs_x264"] = _bd_table(curves, "x264")
    if "ours-int" in curves and "ours-float" in curves:
        result["bd_rate_int_vs_float"] = {m: bd_detail(curves["ours-float"], curves["ours-int"], m)["value"]
                                          for m in METRICS}
    result["plots"] = [str(rd_plot(curves, out_dir / f"rd_{m}.png", m,
                                   f"{Path(str(clip)).name}, {t} frames, GOP {gop}, low-delay P"))
                       for m in METRICS]
    write_json_atomic(out_dir / "eval.json", result, indent=1)
    write_text_atomic(out_dir / "eval.md", markdown(result))
    return result


def _fmt(v, nd=2):
    return "—" if v is None else f"{v:.{nd}f}"


def markdown(r: dict) -> str:
    lines = [f"# Rate-distortion: {Path(r['clip']).name}, {r['frames']} frames {r['width']}x{r['height']}, "
             f"GOP {r['gop']} (low-delay P)", "", f"Colour: {r['colour']}. Rate: {r['rate']}.", "",
             "| codec | q / crf | bpp | PSNR YUV611 | PSNR Y | PSNR RGB | MS-SSIM | Rice bpp | enc fps | dec fps |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, pts in r["curves"].items():
        for p in pts:
            lines.append(f"| {name} | {p.get('quality', p.get('qp'))} | {p['bpp']:.4f} | {p['psnr_yuv611']:.2f} | "
                         f"{p['psnr_y']:.2f} | {p['psnr_rgb']:.2f} | {p['ms_ssim']:.4f} | "
                         f"{_fmt(p.get('rice_bpp'), 4)} | {_fmt(p.get('encode_fps'), 1)} | "
                         f"{_fmt(p.get('decode_fps'), 1)} |")
    if "bd_rate_vs_x264" in r:
        lines += ["", "BD-rate against x264 medium (negative = fewer bits for the same quality; only over the "
                  "overlapping quality range):", "", "| codec | " + " | ".join(METRICS) + " |",
                  "|---|" + "---|" * len(METRICS)]
        for name, row in r["bd_rate_vs_x264"].items():
            cells = [(_fmt(row[m]["bd_rate_pct"], 1) + " %") if row[m]["bd_rate_pct"] is not None
                     else f"n/a ({row[m]['reason']})" for m in METRICS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "bd_rate_int_vs_float" in r:
        cells = [_fmt(r["bd_rate_int_vs_float"][m], 2) + " %" if r["bd_rate_int_vs_float"][m] is not None else "n/a"
                 for m in METRICS]
        lines += ["", "Hardware-exact (int) vs float model, BD-rate: " +
                  ", ".join(f"{m} {c}" for m, c in zip(METRICS, cells))]
    return "\n".join(lines) + "\n"
