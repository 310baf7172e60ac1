"""Self-contained HTML report (tables + matplotlib plots as inline PNG) from build/flow/summary.json.

Every number comes from the summary the flow wrote; sections whose stage did not run say so instead of
showing anything. `edgecodec report` regenerates the file from the summary alone.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from base.errors import EdgecodecError
from base.files import write_text_atomic


def _fig_png(fig) -> str:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    # no timestamps in the PNG metadata: same summary -> same report bytes
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"><figcaption>' \
           f'{html.escape(alt)}</figcaption></figure>'


def _table(headers: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            v = f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
        elif isinstance(v, int) and not isinstance(v, bool):
            v = f"{v:,}"
        return html.escape(str(v))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"figure.figsize": (6.4, 3.4), "font.size": 9, "svg.hashsalt": "edgecodec"})
    return plt


def frame_cycles(s: dict, width: int, height: int) -> float:
    """Cycles per cell step for a frame, scaled from the measured step by feature-map pixels.

    The gate array's cost is per pixel (C^2 / (PE x SIMD) cycles) and the SE phase is a few hundred
    cycles, so linear scaling in pixels is within the SE overhead of the real count; the hidden-state
    memory grows with the frame (a 1080p feature map needs that much more RAM than the measured build).
    """
    c, h0, w0 = s["feature_map"]
    ds = s["config"]["model"]["downsample"]
    fh, fw = max(1, height // ds), max(1, width // ds)
    return s["cycles_per_step"] * (fh * fw) / (h0 * w0)


def _section_fpga(s: dict, plt, parts: list[str]) -> None:
    f = s["fpga"]
    parts.append(f"<p>Target {html.escape(f['family'].upper())} {html.escape(str(f['device']))} "
                 f"package {html.escape(str(f['package']))} speed {html.escape(str(f['speed']))}: Yosys synthesis, "
                 f"nextpnr place and route, bitstream <code>{html.escape(str(f['bitstream']))}</code>. "
                 f"Wrapper I/O: {f.get('io_pins', '?')} pins.</p>")
    util = f.get("utilisation", {})
    cap = f.get("capacity", {})
    rows = [[k.upper(), f.get(k, ""), cap.get(k, ""), f"{100 * util[k]:.1f} %" if k in util else ""]
            for k in ("lut", "ff", "dsp", "bram", "lutram", "carry") if k in f]
    parts.append(_table(["resource", "used", "available", "utilisation"], rows))
    parts.append(_table(["Fmax (nextpnr) MHz", "target MHz", "cycles per step", "fps at Fmax"],
                        [[f["fmax_mhz"], f.get("target_mhz", ""), s["cycles_per_step"], f["fps"]]]))
    clocks = {f"{f['family'].upper()} {f['device']} Fmax (nextpnr)": f["fmax_mhz"]}
    if f.get("target_mhz"):
        clocks["nextpnr target"] = f["target_mhz"]
    a = s.get("asic")
    if a and a.get("fmax_mhz"):
        clocks[f"ASIC {a['library']} (STA)"] = a["fmax_mhz"]
    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.45 * len(clocks)))
    ax.barh(list(clocks), list(clocks.values()), color="#4a7ab0")
    ax.set_xlabel("MHz")
    ax.set_title("maximum clock")
    parts.append(_img(_fig_png(fig), "Fmax"))
    per_block = f.get("per_block") or {}
    if per_block:
        keys = [k for k in ("lut", "ff", "dsp", "bram") if any(k in v for v in per_block.values())]
        parts.append("<h3>Resources per block</h3>")
        parts.append(_table(["block"] + [k.upper() for k in keys],
                            [[b] + [v.get(k, 0) for k in keys] for b, v in per_block.items()]))
        parts.append("<p class='note'>ECP5 split of the flat netlist by the instance path in each cell's name: "
                     "approximate ('other' = the wrapper plus logic Yosys named after a port of the cell). The "
                     "Xilinx split below comes from the hierarchical netlist, one module per block.</p>")
        fig, axes = plt.subplots(1, len(keys), figsize=(2.2 * len(keys), 3.0))
        axes = [axes] if len(keys) == 1 else axes
        for ax, k in zip(axes, keys):
            names = list(per_block)
            ax.bar(names, [per_block[b].get(k, 0) for b in names], color="#4a7ab0")
            ax.set_title(k.upper())
            ax.tick_params(axis="x", rotation=45)
        fig.suptitle(f"{f['family'].upper()} resources per block (Yosys)", y=1.04)
        parts.append(_img(_fig_png(fig), "FPGA resources per block"))
    x = f.get("xilinx")
    if x:
        parts.append(f"<h3>Xilinx estimate (Yosys synth_xilinx -family {html.escape(str(x.get('family', '')))})</h3>")
        keys = [k for k in ("lut", "ff", "dsp", "bram18", "bram36", "lutram", "carry") if k in x]
        parts.append(_table([k.upper() for k in keys], [[x[k] for k in keys]]))
        xb = x.get("per_block") or {}
        if xb:
            bk = [k for k in ("lut", "ff", "dsp", "ramb18", "ramb36", "lutram", "carry") if any(k in v for v in xb.values())]
            parts.append(_table(["block"] + [k.upper() for k in bk], [[b] + [v.get(k, 0) for k in bk]
                                                                      for b, v in xb.items()]))
        if f.get("vivado_tcl"):
            parts.append(f"<p>Vivado script (not run here): <code>{html.escape(str(f['vivado_tcl']))}</code></p>")


def _section_asic(s: dict, plt, parts: list[str]) -> None:
    a = s["asic"]
    pw = a["power_mw"]
    parts.append(_table(["library", "area µm²", "critical path ns", "Fmax MHz", "clock MHz", "power mW",
                         "energy / frame mJ"],
                        [[a["library"], a["area_um2"], a.get("critical_path_ns", ""), a.get("fmax_mhz", ""),
                          a["clock_mhz"], pw["total"], a["energy_per_frame_mj"]]]))
    if a.get("method"):
        parts.append(f"<p>{html.escape(a['method'])}</p>")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7.5, 3.0))
    ab = a.get("area_breakdown", {})
    ax1.bar(list(ab), [ab[k] for k in ab], color="#6a9f58")
    ax1.set_title("area (µm²)")
    keys = [k for k in pw if k != "total"]
    ax2.bar(keys, [pw[k] for k in keys], color="#c0703a")
    ax2.set_title(f"power (mW) at {a['clock_mhz']:g} MHz")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(f"{a['library']} area and power breakdown", y=1.04)
    parts.append(_img(_fig_png(fig), "ASIC area and power breakdown"))


def _section_finn(s: dict, plt, parts: list[str]) -> None:
    fn = s["finn"]
    parts.append(f"<p>finn-plus {html.escape(str(fn.get('finn_version', '')))}, analytic estimates "
                 f"(AnnotateResources('estimate'), AnnotateCycles) for part {html.escape(str(fn.get('fpgapart', '')))}"
                 f" ({html.escape(str(fn.get('impl_style', '')))} layers, {html.escape(str(fn.get('res_type', '')))} "
                 "multipliers), same layer weights and folding as ours.</p>")
    blocks = fn.get("blocks") or {}
    if blocks:
        cols = ["finn_cycles_max", "ours_cycles", "finn_lut", "ours_lut_xilinx", "ours_lut_ecp5", "finn_bram18",
                "finn_dsp", "ours_dsp_xilinx", "ours_dsp_ecp5"]
        cols = [c for c in cols if any(c in b for b in blocks.values())]
        parts.append(_table(["block"] + cols, [[n] + [b.get(c, "") for c in cols] for n, b in blocks.items()]))
        if fn.get("ours_blocks_note"):
            parts.append(f"<p class='note'>{html.escape(fn['ours_blocks_note'])}</p>")
        import numpy as np
        names = list(blocks)
        xs = np.arange(len(names))
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.0))
        ours_lut = "ours_lut_xilinx" if any("ours_lut_xilinx" in b for b in blocks.values()) else "ours_lut_ecp5"
        for ax, (fk, ok, title) in zip(axes, [("finn_cycles_max", "ours_cycles", "cycles per frame"),
                                              ("finn_lut", ours_lut, "LUTs")]):
            ax.bar(xs - 0.2, [blocks[n].get(fk) or 0 for n in names], 0.4, label="FINN estimate")
            ax.bar(xs + 0.2, [blocks[n].get(ok) or 0 for n in names], 0.4,
                   label="ours" + (" (Yosys synth_xilinx)" if ok.endswith("xilinx") else
                                   " (Yosys synth_ecp5, LUT4)" if ok.endswith("ecp5") else ""))
            ax.set_xticks(xs, names)
            ax.set_title(title)
            ax.legend(fontsize=7)
        parts.append(_img(_fig_png(fig), "FINN analytic estimates vs our design, per block"))
    layers = fn.get("layers", [])
    cols = ["name", "finn_op", "pe", "simd", "finn_cycles", "ours_cycles", "finn_lut", "finn_bram18", "finn_dsp"]
    cols = [c for c in cols if any(c in l for l in layers)]
    parts.append("<h3>FINN layers</h3>")
    parts.append(_table(cols, [[l.get(c, "") for c in cols] for l in layers]))
    cs = fn.get("cell_step")
    if cs:
        parts.append(_table(["FINN pipeline cycles", "ours analytic", "ours measured (RTL)"],
                            [[cs.get("finn_pipeline_cycles"), cs.get("ours_analytic_cycles"),
                              cs.get("ours_measured_cycles")]]))
    wc = fn.get("whole_cell")
    if wc:
        parts.append(f"<p>Whole cell QONNX through FINN: {wc.get('nodes_converted_to_hw')} of "
                     f"{wc.get('nodes_total')} nodes became FINN hardware layers; left: "
                     f"{html.escape(', '.join(map(str, wc.get('remaining_ops', []))))}.</p>")
    parts.append("<h3>Why the numbers differ</h3><ul>")
    for n in fn.get("notes", []):
        parts.append(f"<li class='note'>{html.escape(n)}</li>")
    parts.append("</ul>")


def _section_baseline(s: dict, plt, parts: list[str]) -> None:
    b = s["baseline"]
    parts.append(f"<p>{html.escape(b['what'])} on <b>{html.escape(b['device'])}</b> (torch {html.escape(b['torch'])},"
                 f" {b['warmup']} warm-up + {b['iters']} timed steps). The Jetson AGX Xavier column is a roofline "
                 f"<b>estimate</b> (data-sheet peaks, the MAC count, the eager run's counted ATen ops and bytes, "
                 f"{b['rows'][0]['roofline_xavier'].get('launch_us_assumed', 10):g} us assumed per kernel launch), "
                 f"not a measurement.</p>")
    f, a = s.get("fpga"), s.get("asic")
    rows, res, series = [], [], {"PyTorch (" + b["device"].split(" (")[0] + ")": [], "Xavier roofline (est.)": []}
    if f:
        series[f"FPGA {f['family'].upper()} at {f['fmax_mhz']:.0f} MHz"] = []
    if a:
        series[f"ASIC {a['library']} at {a['clock_mhz']:.0f} MHz"] = []
    for r in b["rows"]:
        w, h = (int(v) for v in r["resolution"].split("x"))
        cyc = frame_cycles(s, w, h)
        row = [r["resolution"], "x".join(str(v) for v in r["feature_map"][1:]), r["ms_median"], r["ms_p90"],
               r["roofline_xavier"]["ms_per_frame"]]
        vals = [1e3 / r["ms_median"], 1e3 / r["roofline_xavier"]["ms_per_frame"]]
        if f:
            row.append(cyc / (f["fmax_mhz"] * 1e3))
            vals.append(f["fmax_mhz"] * 1e6 / cyc)
        if a:
            row.append(cyc / (a["clock_mhz"] * 1e3))
            vals.append(a["clock_mhz"] * 1e6 / cyc)
        rows.append(row)
        res.append(r["resolution"])
        for k, v in zip(series, vals):
            series[k].append(v)
    headers = ["frame", "feature map", "PyTorch ms (median)", "PyTorch ms (p90)", "Xavier roofline ms (est.)"]
    headers += ["FPGA ms"] if f else []
    headers += ["ASIC ms"] if a else []
    parts.append(_table(headers, rows))
    parts.append("<p>Accelerator times scale the measured cycles per step by feature-map pixels "
                 "(the RTL was simulated at the flow's feature map only).</p>")
    fig, ax = plt.subplots()
    for k, v in series.items():
        ax.plot(res, v, marker="o", label=k)
    ax.set_yscale("log")
    ax.set_ylabel("cell steps (frames) per second")
    ax.set_xlabel("frame resolution (feature map = frame / downsample)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    parts.append(_img(_fig_png(fig), "frames per second vs resolution"))


# (summary key, heading, writer) of the optional stages; a stage that did not run gets a line saying so
def _section_codec(s: dict, plt, parts: list[str]) -> None:
    c = s["codec"]
    parts.append(f"<p>Shipped codec checkpoints on <code>{html.escape(c['clip'])}</code>, {c['frames']} frames "
                 f"{c['width']}x{c['height']}, GOP {c['gop']} (low-delay P). {html.escape(c['colour'])}. Rate: "
                 f"{html.escape(c['rate'])}. Full table: <code>{html.escape(c['eval_md'])}</code>.</p>")
    rows = []
    for name, pts in c["rd"].items():
        for p in pts:
            rows.append([name, p.get("quality", p.get("qp")), p["bpp"], p["psnr_yuv611"], p["psnr_rgb"], p["ms_ssim"]])
    parts.append(_table(["codec", "q / crf", "bpp", "PSNR YUV611 dB", "PSNR RGB dB", "MS-SSIM"], rows))
    bd = c.get("bd_rate_vs_x264") or {}
    if bd:
        parts.append(_table(["BD-rate vs x264 medium", "PSNR YUV611", "PSNR RGB", "MS-SSIM"],
                            [[n] + [("n/a" if r[m]["bd_rate_pct"] is None else f"{r[m]['bd_rate_pct']:+.1f} %")
                                    for m in ("psnr_yuv611", "psnr_rgb", "ms_ssim")] for n, r in bd.items()]))
    png = Path(c["plots"][0])
    if png.is_file():
        parts.append(_img(base64.b64encode(png.read_bytes()).decode("ascii"), "rate-distortion, PSNR YUV 6:1:1"))
    r = c["rtl_check"]
    parts.append(f"<p>RTL of the decoder's first ASE-GRU layer (quality {r.get('quality')}) vs the hardware-exact "
                 f"decoder on a real decode: {r.get('codes_compared')} codes, <b>{r.get('mismatches')}</b> "
                 f"mismatches.</p>")


def _section_engine(s: dict, plt, parts: list[str]) -> None:
    e = s["engine"]
    parts.append(f"<p>Frames 0..{e['frames'] - 1} of <code>{html.escape(e['clip'])}</code> ({e['width']}x{e['height']}, "
                 f"8-bit YCbCr 4:2:0) coded at quality {e['quality']} (hardware-exact, GOP {e['gop']}) and decoded by "
                 f"the engine's RTL ({e['array']} array, {e['bus_bits']}-bit AXI4, Verilator on the memory model of "
                 f"sim/rtl/axi_mem.v): <b>{e['frames_compared']}</b> frames compared, <b>{e['mismatches']}</b> "
                 f"mismatches; {e['sim_cycles_per_s']} simulated cycles/s.</p>")
    parts.append(_table(["frame", "run", "cycles (RTL)", "cycles (model)", "model error %", "codes", "mismatches"],
                        [[r["frame"], r["kind"], r["cycles"], r["model_cycles"], r["model_error_pct"],
                          r["codes_compared"], r["mismatches"]] for r in e["runs"]]))
    for res, t in (e.get("resolutions") or {}).items():
        parts.append(f"<p>{res} at 30 fps on {html.escape(t['device'])}, clock {t['clock_mhz']:g} MHz "
                     f"({html.escape(t['clock_note'])}): {html.escape(t['verdict'])}.</p>")
        parts.append(_table(["PE x PE", "multipliers", "fits", "cycles I", "cycles P", "fps"],
                            [[f"{r['pe']} x {r['pe']}", r["multipliers"], "yes" if r["fits"] else "no", r["cycles_i"],
                              r["cycles_p"], r["fps"]] for r in t["arrays"]]))
    if e.get("asic"):
        from edgecodec.flow.report import asic_text
        parts.append(f"<p>{html.escape(asic_text(e['asic']))}</p>")


SECTIONS = (("fpga", "FPGA implementation", _section_fpga), ("asic", "ASIC estimate", _section_asic),
            ("finn", "FINN side by side", _section_finn),
            ("baseline", "Software baseline and throughput", _section_baseline),
            ("codec", "Video codec: rate-distortion and decoder RTL", _section_codec),
            ("engine", "Decoder engine: real frames on its RTL", _section_engine))

CSS = """body{font-family:sans-serif;max-width:60em;margin:1em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}
th{background:#eee}td:first-child{text-align:left}figure{margin:.5em 0}img{max-width:100%}
.note{font-size:90%;color:#444}"""


# After load, the body records how many of its images decoded (naturalWidth > 0): a headless browser's DOM dump
# then tells whether the report renders with its images.
ONLOAD = ("window.addEventListener('load',function(){var im=document.images,n=0;for(var i=0;i<im.length;i++)"
          "{if(im[i].complete&&im[i].naturalWidth>0)n++;}document.body.setAttribute('data-images-total',im.length);"
          "document.body.setAttribute('data-images-decoded',n);});")


def render(s: dict) -> str:
    plt = _plt()
    c, h, w = s["feature_map"]
    hw = s["config"]["hw"]
    mb = s["mismatch_breakdown"]
    parts = ["<h1>ASE-GRU cell: PyTorch to verified RTL, FPGA and ASIC</h1>",
             f"<p>Clip <code>{html.escape(s['clip'])}</code> ({html.escape(s['colour_space'])}), {s['frames']} "
             f"frames; cell layer {s['layer']} on a {c} x {h} x {w} feature map; folding PE={hw['pe']}, "
             f"SIMD={hw['simd']}, dw_parallel={hw['dw_parallel']}.</p>",
             "<h2>Bit-exactness</h2>",
             _table(["check", "codes compared", "mismatches"], [
                 [f"RTL ({s['simulator']}) vs integer golden", s["outputs_compared"], mb["rtl_vs_golden"]],
                 ["integer golden vs Brevitas QAT (float64)", s["outputs_compared"], mb["golden_vs_qat_float64"]],
                 ["QONNX vs golden", mb["qonnx_codes_compared"], mb["qonnx_vs_golden"]]]
                 + ([["mapped ASIC netlist vs golden", s["asic"].get("gate_level_codes", ""),
                      s["asic"].get("gate_level_mismatches", "")]]
                    if s.get("asic") and "gate_level_mismatches" in s["asic"] else [])),
             "<h2>Cycles</h2>",
             _table(["measured cycles / step", "ideal (MAC bound)", "efficiency", "MACs / step"],
                    [[s["cycles_per_step"], s["ideal_cycles_per_step"], s.get("mac_efficiency") or "",
                      s["macs_per_step"]]])]
    for key, title, section in SECTIONS:
        parts.append(f"<h2>{title}</h2>")
        if s.get(key):
            section(s, plt, parts)
        else:
            parts.append(f"<p>This step did not run in this flow (see <code>edgecodec flow --no-{key}</code>).</p>")
    st = s.get("stage_seconds", {})
    parts.append("<h2>Stage times</h2>")
    parts.append(_table(list(st), [list(st.values())]))
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>edgecodec flow report</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(parts) + f"<script>{ONLOAD}</script></body></html>\n")


def write_html(summary: dict | Path, path: Path) -> Path:
    """Render the report for a summary (dict or summary.json path) to `path` (written atomically)."""
    if not isinstance(summary, dict):
        p = Path(summary)
        if not p.is_file():
            raise EdgecodecError(f"summary not found: {p} (run `edgecodec flow` first)")
        try:
            summary = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise EdgecodecError(f"{p} is not valid JSON: {exc}") from None
    for key in ("feature_map", "config", "cycles_per_step", "mismatch_breakdown"):
        if key not in summary:
            raise EdgecodecError(f"summary lacks '{key}': not written by this version of `edgecodec flow`")
    return write_text_atomic(path, render(summary))
