"""Where does the shipped ASE-GRU codec lose? Intra, motion and residual measured per frame on held-out clips.

    nice -n 5 .venv/bin/python bench/codec_diagnose.py [--qualities 1 4] [--frames 16] [--gop 8]

Writes bench/results/codec_diagnosis.json (per frame and per clip x quality, with the command, the config
and, under "markdown", the tables of docs/codec.md "Where the shipped codec fails"); prints the tables and
also writes them to <work>/codec_diagnosis.md (work: build/diagnose, scratch).

Everything runs the shipped checkpoints in hardware-exact (int) mode. Per clip and quality:

- the clip is encoded with `Coder`, the stream is decoded again by `TracingCoder` (the same decoder with a
  hook on its motion compensation) and must give the encoder's frames; the hook yields, per P-frame, the
  previous reconstruction, the Delta codes read from the stream and the warped frame;
- intra: bpp / PSNR of every I-frame, beside JPEG (Pillow/libjpeg, YCbCr 4:2:0, scan bytes only) and x264
  intra-only (-g 1, `anchors.run_codec`) on the same frames, interpolated to the codec's rate;
- motion: PSNR of the previous reconstruction warped (a) by the decoded Delta (the decoder's own warped frame),
  (b) by vectors of a full-search block matching (16x16 blocks, quarter pel) through the codec's warp, (b')
  the same vectors as block-constant motion compensation (H.264-style), (c) zero motion; bits of Delta;
- residual: PSNR of the P reconstruction against that of its warped frame (gain and the bits spent besides
  motion) and drift along the GOP;
- what-if (encoder only, same decoder and bitstream): the encoder's search replaced by the full-search block
  matching search (vectors through the codec's warp).

Conventional anchors: x264 medium low-delay P with the same GOP (`anchors.run_codec`), interpolated to the
codec's whole-clip rate.
"""

from __future__ import annotations

import argparse
import io
import os
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from edgecodec.codec import checkpoint as ckpt  # noqa: E402
from edgecodec.codec.anchors import run_codec  # noqa: E402
from edgecodec.codec.bitstream import parse_stream  # noqa: E402
from edgecodec.codec.diagnose import (TracingCoder, block_match, crop_planes, intra_transforms,  # noqa: E402
                                      motion_bits, motion_search_fn, padded_frame, warp_field)
from edgecodec.codec.metrics import frame_metrics, psnr_yuv  # noqa: E402
from model.video import read_video, write_y4m  # noqa: E402
from quant.codec.int_codec import unpack_planes  # noqa: E402

# name, path, (x, y, w, h) crop or None, search radius (pels)
CLIPS = [
    ("carphone", "data/video/carphone_176x144_qp10.mp4", None, 16),
    ("vpf_dog", "data/video/streams/vpf_test.mp4", (248, 88, 352, 288), 32),
    ("zhling", "data/video/streams/openh264_Zhling_1280x720.264", (464, 216, 352, 288), 16),
]
JPEG_QUALITIES = (2, 5, 10, 15, 20, 30, 40, 60)
X264_INTRA_CRFS = (51, 47, 43, 39, 35, 31, 27, 23)
X264_P_CRFS = (51, 48, 45, 42, 39, 36, 33)


# ------------------------------------------------------------------------------------------- clips ----

def load_clip(path: str, frames: int, box):
    y, u, v, fps = read_video(ROOT / path, frames)
    if box is not None:
        x0, y0, w, h = box
        y = y[:, y0:y0 + h, x0:x0 + w]
        u, v = (c[:, y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2] for c in (u, v))
    return np.ascontiguousarray(y), np.ascontiguousarray(u), np.ascontiguousarray(v), fps


def yuv_psnr(orig, rec) -> dict:
    p = psnr_yuv(*orig, *rec)
    return {"y": p["y"], "yuv611": p["yuv611"]}


# ------------------------------------------------------------------------------------------- intra anchors ----

