"""The main job as a list of named steps, run in order (as FINN's builder runs its build steps).

train -> qat_reference -> export_golden -> verilog -> verify -> fpga -> asic -> finn -> baseline -> codec ->
engine -> resources -> report. Each step is a function of the flow state; the optional ones (OPTIONAL_STEPS) can be
skipped by name, and none of the implementation steps runs on RTL that failed verification. Results go to
<flow.build_dir>/summary.json, report.md and report.html.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from base.errors import EdgecodecError
from base.files import write_json_atomic
from base.hashing import sha256_file
from base.paths import YOWASP_CACHE, resolve
from edgecodec.config import Config
from edgecodec.flow.proxy import ensure_checkpoint, float_model, layer_codes, load_clip, log, qat_model

OPTIONAL_STEPS = ("fpga", "asic", "finn", "baseline", "codec", "engine")
STAGES = OPTIONAL_STEPS  # the names `--no-<stage>` takes on the command line


@dataclass
class FlowState:
    """What the steps hand each other: the inputs, what each step made, and the summary sections."""

    cfg: Config
    out: Path
    retrain: bool = False
    progress: bool = True
    skip: tuple[str, ...] = ()
    all_targets: bool = False
    times: dict = field(default_factory=dict)
    t0: float = field(default_factory=time.time)
    clip: object = None          # (1, T, 1, H, W) luma tensor
    ck: dict | None = None       # the proxy checkpoint
    cell: object = None          # the QAT cell of layer flow.layer
    params: object = None        # its integer parameters (quant.cell.params.CellParams)
    x_codes: np.ndarray | None = None
    h_qat: np.ndarray | None = None
    h_golden: np.ndarray | None = None
    h_onnx: np.ndarray | None = None
    onnx_path: Path | None = None
    verilog: Path | None = None
    bench: dict | None = None
    golden_vs_qat: int = 0
    onnx_vs_golden: int = 0
    impl: dict = field(default_factory=dict)   # summary sections of the implementation steps
    summary: dict | None = None

    @property
    def feature_map(self) -> tuple[int, int, int]:
        _, c, hh, ww = self.x_codes.shape
        return c, hh, ww

    @property
    def cycles(self) -> int | None:
        return max(self.bench["cycles_per_step"]) if self.bench and self.bench["cycles_per_step"] else None

    @property
    def verified(self) -> bool:
        return self.bench is not None and self.bench["mismatches"] == 0

    def done(self, name: str) -> None:
        """Record the seconds since the previous step under `name`."""
        self.times[name] = round(time.time() - self.t0, 1)
        log(f"{name}: done in {self.times[name]} s")
        self.t0 = time.time()


# ---------------------------------------------------------------- verification steps
def step_train(s: FlowState) -> None:
    """Reuse the proxy checkpoint, or train it (float, calibration, QAT)."""
    s.clip = load_clip(resolve(s.cfg.flow.clip), s.cfg.flow.frames)
    s.ck = ensure_checkpoint(s.cfg, s.retrain, s.progress)
    s.done("train")


def step_qat_reference(s: FlowState) -> None:
    """The QAT model's codes on the real frames: x entering layer flow.layer and its h_t (float64)."""
    from quant.cell.params import extract
    cfg = s.cfg
    qmodel = qat_model(cfg, s.ck)
    s.cell = qmodel.rnn.cells[cfg.flow.layer]
    s.params = extract(s.cell)
    s.params.save(s.out / "cell_params.json")
    s.x_codes, s.h_qat = layer_codes(cfg, qmodel, s.clip)
    c, hh, ww = s.feature_map
    log(f"real frames: {s.clip.shape[1]} x {s.clip.shape[-1]}x{s.clip.shape[-2]} luma -> layer {cfg.flow.layer} "
        f"features {c}x{hh}x{ww}")
    s.done("qat_reference")


def step_export_golden(s: FlowState) -> None:
    """QONNX export of the cell, the integer golden model on the same codes, and both compared."""
    from quant import export
    from quant.cell import golden
    c, hh, ww = s.feature_map
    s.onnx_path = export.export_cell(s.cell, c, hh, ww, s.out / "ase_gru_cell.qonnx.onnx")
    s.h_golden = golden.run_sequence(s.params, s.x_codes)
    s.golden_vs_qat = int((s.h_golden != s.h_qat).sum())
    n_onnx = min(2, len(s.x_codes))
    s.h_onnx = export.run_sequence_codes(s.onnx_path, s.x_codes[:n_onnx], s.params.f_x, s.params.act_bits)
    s.onnx_vs_golden = int((s.h_onnx != s.h_golden[:n_onnx]).sum())
    log(f"golden vs QAT (float64): {s.golden_vs_qat} mismatches of {s.h_golden.size}; "
        f"QONNX (float32 onnx_exec) vs golden: {s.onnx_vs_golden} of {s.h_onnx.size}")
    s.done("export_golden")


