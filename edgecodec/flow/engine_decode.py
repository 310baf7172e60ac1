"""Stage `engine` of the flow: real frames decoded by the decoder engine's RTL.

The first `engine.frames` frames of codec.eval_clip are coded at `engine.quality` (hardware-exact mode, GOP
codec.gop); the host driver (edgecodec.engine_host) turns the stream into the engine's runs (per frame the
hyper-synthesis, then the I-frame synthesis or the P-frame program); `EngineTop`, generated for the checkpoint's GRU
layers, runs them in Verilator on the memory model of sim/rtl/axi_mem.v (sim.engine_harness), and every map each run
writes is compared with the integer decoder's, whose frames equal `edgecodec decode --mode int` byte for byte. Each
run's cycle counter is set beside the cycle model (hw.engine.program.program_cycles)."""

from __future__ import annotations

import time
from pathlib import Path

from base.errors import EdgecodecError
from base.paths import resolve
from edgecodec.config import Config


def engine_stage(cfg: Config, out: Path) -> dict:
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.codec.coder import Coder
    from edgecodec.engine_host import frame_runs
    from edgecodec.engine_plan import measured_asic, shape_for
    from hw.engine.engine import EngineTop
    from hw.engine.program import Image, program_cycles
    from hw.rtl.emit import write_component_verilog
    from model.video import read_video
    from sim.engine_harness import run_engine_runs

    e, c = cfg.engine, cfg.codec
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folder = resolve(c.checkpoints)
    y, u, v, _ = read_video(resolve(c.eval_clip), e.frames)
    if y.shape[0] < e.frames:
        raise EdgecodecError(f"engine: {c.eval_clip} has {y.shape[0]} frames, engine.frames asks for {e.frames}")
    ck = ckpt.load(folder, e.quality)
    stream = Coder(ck, "int", "ans").encode(y, u, v, c.gop).data
    (out / "stream.bin").write_bytes(stream)
    shape = shape_for(ck["int"], e.pe, e.max_width)
    runs, specs = frame_runs(stream, folder, shape)
    verilog = write_component_verilog(EngineTop(shape, grus=specs), "engine_top", out / "engine_top.v")
    wb = shape.data_bits // 8
    models = [program_cycles(Image.from_bytes(r.image, wb), r.program_addr, shape, specs) for r in runs]
    res = run_engine_runs(verilog, [(r.image, r.program_addr, r.expected) for r in runs], wb, out / "rtl",
                          stall=e.stall, raise_on_mismatch=False)
    t_sim = float(res.get("wall_seconds", 0.0))
    done = len(res["cycles"])
    table = resolution_table(ckpt.load(folder, e.quality)["int"])
    rows = [{"frame": r.frame, "kind": r.kind, "cycles": cyc, "model_cycles": m,
             "model_error_pct": round(100 * (m - cyc) / cyc, 3), "codes_compared": n, "mismatches": bad}
            for r, cyc, m, n, bad in zip(runs, res["cycles"], models, res["compared"], res["mismatches"])]
    frames_ok = sorted({r["frame"] for r in rows if r["kind"] in ("intra_g_s", "p_frame")})
    mismatches = sum(res["mismatches"]) + (len(runs) - done)       # a run that never finished counts
    return {"clip": c.eval_clip, "frames": e.frames, "quality": e.quality, "gop": c.gop,
            "width": int(y.shape[2]), "height": int(y.shape[1]), "stream_bytes": len(stream),
            "array": f"{e.pe}x{e.simd}", "bus_bits": shape.data_bits, "max_width": e.max_width, "stall": e.stall,
            "frames_compared": len(frames_ok), "runs": rows, "runs_total": len(runs),
            "mismatches": int(mismatches), "report": res.get("report", [])[:12],
            "cycles_per_frame": {str(f): sum(r["cycles"] for r in rows if r["frame"] == f) for f in frames_ok},
            "model_cycles_total": sum(models), "rtl_cycles_total": sum(res["cycles"]),
            "sim_seconds": round(t_sim, 1), "sim_cycles_per_s": round(sum(res["cycles"]) / max(t_sim, 1e-9)),
            "verilog": str(verilog), "resolutions": table, "asic": measured_asic(),
            "seconds": round(time.time() - t0, 1)}


def resolution_table(int_state: dict) -> dict:
    """1080p and 720p at 30 fps on an ECP5-85 (`edgecodec.engine_plan.plan` at the measured Fmax): per array the
    multipliers, whether it fits, I/P cycles and frame rate, and the verdict (the smallest array that reaches 30 fps,
    or why none does)."""
    from edgecodec.engine_plan import plan
    from hw.fpga.devices import get_device
    dev = get_device("ecp5", "85k")
    out = {}
    for name, (w, h) in (("1920x1080", (1920, 1080)), ("1280x720", (1280, 720))):
        p = plan(int_state, w, h, 30.0, None, dev)
        out[name] = {k: p[k] for k in ("clock_mhz", "clock_note", "verdict", "chosen_pe", "device")}
        out[name]["arrays"] = [{k: r[k] for k in ("pe", "multipliers", "gru_pe", "fits", "cycles_i", "cycles_p",
                                                  "fps", "block_rams")} for r in p["arrays"]]
    return out