def jpeg_point(y: np.ndarray, u: np.ndarray, v: np.ndarray, quality: int) -> dict:
    """JPEG (libjpeg via Pillow) of one 4:2:0 frame: chroma replicated to full size, coded YCbCr 4:2:0 (libjpeg's
    2x2 averaging recovers it exactly), decoded to YCbCr and 2x2-averaged back. Rate: bytes from the SOS marker
    to the end (quantization and Huffman tables, ~300-600 bytes of fixed overhead, not counted)."""
    h, w = y.shape
    up = [Image.fromarray(np.repeat(np.repeat(c, 2, 0), 2, 1)[:h, :w]) for c in (u, v)]
    buf = io.BytesIO()
    Image.merge("YCbCr", [Image.fromarray(y), *up]).save(buf, "JPEG", quality=quality, subsampling=2,
                                                           optimize=True)
    data = buf.getvalue()
    scan = len(data) - data.index(b"\xff\xda")
    im = Image.open(io.BytesIO(data))
    im.draft("YCbCr", im.size)
    yd, ud, vd = (np.asarray(c, dtype=np.float64) for c in im.convert("YCbCr").split())
    ch, cw = u.shape
    down = [np.round(c[:2 * ch, :2 * cw].reshape(ch, 2, cw, 2).mean(axis=(1, 3))).clip(0, 255).astype(np.uint8)
            for c in (ud, vd)]
    rec = (yd.astype(np.uint8), *down)
    return {"quality": quality, "bits": 8 * scan, "file_bits": 8 * len(data), "bpp": 8 * scan / (h * w),
            **{f"psnr_{k}": val for k, val in yuv_psnr((y, u, v), rec).items()}}


def interp_at(curve: list[tuple[float, float]], x: float):
    """Linear interpolation in log(x) of a curve [(x, value)]; None outside its range (no extrapolation)."""
    pts = sorted(curve)
    xs = np.log([p[0] for p in pts])
    if not pts or not xs[0] <= np.log(x) <= xs[-1]:
        return None
    return float(np.interp(np.log(x), xs, [p[1] for p in pts]))


def rate_at(curve: list[tuple[float, float]], quality: float):
    """bpp of a (bpp, psnr) curve at a given PSNR (interpolated in log bpp); None outside its range."""
    pts = sorted(curve, key=lambda p: p[1])
    qs = [p[1] for p in pts]
    if not qs or not qs[0] <= quality <= qs[-1]:
        return None
    return float(np.exp(np.interp(quality, qs, np.log([p[0] for p in pts]))))


def intra_anchors(clip, i_frames: list[int], workdir: Path, source: Path) -> dict:
    """JPEG and x264 intra-only curves, per I-frame: {frame: {"jpeg": [...], "x264_intra": [...]}}."""
    y, u, v = clip
    out = {t: {"jpeg": [jpeg_point(y[t], u[t], v[t], q) for q in JPEG_QUALITIES], "x264_intra": []} for t in i_frames}
    n = max(i_frames) + 1
    for crf in X264_INTRA_CRFS:
        r = run_codec("x264", source, workdir / "x264_intra", crf, 1, n)
        for t in i_frames:
            f = r["per_frame"][t]
            out[t]["x264_intra"].append({"crf": crf, "bits": f["bits"], "bpp": f["bpp"], "psnr_y": f["psnr_y"],
                                         "psnr_yuv611": f["psnr_yuv611"]})
    return out


def x264_ldp(source: Path, workdir: Path, gop: int, frames: int) -> list[dict]:
    pts = []
    for crf in X264_P_CRFS:
        r = run_codec("x264", source, workdir / "x264_ldp", crf, gop, frames)
        p_frames = [f for f in r["per_frame"] if f["pict_type"] == "P"]
        pts.append({"crf": crf, "bpp": r["bpp"], "psnr_y": r["psnr_y"], "psnr_yuv611": r["psnr_yuv611"],
                    "p_bits_mean": float(np.mean([f["bits"] for f in p_frames])),
                    "p_psnr_y_mean": float(np.mean([f["psnr_y"] for f in p_frames]))})
    return pts


