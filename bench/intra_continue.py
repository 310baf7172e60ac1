"""Does the I-frame codec of a checkpoint keep improving with more steps (or another loss or data)? Continue its
intra training and measure the held-out I-frames before and after -> bench/results/intra_continue.json.

From a finished checkpoint (default: the shipped q4), the intra codec alone trains `--steps` more Adam steps
(cosine schedule from `--lr`; batch 8, 128 x 128 crops of codec_train.data, sampler seed 7, torch seed 0) under
L = L_D + lambda R at the checkpoint's lambda (`--ssim`: the SSIM weight of L_D; `--scales`: codec_train.scales).
Before and after, the I-frames 0 and 8 of each held-out clip (edgecodec.codec.evaluate.HELDOUT) go through the
float intra codec (`edgecodec.codec.diagnose.intra_transforms`: PSNR Y of the decoded frame, of the transforms
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
from edgecodec.codec.diagnose import intra_transforms  # noqa: E402
from edgecodec.codec.evaluate import HELDOUT, load_clip  # noqa: E402
from edgecodec.config import load  # noqa: E402
from model.codec.data import CropSampler, list_sequences  # noqa: E402
from model.codec.train import LossWeights, intra_loss  # noqa: E402
from model.proxy.train import cosine_lr  # noqa: E402


def held_out(codec, clips: dict) -> dict:
    codec.eval()
    res = {}
    for name, (y, u, v, _) in clips.items():
        pts = [intra_transforms(codec.intra, y[t], u[t], v[t]) for t in (0, 8)]
        res[name] = {k: round(float(np.mean([p[k] for p in pts])), 3) for k in pts[0]}
    return res


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
    clips = {n: load_clip(resolve(p), 9, box) for n, p, box in HELDOUT}
    row = {"name": a.name, "checkpoint": a.checkpoint, "lambda": lam, "steps": a.steps, "lr": a.lr,
           "ssim_weight": w.ssim, "scales": list(scales), "before": held_out(codec, clips)}
    params = list(codec.intra.parameters())
    opt = torch.optim.Adam(params, lr=a.lr)
    codec.intra.train()
    t0, log, curve = time.time(), [], []
    for st in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(a.lr, st, a.steps)
        loss, info = intra_loss(codec, sampler.batch(8)[:, 0], w)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        log.append((info["D"], info["bpp"]))
        if (st + 1) % 500 == 0:
            d, bpp = np.mean(log[-500:], axis=0)
            curve.append({"step": st + 1, "seconds": round(time.time() - t0), "train_D": round(float(d), 2),
                          "train_bpp": round(float(bpp), 4), "train_loss": round(float(d + lam * bpp), 2)})
            print(a.name, curve[-1], flush=True)
    row.update(curve=curve, after=held_out(codec, clips),
               command="python bench/intra_continue.py " + shlex.join(sys.argv[1:]))
    old = json.loads(Path(a.json).read_text()) if Path(a.json).is_file() else {"rows": []}
    rows = [r for r in old["rows"] if r["name"] != a.name] + [row]
    note = {k: old[k] for k in ("note",) if k in old}
    write_json_atomic(a.json, {**note, "clips": [h[0] for h in HELDOUT], "frames": [0, 8],
                               "colour": "8-bit YCbCr 4:2:0 as decoded; PSNR Y", "rows": rows})
    print(json.dumps(row["after"]))


if __name__ == "__main__":
    main()