def step_verilog(s: FlowState) -> None:
    """The Amaranth generator's Verilog of the cell for this feature map and folding."""
    from hw.rtl.emit import TOP_NAME, write_verilog
    _, hh, ww = s.feature_map
    s.verilog = write_verilog(s.params, hh, ww, s.cfg.hw, s.out / f"{TOP_NAME}.v")
    s.done("verilog")


def step_verify(s: FlowState) -> None:
    """cocotb on the configured simulator: the RTL against the golden codes of every real frame."""
    from hw.rtl.emit import TOP_NAME
    from sim.cell_check import run_cell_bench
    c, hh, ww = s.feature_map
    log(f"cocotb on {s.cfg.flow.simulator}: {len(s.x_codes)} steps of {hh}x{ww} pixels x {c} channels")
    s.bench = run_cell_bench(s.verilog, TOP_NAME, s.x_codes, s.h_golden, s.params.act_bits, s.out / "sim",
                             s.cfg.flow.simulator, raise_on_mismatch=False)
    s.done("verify")


# ---------------------------------------------------------------- implementation steps (verified RTL only)
def step_fpga(s: FlowState) -> None:
    from edgecodec.flow.fpga import fpga_stage
    cfg, (_, hh, ww) = s.cfg, s.feature_map
    log(f"FPGA: {cfg.fpga.family} {cfg.fpga.device}: Yosys -> nextpnr -> bitstream; Xilinx estimate")
    f = fpga_stage(cfg, s.params, hh, ww, s.out / "fpga", s.cycles)
    s.impl["fpga"] = f
    log(f"FPGA: {f['lut']} LUT, {f['ff']} FF, {f['dsp']} DSP, {f['bram']} BRAM; Fmax {f['fmax_mhz']:.1f} MHz "
        f"-> {f['fps']:.0f} fps; bitstream {f['bitstream']}")
    s.done("fpga")
    if s.all_targets:
        from hw.fpga.devices import ECP5_DEVICES
        sweep = []
        for dev in ECP5_DEVICES:
            try:
                sweep.append(f if dev == cfg.fpga.device else
                             fpga_stage(cfg, s.params, hh, ww, s.out / "fpga_sweep", s.cycles, dev))
            except EdgecodecError as exc:
                sweep.append({"device": dev, "error": str(exc)})
        s.impl["fpga_sweep"] = sweep
        s.done("fpga_sweep")


def step_asic(s: FlowState) -> None:
    from edgecodec.flow.asic import asic_stage
    cfg, (_, hh, ww) = s.cfg, s.feature_map
    log(f"ASIC: {cfg.asic.library}: Yosys + ABC mapping, static timing, gate-level activity, power")
    a = asic_stage(cfg, s.params, hh, ww, s.x_codes, s.out / "asic", s.cycles)
    s.impl["asic"] = a
    log(f"ASIC: {a['area_um2']:.0f} um2, {a['clock_mhz']:.1f} MHz, {a['power_mw']['total']:.3f} mW, "
        f"{a['energy_per_frame_mj']:.4g} mJ/frame")
    s.done("asic")
    if s.all_targets:
        from hw.asic.liberty import LIBRARIES
        s.impl["asic_sweep"] = [asic_stage(cfg, s.params, hh, ww, s.x_codes, s.out / "asic", s.cycles, lib)
                                for lib in LIBRARIES if lib != cfg.asic.library]
        s.done("asic_sweep")


def step_finn(s: FlowState) -> None:
    from edgecodec.flow.finn import finn_stage
    _, hh, ww = s.feature_map
    log("FINN: streamline, convert to HW layers, fold like ours, AnnotateResources/AnnotateCycles")
    s.impl["finn"] = finn_stage(s.cfg, s.cell, hh, ww, s.out / "finn", s.cycles, s.onnx_path, s.impl.get("fpga"))
    s.done("finn")


