"""One entry point: area, timing, power and energy per frame of the ASE-GRU cell on a standard-cell library.

    asic_estimate(params, height, width, hw, x_codes, library="sky130hd", out_dir=..., clock_mhz=None,
                  cycles_per_step=None, crop=(6, 8), crop_steps=2) -> dict

* area and timing: the full design (height x width) mapped onto the library (hw.asic.mapping, hw.asic.sta);
  the hidden-state memory and the line buffers are register-file macros (hw.asic.sram).
* activity: the same cell emitted for a crop (crop = (h, w) of the real features, first `crop_steps` steps),
  mapped the same way (same memories as macros), simulated at gate level (hw.asic.gatesim: the tb_cell
  protocol, every output code compared with the golden model, toggles of every net counted). The logic is the same
  as the full design's except for address/counter widths and the memory depths, so its energy per cycle
  is used for the full design; memory accesses per cycle come from the crop run, energy per access and
  leakage from the full-size memory models.
* power at `clock_mhz` (default: fmax rounded down to 1 MHz); energy per frame = power * cycles_per_step / f.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from hw.config import HwConfig
from base.errors import EdgecodecError
from base.paths import BUILD_DIR
from base.files import write_json_atomic
from quant.cell.params import CellParams

from hw.asic.liberty import LIBRARIES, load_library
from hw.asic.mapping import MACRO_MIN_BITS, area_breakdown, cell_types, map_design, param_int
from hw.asic.sram import register_file
from hw.asic.sta import MACRO, analyse, build_graph

TOP = "ase_gru_cell"


def _memids(netlist: dict) -> dict:
    """$mem_v2 cell name -> (memid, cell)."""
    out = {}
    for n, c in netlist["cells"].items():
        if c["type"] == MACRO:
            memid = c.get("parameters", {}).get("MEMID", n).lstrip("\\")
            out[n] = (memid, c)
    return out


def macro_models(netlist: dict, lib) -> dict:
    """{memid: register-file model (hw.asic.sram)} of every macro memory of a mapped netlist."""
    models = {}
    for n, (memid, c) in _memids(netlist).items():
        p = c["parameters"]
        models[memid] = register_file(lib, memid, param_int(p["SIZE"]), param_int(p["WIDTH"]))
    return models


def macro_groups(netlist: dict) -> dict:
    """{memid: (read sample group, write sample group)}: the access counters gate-level runs keep per macro
    (hw.asic.gatesim), power.compute's `memory_groups`."""
    return {memid: (f"{memid}.rd", f"{memid}.wr") for memid, _ in _memids(netlist).values()}


def leakage_mw(netlist: dict, lib, models: dict) -> tuple[float, float]:
    """(logic, memory) leakage in mW of a mapped netlist and its macro models."""
    logic = sum(lib.cells[c["type"]].leakage_nw for c in netlist["cells"].values() if c["type"] in lib.cells) * 1e-6
    return logic, sum(m.leakage_nw for m in models.values()) * 1e-6


