"""Hardware-exact decode time with the integer stacks run two ways that give the same codes:
`IntSequential.run` (codes kept as integer-valued float64) and `IntSequential.run_int64` (the contract step by step
in int64, converted at every layer). A stream of the held-out office clip (`streams/openh264_Zhling_1280x720.264`,
8 frames of 1280x720, GOP 8, shipped q1, int mode) is decoded `--repeats` times each way, alternating, one torch
thread; the decoded frames must be identical.

    python bench/int_stack_speed.py [--quality 1] [--repeats 3]      # -> bench/results/int_stack_speed.json
"""

from __future__ import annotations

import argparse
import platform
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
from edgecodec.codec.coder import Coder, decode  # noqa: E402
from edgecodec.codec.evaluate import HELDOUT, load_clip  # noqa: E402
from quant.codec.intnet import IntSequential  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quality", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench/results/int_stack_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    folder = resolve("checkpoints")
    _, path, _ = HELDOUT[2]
    clip = load_clip(resolve(path), 8)[:3]
    data = Coder(ckpt.load(folder, args.quality), "int", "ans").encode(*clip, 8).data
    ways = {"float64 codes (run)": IntSequential.run, "int64 contract (run_int64)": IntSequential.run_int64}
    seconds, frames = {k: [] for k in ways}, {}
    try:
        for _ in range(args.repeats):
            for name, fn in ways.items():
                IntSequential.run = fn
                t0 = time.perf_counter()
                _, rec = decode(data, folder)
                seconds[name].append(time.perf_counter() - t0)
                frames.setdefault(name, rec)
    finally:
        IntSequential.run = ways["float64 codes (run)"]
    a, b = frames.values()
    if not all(np.array_equal(p, q) for p, q in zip(a, b)):
        raise SystemExit("the two ways decoded different frames")
    best = {k: round(min(v), 3) for k, v in seconds.items()}
    r = {"command": "python bench/int_stack_speed.py " + " ".join(sys.argv[1:]), "clip": path, "frames": 8,
         "size": "1280x720", "quality": args.quality, "bytes": len(data), "repeats": args.repeats,
         "best_seconds": best, "speedup": round(best["int64 contract (run_int64)"] / best["float64 codes (run)"], 3),
         "identical_frames": True, "machine": f"{platform.machine()}, torch threads 1"}
    write_json_atomic(Path(args.out), r, indent=1)
    print(r)


if __name__ == "__main__":
    main()
