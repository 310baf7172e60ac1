"""The decoder engine on a standard-cell library: area, timing and energy per 1080p / 720p frame
-> bench/results/engine_asic.json.

* Area and timing: `EngineTop` (PE x PE array, line buffers `--max-width` wide, both ASE-GRU units generated for the
  `--resolution`'s latent map and folded to `--gru-pe`) mapped onto the library (hw.asic.mapping: memories of at
  least 4 kbit as register-file macros, hw.asic.sram), static timing with the macros' access and setup times
  (hw.asic.sta). The AXI4 memory is outside (it is the system's DRAM); its energy is not counted.
* Activity: the same engine generated with its GRU units for a `--crop` latent (the same memories as macros, the
  same array, bus and line buffers) and simulated at gate level (hw.asic.engine_gatesim, zero delay, no glitches) on
  real runs: frames 0-1 of the flow clip coded at `--quality`, turned into engine runs by the host driver cropped to
  the top-left `--crop` latent (edgecodec.engine_host.frame_runs(crop=...)): the I-frame's hyper-synthesis and
  synthesis, the P-frame's hyper-synthesis and P-frame program. Every map each run writes is compared with the
  integer model's.
* Energy per frame: every descriptor of the frame's programs at the target size (hw.engine.program.descriptor_cycles,
  the cycle model) costs the crop's measured energy of the same layer's load phase (descriptor fetch, weights,
  biases) plus the crop's energy per cycle of its run phase times the model's remaining cycles; leakage of the full
  design over the frame time at the clock (default: Fmax rounded down to 1 MHz) is added.

Usage: python bench/engine_asic.py [--pe 4] [--gru-pe 1] [--max-width 64] [--resolution 1920x1080] [--crop 1x1]
       [--quality 1] [--library sky130hd]
(about 1.5 h on 2 cores: mapping the two engines ~7 min, then 0.23 M gate-level cycles at ~20 ms each; the numbers
in docs/engine.md and README.md come from this command.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from base.errors import EdgecodecError  # noqa: E402

FRAMES = {"1920x1080": (1920, 1080), "1280x720": (1280, 720)}


def mapped(verilog: Path, library: str, out_dir: Path, macros: set | None = None) -> tuple[dict, list]:
    """(netlist, memories) of `verilog` mapped onto `library` (hw.asic.mapping.map_design); a mapping of the same
    bytes with the same macros in `out_dir` is reused (mapping the engine takes tens of minutes)."""
    from hw.asic.mapping import map_design
    digest = hashlib.sha256(Path(verilog).read_bytes() + repr(sorted(macros or ())).encode()).hexdigest()
    stamp, net = out_dir / "source.json", out_dir / "netlist.json"
    if stamp.is_file() and net.is_file():
        done = json.loads(stamp.read_text())
        if done.get("sha256") == digest:
            return json.loads(net.read_text())["modules"]["engine_top"], done["memories"]
    m = map_design(verilog, "engine_top", library, out_dir, macros=macros, write_verilog=False)
    stamp.write_text(json.dumps({"sha256": digest, "memories": m.memories}))
    return m.load(), m.memories


def frame_programs(int_state: dict, width: int, height: int, shape) -> dict:
    """{"I": [(fields, cycles), ...], "P": [...]}: every descriptor of a frame's programs (hyper-synthesis first)."""
    from edgecodec.engine_plan import padded, stack_input
    from hw.engine.frame_program import gru_specs, p_frame_program
    from hw.engine.layers import conv_layers
    from hw.engine.program import compile_stack, descriptor_cycles, pixel_output
    pw, ph = padded(width, height)
    nets = int_state["nets"]

    def stack(name: str) -> list:
        layers = conv_layers(nets[name]["layers"])
        if name == "intra_g_s":
            layers[-1] = pixel_output(layers[-1])
        prog = compile_stack(layers, *stack_input(name, pw, ph), shape)
        return descriptor_cycles(prog.image, prog.program_addr, shape)
    latent = (ph // 16, pw // 16)
    pf = p_frame_program(int_state, latent, shape)
    return {"I": stack("intra_h_s") + stack("intra_g_s"),
            "P": stack("p_h_s") + descriptor_cycles(pf.image, pf.programs[0], shape, gru_specs(int_state, latent))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quality", type=int, default=1)
    ap.add_argument("--pe", type=int, default=4)
    ap.add_argument("--gru-pe", type=int, default=1)
    ap.add_argument("--max-width", type=int, default=64)
    ap.add_argument("--resolution", default="1920x1080", help="the GRU units' map: this frame's latent")
    ap.add_argument("--crop", default="1x1", help="HxW latent of the gate-level runs")
    ap.add_argument("--library", default="sky130hd", choices=("sky130hd", "gf180mcu", "sg13g2"))
    ap.add_argument("--clock-mhz", type=float, default=None, help="default: Fmax rounded down")
    ap.add_argument("--build", default="build/engine_asic")
    ap.add_argument("--out", default="bench/results/engine_asic.json")
    args = ap.parse_args()

    from base.files import write_json_atomic
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.codec.coder import Coder
    from edgecodec.config import load, parse_resolution
    from edgecodec.engine_host import frame_runs
    from edgecodec.engine_plan import padded, shape_for
    from hw.asic import power
    from hw.asic.engine_gatesim import load_regions, run_program, segment_activity, signature
    from hw.asic.gatesim import GateSim
    from hw.asic.liberty import LIBRARIES, load_library
    from hw.asic.estimate import leakage_mw, macro_groups, macro_models
    from hw.asic.mapping import area_breakdown, cell_types
    from hw.asic.sta import MACRO, analyse, build_graph
    from hw.engine.engine import EngineTop
    from hw.engine.frame_program import gru_specs
    from hw.engine.program import Image, descriptor_cycles
    from hw.rtl.emit import write_component_verilog
    from model.video import read_video
    from sim.tb.engine_maps import compare_maps

    width, height = parse_resolution(args.resolution)
    pw, ph = padded(width, height)
    crop = tuple(int(v) for v in args.crop.lower().split("x"))
    if len(crop) != 2 or min(crop) < 1:
        raise EdgecodecError(f"--crop {args.crop}: give HxW of a latent, e.g. 1x1")
    cfg = load(ROOT / "configs" / "default.yaml")
    folder = ROOT / cfg.codec.checkpoints
    ck = ckpt.load(folder, args.quality)
    int_state = ck["int"]
    shape = shape_for(int_state, args.pe, args.max_width, args.gru_pe)
    shape.check()
    wb = shape.data_bits // 8
    build = ROOT / args.build / args.library
    build.mkdir(parents=True, exist_ok=True)
    lib = load_library(args.library)
    t_all, seconds = time.time(), {}

    def step(name: str, t0: float) -> None:
        seconds[name] = round(time.time() - t0, 1)
        print(f"{name}: {seconds[name]} s", flush=True)

    # ---- the two engines, mapped
    t0 = time.time()
    full_v = write_component_verilog(EngineTop(shape, grus=gru_specs(int_state, (ph // 16, pw // 16))), "engine_top",
                                     build / "full" / "engine_top.v")
    specs_c = gru_specs(int_state, crop)
    crop_v = write_component_verilog(EngineTop(shape, grus=specs_c), "engine_top", build / "crop" / "engine_top.v")
    step("emit", t0)
    t0 = time.time()
    full, memories = mapped(full_v, args.library, build / "full" / "map")
    step("map_full", t0)
    t0 = time.time()
    macros = {m["name"] for m in memories if m["mapped_to"] == "macro"}
    crop_net, _ = mapped(crop_v, args.library, build / "crop" / "map", macros)
    step("map_crop", t0)
    models = macro_models(full, lib)
    areas = area_breakdown(full, lib)
    t0 = time.time()
    sta = analyse(full, lib, macro_access_ns={k: m.access_ns for k, m in models.items()},
                  macro_setup_ns={k: m.setup_ns for k, m in models.items()})
    step("sta", t0)
    areas["logic_um2"] += sta["buffer_trees"]["area_um2"]
    mem_area = sum(m.area_um2 for m in models.values())
    total_area = areas["logic_um2"] + areas["ff_um2"] + mem_area
    fmax = sta["fmax_mhz"]
    clock = args.clock_mhz or float(math.floor(fmax))

    # ---- real runs, cropped, at gate level
    t0 = time.time()
    y, u, v, _ = read_video(ROOT / cfg.codec.eval_clip, 2)
    stream = Coder(ck, "int", "ans").encode(y, u, v, cfg.codec.gop).data
    runs, specs = frame_runs(stream, folder, shape, crop=crop)
    assert [(s.height, s.width) for s in specs] == [(s.height, s.width) for s in specs_c]
    sim = GateSim(crop_net, lib)
    step("gatesim_build", t0)
    groups = macro_groups(crop_net)
    clock_bits = [b for b in sim.ports.get("clk", []) if b > 1]
    graph = build_graph(crop_net, lib)
    slew = analyse(crop_net, lib, graph=graph)["slew"]
    by_key: dict = {}       # signature -> {"load": [segments], "run": [segments], "count": occurrences}
    run_rows, mismatches = [], 0
    for r, run in enumerate(runs):
        t1 = time.time()
        img = Image.from_bytes(run.image, wb)
        descs = descriptor_cycles(img, run.program_addr, shape, specs_c)
        g = run_program(sim, run.image, run.program_addr, len(descs), wb, 4 * sum(n for _, n in descs) + 10_000,
                        {i: load_regions(f, wb) for i, (f, _) in enumerate(descs)})
        compared, bad, report = compare_maps(g.memory, run.expected, r, wb)
        mismatches += bad
        for line in report[:6]:
            print(line)
        for i, (f, _) in enumerate(descs):
            by_key.setdefault(signature(f), {"load": [], "run": [], "count": 0})["count"] += 1
        for s in g.segments:
            if s.descriptor >= 0:
                by_key[signature(descs[s.descriptor][0])][s.phase].append(s)
        run_rows.append({"kind": run.kind, "frame": run.frame, "descriptors": len(descs),
                         "gate_level_cycles": g.sim_cycles, "cycles_register": g.cycles_register,
                         "model_cycles": sum(n for _, n in descs), "status": g.status, "codes_compared": compared,
                         "mismatches": bad, "seconds": round(time.time() - t1, 1)})
        print(f"run {r} ({run.kind}): {g.sim_cycles} cycles, {bad} of {compared} codes mismatching, "
              f"{time.time() - t1:.0f} s", flush=True)
    seconds["gatesim"] = round(sum(x["seconds"] for x in run_rows), 1)

    # ---- energy per layer: load phase per occurrence, run phase per cycle
    t0 = time.time()

    def dynamic_pj(segs: list) -> tuple[float, int]:
        if not segs or sum(s.cycles for s in segs) == 0:
            return 0.0, 0
        act = segment_activity(sim, segs, clock_bits)
        pw_ = power.compute(crop_net, lib, graph, act, clock, slew=slew, memory_models=models, memory_groups=groups)
        return sum(pw_["energy_pj_per_cycle"].values()) * act.cycles, act.cycles

    layers = {}
    for key, d in by_key.items():
        e_load, c_load = dynamic_pj(d["load"])
        e_run, c_run = dynamic_pj(d["run"])
        layers[key] = {"load_pj": e_load / d["count"], "load_cycles": c_load / d["count"],
                       "run_pj_per_cycle": e_run / c_run if c_run else 0.0, "run_cycles": c_run,
                       "occurrences": d["count"]}
    step("power", t0)
    leak_mw = sum(leakage_mw(full, lib, models))

    def frame_energy(programs: list) -> dict:
        dyn, cycles, by_kind = 0.0, 0, {}
        for f, n in programs:
            key = signature(f)
            if key not in layers:
                raise EdgecodecError(f"no gate-level activity for a layer {key}: the crop's runs lack it")
            L = layers[key]
            e = L["load_pj"] + L["run_pj_per_cycle"] * max(0.0, n - L["load_cycles"])
            dyn += e
            cycles += n
            by_kind[key[0]] = by_kind.get(key[0], 0.0) + e
        t_s = cycles / (clock * 1e6)
        leak_uj = leak_mw * t_s * 1e3
        total_uj = dyn * 1e-6 + leak_uj
        return {"cycles": cycles, "seconds_at_clock": round(t_s, 4), "fps_at_clock": round(1 / t_s, 3),
                "energy_uj": round(total_uj, 1), "dynamic_uj": round(dyn * 1e-6, 1), "leakage_uj": round(leak_uj, 1),
                "dynamic_uj_by_unit": {k: round(v * 1e-6, 1) for k, v in sorted(by_kind.items())},
                "mean_power_mw": round(total_uj * 1e-3 / t_s, 2)}

    frames = {}
    for name, (w, h) in FRAMES.items():
        progs = frame_programs(int_state, w, h, shape)
        frames[name] = {kind: frame_energy(p) for kind, p in progs.items()}
    counts = cell_types(full)
    res = {
        "what": "the decoder engine (EngineTop) mapped to a standard-cell library: area, timing, energy per frame",
        "library": args.library, "liberty": LIBRARIES[args.library], "voltage_v": lib.voltage,
        "array": f"{args.pe}x{args.pe}", "gru_pe": shape.gru_fold, "bus_bits": shape.data_bits,
        "max_width": args.max_width, "generated_for": f"{pw}x{ph}", "quality": args.quality,
        "area_mm2": round(total_area * 1e-6, 3),
        "area_breakdown_mm2": {"logic": round(areas["logic_um2"] * 1e-6, 3), "ff": round(areas["ff_um2"] * 1e-6, 3),
                               "memory": round(mem_area * 1e-6, 3)},
        "cells": sum(v for k, v in counts.items() if k != MACRO), "macros": counts.get(MACRO, 0),
        "memories": {k: m.as_dict() for k, m in models.items()},
        "fmax_mhz": fmax, "critical_path_ns": sta["critical_path_ns"],
        "critical_path": {k: sta[k] for k in ("start", "end", "logic_levels")},
        "clock_mhz": clock, "leakage_mw": round(leak_mw, 3),
        "frames": frames,
        "activity": {"source": f"zero-delay gate-level simulation (hw.asic.engine_gatesim) of the engine generated "
                               f"for a {crop[0]}x{crop[1]} latent, on frames 0-1 of {cfg.codec.eval_clip} cropped to "
                               f"it (q{args.quality})",
                     "runs": run_rows, "gate_level_mismatches": int(mismatches),
                     "layers": [{"layer": list(map(str, k)), **{kk: round(vv, 3) if isinstance(vv, float) else vv
                                                               for kk, vv in v.items()}}
                                for k, v in layers.items()]},
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "seconds": {**seconds, "total": round(time.time() - t_all, 1)},
    }
    out = ROOT / args.out
    write_json_atomic(out, res, indent=1, default=str)
    print(json.dumps({k: res[k] for k in ("area_mm2", "fmax_mhz", "clock_mhz", "frames")}, indent=1))
    return 1 if mismatches else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EdgecodecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
