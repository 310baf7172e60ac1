"""Codec training on 1 vs 2 processes of this machine (issue 14): seconds per step of the shipped recipe's
intra and P stages (default config: crop 128, 4 frames, global batch 8, its data), one process with all cores'
threads against torchrun with gloo (each process its share of the batch and cores / processes threads).

Each variant starts `torchrun --nproc-per-node P` on this file in worker mode: the codec (seeded), the sampler,
`model.codec.train.run_stage` as `edgecodec train` runs it (DistributedDataParallel when P > 1); WARMUP steps,
then STEPS timed steps per stage; rank 0 reports. Start-up, data loading and the export are not in the figures.

    python bench/train_scaling.py            # -> bench/results/train_scaling.json (about 10 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARMUP, STEPS = 2, 8


def worker(out: str, steps: int) -> None:
    import torch

    from base.paths import DEFAULT_CONFIG, resolve
    from edgecodec import config
    from edgecodec.codec import checkpoint as ckpt
    from model.codec.data import CropSampler, list_sequences
    from model.codec.network import VideoCodec
    from model.codec.train import LossWeights, run_stage
    from model.distributed import current, finish

    cfg = config.load(DEFAULT_CONFIG)
    c, t = cfg.codec, cfg.codec_train
    world = current("cpu")
    world.check_batch(t.batch, "codec_train.batch")
    torch.manual_seed(t.seed)
    codec = VideoCodec(ckpt.shape_of(cfg))
    sampler = CropSampler(list_sequences([resolve(d) for d in t.data]), t.seq_len, t.crop, t.seed)
    w = LossWeights(c.lambdas[-1], c.ssim_weight, c.motion_lambda, t.search_range, t.rate_warmup)
    res = {}
    for stage in ("intra", "inter"):
        run_stage(codec, stage, sampler, WARMUP, 0, t.batch, t.lr, w, None, False, stage, world=world)
        world.barrier()
        t0 = time.perf_counter()
        run_stage(codec, stage, sampler, steps, 0, t.batch, t.lr, w, None, False, stage, world=world)
        world.barrier()
        res[stage] = (time.perf_counter() - t0) / steps
    if world.main:
        Path(out).write_text(json.dumps({"seconds_per_step": res, "processes": world.size,
                                         "threads_per_process": torch.get_num_threads(), "batch": t.batch,
                                         "crop": t.crop, "seq_len": t.seq_len}))
    finish()


def variant(nproc: int, threads: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               __file__, "--worker", str(out), "--steps", str(steps)]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
        r = json.loads(out.read_text())
        r["wall_s"] = round(time.perf_counter() - t0, 1)
    r["seconds_per_step"] = {k: round(v, 3) for k, v in r["seconds_per_step"].items()}
    r["samples_per_s"] = {k: round(r["batch"] / v, 2) for k, v in r["seconds_per_step"].items()}
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench/results/train_scaling.json"))
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.steps)
    cores = os.cpu_count() or 1
    runs = [variant(1, cores, args.steps), variant(2, max(1, cores // 2), args.steps)]
    base = runs[0]["seconds_per_step"]
    for r in runs:
        r["speedup"] = {k: round(base[k] / v, 2) for k, v in r["seconds_per_step"].items()}
    load = os.getloadavg()
    doc = {"bench": "train_scaling", "machine": {"cpus": cores, "platform": platform.platform(),
                                                 "load_avg_1_5_15": [round(x, 2) for x in load]},
           "config": "configs/default.yaml (codec, codec_train)", "warmup_steps": WARMUP, "timed_steps": args.steps,
           "runs": runs}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
