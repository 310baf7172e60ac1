"""The main job: train (or reuse) -> QAT -> QONNX -> golden -> Verilog -> cocotb on real frames -> synth_ecp5.

Each stage is a function the CLI also exposes. Results go to build/flow/summary.json and report.md.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch

from . import checkpoint
from .config import Config
from .errors import FlowError
from .files import write_json_atomic


def log(msg: str) -> None:
    print(f"[edgecodec] {msg}", flush=True)


def float_model(cfg: Config):
    from model.predictor import NextFramePredictor
    m = cfg.model
    return NextFramePredictor(m.channels, m.layers, m.se_reduction, m.gate_kernel, m.dw_kernel, m.downsample)


def qat_model(cfg: Config, ck: dict):
    """Rebuild the QAT predictor of a checkpoint."""
    from quant.qat_cell import CellFracs, QuantASEGRUCell
    model = float_model(cfg)
    model.load_state_dict(ck["float"])
    qm = copy.deepcopy(model)
    m = cfg.model
    qm.rnn.cells = torch.nn.ModuleList(
        QuantASEGRUCell(m.channels, m.se_reduction, m.dw_kernel, m.gate_kernel, cfg.quant, CellFracs(**fr))
        for fr in ck["fracs"])
    qm.load_state_dict(ck["qat"])
    return qm.eval()


def load_clip(path: str, frames: int | None = None) -> torch.Tensor:
    from model.video import read_luma
    y = read_luma(path, frames)
    return torch.from_numpy(y.astype(np.float32) / 255.0)[None, :, None]  # (1, T, 1, H, W)


def train(cfg: Config, progress: bool = True) -> dict:
    """Float training, calibration on real frames, QAT fine-tuning; writes the checkpoint."""
    from model.train import ClipSampler, evaluate, fit, seed_everything
    from quant.calibrate import quantize_predictor

    t = cfg.train
    seed_everything(t.seed)
    model = float_model(cfg)
    sampler = ClipSampler(list(t.clips), t.seq_len, t.crop, t.seed)
    t0 = time.time()
    losses = fit(model, sampler, t.float_steps, t.batch, t.lr, "float train", progress)
    calib = sampler.batch(8)
    qmodel, fracs = quantize_predictor(model, cfg, calib)
    qlosses = fit(qmodel, sampler, t.qat_steps, t.batch, t.lr / 4, "QAT fine-tune", progress)
    clip = load_clip(cfg.flow.clip, cfg.flow.frames)
    log(f"trained in {time.time() - t0:.1f} s")  # not stored: the checkpoint bytes must not depend on the clock
    metrics = {"float": evaluate(model, clip), "qat": evaluate(qmodel, clip),
               "final_loss_float": losses[-1] if losses else None, "final_loss_qat": qlosses[-1] if qlosses else None,
               "eval_clip": cfg.flow.clip, "eval_frames": cfg.flow.frames}
    checkpoint.save(Path(cfg.flow.checkpoint), cfg, model.state_dict(), qmodel.state_dict(),
                    [f.to_dict() for f in fracs], metrics)
    return checkpoint.load(Path(cfg.flow.checkpoint), cfg)


def ensure_checkpoint(cfg: Config, retrain: bool = False, progress: bool = True) -> dict:
    path = Path(cfg.flow.checkpoint)
    if path.exists() and not retrain:
        try:
            ck = checkpoint.load(path, cfg)
            log(f"reusing checkpoint {path}")
            return ck
        except FlowError as exc:
            log(f"{exc}; retraining")
    log("training the proxy model (next-frame luma prediction) on real footage")
    return train(cfg, progress)


@torch.no_grad()
def layer_codes(cfg: Config, qmodel, clip: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """x codes entering cell `flow.layer` and the QAT model's h_t codes (float64 evaluation), (T, C, H, W)."""
    from quant import fixed_point as fp
    qm = copy.deepcopy(qmodel).double().eval()
    layer = cfg.flow.layer
    cell = qm.rnn.cells[layer]
    a, fx = cfg.quant.act_bits, cell.fracs.x
    xs, hs, state = [], [], None
    for t in range(clip.shape[1]):
        x = qm.features(clip[:, t].double())
        if state is None:
            state = [torch.zeros_like(x) for _ in qm.rnn.cells]
        for i in range(layer + 1):
            if i == layer:
                xs.append(np.clip(np.round(x[0].numpy() * 2.0 ** fx), *fp.srange(a)).astype(np.int64))  # = cell.x_q
            state[i] = qm.rnn.cells[i](x, state[i])
            x = state[i]
        hs.append(np.round(state[layer][0].numpy() * 2.0 ** (a - 1)).astype(np.int64))
    return np.stack(xs), np.stack(hs)


STAGES = ("fpga", "asic", "finn", "baseline", "codec")


