"""`edgecodec engine-plan`: choose the decoder engine's PE array from a target frame rate and resolution (as FINN's
`target_fps` chooses a folding), and say when a device cannot reach it.

For each square array PE x PE (1, 2, 4, ... 32) the cycle model (`hw.engine.program.engine_cycles` and the P-frame
descriptors' models of `program_cycles`, equal to the RTL's counter in the tests) gives the cycles of an I-frame and
of a P-frame (convolution stacks, frame warp, ASE-GRU layers, adds) at the resolution; the slower of the two, at the
given clock, is the frame rate. The engine needs `multipliers(PE, GRU_FOLD)` multipliers (one MULT18X18D each on
ECP5: codes of 12 x 8 bits; the array's PE^2, its requantisers, the two ASE-GRU units folded at GRU_FOLD, the warp
and the adds) and its line and weight buffers in block RAM (DP16KD, 18 kbit; counted as bits over
18 kbit, a lower bound); the unit's width is the widest power of two whose buffers fit, and wider maps run as
vertical strips (hw.engine.program.strips). The smallest array that
reaches the target is chosen among those that fit the device; the answer names the limit otherwise. The clock is an
input (default: the Fmax placed and routed on an ECP5-85, bench/results/engine_fpga.json).
"""

from __future__ import annotations

import math

from base.errors import EdgecodecError

ARRAYS = (1, 2, 4, 8, 16, 32)
EBR_BITS = 18 * 1024
GRU_FOLD = 1          # the GRU units' PE = SIMD (EngineShape.gru_pe): the layers run on 1/64 of the frame's pixels


def multipliers(pe: int, gru_fold: int) -> int:
    """MULT18X18D of the engine (Yosys synth_ecp5 of hw.engine.fpga_top.EngineFpgaTop with both GRU units):
    PE^2 + PE (array, requantisers) + 2 (6 F^2 + 14 F) (each GRU unit: gate array, depth-wise lanes, gate products)
    + 39 (SE, warp, adds). Calibrated on the 4 x 4 array at F = 4 and 2 (363 and 163), predicted 99 at F = 1 and
    measured 99 (bench/engine_fpga.py); the array without GRU units: 20 (docs/engine.md)."""
    return pe * pe + pe + 2 * (6 * gru_fold * gru_fold + 14 * gru_fold) + 39


STACKS = {"I": ("intra_h_s", "intra_g_s"), "P": ("p_h_s", "p_from_latent", "p_context", "p_synth")}


def stack_input(name: str, width: int, height: int) -> tuple[int, int]:
    """(height, width) of a convolution stack's input map for a padded frame of width x height luma pixels."""
    if name.endswith("_h_s"):                       # z: 1/64
        return height // 64, width // 64
    if name in ("intra_g_s", "p_from_latent"):     # y: 1/16
        return height // 16, width // 16
    if name == "p_context":                         # the packed warped frame
        return height // 2, width // 2
    return height // 8, width // 8                  # p_synth: the GRU output and the context, 1/8


def bus_bits(pe: int, weight_bits: int = 8) -> int:
    """The narrowest power-of-two bus (>= 64 bits) that carries a PE x PE array's weight beat (PE^2 codes of
    `weight_bits`) and bias beat."""
    return max(64, 1 << (pe * pe * weight_bits - 1).bit_length(), 1 << (pe * 27 - 1).bit_length())


BIAS_BITS = 24          # the engine's bias lanes unless a checkpoint needs more (`bias_bits_for`)


def square_shape(pe: int, max_width: int, gru_pe: int = 0, weight_bits: int = 8, bias_bits: int = BIAS_BITS):
    """The engine a PE x PE array is generated as: its bus (`bus_bits`), 64 input / 256 output channels at most,
    convolution weights of `weight_bits` (a checkpoint's codec.int_weight_bits) and biases of `bias_bits`
    (`shape_for` takes both from a checkpoint)."""
    from hw.engine.program import EngineShape
    return EngineShape(pe=pe, simd=pe, data_bits=bus_bits(pe, weight_bits), weight_bits=weight_bits,
                       bias_bits=bias_bits, max_width=max_width, max_cin=64, max_cout=256, gru_pe=gru_pe)


