"""The engine benches' stimulus format and map checks (sim.tb.engine on cocotbext-axi's AxiRam,
sim.tb.engine_harness on the Verilog memory model of sim/rtl/axi_mem.v).

The npz holds ``image`` (the memory image, uint8) and ``expected`` (C, H, W codes of the last layer's map), or
several maps: ``region_addr``, ``region_lanes``, ``region_bits`` and ``expected_0`` ...; per run: ``image_<r>``,
``program_addr_<r>``, ``region_*_<r>``, ``expected_<r>_<n>``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.engine.program import read_map

MAX_REPORTED = 12


def save_runs(path: Path, runs: list) -> None:
    """runs: (image bytes, program address, [(address, codes, lanes, bits), ...]) each, as the npz above."""
    arrays = {}
    for r, (image, prog, checks) in enumerate(runs):
        arrays[f"image_{r}"] = np.frombuffer(image, dtype=np.uint8)
        arrays[f"program_addr_{r}"] = np.array(prog)
        arrays[f"region_addr_{r}"] = np.array([a for a, *_ in checks])
        arrays[f"region_lanes_{r}"] = np.array([n for _, _, n, _ in checks])
        arrays[f"region_bits_{r}"] = np.array([b for *_, b in checks])
        arrays.update({f"expected_{r}_{n}": np.asarray(w, dtype=np.int64) for n, (_, w, _, _) in enumerate(checks)})
    np.savez(path, image=arrays["image_0"], **arrays)


def run_data(data, p: dict, run: int):
    """(image, program address, checks) of a run: per-run entries (suffix _<run>) where the npz has them."""
    sfx = f"_{run}" if f"image_{run}" in data.files else ""
    image = data[f"image{sfx}"].tobytes()
    program = int(data[f"program_addr{sfx}"]) if f"program_addr{sfx}" in data.files else int(p["program_addr"])
    if f"region_addr{sfx}" in data.files:     # several maps (P-frame programs: every h_t, the sums, the frame)
        checks = [(int(a), data[f"expected{sfx}_{n}"], int(lanes), int(bits)) for n, (a, lanes, bits) in
                  enumerate(zip(data[f"region_addr{sfx}"], data[f"region_lanes{sfx}"], data[f"region_bits{sfx}"]))]
    else:
        checks = [(int(p["output_addr"]), data["expected"], int(p["lanes"]), int(p["act_bits"]))]
    return image, program, checks


def compare_maps(memory: bytes, checks: list, run: int, word_bytes: int) -> tuple[int, int, list[str]]:
    """(codes compared, mismatching codes, report lines naming run, map, channel and pixel of the first ones)."""
    compared, bad_total, report = 0, 0, []
    for n, (addr, want, lanes, bits) in enumerate(checks):
        got = read_map(memory, addr, want.shape, lanes, bits, word_bytes)
        bad = np.argwhere(got != want)
        compared += want.size
        bad_total += len(bad)
        if len(bad):
            where = f"map {n} " if len(checks) > 1 else ""
            report.append(f"{len(bad)} mismatching codes of {want.size}{' in map %d' % n if where else ''}:")
            report += [f"  run {run} {where}channel {c} pixel (y={y}, x={x}): got {got[c, y, x]}, "
                       f"expected {want[c, y, x]}" for c, y, x in bad[:MAX_REPORTED]]
    return compared, bad_total, report
