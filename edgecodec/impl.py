"""Implementation and estimate stages of the flow: FPGA bitstream, ASIC estimate, FINN side by side, baseline.

Each takes the verified design (integer parameters, feature map, measured cycles per step) and returns the
summary section the flow stores under `fpga`, `asic`, `finn` and `baseline`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import Config

CACHE = Path("build") / ".yowasp-cache"


def fps(clock_mhz: float | None, cycles_per_step: int | None) -> float | None:
    """Cell steps (frames) per second at a clock, from the RTL's measured cycles per step."""
    if not clock_mhz or not cycles_per_step:
        return None
    return clock_mhz * 1e6 / cycles_per_step


def fpga_stage(cfg: Config, params, height: int, width: int, out: Path, cycles: int | None,
               device: str | None = None) -> dict:
    """Wrapper -> Yosys -> nextpnr -> bitstream on the configured device; Xilinx estimate and Vivado script."""
    from hw.fpga.pnr import build_fpga
    from hw.fpga.wrapper import TOP_NAME, write_fpga_verilog
    from hw.fpga.xilinx import write_vivado_tcl, xilinx_estimate

    f = cfg.fpga
    dev = device or f.device
    r = build_fpga(params, height, width, cfg.hw, out / f"{f.family}_{dev}", family=f.family, device=dev,
                   package=f.package or None, speed=f.speed or None, freq_mhz=f.freq_mhz or None, seed=f.seed,
                   cache_dir=CACHE, bus_bits=f.bus_bits)
    r["fps"] = fps(r.get("fmax_mhz"), cycles)
    r["fps_basis"] = f"nextpnr Fmax x measured {cycles} cycles per step on the {height}x{width} feature map"
    # the same wrapper as on the ECP5, so the Xilinx figures compare like for like
    wrapper = write_fpga_verilog(params, height, width, cfg.hw, out / "wrapper" / f"{TOP_NAME}.v", f.bus_bits)
    r["xilinx"] = xilinx_estimate(wrapper, TOP_NAME, out / f"xilinx_{f.xilinx_family}", family=f.xilinx_family,
                                  cache_dir=CACHE)
    r["vivado_tcl"] = str(write_vivado_tcl(wrapper, TOP_NAME, out / "vivado", part=f.xilinx_part,
                                           freq_mhz=r.get("fmax_mhz") or 100.0))
    return r


def asic_stage(cfg: Config, params, height: int, width: int, x_codes: np.ndarray, out: Path, cycles: int | None,
               library: str | None = None) -> dict:
    """Liberty mapping, static timing, gate-level activity on real features, power and energy per frame."""
    from hw.asic.estimate import asic_estimate

    a = cfg.asic
    ch, cw = min(a.power_height, height), min(a.power_width, width)
    return asic_estimate(params, height, width, cfg.hw, x_codes, library=library or a.library, out_dir=out,
                         clock_mhz=a.clock_mhz or None, cycles_per_step=cycles, crop=(ch, cw),
                         crop_steps=min(a.power_steps, len(x_codes)))


def finn_stage(cfg: Config, cell, height: int, width: int, out: Path, cycles: int | None, qonnx: Path,
               fpga: dict | None) -> dict:
    """FINN's analytic estimates for the same layers and folding; our post-synthesis figures beside them."""
    from hw.finn_side import finn_compare

    r = finn_compare(cfg, cell, height, width, cfg.hw, out, measured_step_cycles=cycles, whole_cell_qonnx=qonnx)
    ecp5 = (fpga or {}).get("per_block") or {}
    xil = ((fpga or {}).get("xilinx") or {}).get("per_block") or {}
    for name, blk in r["blocks"].items():
        ours = {"projector": "dw", "gates": "gru"}[name]
        for src, tag in ((ecp5, "ecp5"), (xil, "xilinx")):
            for key in ("lut", "ff", "dsp", "bram"):
                if key in src.get(ours, {}):
                    blk[f"ours_{key}_{tag}"] = src[ours][key]
    r["ours_blocks_note"] = ("our 'gates' figures are the whole GRU datapath block (gate array, LUT epilogue, "
                             "hidden-state memory, output FIFO); 'projector' is the depth-wise conv block with its "
                             "residual add and requantisation")
    return r


