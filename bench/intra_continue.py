"""Does the I-frame codec of a checkpoint keep improving with more steps (or another loss or data)? Continue its
intra training and measure the held-out I-frames before and after -> bench/results/intra_continue.json.

From a finished checkpoint (default: the shipped q4), the intra codec alone trains `--steps` more steps of the
recipe's intra stage (`model.codec.train.run_stage`: Adam, cosine schedule from `--lr`; batch 8, 128 x 128 crops of codec_train.data, sampler seed 7, torch seed 0) under
L = L_D + lambda R at the checkpoint's lambda (`--ssim`: the SSIM weight of L_D; `--scales`: codec_train.scales).
Before and after, the I-frames 0 and 8 of each held-out clip (edgecodec.codec.evaluate.HELDOUT) go through the
float intra codec (`edgecodec.codec.diagnose.heldout_intra`: PSNR Y of the decoded frame, of the transforms
alone, estimated bits per pixel). Rows join the JSON under their `--name`.

Usage: python bench/intra_continue.py --name more16k --steps 16000 --lr 1e-3
       python bench/intra_continue.py --name nossim --steps 1500 --lr 2e-4 --ssim 0
(1.2–4 min per 1 000 steps on one core, depending on what shares the machine)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from base.files import write_json_atomic  # noqa: E402
from base.paths import resolve  # noqa: E402
from edgecodec.codec import checkpoint as ckpt  # noqa: E402
from edgecodec.codec.diagnose import HELDOUT_I_FRAMES, heldout_i_frames, heldout_intra  # noqa: E402
from edgecodec.config import load  # noqa: E402
from model.codec.data import CropSampler, list_sequences  # noqa: E402
from model.codec.train import LossWeights, run_stage  # noqa: E402

CURVE_EVERY = 500


def held_out(codec, clips: dict) -> dict:
    return {name: {k: round(v, 3) for k, v in r.items() if k != "frames"}
            for name, r in heldout_intra(codec.eval().intra, clips).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="the row's name in the JSON")
    ap.add_argument("--checkpoint", default="checkpoints/codec_q4.pt")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--ssim", type=float, default=None, help="SSIM weight (default: codec.ssim_weight)")
    ap.add_argument("--scales", default="1", help="training crops' scales, e.g. 1+2+4")
    ap.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    ap.add_argument("--json", default=str(ROOT / "bench/results/intra_continue.json"))
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(0)
    cfg = load(a.config)
    ck = ckpt.load(resolve(a.checkpoint))
    codec, lam = ck["codec"], float(ck["lambda"])
    scales = tuple(int(s) for s in a.scales.split("+"))
    sampler = CropSampler(list_sequences([resolve(d) for d in cfg.codec_train.data]), 1, 128, seed=7, scales=scales)
    w = LossWeights(lam, cfg.codec.ssim_weight if a.ssim is None else a.ssim)
    clips = heldout_i_frames()
    row = {"name": a.name, "checkpoint": a.checkpoint, "lambda": lam, "steps": a.steps, "lr": a.lr,
           "ssim_weight": w.ssim, "scales": list(scales), "before": held_out(codec, clips)}
    t0 = time.time()
    log = run_stage(codec, "intra", sampler, a.steps, 0, 8, a.lr, w, None, progress=True, desc=a.name)
    curve = []
    for end in range(CURVE_EVERY, a.steps + 1, CURVE_EVERY):
        d, bpp = np.mean([(r["D"], r["bpp"]) for r in log[end - CURVE_EVERY:end]], axis=0)
        curve.append({"step": end, "train_D": round(float(d), 2), "train_bpp": round(float(bpp), 4),
                      "train_loss": round(float(d + lam * bpp), 2)})
    row.update(curve=curve, seconds=round(time.time() - t0), after=held_out(codec, clips),
               command="python bench/intra_continue.py " + shlex.join(sys.argv[1:]))
    old = json.loads(Path(a.json).read_text()) if Path(a.json).is_file() else {"rows": []}
    rows = [r for r in old["rows"] if r["name"] != a.name] + [row]
    note = {k: old[k] for k in ("note",) if k in old}
    write_json_atomic(a.json, {**note, "clips": list(clips), "frames": list(HELDOUT_I_FRAMES),
                               "colour": "8-bit YCbCr 4:2:0 as decoded; PSNR Y", "rows": rows})
    print(json.dumps(row["after"]))


if __name__ == "__main__":
    main()