def bias_bits_for(int_state: dict) -> int:
    """Bias lanes a checkpoint's integer decoder needs: BIAS_BITS, or more when a layer's bias codes (in its
    accumulator's scale; the I-frame's last layer with the +128 of the reconstruction folded in, as the host
    programs it) do not fit them. A pruned decoder can: its narrower layers calibrate to finer scales."""
    from hw.engine.layers import conv_layers
    from hw.engine.program import pixel_output
    from quant.fixed_point import bits_for
    need = BIAS_BITS
    for names in STACKS.values():
        for n in names:
            layers = conv_layers(int_state["nets"][n]["layers"])
            if n == "intra_g_s":
                layers[-1] = pixel_output(layers[-1])
            need = max([need] + [bits_for(int(lay.bias.min()), int(lay.bias.max())) for lay in layers])
    return need


def shape_for(int_state: dict, pe: int, max_width: int, gru_pe: int = 0):
    """`square_shape` for a checkpoint's integer decoder (checkpoint["int"]): its convolution weights' width and
    the bias lanes it needs (`bias_bits_for`)."""
    return square_shape(pe, max_width, gru_pe, int(int_state["weight_bits"]), bias_bits_for(int_state))


def padded(width: int, height: int) -> tuple[int, int]:
    """(width, height) of a frame padded to multiples of 64 luma pixels, as the codec codes it."""
    return -(-width // 64) * 64, -(-height // 64) * 64


FMAX_JSON = "bench/results/engine_fpga.json"


def measured_clock() -> tuple[float, str]:
    """(MHz, where it comes from): the Fmax of the engine placed and routed on an ECP5-85 by bench/engine_fpga.py,
    else 100 MHz as an assumption."""
    import json

    from base.paths import resolve
    path = resolve(FMAX_JSON)
    try:
        r = json.loads(path.read_text())
        what = (f"the {r['array']} engine (GRU units at PE {r['gru_pe']})" if r.get("p_units", True) else
                f"the {r['array']} convolution engine without its P-frame units")
        return float(r["fmax_mhz"]), (f"Fmax of {what} placed and routed on {r['device']} ({FMAX_JSON}); other "
                                      "arrays and units assumed as fast")
    except (OSError, ValueError, KeyError, TypeError):
        return 100.0, "assumed: no measured Fmax (run python bench/engine_fpga.py)"


ASIC_JSON = "bench/results/engine_asic.json"


def measured_asic() -> dict | None:
    """The engine on a standard-cell library as bench/engine_asic.py measured it (area, Fmax, energy per 1080p and
    720p frame), or None when that bench has not been run."""
    import json

    from base.paths import resolve
    try:
        r = json.loads(resolve(ASIC_JSON).read_text())
        return {"source": ASIC_JSON, "library": r["library"], "array": r["array"], "gru_pe": r["gru_pe"],
                "area_mm2": r["area_mm2"], "fmax_mhz": r["fmax_mhz"], "clock_mhz": r["clock_mhz"],
                "gate_level_mismatches": r["activity"]["gate_level_mismatches"],
                "frames": {res: {kind: {k: v[k] for k in ("energy_uj", "fps_at_clock", "mean_power_mw")}
                                 for kind, v in kinds.items()} for res, kinds in r["frames"].items()}}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def frame_cycles(int_state: dict, pw: int, ph: int, shape) -> dict:
    """{"I": cycles, "P": cycles} of one frame padded to pw x ph on an engine of `shape` (the cycle model: the
    convolution stacks, and for P the frame warp, the ASE-GRU layers and the adds)."""
    from hw.engine.frame_program import p_frame_extra_cycles
    from hw.engine.layers import conv_layers
    from hw.engine.program import compile_stack, engine_cycles
    nets = int_state["nets"]
    cycles = {kind: sum(engine_cycles(compile_stack(conv_layers(nets[n]["layers"]), *stack_input(n, pw, ph), shape))
                        for n in names) for kind, names in STACKS.items()}
    cycles["P"] += sum(p_frame_extra_cycles(int_state, (ph // 16, pw // 16), shape).values())
    return cycles


def plan(int_state: dict, width: int, height: int, target_fps: float, clock_mhz: float | None, device) -> dict:
    """The plan for the checkpoint's integer decoder `int_state` (checkpoint["int"]) on `device`
    (hw.fpga.devices.Device)."""
    from hw.engine.conv_unit import ConvUnit
    from hw.engine.frame_program import decoder_fold_problems
    clock_note = "given"
    if clock_mhz is None:
        clock_mhz, clock_note = measured_clock()
    if target_fps <= 0 or clock_mhz <= 0:
        raise EdgecodecError("engine-plan: --target-fps and --clock-mhz must be > 0")
    if width < 64 or height < 64:
        raise EdgecodecError(f"engine-plan: resolution {width}x{height} is below one 64 x 64 block")
    pw, ph = padded(width, height)
    full = 1 << math.ceil(math.log2(pw // 2))                        # the widest map: the packed frame
    widths = [w for w in (full, 512, 256, 128, 64) if w <= full]
    # a pruned checkpoint's widths fold onto the arrays whose PE divides them (docs/pruning.md); none above 1 x 1
    # (an odd hidden size or context, pruned with prune.multiple = 1) is refused, naming the layers
    folds = {pe: decoder_fold_problems(int_state, shape_for(int_state, pe, 64, min(GRU_FOLD, pe))) for pe in ARRAYS}
    wbits = int(int_state["weight_bits"])
    if all(folds[pe] for pe in ARRAYS if pe > 1):
        raise EdgecodecError("engine-plan: the checkpoint's decoder folds onto no array above 1 x 1: " +
                             "; ".join(folds[2]) + " (prune with prune.multiple = the array's PE, e.g. 4)")
    rows = []
    for pe in ARRAYS:
        # the widest unit whose buffers fit the device's block RAM (narrower ones run the maps as strips)
        for max_width in widths:
            unit = ConvUnit(pe=pe, simd=pe, max_width=max_width, max_cin=64, max_cout=256)
            unit._MustUse__used = True          # built for its buffer sizes only, never elaborated
            line_bits, weight_bits = unit.line_words * pe * 12, unit.weight_words * pe * pe * wbits
            # at least this many DP16KD: each buffer's bits over 18 kbit (a lower bound; aspect ratios may need more)
            ebr = -(-line_bits // EBR_BITS) - (-weight_bits // EBR_BITS)
            if ebr <= device.capacity["bram"]:
                break
        shape = shape_for(int_state, pe, max_width, min(GRU_FOLD, pe))
        cycles = frame_cycles(int_state, pw, ph, shape)
        mults = multipliers(pe, min(GRU_FOLD, pe))
        fps = clock_mhz * 1e6 / max(cycles.values())
        fits = list(folds[pe])
        if mults > device.capacity["dsp"]:
            fits.append(f"{mults} multipliers > {device.capacity['dsp']}")
        if ebr > device.capacity["bram"]:
            fits.append(f"{ebr} block RAMs > {device.capacity['bram']}")
        rows.append({"pe": pe, "multipliers": mults, "gru_pe": min(GRU_FOLD, pe), "max_width": max_width, "cycles_i": cycles["I"],
                     "cycles_p": cycles["P"], "fps": round(fps, 3), "memory_bits": line_bits + weight_bits,
                     "block_rams": ebr, "fits": not fits, "why_not": "; ".join(fits)})
    fitting = [r for r in rows if r["fits"]]
    chosen = next((r for r in fitting if r["fps"] >= target_fps), None)
    best = max(fitting, key=lambda r: r["fps"]) if fitting else None
    if chosen is not None:
        verdict = (f"PE {chosen['pe']}x{chosen['pe']} reaches {chosen['fps']:.2f} fps >= {target_fps:g} at "
                   f"{clock_mhz:g} MHz on {device.part} ({chosen['multipliers']} multipliers, "
                   f"{chosen['block_rams']} block RAMs)")
    elif best is not None:
        need = next((r for r in rows if r["fps"] >= target_fps), None)
        verdict = (f"{device.part} cannot reach {target_fps:g} fps at {width}x{height} and {clock_mhz:g} MHz: its "
                   f"largest fitting array, PE {best['pe']}x{best['pe']}, gives {best['fps']:.2f} fps" +
                   (f"; PE {need['pe']}x{need['pe']} would ({need['why_not']})" if need else
                    f"; no array up to {ARRAYS[-1]}x{ARRAYS[-1]} does at this clock (it gives {rows[-1]['fps']:.2f} "
                    f"fps: about {math.ceil(rows[-1]['pe'] ** 2 * target_fps / rows[-1]['fps']):,} array "
                    f"multipliers at its efficiency would)"))
    else:
        verdict = f"no engine array fits {device.part}: {rows[0]['why_not']}"
    return {"resolution": f"{width}x{height}", "padded": f"{pw}x{ph}", "target_fps": target_fps,
            "clock_mhz": clock_mhz, "clock_note": clock_note,
            "device": device.part, "reachable": chosen is not None, "chosen_pe": chosen["pe"] if chosen else None,
            "verdict": verdict, "counted": "I: convolution stacks; P: convolution stacks, frame warp, ASE-GRU layers, adds",
            "arrays": rows}