def baseline_stage(cfg: Config, float_cell, frame_size: str) -> dict:
    """The float cell on the torch device at the configured resolutions and at the flow clip's frame size.

    `ms_per_frame` (and `resolution`) is the median at the clip's frame size, the size the RTL was verified at.
    """
    from .baseline import run_baseline

    b = cfg.baseline
    res = list(b.resolutions)
    if frame_size not in res:
        res.insert(0, frame_size)
    r = run_baseline(float_cell, cfg.model.channels, cfg.model.downsample, res, b.device, b.warmup, b.iters)
    row = next(x for x in r["rows"] if x["resolution"] == frame_size)
    r["resolution"], r["ms_per_frame"] = frame_size, row["ms_median"]
    return r


def codec_rtl_check(ck: dict, clip_frames, gop: int, out: Path, simulator: str) -> dict:
    """The decoder's first ASE-GRU layer as RTL (generated from the checkpoint's integer parameters), simulated
    by cocotb on the codes of a real hardware-exact decode of the first GOP; compared code for code."""
    from edgecodec.bitstream import parse_stream
    from edgecodec.coding import Coder
    from hw.emit import TOP_NAME, write_verilog
    from sim.cell_bench import run_cell_bench

    from .config import HwConfig
    y, u, v = (p[:gop] for p in clip_frames)
    r = Coder(ck).encode(y, u, v, gop)
    header, frames = parse_stream(r.data)
    coder = Coder(ck)
    coder.int.trace = []
    coder.decode_frames(header, frames)
    steps = [(x, h) for dec, layer, x, h in coder.int.trace if dec and layer == 0]
    if not steps:
        return {"steps": 0, "note": "no P-frame in the first GOP"}
    xs, hs = np.stack([s[0] for s in steps]), np.stack([s[1] for s in steps])
    params = coder.int.dec_cells[0]
    _, _, hh, ww = xs.shape
    verilog = write_verilog(params, hh, ww, HwConfig(), out / f"{TOP_NAME}.v")
    res = run_cell_bench(verilog, TOP_NAME, xs, hs, params.act_bits, out / "sim", simulator)
    return {"steps": len(steps), "feature_map": [int(xs.shape[1]), hh, ww], "codes_compared": res["outputs_compared"],
            "mismatches": res["mismatches"], "cycles_per_step": res.get("cycles_per_step"), "verilog": str(verilog)}


def codec_stage(cfg: Config, out: Path, progress: bool = True) -> dict:
    """The shipped codec checkpoints on the eval clip: RD vs x264/x265/AV1 (edgecodec eval) and the RTL check
    of the decoder's ASE-GRU layer on a real decode."""
    from model.video import read_video

    from . import codec_checkpoint as ckpt
    from .codec_eval import evaluate
    c = cfg.codec
    r = evaluate(c.eval_clip, c.eval_frames, c.gop, c.checkpoints, None, out, progress=progress)
    qualities = r["qualities"]
    y, u, v, _ = read_video(c.eval_clip, c.gop)
    rtl = codec_rtl_check(ckpt.load(c.checkpoints, qualities[0]), (y, u, v), c.gop, out / "rtl", cfg.flow.simulator)
    rtl["quality"] = qualities[0]
    table = {name: [{k: v for k, v in p.items() if k != "per_frame"} for p in pts] for name, pts in r["curves"].items()}
    return {"clip": r["clip"], "frames": r["frames"], "width": r["width"], "height": r["height"], "gop": r["gop"],
            "colour": r["colour"], "rate": r["rate"], "rd": table, "bd_rate_vs_x264": r.get("bd_rate_vs_x264"),
            "bd_rate_int_vs_float": r.get("bd_rate_int_vs_float"), "plots": r["plots"],
            "eval_md": str(out / "eval.md"), "rtl_check": rtl}
