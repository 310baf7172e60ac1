"""Codec benchmark -> bench/results/codec.json.

- encode / decode frames per second on this machine's CPU (and CUDA for the float model when present) at
  QCIF 176x144, CIF 352x288 and 1080p, hardware-exact (int) and float modes, one quality;
  CIF and 1080p frames are the carphone clip resized (bilinear) - the speed does not depend on content much;
- MACs per luma pixel of the I- and P-frame encoders and decoders (forward hooks on every Conv2d / Linear);
- the RD table and BD-rates of `edgecodec eval` on the default eval clip (int vs float included).

Usage: python bench/codec_bench.py [--config configs/default.yaml] [--quality 2] [--no-eval] [--no-speed]

--no-speed keeps the speed section of the JSON at --out (and the machine it was measured on, and its checkpoints'
hashes) and measures the rest: for a machine that is not idle, when only the RD figures changed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecodec.codec import checkpoint as ckpt  # noqa: E402
from edgecodec.codec.coder import Coder, decode  # noqa: E402
from edgecodec.codec.evaluate import macs_per_pixel  # noqa: E402
from edgecodec.config import load  # noqa: E402
from base.paths import resolve  # noqa: E402
from base.files import write_json_atomic  # noqa: E402
from model.video import read_video  # noqa: E402

SIZES = {"QCIF": (176, 144, 8), "CIF": (352, 288, 8), "1080p": (1920, 1080, 3)}


def resize(planes, w: int, h: int):
    out = []
    for p, (hh, ww) in zip(planes, ((h, w), ((h + 1) // 2, (w + 1) // 2), ((h + 1) // 2, (w + 1) // 2))):
        t = torch.from_numpy(p).float()[:, None]
        t = torch.nn.functional.interpolate(t, size=(hh, ww), mode="bilinear", align_corners=False)
        out.append(t[:, 0].round().clamp(0, 255).to(torch.uint8).numpy())
    return out


def speed(ck, planes, mode: str, gop: int, ck_dir) -> dict:
    y, u, v = planes
    coder = Coder(ck, mode)
    r = coder.encode(y, u, v, gop)
    t0 = time.perf_counter()
    _, rec = decode(r.data, ck_dir)
    dec = time.perf_counter() - t0
    assert all(np.array_equal(a, b) for a, b in zip(rec, r.recon))
    return {"encode_fps": round(y.shape[0] / r.seconds, 3), "decode_fps": round(y.shape[0] / dec, 3),
            "frames": int(y.shape[0]), "bpp": round(8 * len(r.data) / y.size, 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    ap.add_argument("--quality", type=int, default=2)
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--no-speed", action="store_true", help="keep the speed section of the JSON at --out")
    ap.add_argument("--out", default=str(ROOT / "bench/results/codec.json"))
    args = ap.parse_args()
    cfg = load(args.config)
    ck_dir = resolve(cfg.codec.checkpoints)
    ck = ckpt.load(ck_dir, args.quality)
    src = read_video(resolve(cfg.codec.eval_clip), 8)[:3]
    machine = f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}"
    result = {"machine": machine, "cuda": torch.cuda.is_available(), "quality": args.quality, "gop": cfg.codec.gop,
              "macs_per_luma_pixel": macs_per_pixel(ck["codec"]), "speed": {}, "speed_checkpoint": ck["hash"]}
    if args.no_speed:
        before = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
        if not before.get("speed") or before.get("quality") != args.quality:
            raise SystemExit(f"--no-speed: {args.out} holds no speed section at quality {args.quality} to keep")
        result["speed"] = before["speed"]
        result["speed_checkpoint"] = before.get("speed_checkpoint", "not recorded")
        result["speed_machine"] = before.get("speed_machine", before.get("machine"))
    else:
        result["speed_machine"] = machine
        for name, (w, h, n) in SIZES.items():
            planes = [p[:n] for p in (src if (w, h) == (176, 144) else resize(src, w, h))]
            result["speed"][name] = {mode: speed(ck, planes, mode, cfg.codec.gop, ck_dir)
                                     for mode in ("int", "float")}
            print(name, result["speed"][name], flush=True)
    if not args.no_eval:
        from edgecodec.codec.evaluate import evaluate
        r = evaluate(resolve(cfg.codec.eval_clip), cfg.codec.eval_frames, cfg.codec.gop, ck_dir, None,
                     ROOT / "build/bench_eval", progress=False)
        result["rd"] = {k: [{kk: vv for kk, vv in p.items() if kk != "per_frame"} for p in pts]
                        for k, pts in r["curves"].items()}
        result["bd_rate_vs_x264"] = r.get("bd_rate_vs_x264")
        result["bd_rate_int_vs_float"] = r.get("bd_rate_int_vs_float")
        result["eval_clip"], result["eval_frames"] = r["clip"], r["frames"]
    write_json_atomic(Path(args.out), result, indent=1)
    print(args.out)


if __name__ == "__main__":
    main()