def step_baseline(s: FlowState) -> None:
    from edgecodec.flow.gpu_baseline import baseline_stage
    fmodel = float_model(s.cfg)
    fmodel.load_state_dict(s.ck["float"])
    b = baseline_stage(s.cfg, fmodel.rnn.cells[s.cfg.flow.layer], f"{s.clip.shape[-1]}x{s.clip.shape[-2]}")
    s.impl["baseline"] = b
    log(f"baseline: {b['device']}: {b['ms_per_frame']:.3f} ms per cell step at {b['resolution']}")
    s.done("baseline")


def step_codec(s: FlowState) -> None:
    from edgecodec.flow.codec_check import codec_stage
    c = s.cfg.codec
    log(f"codec: {c.checkpoints} on {c.eval_clip}: RD vs x264/x265/AV1, RTL of the decoder's ASE-GRU layer on a "
        f"real decode")
    r = codec_stage(s.cfg, s.out / "codec")
    s.impl["codec"] = r
    bd = (r.get("bd_rate_vs_x264") or {}).get("ours-int", {}).get("psnr_yuv611", {})
    log(f"codec: BD-rate (YUV 6:1:1) of the hardware-exact codec vs x264 medium: {bd.get('bd_rate_pct')} %; "
        f"RTL vs decoder: {r['rtl_check'].get('mismatches')} mismatches")
    s.done("codec")


def step_engine(s: FlowState) -> None:
    from edgecodec.flow.engine_decode import engine_stage
    e, c = s.cfg.engine, s.cfg.codec
    log(f"engine: {e.frames} frames of {c.eval_clip} at quality {e.quality} decoded by the engine's RTL "
        f"({e.pe}x{e.simd} array, Verilator)")
    r = engine_stage(s.cfg, s.out / "engine")
    s.impl["engine"] = r
    log(f"engine: {r['frames_compared']} frames compared, {r['mismatches']} mismatches; "
        f"{r['rtl_cycles_total']} cycles (model {r['model_cycles_total']}), {r['sim_cycles_per_s']} simulated "
        f"cycles/s")
    s.done("engine")


# ---------------------------------------------------------------- summary
def _resources(s: FlowState) -> tuple[dict, str]:
    """The FPGA's placed-and-routed figures, else a pre-P&R synth_ecp5 run (its own step `synth_ecp5`)."""
    if s.impl.get("fpga"):
        f = s.impl["fpga"]
        return ({k: f.get(k, 0) for k in ("lut", "ff", "dsp", "bram", "lutram", "carry")},
                f"{f['family'].upper()} {f['device']} (Yosys, placed and routed by nextpnr)")
    from hw.fpga.synth import synth_ecp5
    from hw.rtl.emit import TOP_NAME
    r = synth_ecp5(s.verilog, TOP_NAME, s.out / "synth", YOWASP_CACHE)
    s.done("synth_ecp5")
    return r, "ECP5 (yosys synth_ecp5, pre-P&R)"