# ------------------------------------------------------------------------------------------- the codec ----

def code_and_trace(ck: dict, clip, gop: int, motion_fn=None):
    """Encode (optionally with a replaced motion search), decode with the tracing decoder; per-frame data."""
    y, u, v = clip
    enc = TracingCoder(ck, "int", "ans", motion_fn=motion_fn)
    t0 = time.perf_counter()
    r = enc.encode(y, u, v, gop)
    enc_s = time.perf_counter() - t0
    header, frames = parse_stream(r.data)
    dec = TracingCoder(ck, "int", "ans")
    rec = dec.decode_frames(header, frames)
    if not all(np.array_equal(a, b) for a, b in zip(rec, r.recon)):
        raise RuntimeError("decoded frames differ from the encoder's reconstruction")
    return r, rec, dec, enc_s


def motion_part(dec: TracingCoder, clip, t: int, rec_idx: int, radius: int) -> dict:
    """(a) decoded Delta, (b) block matching through the codec's warp, (b') block MC, (c) zero motion."""
    y, u, v = clip
    h, w = y.shape[1:]
    orig = (y[t], u[t], v[t])
    rcd = dec.records[rec_idx]
    ref = unpack_planes(rcd["ref"])
    m = rcd["motion"][0]
    warped = unpack_planes(rcd["warped"])
    if not all(torch.equal(a, b) for a, b in zip(warp_field(ref, m), warped)):
        raise RuntimeError("re-running the codec's warp on the decoded Delta does not give the decoder's frame")
    cur = padded_frame(*orig)
    bm = block_match(cur[0], ref[0], radius)
    res = {
        "coded": yuv_psnr(orig, crop_planes(*warped, h, w)),
        "bm_codec_warp": yuv_psnr(orig, crop_planes(*warp_field(ref, bm), h, w)),
        # since stream version 3 the codec's warp is block-constant: both columns are the same function, kept so
        # the JSON compares with the version-2 run (where the codec's warp up-sampled the field)
        "bm_block_mc": yuv_psnr(orig, crop_planes(*warp_field(ref, bm), h, w)),
        "zero": yuv_psnr(orig, crop_planes(*ref, h, w)),
        "coded_bits": motion_bits(dec, m),
        "bm_bits_under_codec_table": motion_bits(dec, bm),
        "coded_mean_abs_px": float(m.abs().double().mean() / 4),
        "bm_mean_abs_px": float(bm.abs().double().mean() / 4),
        "coded_max_abs_px": float(m.abs().max() / 4),
        "bm_max_abs_px": float(bm.abs().max() / 4),
    }
    return res, crop_planes(*warped, h, w)


def intra_ceiling(ck: dict, clip, t: int) -> dict:
    """PSNR Y of frame t through the float intra transforms alone: the latent unquantized (the transforms'
    ceiling) and rounded (the float codec's I-frame)."""
    r = intra_transforms(ck["codec"].intra, *(p[t] for p in clip[:3]))
    return {"continuous": r["ceiling_psnr_y"], "rounded": r["psnr_y"]}


