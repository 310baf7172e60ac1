"""Flow step `codec`: the shipped codec checkpoints on the eval clip (RD against x264/x265/AV1) and the RTL
of the decoder's first ASE-GRU layer checked on a real decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from base.paths import resolve
from edgecodec.config import Config


def codec_rtl_check(ck: dict, clip_frames, gop: int, out: Path, simulator: str) -> dict:
    """The decoder's first ASE-GRU layer as RTL (generated from the checkpoint's integer parameters), simulated
    by cocotb on the codes of a real hardware-exact decode of the first GOP; compared code for code."""
    from edgecodec.codec.bitstream import parse_stream
    from edgecodec.codec.coder import Coder
    from hw.rtl.emit import TOP_NAME, write_verilog
    from sim.cell_check import run_cell_bench

    from hw.config import HwConfig
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

    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.codec.evaluate import evaluate
    c = cfg.codec
    r = evaluate(resolve(c.eval_clip), c.eval_frames, c.gop, resolve(c.checkpoints), None, out, progress=progress)
    qualities = r["qualities"]
    y, u, v, _ = read_video(resolve(c.eval_clip), c.gop)
    rtl = codec_rtl_check(ckpt.load(resolve(c.checkpoints), qualities[0]), (y, u, v), c.gop, out / "rtl", cfg.flow.simulator)
    rtl["quality"] = qualities[0]
    table = {name: [{k: v for k, v in p.items() if k != "per_frame"} for p in pts] for name, pts in r["curves"].items()}
    return {"clip": r["clip"], "frames": r["frames"], "width": r["width"], "height": r["height"], "gop": r["gop"],
            "colour": r["colour"], "rate": r["rate"], "rd": table, "bd_rate_vs_x264": r.get("bd_rate_vs_x264"),
            "bd_rate_int_vs_float": r.get("bd_rate_int_vs_float"), "plots": r["plots"],
            "eval_md": str(out / "eval.md"), "rtl_check": rtl}