def step_report(s: FlowState) -> None:
    """The summary of every step's results (run() writes it as summary.json, report.md and report.html)."""
    from model.cell.ase_gru import ASEGRUCell
    from model.macs import count_cell, total
    cfg, bench = s.cfg, s.bench
    resources, res_target = _resources(s)
    c, hh, ww = s.feature_map
    fcell = ASEGRUCell(c, cfg.model.se_reduction, cfg.model.gate_kernel, cfg.model.dw_kernel)
    rows = count_cell(fcell, hh, ww)
    gate_macs = sum(r.macs for r in rows if r.name.startswith("gate."))
    multipliers = 6 * cfg.hw.pe * cfg.hw.simd
    ideal = gate_macs / multipliers
    cycles = s.cycles
    mismatches = bench["mismatches"] + s.golden_vs_qat + s.onnx_vs_golden
    summary = {
        "config": cfg.to_dict(),
        "clip": cfg.flow.clip, "colour_space": "luma (Y of Y4M 4:2:0), 8-bit, scaled to [0, 1]",
        "frames": int(s.clip.shape[1]), "layer": cfg.flow.layer, "feature_map": [c, hh, ww],
        "outputs_compared": int(bench["outputs_compared"]),
        "mismatches": int(mismatches),
        "mismatch_breakdown": {"rtl_vs_golden": bench["mismatches"], "golden_vs_qat_float64": s.golden_vs_qat,
                               "qonnx_vs_golden": s.onnx_vs_golden, "qonnx_codes_compared": int(s.h_onnx.size)},
        # RTL == golden code for code, so RTL vs QAT = golden vs QAT
        "rtl_vs_qat_mismatches": s.golden_vs_qat if bench["mismatches"] == 0 else None,
        "cycles_per_step": cycles,
        "cycles_per_step_all": bench["cycles_per_step"],
        "ideal_cycles_per_step": ideal,
        "ideal_basis": "gate MACs / gate multipliers (6 x PE x SIMD); the projector and SE run in their own units",
        "mac_efficiency": (ideal / cycles) if cycles else None,
        "macs_per_step": int(total(rows).macs),
        "macs_per_step_by_block": {r.name: r.macs for r in rows},
        "elementwise_products_per_step": int(total(rows).elementwise),
        "multipliers": {"gate_array": multipliers, "dwconv": cfg.model.dw_kernel ** 2 * cfg.hw.dw_parallel, "se": 1},
        "resources": {"target": res_target, "LUT": resources["lut"], "FF": resources["ff"],
                      "DSP": resources["dsp"], "BRAM": resources["bram"], "LUTRAM": resources["lutram"],
                      "CARRY": resources["carry"]},
        "simulator": cfg.flow.simulator, "sim_cycles_per_s": bench["sim_cycles_per_s"],
        "verilog": str(s.verilog), "verilog_sha256": sha256_file(s.verilog),
        "qonnx": str(s.onnx_path), "checkpoint": cfg.flow.checkpoint,
        "model_metrics": s.ck.get("metrics", {}),
        **s.impl,
        "stage_seconds": s.times, "total_seconds": None,
    }
    if s.impl.get("codec") and s.impl["codec"]["rtl_check"].get("mismatches"):
        mismatches += s.impl["codec"]["rtl_check"]["mismatches"]
    if s.impl.get("engine"):
        mismatches += s.impl["engine"]["mismatches"]
    if s.impl.get("asic") and s.impl["asic"].get("gate_level_mismatches"):
        mismatches += s.impl["asic"]["gate_level_mismatches"]
    summary["mismatches"] = int(mismatches)
    s.summary = summary


STEPS: list[tuple[str, Callable[[FlowState], None]]] = [
    ("train", step_train),
    ("qat_reference", step_qat_reference),
    ("export_golden", step_export_golden),
    ("verilog", step_verilog),
    ("verify", step_verify),
    ("fpga", step_fpga),
    ("asic", step_asic),
    ("finn", step_finn),
    ("baseline", step_baseline),
    ("codec", step_codec),
    ("engine", step_engine),
    ("report", step_report),
]


def run(cfg: Config, retrain: bool = False, progress: bool = True, skip: tuple[str, ...] = (),
        all_targets: bool = False) -> dict:
    """Run STEPS; returns the summary (also written to build_dir/summary.json, report.md and report.html).

    `skip` names optional steps (of OPTIONAL_STEPS) not to run; `all_targets` adds the longer sweep: every ECP5
    device and every liberty library. A verification mismatch anywhere raises EdgecodecError after the
    summary is written.
    """
    from edgecodec.flow.html_report import write_html
    from edgecodec.flow.report import write_report
    from sim.runner import ensure_simulator

    bad = set(skip) - set(OPTIONAL_STEPS)
    if bad:
        raise EdgecodecError(f"unknown stage(s) to skip {sorted(bad)}; choose from {', '.join(OPTIONAL_STEPS)}")
    out = resolve(cfg.flow.build_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    if summary_path.exists():
        summary_path.unlink()  # a failed run must not leave the previous summary looking current
    ensure_simulator(cfg.flow.simulator)
    t_all = time.time()
    s = FlowState(cfg, out, retrain, progress, tuple(skip), all_targets)
    for name, step in STEPS:
        if name in s.skip or (name in OPTIONAL_STEPS and not s.verified):
            continue  # skipped by the user, or nothing to implement: the RTL is not verified
        step(s)
    summary = s.summary
    summary["total_seconds"] = round(time.time() - t_all, 1)
    write_report(summary, out / "report.md")
    write_html(summary, out / "report.html")
    write_json_atomic(summary_path, summary, indent=2)
    log(f"summary: {summary_path} ; reports: {out / 'report.md'}, {out / 'report.html'}")
    if summary["mismatches"]:
        raise EdgecodecError(f"verification failed: {summary['mismatches']} mismatching codes (see {summary_path})")
    return summary