def run_quality(ck: dict, clip, gop: int, radius: int, whatif: bool) -> dict:
    y, u, v = clip
    t_all, h, w = y.shape
    r, rec, dec, enc_s = code_and_trace(ck, clip, gop)
    per = frame_metrics(clip, rec)
    frames, k = [], 0
    for t in range(t_all):
        f = {"frame": t, "type": "I" if t % gop == 0 else "P", "bits": r.frame_bits[t],
             "bpp": r.frame_bits[t] / (h * w), "psnr_y": per[t]["psnr_y"], "psnr_yuv611": per[t]["psnr_yuv611"]}
        if f["type"] == "I":
            f["ceiling_psnr_y"] = intra_ceiling(ck, clip, t)
        if f["type"] == "P":
            mot, warped = motion_part(dec, clip, t, k, radius)
            k += 1
            wp = yuv_psnr((y[t], u[t], v[t]), warped)
            f.update(motion=mot, warped_psnr_y=wp["y"], warped_psnr_yuv611=wp["yuv611"],
                     residual_gain_y=f["psnr_y"] - wp["y"], residual_gain_yuv611=f["psnr_yuv611"] - wp["yuv611"],
                     residual_bits=f["bits"] - mot["coded_bits"], p_index=t % gop)
        frames.append(f)
    out = {"quality": int(ck["quality"]), "bpp": 8 * len(r.data) / (t_all * h * w),
           "psnr_y": float(np.mean([f["psnr_y"] for f in frames])),
           "psnr_yuv611": float(np.mean([f["psnr_yuv611"] for f in frames])), "encode_s": enc_s, "frames": frames}
    if whatif:
        r2, rec2, dec2, _ = code_and_trace(ck, clip, gop, motion_search_fn(radius))
        per2 = frame_metrics(clip, rec2)
        wps = [yuv_psnr((y[t], u[t], v[t]), crop_planes(*unpack_planes(dec2.records[i]["warped"]), h, w))
               for i, t in enumerate(t for t in range(t_all) if t % gop)]
        pf = [t for t in range(t_all) if t % gop]
        out["whatif_bm_encoder"] = {
            "bpp": 8 * len(r2.data) / (t_all * h * w),
            "psnr_y": float(np.mean([p["psnr_y"] for p in per2])),
            "psnr_yuv611": float(np.mean([p["psnr_yuv611"] for p in per2])),
            "p_psnr_y": float(np.mean([per2[t]["psnr_y"] for t in pf])),
            "p_bits": float(np.mean([r2.frame_bits[t] for t in pf])),
            "p_warped_psnr_y": float(np.mean([p["y"] for p in wps])),
            "p_motion_bits": float(np.mean([motion_bits(dec2, rc["motion"]) for rc in dec2.records])),
            "per_frame_psnr_y": [p["psnr_y"] for p in per2], "per_frame_bits": r2.frame_bits,
        }
    return out


# ------------------------------------------------------------------------------------------- summary ----

