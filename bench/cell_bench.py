"""Benchmarks of the ASE-GRU cell RTL (JSON, not timed tests).

- cycles per step / ideal MAC-bound cycles at the configured folding (from a no-stall run on real features);
- Icarus vs Verilator simulated cycles per second on the same bench;
- Yosys synth_ecp5 resources.
Needs `make flow` to have run (it reuses build/flow/cell_params.json). Writes bench/results/cell.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from edgecodec.config import load  # noqa: E402
from base.paths import BUILD_DIR, resolve  # noqa: E402
from base.errors import EdgecodecError  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--icarus-steps", type=int, default=1, help="steps simulated on Icarus (slow)")
    ap.add_argument("--out", default="bench/results/cell.json")
    args = ap.parse_args()
    cfg = load(args.config)
    from hw.rtl.emit import TOP_NAME, write_verilog
    from quant.cell import golden
    from quant.cell.params import CellParams
    from quant.fixed_point import unpack_pixels
    from sim.cell_check import run_cell_bench

    build = resolve(cfg.flow.build_dir)
    summary_path = build / "summary.json"
    if not summary_path.exists():
        raise EdgecodecError(f"{summary_path} not found: run `make flow` first")
    summary = json.loads(summary_path.read_text())
    params = CellParams.load(build / "cell_params.json")
    c, h, w = summary["feature_map"]
    data = np.load(build / "sim" / "bench_data.npz", allow_pickle=True)
    a = params.act_bits
    x = unpack_pixels(data["inputs"], c, h, w, a)  # the flow's real-frame x codes
    bdir = BUILD_DIR / "bench"
    verilog = write_verilog(params, h, w, cfg.hw, bdir / f"{TOP_NAME}.v")
    result = {"config": args.config, "machine": platform.machine(), "feature_map": [c, h, w],
              "folding": {"pe": cfg.hw.pe, "simd": cfg.hw.simd, "dw_parallel": cfg.hw.dw_parallel}}
    sims = {}
    for sim, steps in (("verilator", len(x)), ("icarus", args.icarus_steps)):
        xs = x[:steps]
        t0 = time.time()
        r = run_cell_bench(verilog, TOP_NAME, xs, golden.run_sequence(params, xs), a, bdir / sim, sim)
        sims[sim] = {"steps": steps, "sim_cycles": r["sim_cycles"], "sim_seconds": round(r["wall_s"], 2),
                     "sim_cycles_per_s": round(r["sim_cycles_per_s"]), "build_and_run_seconds": round(time.time() - t0, 1),
                     "mismatches": r["mismatches"], "cycles_per_step": r["cycles_per_step"]}
    cycles = max(sims["verilator"]["cycles_per_step"])
    result.update({
        "cycles_per_step": cycles, "ideal_cycles_per_step": summary["ideal_cycles_per_step"],
        "ideal_over_measured": summary["ideal_cycles_per_step"] / cycles,
        "simulators": sims,
        "verilator_over_icarus_speed": sims["verilator"]["sim_cycles_per_s"] / max(sims["icarus"]["sim_cycles_per_s"], 1),
        "resources_ecp5": summary["resources"],
    })
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EdgecodecError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
