"""Entropy-coder benchmark -> bench/results/entropy.json: encode and decode symbols per second of the codec's
ANS and Golomb-Rice frame coders (edgecodec.entropy) on 500 000 Gaussian-table symbols, best of 3, this CPU.
The speed figures that used to be assertions in the unit tests live here.

Usage: python bench/entropy_bench.py [--out bench/results/entropy.json]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from base.files import write_json_atomic  # noqa: E402
from edgecodec.entropy import FrameDecoder, FrameEncoder, pmf_table, scale_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench/results/entropy.json"))
    ap.add_argument("--symbols", type=int, default=500_000)
    args = ap.parse_args()
    table = pmf_table("gaussian", scale_table())
    rng = np.random.default_rng(2)
    n = args.symbols
    rows = rng.choice(np.array([0, 10, 20, 30, 40, 50, 63]), n)
    m = (table.shape[1] - 1) // 2
    cdf = np.cumsum(table, axis=1) / table.sum(axis=1, keepdims=True)
    vals = np.array([np.searchsorted(cdf[r], u) for r, u in zip(rows, rng.random(n))], dtype=np.int64) - m
    result = {"symbols": n, "machine": platform.machine(), "table": "gaussian, 64 rows", "modes": {}}
    for mode in ("ans", "rice"):
        t_enc = t_dec = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            enc = FrameEncoder(table, mode)
            enc.add(vals, rows)
            data = enc.finish()
            t1 = time.perf_counter()
            dec = FrameDecoder(data, table, mode)
            out = dec.read(rows)
            dec.close()
            t2 = time.perf_counter()
            if not np.array_equal(out, vals):
                raise SystemExit(f"{mode}: decoded symbols differ")
            t_enc, t_dec = min(t_enc, t1 - t0), min(t_dec, t2 - t1)
        result["modes"][mode] = {"bits": len(data) * 8, "bits_per_symbol": round(len(data) * 8 / n, 4),
                                 "encode_symbols_per_s": round(n / t_enc), "decode_symbols_per_s": round(n / t_dec)}
    write_json_atomic(Path(args.out), result, indent=1)
    print(args.out)


if __name__ == "__main__":
    main()