def summarize(res: dict, gop: int) -> dict:
    """One row per part for a clip x quality."""
    fr = res["frames"]
    i_f = [f for f in fr if f["type"] == "I"]
    p_f = [f for f in fr if f["type"] == "P"]
    mean = lambda xs: float(np.mean(xs))  # noqa: E731
    intra = {"bpp": mean([f["bpp"] for f in i_f]), "psnr_y": mean([f["psnr_y"] for f in i_f]),
             "psnr_yuv611": mean([f["psnr_yuv611"] for f in i_f]),
             "ceiling_psnr_y": mean([f["ceiling_psnr_y"]["continuous"] for f in i_f]),
             "float_rounded_psnr_y": mean([f["ceiling_psnr_y"]["rounded"] for f in i_f])}
    for a in ("jpeg", "x264_intra"):
        for m in ("psnr_y", "psnr_yuv611"):
            vals = [f["anchor"][a][f"{m}_at_rate"] for f in i_f]
            intra[f"{a}_{m}_at_rate"] = None if any(v is None for v in vals) else mean(vals)
        vals = [f["anchor"][a]["bpp_at_psnr_y"] for f in i_f]
        intra[f"{a}_bpp_at_psnr_y"] = None if any(v is None for v in vals) else mean(vals)
    mkeys = ("coded", "bm_codec_warp", "bm_block_mc", "zero")
    motion = {k: mean([f["motion"][k]["y"] for f in p_f]) for k in mkeys}
    motion.update({f"{k}_yuv611": mean([f["motion"][k]["yuv611"] for f in p_f]) for k in mkeys})
    motion.update(coded_bits=mean([f["motion"]["coded_bits"] for f in p_f]),
                  bm_bits=mean([f["motion"]["bm_bits_under_codec_table"] for f in p_f]),
                  coded_mean_abs_px=mean([f["motion"]["coded_mean_abs_px"] for f in p_f]),
                  bm_mean_abs_px=mean([f["motion"]["bm_mean_abs_px"] for f in p_f]))
    by_k = {k: [f for f in p_f if f["p_index"] == k] for k in range(1, gop)}
    residual = {"p_psnr_y": mean([f["psnr_y"] for f in p_f]), "warped_psnr_y": mean([f["warped_psnr_y"] for f in p_f]),
                "gain_y": mean([f["residual_gain_y"] for f in p_f]),
                "gain_yuv611": mean([f["residual_gain_yuv611"] for f in p_f]),
                "residual_bits": mean([f["residual_bits"] for f in p_f]), "p_bits": mean([f["bits"] for f in p_f]),
                "psnr_y_by_p_index": {k: mean([f["psnr_y"] for f in v]) for k, v in by_k.items() if v},
                "gain_y_by_p_index": {k: mean([f["residual_gain_y"] for f in v]) for k, v in by_k.items() if v},
                "i_psnr_y": intra["psnr_y"]}
    ks = sorted(residual["psnr_y_by_p_index"])
    residual["drift_y_last_minus_first_p"] = residual["psnr_y_by_p_index"][ks[-1]] - residual["psnr_y_by_p_index"][ks[0]]
    residual["drop_y_i_to_first_p"] = residual["psnr_y_by_p_index"][ks[0]] - intra["psnr_y"]
    return {"intra": intra, "motion": motion, "residual": residual}


def attach_intra_anchors(res: dict, anchors: dict) -> None:
    for f in res["frames"]:
        if f["type"] != "I":
            continue
        f["anchor"] = {}
        for a, pts in anchors[f["frame"]].items():
            f["anchor"][a] = {f"{m}_at_rate": interp_at([(p["bpp"], p[m]) for p in pts], f["bpp"])
                              for m in ("psnr_y", "psnr_yuv611")}
            f["anchor"][a]["bpp_at_psnr_y"] = rate_at([(p["bpp"], p["psnr_y"]) for p in pts], f["psnr_y"])
            f["anchor"][a]["range_bpp"] = [min(p["bpp"] for p in pts), max(p["bpp"] for p in pts)]


# ------------------------------------------------------------------------------------------- markdown ----

def _f(v, nd=2, unit=""):
    return "—" if v is None else f"{v:.{nd}f}{unit}"