def run(cfg: Config, retrain: bool = False, progress: bool = True, skip: tuple[str, ...] = (),
        all_targets: bool = False) -> dict:
    """The whole flow; returns the summary (also written to build_dir/summary.json and report.html).

    `skip` names optional stages (of STAGES) not to run; `all_targets` adds the longer sweep: every ECP5
    device and every liberty library.
    """
    bad = set(skip) - set(STAGES)
    if bad:
        raise FlowError(f"unknown stage(s) to skip {sorted(bad)}; choose from {', '.join(STAGES)}")
    from hw.emit import TOP_NAME, write_verilog
    from hw.synth import synth_ecp5
    from model.macs import count_cell, total
    from quant import export, golden
    from quant.params import extract
    from sim.cell_bench import run_cell_bench
    from sim.runner import ensure_simulator

    out = Path(cfg.flow.build_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    if summary_path.exists():
        summary_path.unlink()  # a failed run must not leave the previous summary looking current
    ensure_simulator(cfg.flow.simulator)
    times, t_all = {}, time.time()

    def stage(name):
        times[name] = round(time.time() - stage.t0, 1)
        log(f"{name}: done in {times[name]} s")
        stage.t0 = time.time()
    stage.t0 = time.time()

    clip = load_clip(cfg.flow.clip, cfg.flow.frames)
    ck = ensure_checkpoint(cfg, retrain, progress)
    stage("train")
    qmodel = qat_model(cfg, ck)
    cell = qmodel.rnn.cells[cfg.flow.layer]
    params = extract(cell)
    params.save(out / "cell_params.json")
    x_codes, h_qat = layer_codes(cfg, qmodel, clip)
    _, c, hh, ww = x_codes.shape
    log(f"real frames: {clip.shape[1]} x {clip.shape[-1]}x{clip.shape[-2]} luma -> layer {cfg.flow.layer} features "
        f"{c}x{hh}x{ww}")
    stage("qat_reference")

    onnx_path = export.export_cell(cell, c, hh, ww, out / "ase_gru_cell.qonnx.onnx")
    h_golden = golden.run_sequence(params, x_codes)
    golden_vs_qat = int((h_golden != h_qat).sum())
    n_onnx = min(2, len(x_codes))
    h_onnx = export.run_sequence_codes(onnx_path, x_codes[:n_onnx], params.f_x, params.act_bits)
    onnx_vs_golden = int((h_onnx != h_golden[:n_onnx]).sum())
    log(f"golden vs QAT (float64): {golden_vs_qat} mismatches of {h_golden.size}; "
        f"QONNX (float32 onnx_exec) vs golden: {onnx_vs_golden} of {h_onnx.size}")
    stage("export_golden")

    verilog = write_verilog(params, hh, ww, cfg.hw, out / f"{TOP_NAME}.v")
    stage("verilog")
    log(f"cocotb on {cfg.flow.simulator}: {len(x_codes)} steps of {hh}x{ww} pixels x {c} channels")
    bench = run_cell_bench(verilog, TOP_NAME, x_codes, h_golden, params.act_bits, out / "sim",
                           cfg.flow.simulator, raise_on_mismatch=False)
    rtl_vs_qat = None
    if bench["mismatches"] == 0:
        rtl_vs_qat = golden_vs_qat  # RTL == golden code for code, so RTL vs QAT = golden vs QAT
    stage("verify")
    cycles = max(bench["cycles_per_step"]) if bench["cycles_per_step"] else None
    if bench["mismatches"]:
        impl = {}  # nothing to implement: the RTL is not verified
    else:
        fmodel = float_model(cfg)
        fmodel.load_state_dict(ck["float"])
        impl = implement(cfg, params, cell, fmodel.rnn.cells[cfg.flow.layer], f"{clip.shape[-1]}x{clip.shape[-2]}",
                         x_codes, hh, ww, out, cycles, verilog, onnx_path, skip, all_targets, stage)
    if impl.get("fpga"):
        f = impl["fpga"]
        resources = {k: f.get(k, 0) for k in ("lut", "ff", "dsp", "bram", "lutram", "carry")}
        res_target = f"{f['family'].upper()} {f['device']} (Yosys, placed and routed by nextpnr)"
    else:
        resources = synth_ecp5(verilog, TOP_NAME, out / "synth", Path("build") / ".yowasp-cache")
        res_target = "ECP5 (yosys synth_ecp5, pre-P&R)"
        stage("synth_ecp5")

    from model.ase_gru import ASEGRUCell
    fcell = ASEGRUCell(c, cfg.model.se_reduction, cfg.model.gate_kernel, cfg.model.dw_kernel)
    rows = count_cell(fcell, hh, ww)
    gate_macs = sum(r.macs for r in rows if r.name.startswith("gate."))
    multipliers = 6 * cfg.hw.pe * cfg.hw.simd
    ideal = gate_macs / multipliers
    mismatches = bench["mismatches"] + golden_vs_qat + onnx_vs_golden
    summary = {
        "config": cfg.to_dict(),
        "clip": cfg.flow.clip, "colour_space": "luma (Y of Y4M 4:2:0), 8-bit, scaled to [0, 1]",
        "frames": int(clip.shape[1]), "layer": cfg.flow.layer, "feature_map": [c, hh, ww],
        "outputs_compared": int(bench["outputs_compared"]),
        "mismatches": int(mismatches),
        "mismatch_breakdown": {"rtl_vs_golden": bench["mismatches"], "golden_vs_qat_float64": golden_vs_qat,
                               "qonnx_vs_golden": onnx_vs_golden, "qonnx_codes_compared": int(h_onnx.size)},
        "rtl_vs_qat_mismatches": rtl_vs_qat,
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
        "verilog": str(verilog), "qonnx": str(onnx_path), "checkpoint": cfg.flow.checkpoint,
        "model_metrics": ck.get("metrics", {}),
        **impl,
        "stage_seconds": times, "total_seconds": round(time.time() - t_all, 1),
    }
    if impl.get("codec") and impl["codec"]["rtl_check"].get("mismatches"):
        mismatches += impl["codec"]["rtl_check"]["mismatches"]
        summary["mismatches"] = int(mismatches)
    if impl.get("asic") and impl["asic"].get("gate_level_mismatches"):
        mismatches += impl["asic"]["gate_level_mismatches"]
        summary["mismatches"] = int(mismatches)
    from .html_report import write_html
    from .report import write_report
    write_report(summary, out / "report.md")
    write_html(summary, out / "report.html")
    write_json_atomic(summary_path, summary, indent=2)
    log(f"summary: {summary_path} ; reports: {out / 'report.md'}, {out / 'report.html'}")
    if mismatches:
        raise FlowError(f"verification failed: {mismatches} mismatching codes (see {summary_path})")
    return summary


def implement(cfg: Config, params, cell, float_cell, frame_size: str, x_codes, hh: int, ww: int, out: Path, cycles,
              verilog: Path, onnx_path: Path, skip, all_targets: bool, stage) -> dict:
    """The implementation stages on the verified RTL; returns the summary sections they produce."""
    from . import impl

    res = {}
    if "fpga" not in skip:
        log(f"FPGA: {cfg.fpga.family} {cfg.fpga.device}: Yosys -> nextpnr -> bitstream; Xilinx estimate")
        f = impl.fpga_stage(cfg, params, hh, ww, out / "fpga", cycles)
        res["fpga"] = f
        log(f"FPGA: {f['lut']} LUT, {f['ff']} FF, {f['dsp']} DSP, {f['bram']} BRAM; Fmax {f['fmax_mhz']:.1f} MHz "
            f"-> {f['fps']:.0f} fps; bitstream {f['bitstream']}")
        stage("fpga")
        if all_targets:
            from hw.fpga.devices import ECP5_DEVICES
            sweep = []
            for dev in ECP5_DEVICES:
                try:
                    sweep.append(f if dev == cfg.fpga.device else
                                 impl.fpga_stage(cfg, params, hh, ww, out / "fpga_sweep", cycles, dev))
                except FlowError as exc:
                    sweep.append({"device": dev, "error": str(exc)})
            res["fpga_sweep"] = sweep
            stage("fpga_sweep")
    if "asic" not in skip:
        log(f"ASIC: {cfg.asic.library}: Yosys + ABC mapping, static timing, gate-level activity, power")
        a = impl.asic_stage(cfg, params, hh, ww, x_codes, out / "asic", cycles)
        res["asic"] = a
        log(f"ASIC: {a['area_um2']:.0f} um2, {a['clock_mhz']:.1f} MHz, {a['power_mw']['total']:.3f} mW, "
            f"{a['energy_per_frame_mj']:.4g} mJ/frame")
        stage("asic")
        if all_targets:
            from hw.asic.liberty import LIBRARIES
            res["asic_sweep"] = [impl.asic_stage(cfg, params, hh, ww, x_codes, out / "asic", cycles, lib)
                                 for lib in LIBRARIES if lib != cfg.asic.library]
            stage("asic_sweep")
    if "finn" not in skip:
        log("FINN: streamline, convert to HW layers, fold like ours, AnnotateResources/AnnotateCycles")
        res["finn"] = impl.finn_stage(cfg, cell, hh, ww, out / "finn", cycles, onnx_path, res.get("fpga"))
        stage("finn")
    if "baseline" not in skip:
        b = impl.baseline_stage(cfg, float_cell, frame_size)
        res["baseline"] = b
        log(f"baseline: {b['device']}: {b['ms_per_frame']:.3f} ms per cell step at {b['resolution']}")
        stage("baseline")
    if "codec" not in skip:
        log(f"codec: {cfg.codec.checkpoints} on {cfg.codec.eval_clip}: RD vs x264/x265/AV1, RTL of the decoder's "
            f"ASE-GRU layer on a real decode")
        res["codec"] = impl.codec_stage(cfg, out / "codec")
        bd = (res["codec"].get("bd_rate_vs_x264") or {}).get("ours-int", {}).get("psnr_yuv611", {})
        log(f"codec: BD-rate (YUV 6:1:1) of the hardware-exact codec vs x264 medium: {bd.get('bd_rate_pct')} %; "
            f"RTL vs decoder: {res['codec']['rtl_check'].get('mismatches')} mismatches")
        stage("codec")
    return res