def asic_estimate(params: CellParams, height: int, width: int, hw: HwConfig, x_codes: np.ndarray,
                  library: str = "sky130hd", out_dir: Path = BUILD_DIR / "asic", clock_mhz: float | None = None,
                  cycles_per_step: int | None = None, crop: tuple[int, int] = (6, 8), crop_steps: int = 2,
                  map_clock_ns: float = 10.0, macro_min_bits: int = MACRO_MIN_BITS) -> dict:
    """Area / timing / power / energy-per-frame estimate of the cell (see the module docstring)."""
    from hw.rtl.emit import write_verilog
    from quant.cell.golden import run_sequence

    from hw.asic import gatesim, power

    if library not in LIBRARIES:
        raise EdgecodecError(f"unknown liberty library '{library}'; choose one of {', '.join(LIBRARIES)}")
    x_codes = np.asarray(x_codes)
    if x_codes.ndim != 4 or x_codes.shape[1] != params.channels:
        raise EdgecodecError(f"x_codes must be (T, C={params.channels}, H, W); got shape {x_codes.shape}")
    ch, cw = crop
    if not (1 <= ch <= x_codes.shape[2] and 1 <= cw <= x_codes.shape[3]):
        raise EdgecodecError(f"crop {crop} does not fit the features {x_codes.shape[2:]} ")
    if not 1 <= crop_steps <= x_codes.shape[0]:
        raise EdgecodecError(f"crop_steps={crop_steps} must be in 1..{x_codes.shape[0]}")
    if clock_mhz is not None and clock_mhz <= 0:
        raise EdgecodecError(f"clock_mhz must be > 0 (got {clock_mhz})")
    out_dir = Path(out_dir) / library
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = load_library(library)
    seconds: dict = {}
    t0 = time.time()
    full_v = write_verilog(params, height, width, hw, out_dir / "full" / f"{TOP}.v")
    crop_v = write_verilog(params, ch, cw, hw, out_dir / "crop" / f"{TOP}.v")
    seconds["emit"] = round(time.time() - t0, 2)
    # the full design decides which memories are macros; the crop (smaller memories) keeps the same ones
    t0 = time.time()
    full_m = map_design(full_v, TOP, library, out_dir / "full" / "map", clock_ns=map_clock_ns,
                        macro_min_bits=macro_min_bits, write_verilog=False)
    full_macros = {m["name"] for m in full_m.memories if m["mapped_to"] == "macro"}
    crop_m = map_design(crop_v, TOP, library, out_dir / "crop" / "map", clock_ns=map_clock_ns, macros=full_macros,
                        macro_min_bits=macro_min_bits, write_verilog=False)
    seconds["map"] = round(time.time() - t0, 2)
    # area
    full = full_m.load()
    areas = area_breakdown(full, lib)
    models = macro_models(full, lib)
    mem_area = sum(m.area_um2 for m in models.values())
    # timing
    t0 = time.time()
    sta_res = analyse(full, lib, macro_access_ns={k: m.access_ns for k, m in models.items()},
                      macro_setup_ns={k: m.setup_ns for k, m in models.items()})
    seconds["sta"] = round(time.time() - t0, 2)
    fmax = sta_res["fmax_mhz"]
    trees = sta_res["buffer_trees"]
    areas["logic_um2"] += trees["area_um2"]          # the modelled high-fanout buffer trees
    areas["logic_cells"] += trees["buffers"]
    total_area = areas["logic_um2"] + areas["ff_um2"] + mem_area
    clock = clock_mhz if clock_mhz is not None else float(math.floor(fmax))
    if clock <= 0:
        raise EdgecodecError(f"fmax {fmax} MHz is below 1 MHz; give clock_mhz")
    # gate-level run on the crop
    t0 = time.time()
    crop_net = crop_m.load()
    xs = np.ascontiguousarray(x_codes[:crop_steps, :, :ch, :cw])
    expected = run_sequence(params, xs)
    bench, act = gatesim.run_cell(crop_net, lib, xs, expected, params.act_bits)
    seconds["sim"] = round(time.time() - t0, 2)
    # activity and power
    t0 = time.time()
    groups = macro_groups(crop_net)
    crop_graph = build_graph(crop_net, lib)
    crop_sta = analyse(crop_net, lib, graph=crop_graph)
    crop_pw = power.compute(crop_net, lib, crop_graph, act, clock, slew=crop_sta["slew"],
                            memory_models=models, memory_groups=groups)
    # full design: logic leakage of the full netlist, dynamic energy per cycle of the crop
    period_ns = 1000.0 / clock
    leak_logic, leak_mem = leakage_mw(full, lib, models)
    epc = crop_pw["energy_pj_per_cycle"]
    pw = {"leakage": leak_logic + leak_mem, "leakage_logic": leak_logic, "leakage_memory": leak_mem,
          "internal": epc["internal"] / period_ns, "switching": epc["switching"] / period_ns,
          "memory": epc["memory"] / period_ns}
    pw["total"] = pw["leakage"] + pw["internal"] + pw["switching"] + pw["memory"]
    seconds["power"] = round(time.time() - t0, 2)
    crop_cycles = bench.get("cycles_per_step") or []
    if cycles_per_step is None:
        if not crop_cycles:
            raise EdgecodecError("no cycles per step measured in the gate-level run; give cycles_per_step")
        cycles_per_step = int(round(max(crop_cycles) * (height * width) / (ch * cw)))
        cps_source = f"crop run {max(crop_cycles)} cycles x (H*W)/(h*w)"
    else:
        cps_source = "given"
    ff_cells = areas["ff_cells"]
    counts = cell_types(full)
    res = {
        "library": library,
        "liberty": LIBRARIES[library],
        "liberty_name": lib.name,
        "voltage_v": lib.voltage,
        "design": {"height": height, "width": width, "channels": params.channels, "bits": params.act_bits,
                   "pe": hw.pe, "simd": hw.simd, "dw_parallel": hw.dw_parallel},
        "area_um2": round(total_area, 1),
        "area_mm2": round(total_area * 1e-6, 4),
        "area_breakdown": {"logic": round(areas["logic_um2"], 1), "ff": round(areas["ff_um2"], 1),
                           "memory": round(mem_area, 1)},
        "cells": sum(v for k, v in counts.items() if k != MACRO),
        "cell_counts": {"logic": areas["logic_cells"], "ff": ff_cells, "macros": counts.get(MACRO, 0)},
        "cell_types": {k: v for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:15]},
        "ff_share": round(areas["ff_um2"] / max(areas["logic_um2"] + areas["ff_um2"], 1e-9), 4),
        "memories": {"model": "standard-cell latch register file (hw/asic/sram.py)",
                     "macros": {k: m.as_dict() for k, m in models.items()},
                     "all": full_m.memories},
        "critical_path_ns": sta_res["critical_path_ns"],
        "fmax_mhz": fmax,
        "critical_path": {k: sta_res[k] for k in ("start", "end", "logic_levels", "path", "buffer_trees")},
        "clock_mhz": clock,
        "power_mw": {k: round(v, 4) for k, v in pw.items()},
        "cycles_per_step": cycles_per_step,
        "cycles_per_step_source": cps_source,
        "activity": {"source": f"zero-delay gate-level simulation (hw.asic.gatesim) of the mapped {ch}x{cw} "
                               f"crop, {crop_steps} steps of the given features",
                     "window_cycles": act.cycles, "mean_toggle_rate": round(crop_pw["mean_toggle_rate"], 5),
                     "nets_traced": len(act.toggles), "memory_access": crop_pw["memory_access"],
                     "crop_energy_pj_per_cycle": {k: round(v, 3) for k, v in epc.items()},
                     "crop_cycles_per_step": crop_cycles},
        "gate_level_bit_exact": bench.get("mismatches", 1) == 0,
        "gate_level_mismatches": bench.get("mismatches"),
        "gate_level_outputs_compared": bench.get("outputs_compared"),
        "seconds": {"map": seconds["map"], "sta": seconds["sta"], "sim": seconds["sim"], "power": seconds["power"],
                    "emit": seconds["emit"], "map_steps_full": full_m.seconds, "map_steps_crop": crop_m.seconds},
    }
    # energy per frame [mJ] = P [mW] * cycles / f [Hz]  (mW * s = mJ)
    res["energy_per_frame_mj"] = pw["total"] * cycles_per_step / (clock * 1e6)
    res["energy_per_frame_uj"] = res["energy_per_frame_mj"] * 1e3
    write_json_atomic(out_dir / "asic_estimate.json", res, indent=1, default=str)
    return res
