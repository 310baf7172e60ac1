"""Decoder-engine figures from its cycle model (JSON, not timed tests) -> bench/results/engine.json.

For each PE x PE array and each frame size: clock cycles per frame of the convolution stacks the engine runs today
(the I-frame synthesis, and the P-frame decoder's convolutions: p_from_latent, p_context, p_synth, plus the
hyper-synthesis that gives the entropy rows), from `hw.engine.program.engine_cycles` (equal to the RTL's cycle
counter in tests/hw/engine/test_engine.py) and, for P-frames, the frame warp, the ASE-GRU layers and the two adds
(the models of `program_cycles`, equal to the counter in tests/hw/engine/test_engine_p.py), convolution MACs,
MAC-bound efficiency (convolution MACs / (cycles x PE^2)), the clock a target frame rate needs, and the on-chip
memory of the generated unit (line buffer and weight buffer). No Fmax is measured here: the clock is what a rate
*needs*.

Usage: python bench/engine_bench.py [--checkpoint checkpoints/codec_q1.pt] [--fps 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from base.errors import EdgecodecError  # noqa: E402

SIZES = {"1280x720": (1280, 720), "1920x1080": (1920, 1088)}      # frames padded to multiples of 64 luma pixels
ARRAYS = (4, 8, 16)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", default="checkpoints/codec_q1.pt")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--out", default="bench/results/engine.json")
    args = ap.parse_args()
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.engine_plan import STACKS, shape_for, stack_input
    from hw.engine.conv_unit import ConvUnit
    from hw.engine.frame_program import p_frame_extra_cycles
    from hw.engine.layers import conv_layers
    from hw.engine.program import compile_stack, engine_cycles
    ck = ckpt.load(ROOT / args.checkpoint)
    nets = ck["int"]["nets"]
    rows = []
    for pe in ARRAYS:
        shape = shape_for(ck["int"], pe, 1024)
        unit = ConvUnit(pe=pe, simd=pe, max_width=shape.max_width, max_cin=shape.max_cin, max_cout=shape.max_cout)
        unit._MustUse__used = True          # built for its buffer sizes only, never elaborated
        line_bits = unit.line_words * pe * shape.act_bits
        weight_bits = unit.weight_words * pe * pe * shape.weight_bits
        for size, (w, h) in SIZES.items():
            for kind, names in STACKS.items():
                cycles = steps = macs = 0
                per_stack = {}
                for name in names:
                    sh, sw = stack_input(name, w, h)
                    layers = conv_layers(nets[name]["layers"])
                    prog = compile_stack(layers, sh, sw, shape)
                    c = engine_cycles(prog)
                    m = sum(ho_wo * l.cout * l.cin * 9 for ho_wo, l in
                            zip(_outputs(layers, sh, sw), layers))
                    per_stack[name] = {"cycles": c, "macs": m, "input": [sh, sw]}
                    cycles, steps, macs = cycles + c, steps + prog.steps, macs + m
                if kind == "P":                   # the warp, the ASE-GRU layers, the adds
                    for part, c in p_frame_extra_cycles(ck["int"], (h // 16, w // 16), shape).items():
                        per_stack[part] = {"cycles": c}
                        cycles += c
                rows.append({
                    "pe": pe, "simd": pe, "multipliers": pe * pe, "frame": size, "frame_type": kind,
                    "cycles": cycles, "macs": macs, "pe_steps": steps,
                    "mac_efficiency": round(macs / (cycles * pe * pe), 4),
                    "clock_mhz_for_fps": round(cycles * args.fps / 1e6, 1),
                    "fps_at_100mhz": round(100e6 / cycles, 3),
                    "line_buffer_bits": line_bits, "weight_buffer_bits": weight_bits,
                    "stacks": per_stack,
                })
    out = {"checkpoint": args.checkpoint, "target_fps": args.fps,
           "counted": "I: convolution stacks; P: convolution stacks, frame warp, ASE-GRU layers, adds (macs and "
                      "mac_efficiency: convolution MACs only)",
           "note": "cycles from hw.engine.program.engine_cycles and the P-frame descriptors' models of "
                   "program_cycles (memory without pauses); frames padded to 64",
           "rows": rows, "command": "python bench/engine_bench.py", "machine": platform.machine()}
    path = ROOT / args.out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    for r in rows:
        print(f"PE {r['pe']:2d}x{r['pe']:<2d} {r['frame']:>9} {r['frame_type']}: {r['cycles']:>12,} cycles, "
              f"efficiency {r['mac_efficiency']:.3f}, {r['clock_mhz_for_fps']:>8.1f} MHz for {args.fps:g} fps, "
              f"line buffer {r['line_buffer_bits'] / 1e6:.2f} Mbit")
    return 0


def _outputs(layers, h: int, w: int) -> list[int]:
    """Output pixels (Ho * Wo) of each convolution, before its PixelShuffle."""
    out = []
    for layer in layers:
        h, w = (h - 1) // layer.stride + 1, (w - 1) // layer.stride + 1
        out.append(h * w)
        if layer.shuffle == 2:
            h, w = 2 * h, 2 * w
    return out


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EdgecodecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
