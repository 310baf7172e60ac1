"""Implementation benchmark of the default config (JSON, not a timed test).

Runs the whole flow (reusing the checkpoint when it is current), or reads the summary.json of a finished
`make flow` (--summary), and records what hardware teams compare:
FPGA utilisation, Fmax and fps; ASIC area, clock, power and energy per frame; FINN's estimates beside
ours; the PyTorch baseline; and the seconds every flow step took on this machine. Writes
bench/results/impl.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecodec.config import load  # noqa: E402
from base.errors import EdgecodecError  # noqa: E402


def pick(d: dict | None, keys: tuple[str, ...]) -> dict | None:
    return None if not d else {k: d.get(k) for k in keys if k in d}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--all-targets", action="store_true", help="every ECP5 device and liberty library (long)")
    ap.add_argument("--summary", default=None, help="summary.json of a finished flow run instead of a new run")
    ap.add_argument("--out", default="bench/results/impl.json")
    args = ap.parse_args()
    from edgecodec.flow.builder import run
    try:
        if args.summary:
            s = json.loads(Path(args.summary).read_text())
        else:
            s = run(load(args.config), progress=False, all_targets=args.all_targets)
    except EdgecodecError as exc:
        print(f"impl_bench: error: {exc}", file=sys.stderr)
        return 2
    result = {
        "config": args.config, "clip": s["clip"], "colour_space": s["colour_space"], "feature_map": s["feature_map"],
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "cycles_per_step": s["cycles_per_step"], "verilog_sha256": s.get("verilog_sha256"),
        "fpga": pick(s.get("fpga"), ("family", "device", "package", "speed", "lut", "ff", "dsp", "bram", "io_pins",
                                     "utilisation", "fmax_mhz", "fps", "seconds", "xilinx",
                                     "bitstream_sha256")),
        "asic": pick(s.get("asic"), ("library", "area_um2", "area_breakdown", "critical_path_ns", "fmax_mhz",
                                     "clock_mhz", "power_mw", "energy_per_frame_mj", "seconds")),
        "finn": pick(s.get("finn"), ("fpgapart", "blocks", "cell_step", "seconds")),
        "baseline": pick(s.get("baseline"), ("device", "resolution", "ms_per_frame", "rows")),
        "sweeps": {k: s[k] for k in ("fpga_sweep", "asic_sweep") if k in s},
        "stage_seconds": s["stage_seconds"], "total_seconds": s["total_seconds"],
    }
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("stage_seconds", "total_seconds")}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