def markdown(result: dict) -> str:
    rows = result["rows"]
    lines = ["Intra (I-frames 0 and 8; anchors interpolated in log bpp to the codec's I-frame rate, '—' = the "
             "codec's rate is outside the anchor's range):", "",
             "| clip | q | I bpp | I PSNR Y / YUV611 | JPEG at same bpp, Y / YUV611 | x264 intra at same bpp, Y / YUV611 | "
             "x264 intra bpp at same PSNR Y | transforms alone, latent unquantized / rounded (float), Y |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        i = r["intra"]
        lines.append(f"| {r['clip']} | q{r['quality']} | {i['bpp']:.3f} | {i['psnr_y']:.2f} / {i['psnr_yuv611']:.2f} | "
                     f"{_f(i['jpeg_psnr_y_at_rate'])} / {_f(i['jpeg_psnr_yuv611_at_rate'])} | "
                     f"{_f(i['x264_intra_psnr_y_at_rate'])} / {_f(i['x264_intra_psnr_yuv611_at_rate'])} | "
                     f"{_f(i['x264_intra_bpp_at_psnr_y'], 3)} | "
                     f"{i['ceiling_psnr_y']:.2f} / {i['float_rounded_psnr_y']:.2f} |")
    lines += ["", "Motion (mean over the 14 P-frames; PSNR Y in dB of the previous reconstruction warped, against "
              "the current original; BM = full-search block matching, 16x16, quarter pel):", "",
              "| clip | q | coded Δ (encoder's search) | BM via codec warp | BM block-constant MC | zero motion | "
              "Δ bits/frame | BM bits (codec's Δ table) | mean abs Δ / BM (px) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["motion"]
        lines.append(f"| {r['clip']} | q{r['quality']} | {m['coded']:.2f} | {m['bm_codec_warp']:.2f} | "
                     f"{m['bm_block_mc']:.2f} | {m['zero']:.2f} | {m['coded_bits']:.0f} | {m['bm_bits']:.0f} | "
                     f"{m['coded_mean_abs_px']:.2f} / {m['bm_mean_abs_px']:.2f} |")
    lines += ["", "Residual and drift (P-frames; PSNR Y in dB; bits per P-frame besides motion = frame bits − "
              "ideal Δ bits):", "",
              "| clip | q | I PSNR | P PSNR (recon) | warped PSNR | residual gain (Y / YUV611) | residual bits/frame | "
              "P-frame bits | PSNR by P index 1…7 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["residual"]
        seq = " → ".join(f"{v:.1f}" for _, v in sorted(s["psnr_y_by_p_index"].items()))
        lines.append(f"| {r['clip']} | q{r['quality']} | {s['i_psnr_y']:.2f} | {s['p_psnr_y']:.2f} | "
                     f"{s['warped_psnr_y']:.2f} | {s['gain_y']:+.2f} / {s['gain_yuv611']:+.2f} | "
                     f"{s['residual_bits']:.0f} | {s['p_bits']:.0f} | {seq} |")
    lines += ["", "Whole clip against x264 medium low-delay P (same GOP, interpolated at the codec's bpp) and the "
              "encoder-only what-if (the same decoder and bitstream; the encoder's Δ replaced by the block-matching "
              "vectors):", "",
              "| clip | q | ours bpp / PSNR Y / YUV611 | x264 LDP PSNR Y / YUV611 at that bpp | x264 bpp at our "
              "PSNR Y (— = below x264 crf 51) | BM encoder bpp / PSNR Y / YUV611 | BM encoder: P warped PSNR Y, Δ bits/frame |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        c, wi = r["clip_rd"], r.get("whatif_bm_encoder")
        wtxt = "—" if wi is None else f"{wi['bpp']:.3f} / {wi['psnr_y']:.2f} / {wi['psnr_yuv611']:.2f}"
        wtxt2 = "—" if wi is None else f"{wi['p_warped_psnr_y']:.2f}, {wi['p_motion_bits']:.0f}"
        lines.append(f"| {r['clip']} | q{r['quality']} | {c['bpp']:.3f} / {c['psnr_y']:.2f} / {c['psnr_yuv611']:.2f} | "
                     f"{_f(c['x264_psnr_y_at_rate'])} / {_f(c['x264_psnr_yuv611_at_rate'])} | "
                     f"{_f(c['x264_bpp_at_psnr_y'], 3)} | {wtxt} | {wtxt2} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- main ----

def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qualities", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--gop", type=int, default=8)
    ap.add_argument("--clips", nargs="+", default=[c[0] for c in CLIPS])
    ap.add_argument("--whatif", type=int, nargs="*", default=None,
                    help="qualities that also run the block-matching encoder (default: all of --qualities)")
    ap.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    ap.add_argument("--work", default=str(ROOT / "build" / "diagnose"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "codec_diagnosis.json"))
    a = ap.parse_args(argv)
    whatif = a.qualities if a.whatif is None else a.whatif
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    work = Path(a.work)
    rows, clips_info = [], []
    t_start = time.perf_counter()
    for name, path, box, radius in [c for c in CLIPS if c[0] in a.clips]:
        y, u, v, fps = load_clip(path, a.frames, box)
        clip = (y, u, v)
        cw = work / name
        cw.mkdir(parents=True, exist_ok=True)
        source = write_y4m(cw / "source.y4m", y, u, v, fps if fps != "0:0" else "30:1")
        i_frames = [t for t in range(y.shape[0]) if t % a.gop == 0]
        anchors = intra_anchors(clip, i_frames, cw, source)
        ldp = x264_ldp(source, cw, a.gop, y.shape[0])
        clips_info.append({"clip": name, "path": path, "crop_xywh": box, "width": y.shape[2], "height": y.shape[1],
                           "frames": y.shape[0], "search_radius_px": radius, "intra_anchors": anchors,
                           "x264_ldp": ldp})
        for q in a.qualities:
            t0 = time.perf_counter()
            ck = ckpt.load(a.checkpoints, q)
            res = run_quality(ck, clip, a.gop, radius, q in whatif)
            attach_intra_anchors(res, anchors)
            row = {"clip": name, "quality": q, **summarize(res, a.gop)}
            curve = [(p["bpp"], p["psnr_y"]) for p in ldp]
            row["clip_rd"] = {"bpp": res["bpp"], "psnr_y": res["psnr_y"], "psnr_yuv611": res["psnr_yuv611"],
                              "x264_psnr_y_at_rate": interp_at(curve, res["bpp"]),
                              "x264_psnr_yuv611_at_rate": interp_at([(p["bpp"], p["psnr_yuv611"]) for p in ldp],
                                                                    res["bpp"]),
                              "x264_bpp_at_psnr_y": rate_at(curve, res["psnr_y"])}
            if "whatif_bm_encoder" in res:
                row["whatif_bm_encoder"] = {k: v for k, v in res["whatif_bm_encoder"].items()
                                            if not k.startswith("per_frame")}
            row["per_frame"] = res["frames"]
            row["whatif_per_frame"] = {k: v for k, v in res.get("whatif_bm_encoder", {}).items()
                                       if k.startswith("per_frame")}
            rows.append(row)
            print(f"{name} q{q}: {time.perf_counter() - t0:.0f} s; intra {row['intra']['psnr_y']:.2f} dB; warped "
                  f"coded {row['motion']['coded']:.2f} / BM {row['motion']['bm_codec_warp']:.2f} / block "
                  f"{row['motion']['bm_block_mc']:.2f} / zero {row['motion']['zero']:.2f}; P "
                  f"{row['residual']['p_psnr_y']:.2f}", flush=True)
    result = {
        "command": "nice -n 5 .venv/bin/python bench/codec_diagnose.py " + " ".join(shlex.quote(s) for s in
                                                                                     (argv or sys.argv[1:])),
        "config": {"qualities": a.qualities, "whatif_qualities": whatif, "frames": a.frames, "gop": a.gop,
                   "mode": "int (hardware-exact), ANS", "block": 16, "subpel": "quarter pel (half then quarter refine)",
                   "bm_cost": "SAD on luma + 2 * (|dx| + |dy|) pels (what-if encoder: 16 * (|dx| + |dy|))", "jpeg_qualities": JPEG_QUALITIES,
                   "jpeg": "Pillow/libjpeg YCbCr 4:2:0 (subsampling=2), optimize=True; rate = bytes from SOS to EOI",
                   "x264_intra_crfs": X264_INTRA_CRFS, "x264_ldp_crfs": X264_P_CRFS,
                   "colour": "8-bit YCbCr 4:2:0 as decoded; PSNR Y and YUV 6:1:1 = (6Y+U+V)/8",
                   "rate": "bits per luma pixel; codec frame bits = payload + frame header; clip bpp = whole file"},
        "clips": clips_info, "rows": rows, "seconds": time.perf_counter() - t_start,
    }
    result["markdown"] = markdown(result)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float))
    (work / "codec_diagnosis.md").write_text(result["markdown"])
    print(result["markdown"])
    return result


if __name__ == "__main__":
    main()
