"""What limits the I-frame codec: short from-scratch trainings of intra variants at one lambda ->
bench/results/intra_capacity.json.

Each variant is an `IntraCodec` (model/codec/network.py) of `features` conv channels ("A/S": g_a A, g_s S wide)
and `latent` latent channels ("deep": one more 3x3 conv + ReLU after the first two stages of g_a and g_s; "tail": g_s ends on TAIL
channels at the packed resolution and one more 3x3 conv to the six planes), trained from the same seed on
the same crops as the recipe's intra stage (codec_train.data, 128 x 128, batch 8, Adam with a cosine schedule,
L = L_D + lambda R of model/codec/train.py). Every 500 steps: the mean training D and bpp of those steps, and the
carphone I-frames 0 and 8 (held out; padded to a multiple of 64) through the float model: PSNR Y with the latent
unquantized (the transforms' ceiling) and rounded, and the estimated bits (hyperprior, rounded latents) per pixel.

Optional fifth field of a variant: the training crops' scales (codec_train.scales, e.g. 1+2+4).

Usage: python bench/intra_capacity.py [--steps 3000] [--lam 16] [--variant 64,64,plain,0.001 ...]
(about 6 min a variant of 64 features and 20 min at 128 on 2 CPU cores)
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
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from base.files import write_json_atomic  # noqa: E402
from base.paths import resolve  # noqa: E402
from edgecodec.config import load  # noqa: E402
from model.codec.data import CropSampler, list_sequences, load_sequence  # noqa: E402
from model.codec.network import IntraCodec, conv, up  # noqa: E402
from model.codec.train import LossWeights, distortion, luma, luma_pixels  # noqa: E402
from model.proxy.train import cosine_lr  # noqa: E402
from model.yuv import pack420, pad_to_multiple  # noqa: E402

CLIP = "data/video/carphone_176x144_qp10.mp4"
TAIL = 32                                   # "tail": g_s's last sub-pixel conv gives TAIL channels, then a 3x3 conv
DEFAULT_VARIANTS = ["64,64,plain,0.001", "64,192,plain,0.001", "128,192,plain,0.001", "64,64,deep,0.001",
                    "64,64,plain,0.003"]


def make(features: int, latent: int, depth: str, analysis: int = 0) -> IntraCodec:
    """`analysis` > 0: g_a this wide instead (the encoder side: no decoder hardware pays for it)."""
    m = IntraCodec(features, latent, 32)
    if analysis:
        fa = analysis
        m.g_a = nn.Sequential(conv(6, fa, 5, 2), nn.ReLU(), conv(fa, fa, 5, 2), nn.ReLU(), conv(fa, latent, 5, 2))
    if depth == "deep":
        f = features
        m.g_a = nn.Sequential(conv(6, f, 5, 2), nn.ReLU(), conv(f, f, 3), nn.ReLU(), conv(f, f, 5, 2), nn.ReLU(),
                              conv(f, f, 3), nn.ReLU(), conv(f, latent, 5, 2))
        m.g_s = nn.Sequential(*up(latent, f), nn.ReLU(), conv(f, f, 3), nn.ReLU(), *up(f, f), nn.ReLU(),
                              conv(f, f, 3), nn.ReLU(), *up(f, 6))
    if depth == "tail":
        f = features
        m.g_s = nn.Sequential(*up(latent, f), nn.ReLU(), *up(f, f), nn.ReLU(), *up(f, TAIL), nn.ReLU(),
                              conv(TAIL, 6))
    return m


def decoder_macs(m: IntraCodec) -> float:
    """MACs per luma pixel of g_s and h_s (the I-frame decoder), counted on a 256 x 256 frame."""
    total = []
    hooks = [mod.register_forward_hook(lambda mod, a, o: total.append(
        o.shape[2] * o.shape[3] * mod.in_channels * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1]))
        for mod in list(m.g_s.modules()) + list(m.hyper.h_s.modules()) if isinstance(mod, nn.Conv2d)]
    with torch.no_grad():
        z = m.hyper.h_a(m.g_a(torch.zeros(1, 6, 128, 128)))
        m.g_s(torch.zeros(1, m.g_s[0].in_channels, 16, 16))
        m.hyper.h_s(z)
    for h in hooks:
        h.remove()
    return sum(total) / (256 * 256)


@torch.no_grad()
def held_out(m: IntraCodec, x: torch.Tensor) -> dict:
    m.eval()

    def psnr(r):
        r, g = luma(r.clamp(0, 1))[:, :, :144, :176], luma(x)[:, :, :144, :176]
        return float(10 * torch.log10(1 / torch.mean((r - g) ** 2)))

    out = m(x)
    res = {"ceiling_psnr_y": psnr(m.g_s(m.g_a(x - 0.5)) + 0.5), "rounded_psnr_y": psnr(out["recon"]),
           "bpp": float(out["bits"]) / (x.shape[0] * 144 * 176)}
    m.train()
    return res


def run(variant: str, steps: int, lam: float, cfg) -> dict:
    f, lat, depth, lr, *scales = variant.split(",")
    fa, _, f = f.rpartition("/")            # "A/S": g_a A wide, g_s S wide
    f, lat, lr, fa = int(f), int(lat), float(lr), int(fa or 0)
    scales = tuple(int(s) for s in scales[0].split("+")) if scales else (1,)
    torch.manual_seed(0)
    m = make(f, lat, depth, fa)
    sampler = CropSampler(list_sequences([resolve(d) for d in cfg.codec_train.data]), 1, 128, seed=5, scales=scales)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    w = LossWeights(lam, cfg.codec.ssim_weight)
    y, u, v = load_sequence(resolve(CLIP), 9)
    x_eval = torch.stack([pack420(*pad_to_multiple(y[k], u[k], v[k], 64)[:3]) for k in (0, 8)])
    t0, log, points = time.time(), [], []
    for st in range(steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(lr, st, steps)
        x = sampler.batch(8)[:, 0]
        out = m(x)
        bpp = out["bits"] / luma_pixels(x)
        d = distortion(out["recon"], x, w)
        loss = d + lam * bpp
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 5.0)
        opt.step()
        log.append((float(d.detach()), float(bpp.detach())))
        if (st + 1) % 500 == 0:
            dd = np.mean(log[-500:], axis=0)
            points.append({"step": st + 1, "seconds": round(time.time() - t0, 1), "train_D": float(dd[0]),
                           "train_bpp": float(dd[1]), **held_out(m, x_eval)})
            print(variant, points[-1], flush=True)
    return {"variant": variant, "features": f, "analysis_features": fa or f, "latent": lat, "depth": depth,
            "lr": lr, "scales": list(scales), "decoder_macs_per_px": decoder_macs(m),
            "points": points}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lam", type=float, default=16.0, help="lambda (16: the shipped q4)")
    ap.add_argument("--variant", action="append", default=None,
                    help="[analysis features/]features,latent,plain|deep|tail,lr[,scales as 1+2+4] (repeatable; "
                         "default: the study's five); rows join the JSON of the same steps and lambda")
    ap.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    ap.add_argument("--json", default=str(ROOT / "bench/results/intra_capacity.json"))
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    cfg = load(a.config)
    command = "python bench/intra_capacity.py " + shlex.join(sys.argv[1:])
    rows = [{**run(v, a.steps, a.lam, cfg), "command": command} for v in (a.variant or DEFAULT_VARIANTS)]
    old = json.loads(Path(a.json).read_text()) if Path(a.json).is_file() else {}
    if old.get("steps") == a.steps and old.get("lambda") == a.lam:     # the same study: new variants join it
        new = {r["variant"] for r in rows}
        rows = [r for r in old["variants"] if r["variant"] not in new] + rows
    note = {k: old[k] for k in ("note",) if k in old}
    write_json_atomic(a.json, {**note, "steps": a.steps, "lambda": a.lam, "clip": CLIP, "frames": [0, 8],
                               "colour": "8-bit YCbCr 4:2:0 as decoded; PSNR Y", "variants": rows})


if __name__ == "__main__":
    main()
