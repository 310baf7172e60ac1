"""The decoder engine on an ECP5, placed and routed (Yosys + nextpnr through YoWASP) -> bench/results/engine_fpga.json.

`hw.engine.fpga_top.EngineFpgaTop`: `EngineTop` (PE x PE array, its bus as wide as a weight beat, line buffers
`--max-width` wide, both ASE-GRU units of the checkpoint generated for the `--resolution`'s latent map and folded
to `--gru-pe` (PE = SIMD = depth-wise lanes: at the array's own folding they alone would take 6 x PE^2
multipliers each, more than the device has)) with its
AXI4 master on an on-chip RAM stand-in, so only the AXI4-Lite port, irq, clock and reset reach pins. Reports Fmax,
utilisation, and the frame rates the cycle model gives at that Fmax for 1080p and 720p I- and P-frames.

Usage: python bench/engine_fpga.py [--pe 4] [--gru-pe 1] [--no-p-units] [--max-width 64] [--device 85k] [--freq 100]
       [--resolution 1920x1080] [--router router2] [--lut-mapper abc|abc9] [--placer static|heap] [--out JSON]
bench/results/engine_fpga.json is the whole engine (defaults: its P-frame units too, classic-ABC LUT mapping, the
static placer); bench/results/engine_fpga_conv.json the convolution engine alone
(`--no-p-units --out bench/results/engine_fpga_conv.json`). About 40 min (whole) / 10 min (convolution engine) on
2 cores; the numbers in docs/engine.md and README.md come from these commands.
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

from base.errors import EdgecodecError  # noqa: E402

TABLE = {"1920x1080": (1920, 1088), "1280x720": (1280, 768)}       # padded to multiples of 64


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="checkpoints/codec_q1.pt")
    ap.add_argument("--pe", type=int, default=4)
    ap.add_argument("--max-width", type=int, default=64)
    ap.add_argument("--gru-pe", type=int, default=1, help="the ASE-GRU units' folding (EngineShape.gru_pe)")
    ap.add_argument("--no-p-units", action="store_true",
                    help="the engine without its P-frame units (GRU, warp, add): the convolution engine alone")
    ap.add_argument("--device", default="85k")
    ap.add_argument("--freq", type=float, default=100.0, help="nextpnr's target, MHz")
    ap.add_argument("--resolution", default="1920x1080", help="the GRU units' map: this frame's latent")
    ap.add_argument("--router", default="router2", choices=("router1", "router2"),
                    help="nextpnr's router")
    ap.add_argument("--lut-mapper", choices=("abc9", "abc"), default=None,
                    help="Yosys LUT mapping (hw.fpga.pnr.implement): default abc with the P-frame units (Yosys 0.70's "
                         "ABC9 fails an assertion on them), abc9 without")
    ap.add_argument("--placer", choices=("heap", "static"), default=None,
                    help="nextpnr's placer: default static with the P-frame units (after heap placement router2 leaves "
                         "thousands of wires overused), heap without")
    ap.add_argument("--build", default="build/engine_fpga")
    ap.add_argument("--out", default="bench/results/engine_fpga.json")
    args = ap.parse_args()
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.config import parse_resolution
    from edgecodec.engine_plan import frame_cycles, padded, shape_for
    from hw.engine.fpga_top import EngineFpgaTop, io_pins
    from hw.engine.frame_program import gru_specs
    from hw.fpga.pnr import implement
    from hw.rtl.emit import write_component_verilog
    t0 = time.time()
    ck = ckpt.load(ROOT / args.checkpoint)
    w, h = parse_resolution(args.resolution)
    pw, ph = padded(w, h)
    shape = shape_for(ck["int"], args.pe, args.max_width, args.gru_pe)
    top = EngineFpgaTop(shape, grus=() if args.no_p_units else gru_specs(ck["int"], (ph // 16, pw // 16)))
    build = ROOT / args.build
    build.mkdir(parents=True, exist_ok=True)
    v = write_component_verilog(top, "engine_fpga_top", build / "engine_fpga_top.v")
    mapper = args.lut_mapper or ("abc9" if args.no_p_units else "abc")
    placer = args.placer or ("heap" if args.no_p_units else "static")
    r = implement(v, "engine_fpga_top", io_pins(top), build, "ecp5", args.device, freq_mhz=args.freq, seed=1,
                  router=args.router, lut_mapper=mapper, placer=placer)
    fmax = r["fmax_mhz"]
    table = []
    for name, (fw, fh) in TABLE.items():
        cycles = frame_cycles(ck["int"], fw, fh, shape)
        for kind in ("I", "P"):
            table.append({"resolution": name, "frame_type": kind, "cycles": cycles[kind],
                          "fps_at_fmax": round(fmax * 1e6 / cycles[kind], 3),
                          "clock_mhz_for_30fps": round(cycles[kind] * 30 / 1e6, 1)})
    out = {"checkpoint": args.checkpoint, "array": f"{args.pe}x{args.pe}", "p_units": not args.no_p_units,
           "gru_pe": None if args.no_p_units else args.gru_pe,
           "bus_bits": shape.data_bits,
           "max_width": args.max_width, "gru_map": [ph // 16, pw // 16], "device": r["part"], "package": r["package"],
           "target_mhz": args.freq, "router": args.router, "lut_mapper": mapper, "placer": placer,
           "fmax_mhz": fmax,
           "timing_met": r["timing_met"],
           "resources": {k: r[k] for k in ("lut", "ff", "dsp", "bram", "lutram", "carry")},
           "utilisation": r["utilisation"], "io_pins": r["io_pins"], "seconds": r["seconds"],
           "memory_port": "on-chip AXI4 RAM stand-in (hw.engine.fpga_top.AxiRamStandIn, 2048 words)",
           "frames": table, "total_seconds": round(time.time() - t0, 1),
           "command": "python bench/engine_fpga.py " + " ".join(sys.argv[1:]), "machine": platform.machine()}
    path = ROOT / args.out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{r['part']}: Fmax {fmax} MHz (target {args.freq:g}), {r['lut']} LUT4, {r['ff']} FF, {r['dsp']} MULT18, "
          f"{r['bram']} DP16KD")
    for row in table:
        print(f"{row['resolution']} {row['frame_type']}: {row['cycles']:,} cycles, {row['fps_at_fmax']} fps at Fmax")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EdgecodecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
