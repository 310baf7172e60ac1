"""Does the P path learn to send a residual? A short P-stage training from a trained intra codec, per setting of
the encoder's residual gain, the latent's init gain (model.codec.network.RESIDUAL_GAIN, LATENT_INIT_GAIN) and
the rate warm-up (codec_train.rate_warmup).

    nice -n 5 .venv/bin/python bench/p_path_probe.py [--steps 150] [--lmbda 16] [--gains 1,1,0 8,4,0 8,4,50]

For each setting: a fresh P path (seed 1) on top of the intra weights of `--checkpoint` (default: the shipped
highest quality), `--steps` Adam steps of the recipe's P stage (default config data, crops, batch), then the mean
distortion, rate and residual gain (PSNR of the reconstruction over the warped frame, the training loss's
`gain_db`) per fifth of the run, and the share of non-zero latents y_t on a fixed held-back batch. Writes
bench/results/p_path_probe.json. Version 2 of the codec collapsed here: y_t all zero, gain 0 dB.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import model.codec.network as net  # noqa: E402
from base.paths import DEFAULT_CONFIG, resolve  # noqa: E402
from edgecodec import config  # noqa: E402
from edgecodec.codec import checkpoint as ckpt  # noqa: E402
from model.codec.data import CropSampler, list_sequences  # noqa: E402
from model.codec.motion import block_search, luma_codes  # noqa: E402
from model.codec.train import LossWeights, run_stage  # noqa: E402


def probe(cfg, intra_state: dict, seqs, res_gain: float, lat_gain: float, warmup: int, lmbda: float,
          steps: int) -> dict:
    net.RESIDUAL_GAIN, net.LATENT_INIT_GAIN = res_gain, lat_gain
    torch.manual_seed(1)
    codec = net.VideoCodec(ckpt.shape_of(cfg))
    codec.load_state_dict(intra_state, strict=False)
    t = cfg.codec_train
    w = LossWeights(lmbda, cfg.codec.ssim_weight, cfg.codec.motion_lambda, t.search_range, warmup)
    t0 = time.time()
    log = run_stage(codec, "inter", CropSampler(seqs, t.seq_len, t.crop, 5), steps, 0, t.batch, t.lr, w, None,
                    False, "probe")
    k = max(1, steps // 5)
    segments = [{"from_step": a, **{m: float(np.mean([h[m] for h in log[a:a + k]])) for m in ("D", "bpp", "gain_db")}}
                for a in range(0, steps, k)]
    frames = CropSampler(seqs, t.seq_len, t.crop, 99).batch(4)
    with torch.no_grad():
        ref = codec.intra(frames[:, 0])["recon"].clamp(0, 1)
        motion = block_search(luma_codes(frames[:, 1]), luma_codes(ref), t.search_range, w.search_lam)
        out = codec.inter(frames[:, 1], ref, codec.inter.init_state(ref), motion)
    return {"residual_gain": res_gain, "latent_init_gain": lat_gain, "rate_warmup": warmup, "segments": segments,
            "y_nonzero_share": float((out["y_hat"] != 0).float().mean()), "seconds": round(time.time() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints"))
    ap.add_argument("--quality", type=int, default=None, help="default: the highest shipped")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lmbda", type=float, default=16.0)
    ap.add_argument("--gains", nargs="+", default=["1,1,0", "8,4,0", "8,4,50"],
                    help="RESIDUAL_GAIN,LATENT_INIT_GAIN,RATE_WARMUP_STEPS")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "p_path_probe.json"))
    a = ap.parse_args()
    cfg = config.load(DEFAULT_CONFIG)
    q = a.quality or max(ckpt.available(a.checkpoint))
    ck = ckpt.load(a.checkpoint, q)
    intra = {k: v for k, v in ck["float"].items() if k.startswith("intra.")}
    seqs = list_sequences([resolve(d) for d in cfg.codec_train.data])
    rows = []
    for g in a.gains:
        rg, lg, wu = g.split(",")
        rows.append(probe(cfg, intra, seqs, float(rg), float(lg), int(wu), a.lmbda, a.steps))
        last = rows[-1]["segments"][-1]
        print(f"gains {rg}/{lg}, warm-up {wu}: D {last['D']:.1f}, bpp {last['bpp']:.3f}, gain {last['gain_db']:+.2f} dB, "
              f"y non-zero {rows[-1]['y_nonzero_share']:.3f}", flush=True)
    cmd = "nice -n 5 .venv/bin/python bench/p_path_probe.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    Path(a.out).write_text(json.dumps({"command": cmd.strip(), "intra_from": f"{Path(a.checkpoint).name}/codec_q{q}.pt",
                                       "steps": a.steps, "lambda": a.lmbda, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
