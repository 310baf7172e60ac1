"""STAE benchmark -> bench/results/stae.json: IoT-side encoder time per clip on this CPU (FA + SA + entropy
encoding, eqs. 2-4), coded bytes per clip per (alpha, beta), compression against the float32 input and the
accuracy table (FA only, FA+SA, full STAE, and the bit-exact fixed-point encoder), from `edgecodec stae eval`
on the configured data (the synthetic labelled set by default: generated clips, not real video).

Usage: python bench/stae_bench.py [--config configs/default.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecodec.stae import evaluate as stae_eval  # noqa: E402
from edgecodec.config import load  # noqa: E402
from base.files import write_json_atomic  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    ap.add_argument("--out", default=str(ROOT / "bench/results/stae.json"))
    args = ap.parse_args()
    r = stae_eval.run(load(args.config), progress=False)
    rows = [{**{k: w[k] for k in ("alpha", "beta", "bytes", "bytes_eq1", "ratio", "acc_fa", "acc_fa_sa", "acc_stae")},
             "encoder_ms_per_clip": 1e3 * (w["t_fa"] + w["t_sa"] + w["t_ee"]),
             "server_ms_per_clip": 1e3 * (w["t_ed"] + w["t_fr"] + w["t_vit"])} for w in r["rows"]]
    out = {"data": r["source"], "frames": r["frames"], "size": r["size"], "test_clips": r["test_clips"],
           "uncompressed_accuracy": r["uncompressed_accuracy"], "raw_float32_bytes": r["raw_float32_bytes"],
           "machine": f"CPU, torch threads {torch.get_num_threads()}", "rows": rows,
           "fixed_point": r["fixed_point"]}
    write_json_atomic(Path(args.out), out, indent=1)
    print(args.out)


if __name__ == "__main__":
    main()
