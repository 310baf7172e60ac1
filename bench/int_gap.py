"""Where the hardware-exact mode loses BD-rate against float: a clip coded with one piece of the decoder integer at a
time (the rest float), then with the integer model exported again at other widths.

    python bench/int_gap.py [--config configs/default.yaml] [--frames 32] [--threads 1]   # -> bench/results/int_gap.json

Pieces (`Coder` with the integer form of one piece, the float form of the others; the stream is coded and
reconstructed by the encoder, which runs the decoder side): `warp` (warp_int for the float warp), `rows` (entropy
rows from the integer hyper-synthesis), `intra` (the I-frame synthesis), `p_side` (the P-frame decoder: from_latent,
the ASE-GRU cells, context, synthesis; the warped frame rounded to codes). Variants: the checkpoints' float weights
exported again (`edgecodec.codec.recipe.export`, calibration as `edgecodec train` does it) with other codec / cell
widths, coded in int mode. Every row: BD-rate (PSNR YUV 6:1:1, Akima) of the int or hybrid curve against the float
curve, q1..q4, on codec.eval_clip (carphone, held out of training).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from base.files import write_json_atomic  # noqa: E402
from base.paths import resolve  # noqa: E402
from edgecodec.codec import checkpoint as ckpt  # noqa: E402
from edgecodec.codec.coder import Coder  # noqa: E402
from edgecodec.codec.evaluate import load_clip  # noqa: E402
from edgecodec.codec.metrics import frame_metrics  # noqa: E402
from edgecodec.codec.rd import bd_detail  # noqa: E402
from edgecodec.codec.recipe import export  # noqa: E402
from edgecodec.config import load  # noqa: E402
from model.codec.data import CropSampler, list_sequences  # noqa: E402

PIECES = {"warp": "_warp", "rows": "_y_rows", "intra": "_intra_synth", "p_side": "_p_decode_side"}
# name -> (codec section fields, quant section fields) of an export
VARIANTS = {
    "as exported": ({}, {}),
    "stacks 16-bit activations, 12-bit weights": ({"int_act_bits": 16, "int_weight_bits": 12}, {}),
    "cells 10-bit activations": ({}, {"act_bits": 10}),
    "cells 10-bit weights": ({}, {"weight_bits": 10}),
    "cell LUT 8 bits, frac 4 (step 1/16, [-8, 8))": ({"int_lut_bits": 8, "int_lut_frac": 4}, {}),
    "cell LUT 8 bits, frac 5 (step 1/32, [-4, 4))": ({"int_lut_bits": 8, "int_lut_frac": 5}, {}),
    "cell LUT 8 bits, frac 6 (step 1/64, [-2, 2))": ({"int_lut_bits": 8, "int_lut_frac": 6}, {}),
    "cell LUT 8 bits, frac 7 (step 1/128, [-1, 1))": ({"int_lut_bits": 8, "int_lut_frac": 7}, {}),
    "cell LUT 10 bits, frac 6 (step 1/64, [-8, 8))": ({"int_lut_bits": 10, "int_lut_frac": 6}, {}),
}


def hybrid(ck: dict, int_pieces: set[str]) -> Coder:
    """A float-mode coder whose `int_pieces` run their integer form."""
    coder = Coder(ck, "float", "ans")
    for piece, name in PIECES.items():
        if piece not in int_pieces:
            continue

        def as_int(*args, _name=name):
            coder.mode = "int"
            try:
                return getattr(Coder, _name)(coder, *args)
            finally:
                coder.mode = "float"
        setattr(coder, name, as_int)
    if "p_side" in int_pieces and "warp" not in int_pieces:     # the integer P decoder reads codes
        warp = coder._warp
        coder._warp = lambda ref, m: torch.round(warp(ref, m)).to(torch.int64)
    return coder


def point(coder: Coder, clip, gop: int) -> dict:
    y, u, v = clip
    r = coder.encode(y, u, v, gop)
    per = frame_metrics(clip, r.recon)
    return {"quality": coder.quality, "bpp": 8 * len(r.data) / y.size,
            "psnr_yuv611": sum(f["psnr_yuv611"] for f in per) / len(per)}


def bd(anchor: list[dict], test: list[dict]) -> float:
    return round(bd_detail(anchor, test, "psnr_yuv611")["value"], 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--frames", type=int, default=None, help="default codec.eval_frames")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "int_gap.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = load(a.config)
    c, t = cfg.codec, cfg.codec_train
    frames = a.frames or c.eval_frames
    y, u, v, _ = load_clip(resolve(c.eval_clip), frames)
    clip = (y, u, v)
    folder = resolve(c.checkpoints)
    cks = {q: ckpt.load(folder, q) for q in ckpt.available(folder)}
    t0 = time.time()
    float_pts = [point(Coder(ck, "float", "ans"), clip, c.gop) for ck in cks.values()]
    pieces = {}
    for name in (*PIECES, "all"):
        chosen = set(PIECES) if name == "all" else {name}
        pieces[name] = bd(float_pts, [point(hybrid(ck, chosen), clip, c.gop) for ck in cks.values()])
        print(f"int {name} alone: {pieces[name]:+.2f} % vs float", flush=True)
    seqs = list_sequences([resolve(d) for d in t.data])
    variants = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (codec_fields, quant_fields) in VARIANTS.items():
            v_cfg = dataclasses.replace(cfg, codec=dataclasses.replace(c, **codec_fields),
                                        quant=dataclasses.replace(cfg.quant, **quant_fields))
            pts = []
            for q, ck in cks.items():
                calib = CropSampler(seqs, t.seq_len, t.crop, t.seed + 7).batch(4)
                ckpt.save(ckpt.path_for(tmp, q), export(ck["codec"], v_cfg, q, calib, ck["train_log"]))
                pts.append(point(Coder(ckpt.load(tmp, q), "int", "ans"), clip, c.gop))
            variants[name] = {"codec": codec_fields, "quant": quant_fields, "bd_rate_vs_float_pct": bd(float_pts, pts),
                              "points": pts}
            print(f"{name}: {variants[name]['bd_rate_vs_float_pct']:+.2f} % vs float", flush=True)
    cell = cks[min(cks)]["int"]["dec_cells"][0]
    write_json_atomic(a.json, {
        "bench": "int_gap", "config": str(a.config), "checkpoints": str(c.checkpoints),
        "hashes": {f"q{q}": ck["hash"] for q, ck in cks.items()}, "clip": c.eval_clip, "frames": frames, "gop": c.gop,
        "exported": {"int_act_bits": int(cks[min(cks)]["int"]["act_bits"]),
                     "int_weight_bits": int(cks[min(cks)]["int"]["weight_bits"]),
                     "cells": {k: int(cell[k]) for k in ("act_bits", "weight_bits", "lut_bits", "lut_frac")}},
        "metric": "BD-rate (PSNR YUV 6:1:1, Akima) against the float curve, q1..q4",
        "float": float_pts, "pieces_int_alone_pct": pieces, "variants": variants,
        "seconds": round(time.time() - t0, 1), "machine": platform.platform()}, indent=1)
    print(a.json)


if __name__ == "__main__":
    main()
