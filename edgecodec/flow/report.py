"""Human-readable Markdown report beside summary.json, from the summary alone."""

from __future__ import annotations

from pathlib import Path


def write_report(s: dict, path: Path) -> None:
    m = s.get("model_metrics", {})
    r = s["resources"]
    c, h, w = s["feature_map"]
    hw = s["config"]["hw"]
    lines = [
        "# ASE-GRU cell: PyTorch -> verified RTL",
        "",
        f"Clip `{s['clip']}` ({s['colour_space']}), {s['frames']} frames; cell layer {s['layer']} "
        f"on a {c} x {h} x {w} feature map; folding PE={hw['pe']}, SIMD={hw['simd']}, dw_parallel={hw['dw_parallel']}.",
        "",
        "## Bit-exactness",
        "",
        "| check | codes compared | mismatches |",
        "|---|---:|---:|",
        f"| RTL ({s['simulator']}) vs integer golden | {s['outputs_compared']} | "
        f"{s['mismatch_breakdown']['rtl_vs_golden']} |",
        f"| integer golden vs Brevitas QAT (float64) | {s['outputs_compared']} | "
        f"{s['mismatch_breakdown']['golden_vs_qat_float64']} |",
        f"| QONNX (qonnx onnx_exec, float32) vs golden | {s['mismatch_breakdown']['qonnx_codes_compared']} | "
        f"{s['mismatch_breakdown']['qonnx_vs_golden']} |",
        "",
        "## Cycles",
        "",
        f"- measured cycles per cell step: **{s['cycles_per_step']}** (no stalls on input or output)",
        f"- ideal MAC-bound cycles: {s['ideal_cycles_per_step']:.0f} ({s['ideal_basis']})",
        f"- efficiency ideal / measured: {s['mac_efficiency']:.3f}" if s.get("mac_efficiency") else "",
        f"- MACs per step: {s['macs_per_step']} ({', '.join(f'{k} {v}' for k, v in s['macs_per_step_by_block'].items())})",
        "",
        f"## Resources ({r['target']})",
        "",
        "| LUT4 | FF | DSP (MULT18X18D) | BRAM (DP16KD) | LUTRAM | CCU2C |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {r['LUT']} | {r['FF']} | {r['DSP']} | {r['BRAM']} | {r['LUTRAM']} | {r['CARRY']} |",
        "",
        "## Proxy model quality (next-frame luma PSNR on the clip)",
        "",
    ]
    if m:
        lines += [f"- float: {m['float']['psnr_db']:.2f} dB, QAT: {m['qat']['psnr_db']:.2f} dB, "
                  f"copy-previous-frame baseline: {m['float']['copy_psnr_db']:.2f} dB"]
    f, a, b = s.get("fpga"), s.get("asic"), s.get("baseline")
    if f:
        lines += ["", "## FPGA", "",
                  f"- {f['family'].upper()} {f['device']} {f['package']} speed {f['speed']}: Fmax {f['fmax_mhz']:.1f} MHz "
                  f"(nextpnr, target {f['target_mhz']:g} MHz) -> {f['fps']:.0f} cell steps per second; "
                  f"bitstream `{f['bitstream']}`; {f['io_pins']} I/O pins",
                  f"- Xilinx {f['xilinx']['family']} estimate (Yosys synth_xilinx): {f['xilinx']['lut']} LUT, "
                  f"{f['xilinx']['ff']} FF, {f['xilinx']['dsp']} DSP48E1, {f['xilinx']['bram18']} BRAM18; "
                  f"Vivado script `{f['vivado_tcl']}` (not run)"]
    if a:
        lines += ["", "## ASIC estimate", "",
                  f"- {a['library']}: {a['area_um2']:.0f} um2, critical path {a['critical_path_ns']:.2f} ns, "
                  f"clock {a['clock_mhz']:.1f} MHz, {a['power_mw']['total']:.3f} mW, "
                  f"{a['energy_per_frame_mj']:.4g} mJ per cell step (see docs/asic.md for the method)"]
    if b:
        lines += ["", "## Software baseline", "",
                  f"- {b['what']} on {b['device']}: {b['ms_per_frame']:.3f} ms per step at {b['resolution']}"]
    cd = s.get("codec")
    if cd:
        bd = (cd.get("bd_rate_vs_x264") or {})
        lines += ["", "## Video codec", "",
                  f"- {cd['clip']}, {cd['frames']} frames, GOP {cd['gop']}: RD table `{cd['eval_md']}`",
                  *(f"- BD-rate vs x264 medium, {n}: " + ", ".join(
                      f"{m} {'n/a' if v['bd_rate_pct'] is None else format(v['bd_rate_pct'], '+.1f') + ' %'}"
                      for m, v in row.items()) for n, row in bd.items()),
                  f"- decoder ASE-GRU layer RTL vs hardware-exact decode: {cd['rtl_check'].get('codes_compared')} "
                  f"codes, {cd['rtl_check'].get('mismatches')} mismatches"]
    en = s.get("engine")
    if en:
        lines += ["", "## Decoder engine on real frames (RTL)", "",
                  f"- {en['clip']}, {en['width']}x{en['height']}, frames 0..{en['frames'] - 1} (GOP {en['gop']}), "
                  f"quality {en['quality']}, hardware-exact stream of {en['stream_bytes']} bytes; engine "
                  f"{en['array']} array, {en['bus_bits']}-bit AXI4, max width {en['max_width']}",
                  f"- frames compared: {en['frames_compared']}, mismatches: {en['mismatches']} "
                  f"({sum(r['codes_compared'] for r in en['runs'])} codes over {len(en['runs'])} runs)",
                  f"- cycles: {en['rtl_cycles_total']} measured, {en['model_cycles_total']} modelled; per frame "
                  + ", ".join(f"{f}: {c}" for f, c in en["cycles_per_frame"].items()),
                  f"- Verilator: {en['sim_cycles_per_s']} simulated cycles/s"]
        for res, t in (en.get("resolutions") or {}).items():
            lines += ["", f"{res} at 30 fps on {t['device']}, clock {t['clock_mhz']:g} MHz ({t['clock_note']}):", "",
                      "| PE x PE | multipliers | fits | cycles I | cycles P | fps |", "|---|---|---|---|---|---|"]
            lines += [f"| {r['pe']} x {r['pe']} | {r['multipliers']} | {'yes' if r['fits'] else 'no'} | "
                      f"{r['cycles_i']:,} | {r['cycles_p']:,} | {r['fps']:.3g} |" for r in t["arrays"]]
            lines += ["", f"- {t['verdict']}"]
        if en.get("asic"):
            lines += ["", asic_text(en["asic"])]
    lines += ["", "HTML report with plots: `report.html` (`edgecodec report`).",
              "", "## Stage times (s)", "", ", ".join(f"{k} {v}" for k, v in s["stage_seconds"].items()),
              "", f"Verilog: `{s['verilog']}`; QONNX: `{s['qonnx']}`."]
    Path(path).write_text("\n".join(lines) + "\n")


def asic_text(a: dict) -> str:
    """One sentence on the engine on a standard-cell library (edgecodec.engine_plan.measured_asic)."""
    per = "; ".join(f"{res} {kind}-frame {v['energy_uj'] / 1000:.2f} mJ ({v['fps_at_clock']:g} fps, "
                    f"{v['mean_power_mw']:g} mW)" for res, kinds in a["frames"].items() for kind, v in kinds.items())
    return (f"On {a['library']} ({a['source']}): the {a['array']} engine (GRU units at PE {a['gru_pe']}) takes "
            f"{a['area_mm2']:g} mm^2, Fmax {a['fmax_mhz']:g} MHz; at {a['clock_mhz']:g} MHz: {per} "
            f"(gate-level activity, {a['gate_level_mismatches']} mismatches).")
