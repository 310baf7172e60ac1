"""Dense vs pruned decoder on the engine (issue 13): shipped q1 and *untrained structural* prunes of it at the kept
fractions that remove 50 / 65 / 80 % of the decoder's GOP-mean MACs at 1080p (every channel group keeps its
largest-norm channels, snapped to multiples of 4 = the array's PE: `edgecodec.codec.prune.structural`). These are
hardware sizes, not rate-distortion results: the prunes are not trained.

Per variant: decoder MACs per 1080p I / P frame; engine cycles per 1080p / 720p I / P frame (the cycle model,
`edgecodec.engine_plan.frame_cycles`) on the default 4 x 4 array and on the array `engine-plan` chooses for 30 fps
(or, when none reaches it, its largest fitting array on an ECP5-85); fps at the measured Fmax
(`engine_plan.measured_clock`); the ASE-GRU units' multipliers and cycles; weight bits; energy per frame scaled from
the sky130 measurement (bench/results/engine_asic.json: its energy per cycle of the dense 4 x 4 engine at the same
frame size and kind, times the variant's cycles; the energy a cycle hardly depends on the work, docs/engine.md);
the CPU decode time of a held-out clip (Zhling, 1280x720, 8 frames) in float and int mode, one thread (the speed depends on the
widths, not on whether the prune was trained).

    python bench/prune_hw.py            # -> bench/results/prune_hw.json (~15 min on 2 cores)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time

import numpy as np

from base.paths import resolve

BUDGETS = (0.5, 0.65, 0.8)
MULTIPLE = 4
RESOLUTIONS = ((1920, 1080), (1280, 720))
DECODE_FRAMES = 8


def snap(n: float, units: int, multiple: int) -> int:
    return min(units, -(-max(1, round(n)) // multiple) * multiple)


def fraction_for(gated, budget: float, multiple: int) -> tuple[float, dict]:
    """The largest kept fraction (step 0.01) whose snapped widths remove at least `budget` of the GOP-mean decoder
    MACs at 1080p; its MAC counts."""
    dense = gated.decoder_macs(gated.full(), 1080, 1920, 8)["gop_mean"]
    for r in [x / 100 for x in range(100, 0, -1)]:
        kept = {g: snap(r * grp.units, grp.units, multiple) for g, grp in gated.groups.items()}
        macs = gated.decoder_macs(kept, 1080, 1920, 8)
        if 1 - macs["gop_mean"] / dense >= budget:
            return r, macs
    raise SystemExit(f"no kept fraction removes {budget:.0%}")


def weight_bits(int_state: dict) -> dict:
    """Decoder weight bits: every convolution's (I and P decoders, codec.int_weight_bits) and the ASE-GRU layers'
    (their cells' quant.weight_bits), and the largest layer's (the weight buffer an engine generated for this
    decoder needs)."""
    from edgecodec.engine_plan import STACKS
    from hw.engine.layers import conv_layers
    bits = int(int_state["weight_bits"])
    layers = [ly for names in STACKS.values() for n in names for ly in conv_layers(int_state["nets"][n]["layers"])]
    conv = sum(ly.weights.size for ly in layers) * bits
    gru = sum(np.asarray(v).size * int(c["weight_bits"]) for c in int_state["dec_cells"]      # the cells' own width
              for k in ("dw_w", "fc1_w", "fc2_w", "w", "u")
              for v in (c[k].values() if isinstance(c[k], dict) else [c[k]]))
    return {"conv": int(conv), "largest_layer": int(max(ly.weights.size for ly in layers) * bits),
            "gru_layers": int(gru)}


def decode_seconds(ck: dict, folder, clip, gop: int, repeats: int = 3) -> dict:
    """CPU seconds to decode the clip's stream (one thread, best of `repeats`) in float and int mode: the
    checkpoint `ck` lies in `folder` (decode looks it up by the stream's quality)."""
    import torch
    from edgecodec.codec.coder import Coder, decode
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for mode in ("float", "int"):
            data = Coder(ck, mode, "ans").encode(*clip, gop).data
            best = None
            for _ in range(repeats):
                t0 = time.perf_counter()
                decode(data, folder)
                dt = time.perf_counter() - t0
                best = dt if best is None else min(best, dt)
            out[mode] = round(best, 3)
        return out
    finally:
        torch.set_num_threads(threads)


def variant(name: str, ck: dict, asic: dict, clock: float) -> dict:
    from edgecodec.engine_plan import GRU_FOLD, frame_cycles, padded, plan, shape_for
    from hw.engine.frame_program import p_frame_extra_cycles
    from hw.fpga.devices import get_device
    from model.codec.prune import GatedCodec
    import copy
    ist = ck["int"]
    gated = GatedCodec(copy.deepcopy(ck["codec"]), None, 1)
    macs = gated.decoder_macs(gated.full(), 1080, 1920, 8)
    c = [int(p["channels"]) for p in ist["dec_cells"]]
    out = {"variant": name, "hidden_c": c[0], "groups": gated.full(),
           "decoder_macs_1080p": {"I": int(macs["I"]), "P": int(macs["P"])}, "frames": {},
           "weight_bits": weight_bits(ist)}
    for w, h in RESOLUTIONS:
        pw, ph = padded(w, h)
        res = f"{w}x{h}"
        shape = shape_for(ist, 4, 64, GRU_FOLD)          # the ASIC's engine: 4 x 4, max_width 64, GRU PE 1
        cyc = frame_cycles(ist, pw, ph, shape)
        gru = p_frame_extra_cycles(ist, (ph // 16, pw // 16), shape)["gru"]
        p = plan(ist, w, h, 30.0, clock, get_device("ecp5", "85k"))
        fitting = [r for r in p["arrays"] if r["fits"]]
        pick = next(r for r in p["arrays"] if r["pe"] == p["chosen_pe"]) if p["reachable"] else \
            max(fitting, key=lambda r: r["fps"])
        e = {k: asic["frames"][res][k]["energy_uj"] / asic["frames"][res][k]["cycles"] for k in ("I", "P")}
        out["frames"][res] = {
            "4x4": {"cycles_I": cyc["I"], "cycles_P": cyc["P"], "gru_cycles_P": gru,
                    "fps": round(clock * 1e6 / max(cyc.values()), 4),
                    "energy_mj_I": round(e["I"] * cyc["I"] / 1e3, 2), "energy_mj_P": round(e["P"] * cyc["P"] / 1e3, 2)},
            "plan_30fps": {"reachable": p["reachable"], "pe": pick["pe"], "cycles_I": pick["cycles_i"],
                           "cycles_P": pick["cycles_p"], "fps": pick["fps"], "multipliers": pick["multipliers"],
                           "block_rams": pick["block_rams"], "verdict": p["verdict"]}}
    f = GRU_FOLD
    out["gru_units"] = {"fold": f, "multipliers_per_unit": 6 * f * f + 14 * f, "units": len(c),
                        "cycles_per_pixel": [(ci // f) ** 2 for ci in c],
                        "note": "a folded unit's multipliers depend on its folding F, not on C (6 F^2 + 14 F, "
                                "engine_plan.multipliers); C sets its cycles, (C/F)^2 a pixel"}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/results/prune_hw.json")
    args = ap.parse_args(argv)
    import torch
    import model.codec.data as ds
    from edgecodec import config
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.codec.prune import structural
    from edgecodec.engine_plan import measured_clock
    from model.codec.prune import GatedCodec
    import copy
    t0 = time.time()
    torch.manual_seed(0)
    teacher = ckpt.load(resolve("checkpoints"), 1)
    cfg = config.from_dict({})      # the prunes are exported at the teacher's integer widths, as the dense one was
    cfg = dataclasses.replace(cfg, codec=dataclasses.replace(
        cfg.codec, int_act_bits=int(teacher["int"]["act_bits"]), int_weight_bits=int(teacher["int"]["weight_bits"])))
    calib = ds.CropSampler(ds.list_sequences([resolve(cfg.codec_train.data[0])]), 2, 64, 7).batch(4)
    asic = json.loads(resolve("bench/results/engine_asic.json").read_text())
    clock, clock_note = measured_clock()
    from edgecodec.codec.evaluate import HELDOUT, load_clip
    name, path, _ = HELDOUT[2]
    clip = load_clip(resolve(path), DECODE_FRAMES)[:3]
    rows = [variant("dense q1", teacher, asic, clock)]
    rows[0]["decode_s"] = decode_seconds(teacher, resolve("checkpoints"), clip, cfg.codec.gop)
    gated = GatedCodec(copy.deepcopy(teacher["codec"]), None, MULTIPLE)
    for b in BUDGETS:
        r, _ = fraction_for(gated, b, MULTIPLE)
        ck = structural(teacher, cfg, r, MULTIPLE, calib)
        with tempfile.TemporaryDirectory() as tmp:          # loaded as any checkpoint: the codec rebuilt
            ckpt.save(ckpt.path_for(tmp, 1), ck)
            ck = ckpt.load(tmp, 1)
            decode_s = decode_seconds(ck, tmp, clip, cfg.codec.gop)
        row = variant(f"q1 -{b:.0%} MACs", ck, asic, clock)
        row["decode_s"] = decode_s
        row.update(budget=b, kept_fraction=r, removed=ck["prune"]["decoder_macs"]["removed"])
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("variant", "hidden_c", "decoder_macs_1080p")}), flush=True)
    dense = rows[0]
    for row in rows:
        row["vs_dense"] = {
            "macs_I": round(row["decoder_macs_1080p"]["I"] / dense["decoder_macs_1080p"]["I"], 3),
            "cycles_1080p_P_4x4": round(row["frames"]["1920x1080"]["4x4"]["cycles_P"] /
                                        dense["frames"]["1920x1080"]["4x4"]["cycles_P"], 3),
            "decode_speedup": {m: round(dense["decode_s"][m] / row["decode_s"][m], 2) for m in row["decode_s"]}}
    out = {"what": "dense shipped q1 against untrained structural prunes of it (largest-norm channels of every "
                   "group at one kept fraction, snapped to multiples of 4): hardware sizing only, not RD results",
           "clock_mhz": clock, "clock_note": clock_note,
           "energy_note": "sky130 energy a cycle of the dense 4x4 engine (bench/results/engine_asic.json, same "
                          "frame size and kind) times the variant's 4x4 cycles: scaled, not measured per variant",
           "decode_note": f"CPU decode of the held-out {name} clip ({DECODE_FRAMES} frames of 1280x720, GOP "
                          f"{cfg.codec.gop}), one thread, best of 3, float and int mode (edgecodec decode)",
           "multiple": MULTIPLE, "variants": rows, "machine": platform.node(), "seconds": round(time.time() - t0, 1)}
    path = resolve(args.out)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(path)
    return out


if __name__ == "__main__":
    main()
