"""Where a decoder-MAC budget can come from: per channel group of a codec checkpoint, the share of the decoder's MACs
(GOP mean at prune.resolution) that goes when that group alone falls to its floor, and what every group at its floor
removes (the most any budget can take under the config's floors: prune.min_keep, min_keep_hidden, floors).

    python bench/prune_reach.py [--config configs/default.yaml] [--checkpoint checkpoints/codec_q1.pt]
        [--floor GROUP=FRACTION ...] [--json bench/results/prune_reach.json]

No training: the group widths and the layer calls are those `edgecodec prune` counts (model.codec.prune.GatedCodec).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from base.errors import EdgecodecError  # noqa: E402
from base.files import write_json_atomic  # noqa: E402
from edgecodec.codec import checkpoint as ckpt  # noqa: E402
from edgecodec.config import load, parse_resolution  # noqa: E402
from model.codec.prune import GatedCodec  # noqa: E402


def reach(codec, p, gop: int) -> dict:
    """{"groups": {name: {channels, floor, removed_alone}}, "removed_at_floors"} for prune config `p`."""
    g = GatedCodec(copy.deepcopy(codec), None, p.multiple, p.temperature, p.min_keep, p.min_keep_hidden,
                   p.floor_map())
    w, h = parse_resolution(p.resolution)
    full = g.full()
    dense = g.decoder_macs(full, h, w, gop)["gop_mean"]
    with torch.no_grad():               # thresholds above every norm: each gate keeps its floor (then the multiple)
        for n in full:
            g.gate(n).tau.fill_(1e9)
    at_floor = g.kept()

    def removed(kept):
        return round(1 - g.decoder_macs(kept, h, w, gop)["gop_mean"] / dense, 4)

    groups = {n: {"channels": full[n], "floor": at_floor[n], "removed_alone": removed({**full, n: at_floor[n]})}
              for n in full}
    return {"groups": groups, "removed_at_floors": removed(at_floor), "dense_gop_mean_macs": round(dense)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--checkpoint", default=None, help="default: quality 1 of codec.checkpoints")
    ap.add_argument("--floor", action="append", default=[], help="GROUP=FRACTION, added to prune.floors")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "prune_reach.json"))
    a = ap.parse_args()
    cfg = load(a.config)
    if a.floor:
        p = dataclasses.replace(cfg.prune, floors=(*cfg.prune.floors, *a.floor))
        p.validate()
        cfg = dataclasses.replace(cfg, prune=p)
    ck = ckpt.load(a.checkpoint) if a.checkpoint else ckpt.load(cfg.codec.checkpoints, 1)
    r = reach(ck["codec"], cfg.prune, int(ck["gop"]))
    for n, v in sorted(r["groups"].items(), key=lambda kv: -kv[1]["removed_alone"]):
        print(f"{n:22s} {v['channels']:3d} -> {v['floor']:3d}: {100 * v['removed_alone']:5.1f} % of the decoder MACs")
    print(f"every group at its floor: {100 * r['removed_at_floors']:.1f} %")
    write_json_atomic(a.json, {"bench": "prune_reach", "config": a.config, "checkpoint": str(ck["path"]),
                               "hash": ck["hash"], "resolution": cfg.prune.resolution, "gop": int(ck["gop"]),
                               "multiple": cfg.prune.multiple, "min_keep": cfg.prune.min_keep,
                               "min_keep_hidden": cfg.prune.min_keep_hidden, "floors": list(cfg.prune.floors), **r},
                      indent=1)
    print(a.json)


if __name__ == "__main__":
    try:
        main()
    except EdgecodecError as exc:
        sys.exit(f"prune_reach: {exc}")
