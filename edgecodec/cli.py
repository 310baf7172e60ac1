"""`edgecodec` command line: one entry point, one subcommand per flow stage."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from base.errors import EdgecodecError

from base.paths import BUILD_DIR, DEFAULT_CONFIG, YOWASP_CACHE, resolve


def _out(given: str | None, default: str) -> Path:
    """An output path given on the command line (from the working directory), else `build/<default>` of the
    repository."""
    return Path(given) if given else BUILD_DIR / default


def _cfg(args):
    from edgecodec.config import load
    return load(args.config)


def cmd_flow(args) -> None:
    from edgecodec.flow.builder import STAGES, run
    skip = tuple(st for st in STAGES if getattr(args, f"no_{st}"))
    s = run(_cfg(args), retrain=args.retrain, progress=not args.quiet, skip=skip, all_targets=args.all_targets)
    brief = {k: s[k] for k in ("outputs_compared", "mismatches", "cycles_per_step", "ideal_cycles_per_step",
                               "macs_per_step", "resources", "verilog")}
    if s.get("fpga"):
        brief["fpga"] = {k: s["fpga"].get(k) for k in ("device", "fmax_mhz", "fps", "bitstream")}
    if s.get("asic"):
        brief["asic"] = {k: s["asic"].get(k) for k in ("library", "area_um2", "clock_mhz", "energy_per_frame_mj")}
    if s.get("baseline"):
        brief["baseline"] = {k: s["baseline"].get(k) for k in ("device", "resolution", "ms_per_frame")}
    if s.get("codec"):
        c = s["codec"]
        brief["codec"] = {"bd_rate_vs_x264_psnr_yuv611": {k: v["psnr_yuv611"]["bd_rate_pct"] for k, v in
                                                          (c.get("bd_rate_vs_x264") or {}).items()},
                          "rtl_mismatches": c["rtl_check"].get("mismatches"), "eval": c["eval_md"]}
    print(json.dumps(brief, indent=2))


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers") from None


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in str(text).split(",") if v.strip())


EXPLORE_AXES = ("pe", "simd", "dw_parallel", "act_bits", "weight_bits", "channels", "devices", "libraries")


def cmd_explore(args) -> int:
    import dataclasses
    from edgecodec.explore import explore
    cfg = _cfg(args)
    over = {k: getattr(args, k) for k in EXPLORE_AXES if getattr(args, k) is not None}
    for k in ("resolution", "sample", "seed", "out", "clock_mhz"):
        if getattr(args, k) is not None:
            over[k] = getattr(args, k)
    if args.point_timeout is not None:
        over["point_timeout_s"] = args.point_timeout
    ex = dataclasses.replace(cfg.explore, **over)
    if args.device and "devices" not in over and args.device.split("-")[0] in ("ecp5", "ice40", "xilinx"):
        ex = dataclasses.replace(ex, devices=(args.device,))   # --device alone: sweep that device
    res = explore(cfg, ex, synth=not args.no_synth, pnr=args.pnr, asic=args.asic, ray=args.ray,
                  workers=args.workers, target_fps=args.target_fps, device=args.device,
                  log=(lambda *a: None) if args.quiet else (lambda m: print(m, file=sys.stderr)))
    brief = {k: res[k] for k in ("evaluated", "cached", "failed", "seconds", "scheduler")}
    brief["out"] = str(Path(res["options"]["out"]) / "explore.json")
    if res.get("best"):
        brief["best"] = res["best"]["statement"]
    print(json.dumps(brief, indent=2))
    return 0


def cmd_train_proxy(args) -> None:
    from edgecodec.flow.proxy import train
    ck = train(_cfg(args), progress=not args.quiet)
    print(json.dumps(ck["metrics"], indent=2))


def cmd_train(args) -> None:
    import dataclasses
    from edgecodec.codec.recipe import train
    from model.distributed import is_main_process
    cfg = _cfg(args)
    if args.data:
        cfg = dataclasses.replace(cfg, codec_train=dataclasses.replace(cfg.codec_train, data=tuple(args.data)))
        cfg.validate()
    out = args.out or resolve(cfg.codec.checkpoints)
    paths = train(cfg, out, args.quality, progress=not args.quiet, retrain=args.retrain, device=args.device)
    if is_main_process():
        print(json.dumps([str(p) for p in paths], indent=2))


def cmd_prune(args) -> None:
    import dataclasses
    from edgecodec.codec.prune import prune
    from model.distributed import is_main_process
    cfg = _cfg(args)
    if args.data:
        cfg = dataclasses.replace(cfg, codec_train=dataclasses.replace(cfg.codec_train, data=tuple(args.data)))
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, prune=dataclasses.replace(cfg.prune, steps=args.steps))
    if args.data or args.steps is not None:
        cfg.validate()
    s = prune(cfg, args.teacher, args.out, args.budget, args.method, progress=not args.quiet, retrain=args.retrain,
              device=args.device)
    if is_main_process():
        print(json.dumps(s, indent=2))


def _checkpoints(args, cfg) -> str:
    return args.checkpoints or resolve(cfg.codec.checkpoints)


def cmd_encode(args) -> None:
    from edgecodec.codec import checkpoint as codec_checkpoint
    from edgecodec.codec.coder import Coder
    from base.files import write_bytes_atomic
    from model.video import read_video
    cfg = _cfg(args)
    y, u, v, fps = read_video(args.input, args.frames)
    coder = Coder(codec_checkpoint.load(_checkpoints(args, cfg), args.quality), args.mode, args.entropy)
    r = coder.encode(y, u, v, args.gop or cfg.codec.gop, fps)
    write_bytes_atomic(Path(args.output), r.data)
    t, h, w = y.shape
    print(json.dumps({"output": args.output, "frames": t, "width": w, "height": h, "bytes": len(r.data),
                      "bpp": round(8 * len(r.data) / (t * h * w), 5), "mode": args.mode, "entropy": args.entropy,
                      "quality": args.quality, "seconds": round(r.seconds, 3)}, indent=2))


def cmd_decode(args) -> None:
    from edgecodec.codec.coder import decode, read_bitstream_bytes
    from model.video import write_y4m
    cfg = _cfg(args)
    header, (y, u, v) = decode(read_bitstream_bytes(args.input), _checkpoints(args, cfg), args.max_pixels,
                               args.max_output_bytes)
    write_y4m(Path(args.output), y, u, v, f"{header.fps_num}:{header.fps_den}")
    print(json.dumps({"output": args.output, "frames": int(y.shape[0]), "width": header.width,
                      "height": header.height, "quality": header.quality, "mode": header.mode,
                      "entropy": header.entropy}, indent=2))


def _params(cfg, path: str | None):
    """Integer cell parameters: a cell_params.json, or the checkpoint's cell `flow.layer`."""
    from quant.cell.params import CellParams
    if path:
        return CellParams.load(Path(path))
    from edgecodec.flow import proxy_checkpoint as checkpoint
    from edgecodec.flow.proxy import qat_model
    from quant.cell.params import extract
    return extract(qat_model(cfg, checkpoint.load(resolve(cfg.flow.checkpoint), cfg)).rnn.cells[cfg.flow.layer])


def _feature_size(cfg) -> tuple[int, int]:
    """(height, width) of the layer's feature map for the flow clip."""
    from model.video import read_header
    hdr = read_header(resolve(cfg.flow.clip))
    return max(1, hdr.height // cfg.model.downsample), max(1, hdr.width // cfg.model.downsample)


def _measured_cycles(cfg) -> int | None:
    summary = resolve(cfg.flow.build_dir) / "summary.json"
    if summary.is_file():
        try:
            return json.loads(summary.read_text()).get("cycles_per_step")
        except json.JSONDecodeError:
            return None
    return None


def cmd_engine_plan(args) -> None:
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.config import parse_resolution
    from edgecodec.engine_plan import measured_asic, plan
    from hw.fpga.devices import get_device
    cfg = _cfg(args)
    width, height = parse_resolution(args.resolution)
    device = get_device(args.family, args.device)
    payload = ckpt.load(_checkpoints(args, cfg), args.quality)
    out = plan(payload["int"], width, height, args.target_fps, args.clock_mhz, device)
    out["asic"] = measured_asic()       # the engine on sky130 (bench/engine_asic.py), when measured
    print(json.dumps(out, indent=2))


def cmd_engine_verilog(args) -> None:
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.config import parse_resolution
    from edgecodec.engine_plan import padded, shape_for
    from hw.engine.engine import EngineTop
    from hw.engine.frame_program import check_fold, gru_specs
    from hw.rtl.emit import write_component_verilog
    cfg = _cfg(args)
    width, height = parse_resolution(args.resolution)
    if args.pe not in (1, 2, 4, 8, 16) or args.gru_pe not in (0, 1, 2, 4, 8, 16):
        raise EdgecodecError(f"engine-verilog: --pe {args.pe} and --gru-pe {args.gru_pe} must be powers of two up to "
                             "16 (they must divide the GRU's hidden size; --gru-pe 0: the array's PE)")
    pw, ph = padded(width, height)
    payload = ckpt.load(_checkpoints(args, cfg), args.quality)
    shape = shape_for(payload["int"], args.pe, args.max_width, args.gru_pe)
    shape.check()
    check_fold(payload["int"], shape, "engine-verilog")      # a pruned checkpoint's widths: before anything is written
    top = EngineTop(shape, grus=gru_specs(payload["int"], (ph // 16, pw // 16)))
    path = write_component_verilog(top, "engine_top", Path(args.output))
    print(json.dumps({"verilog": str(path), "module": "engine_top", "pe": args.pe, "gru_pe": shape.gru_fold,
                      "axi_data_bits": shape.data_bits, "max_width": args.max_width, "frame": f"{pw}x{ph}",
                      "registers": "docs/engine_regs.md"}, indent=2))


def cmd_eval(args) -> None:
    from edgecodec.codec.evaluate import HELDOUT, HELDOUT_FRAMES, evaluate, evaluate_clips, parse_clip_spec
    cfg = _cfg(args)
    modes = tuple(args.mode or ("int", "float"))
    baselines = () if args.no_ffmpeg else ("x264", "x265", "av1")
    gop = args.gop or cfg.codec.gop
    clips = args.clip or []
    if args.heldout and clips:
        raise EdgecodecError("eval: --heldout evaluates the held-out set; give either --heldout or --clip")
    specs = [parse_clip_spec(c) for c in clips]          # refuses a bad crop spec before any work
    if args.heldout or len(clips) > 1 or any(crop is not None for _, crop in specs):
        frames = args.frames or (HELDOUT_FRAMES if args.heldout else cfg.codec.eval_frames)
        s = evaluate_clips(HELDOUT if args.heldout else clips, frames, gop, _checkpoints(args, cfg), args.quality,
                           _out(args.out, "eval"), modes, baselines, progress=not args.quiet,
                           summary="heldout" if args.heldout else "clips")
        name = "heldout" if args.heldout else "clips"
        brief = {"summary": str(_out(args.out, "eval") / f"{name}.md"),
                 "clips": [{k: r[k] for k in ("clip", "bpp", "psnr_yuv611", "bd_rate_vs_x264_pct", "bd_overlap",
                                              "drift_max_db", "decoder_macs_per_pixel", "aims_met", "eval_md")}
                           for r in s["clips"]],
                 "all_aims_met": s["all_aims_met"]}
        print(json.dumps(brief, indent=2))
        return
    r = evaluate(clips[0] if clips else resolve(cfg.codec.eval_clip), args.frames or cfg.codec.eval_frames, gop,
                 _checkpoints(args, cfg), args.quality, _out(args.out, "eval"), modes, baselines,
                 progress=not args.quiet)
    brief = {"eval": str(_out(args.out, "eval") / "eval.md"), "plots": r["plots"]}
    brief.update({k: r[k] for k in ("bd_rate_vs_x264", "bd_rate_int_vs_float") if k in r})
    print(json.dumps(brief, indent=2))


def cmd_stae(args) -> int | None:
    cfg = _cfg(args)
    if args.stae_cmd == "plan":
        from edgecodec.stae.plan import format_plan, load_table, parse_rate, parse_time, plan
        table = load_table(Path(args.table or resolve(cfg.stae.out) / "stae_eval.json"))
        rate, deadline = parse_rate(args.rate), parse_time(args.deadline)
        res = plan(table["rows"] if isinstance(table, dict) else table, rate, deadline)
        print(format_plan(res, rate, deadline))
        return 0 if res["choice"] is not None else 1
    from edgecodec.stae import evaluate as stae_eval
    if args.stae_cmd == "train":
        _, states, _, _, source = stae_eval.train(cfg, progress=not args.quiet)
        print(json.dumps({"stages": sorted(states), "data": source, "out": str(resolve(cfg.stae.out) / "stae.pt")},
                         indent=2))
        return None
    r = stae_eval.run(cfg, progress=not args.quiet)
    print(json.dumps({"table": str(resolve(cfg.stae.out) / "stae_eval.md"), "plot": r["plot"],
                      "uncompressed_accuracy": r["uncompressed_accuracy"]}, indent=2))
    return None


def cmd_verilog(args) -> None:
    from hw.rtl.emit import write_verilog
    cfg = _cfg(args)
    out = write_verilog(_params(cfg, args.params), args.height, args.width, cfg.hw, _out(args.output, "verilog/ase_gru_cell.v"))
    print(out)


def cmd_fpga(args) -> None:
    import dataclasses
    from edgecodec.flow.fpga import fpga_stage
    cfg = _cfg(args)
    f = dataclasses.replace(cfg.fpga, **{k: v for k, v in (("family", args.family), ("device", args.device),
                                                           ("package", args.package), ("speed", args.speed),
                                                           ("freq_mhz", args.freq)) if v is not None})
    cfg = dataclasses.replace(cfg, fpga=f).validate()
    h, w = (args.height, args.width) if args.height and args.width else _feature_size(cfg)
    r = fpga_stage(cfg, _params(cfg, args.params), h, w, _out(args.out, "fpga"), _measured_cycles(cfg) if
                   (h, w) == _feature_size(cfg) else None)
    print(json.dumps({k: r.get(k) for k in ("family", "device", "package", "speed", "lut", "ff", "dsp", "bram",
                                            "io_pins", "utilisation", "fmax_mhz", "target_mhz", "fps", "bitstream",
                                            "seconds", "vivado_tcl")}, indent=2))


def cmd_asic(args) -> None:
    import dataclasses
    from edgecodec.flow import proxy_checkpoint as checkpoint
    from edgecodec.flow.proxy import layer_codes, load_clip, qat_model
    from edgecodec.flow.asic import asic_stage
    from quant.cell.params import extract
    cfg = _cfg(args)
    a = dataclasses.replace(cfg.asic, **{k: v for k, v in (("library", args.library), ("clock_mhz", args.clock_mhz))
                                         if v is not None})
    cfg = dataclasses.replace(cfg, asic=a).validate()
    qm = qat_model(cfg, checkpoint.load(resolve(cfg.flow.checkpoint), cfg))
    params = extract(qm.rnn.cells[cfg.flow.layer])
    x_codes, _ = layer_codes(cfg, qm, load_clip(resolve(cfg.flow.clip), cfg.flow.frames))
    _, _, h, w = x_codes.shape
    r = asic_stage(cfg, params, h, w, x_codes, _out(args.out, "asic"), _measured_cycles(cfg))
    print(json.dumps({k: r.get(k) for k in ("library", "area_um2", "area_breakdown", "ff_share", "critical_path_ns",
                                            "fmax_mhz", "clock_mhz", "power_mw", "cycles_per_step",
                                            "cycles_per_step_source", "energy_per_frame_mj", "gate_level_bit_exact",
                                            "seconds")}, indent=2))


def cmd_synth(args) -> None:
    from hw.rtl.emit import TOP_NAME
    from hw.fpga.synth import synth_ecp5
    if not Path(args.verilog).is_file():
        raise EdgecodecError(f"Verilog file not found: {args.verilog}")
    print(json.dumps(synth_ecp5(Path(args.verilog), args.top or TOP_NAME, _out(args.out, "synth"), YOWASP_CACHE)))


def cmd_baseline(args) -> None:
    from edgecodec.flow import proxy_checkpoint as checkpoint
    from edgecodec.flow.gpu_baseline import run_baseline
    from edgecodec.flow.proxy import float_model
    cfg = _cfg(args)
    model = float_model(cfg)
    model.load_state_dict(checkpoint.load(resolve(cfg.flow.checkpoint), cfg)["float"])
    b = cfg.baseline
    res = run_baseline(model.rnn.cells[cfg.flow.layer], cfg.model.channels, cfg.model.downsample,
                       args.resolution or list(b.resolutions), args.device or b.device,
                       b.warmup if args.warmup is None else args.warmup, b.iters if args.iters is None else args.iters)
    text = json.dumps(res, indent=2)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    print(text)


def cmd_report(args) -> None:
    from edgecodec.flow.html_report import write_html
    print(write_html(_out(args.summary, "flow/summary.json"), _out(args.output, "flow/report.html")))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgecodec", description="Hardware flow for edge neural video codecs "
                                "(ASE-GRU): PyTorch -> Brevitas QAT -> QONNX -> integer golden -> Amaranth RTL -> cocotb "
                                "-> FPGA bitstream, ASIC estimate, FINN comparison, PyTorch baseline")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name, fn, help_):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config (default: the repository's configs/default.yaml)")
        sp.set_defaults(fn=fn)
        return sp

    sp = add("flow", cmd_flow, "train or reuse -> QAT -> QONNX -> golden -> Verilog -> cocotb -> FPGA, ASIC, FINN, "
             "baseline -> summary.json, report.html")
    sp.add_argument("--retrain", action="store_true", help="ignore an existing checkpoint")
    sp.add_argument("--quiet", action="store_true", help="no progress bars")
    for st, what in (("fpga", "the FPGA bitstream and Xilinx estimate"), ("asic", "the ASIC estimate"),
                     ("finn", "the FINN comparison"), ("baseline", "the PyTorch baseline"),
                     ("codec", "the codec's RD evaluation and decoder RTL check"),
                     ("engine", "real frames decoded by the decoder engine's RTL")):
        sp.add_argument(f"--no-{st}", action="store_true", help=f"skip {what}")
    sp.add_argument("--all-targets", action="store_true",
                    help="longer sweep: every ECP5 device and every liberty library")
    sp = add("train", cmd_train, "train the video codec: one checkpoint per quality (resumable, seeded; "
             "data-parallel under torchrun: `torchrun --nproc-per-node N -m edgecodec.cli train ...`)")
    sp.add_argument("--data", action="append", help="Y4M/MP4 file, folder of sequences or Vimeo-90K root "
                    "(repeatable; default: codec_train.data)")
    sp.add_argument("--out", default=None, help="checkpoint folder (default: codec.checkpoints)")
    sp.add_argument("--quality", type=int, action="append", help="train only these qualities (repeatable)")
    sp.add_argument("--retrain", action="store_true", help="ignore finished checkpoints of the same recipe")
    sp.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                    help="cpu (default, bit-reproducible) or cuda")
    sp.add_argument("--quiet", action="store_true")
    sp = add("prune", cmd_prune, "structured pruning of a codec checkpoint to a decoder-MAC budget (gradient decay, "
             "layer-wise distillation; resumable, seeded; data-parallel under torchrun) -> <out>/codec_q<N>.pt")
    sp.add_argument("teacher", help="the dense teacher: a codec checkpoint file, e.g. checkpoints/codec_q1.pt")
    sp.add_argument("--out", default=None, help="folder of the pruned checkpoint (default: prune.out)")
    sp.add_argument("--budget", type=float, default=None,
                    help="fraction of decoder MACs to remove, in (0, 1) (default: prune.budget)")
    sp.add_argument("--method", choices=("gd", "ste", "hard"), default=None,
                    help="gd: gradient decay, beta 1 -> 0; ste: beta = 1; hard: beta = 0 (default: prune.method)")
    sp.add_argument("--steps", type=int, default=None, help="default: prune.steps")
    sp.add_argument("--data", action="append", help="training data (repeatable; default: codec_train.data)")
    sp.add_argument("--retrain", action="store_true", help="ignore a finished pruned checkpoint of the same recipe")
    sp.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                    help="cpu (default, bit-reproducible) or cuda")
    sp.add_argument("--quiet", action="store_true")
    sp = add("train-proxy", cmd_train_proxy, "the flow's proxy model: train, calibrate, QAT fine-tune")
    sp.add_argument("--quiet", action="store_true")
    sp = add("encode", cmd_encode, "encode a clip (Y4M 8-bit 4:2:0, or any video PyAV decodes) to a bitstream")
    sp.add_argument("input")
    sp.add_argument("-o", "--output", required=True)
    sp.add_argument("--quality", type=int, default=1)
    sp.add_argument("--mode", choices=("int", "float"), default="int",
                    help="int = hardware-exact, portable (default); float = the float reference model")
    sp.add_argument("--entropy", choices=("ans", "rice"), default="ans")
    sp.add_argument("--gop", type=int, default=None, help="default: codec.gop")
    sp.add_argument("--frames", type=int, default=None, help="encode only the first N frames")
    sp.add_argument("--checkpoints", default=None, help="default: codec.checkpoints")
    sp = add("decode", cmd_decode, "decode a bitstream to Y4M (the checkpoint is picked by the stream's quality)")
    sp.add_argument("input")
    sp.add_argument("-o", "--output", required=True)
    sp.add_argument("--checkpoints", default=None, help="default: codec.checkpoints")
    from edgecodec.codec.bitstream import DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_PIXELS
    sp.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                    help=f"refuse frames larger than N = width x height pixels (default {DEFAULT_MAX_PIXELS})")
    sp.add_argument("--max-output-bytes", type=int, default=DEFAULT_MAX_OUTPUT_BYTES, metavar="N",
                    help="refuse streams whose decoded frames (held in memory) take more than N bytes "
                    f"(default {DEFAULT_MAX_OUTPUT_BYTES})")
    sp = add("eval", cmd_eval, "rate-distortion of every quality (int and float modes, ANS and Rice rates) vs "
             "x264 / x265 / libaom-AV1 in low-delay P: BD-rates, RD plots, eval.json, eval.md")
    sp.add_argument("--clip", action="append", default=None, metavar="PATH[@WxH+X+Y]",
                    help="clip, optionally a crop (e.g. data/video/streams/vpf_test.mp4@352x288+248+88); repeatable: "
                    "several clips or a crop go to <out>/<clip>/ with a summary <out>/clips.md, .json "
                    "(default: codec.eval_clip -> <out>/eval.md)")
    sp.add_argument("--heldout", action="store_true",
                    help="the held-out set: carphone, the vpf_test dog crop 352x288+248+88 and the Zhling office "
                    "crop 352x288+464+216 -> <out>/<clip>/ and <out>/heldout.md, .json (16 frames unless --frames)")
    sp.add_argument("--frames", type=int, default=None, help="default: codec.eval_frames (16 with --heldout)")
    sp.add_argument("--gop", type=int, default=None, help="default: codec.gop")
    sp.add_argument("--quality", type=int, action="append", help="default: every checkpoint found")
    sp.add_argument("--mode", choices=("int", "float"), action="append", help="default: both")
    sp.add_argument("--no-ffmpeg", action="store_true", help="skip the x264/x265/AV1 sweeps")
    sp.add_argument("--checkpoints", default=None, help="default: codec.checkpoints")
    sp.add_argument("--out", default=None, help="default: build/eval of the repository")
    sp.add_argument("--quiet", action="store_true")
    sp = add("stae", cmd_stae, "STAE semantic compression for action recognition (seed 001): train | eval | plan")
    stae_sub = sp.add_subparsers(dest="stae_cmd", required=True)
    for name, help_ in (("train", "step-by-step training (Algorithm 1), resumable"),
                        ("eval", "train if needed, then the Table I-like table and the accuracy-vs-latency plot"),
                        ("plan", "pick the (alpha, beta) with the best accuracy that meets a deadline (eq. 5)")):
        ssp = stae_sub.add_parser(name, help=help_)
        ssp.add_argument("--config", default=argparse.SUPPRESS, help="YAML config (default: the repository's configs/default.yaml)")
        if name == "plan":
            ssp.add_argument("--rate", required=True, help="data rate, e.g. 100Mbps")
            ssp.add_argument("--deadline", required=True, help="e.g. 100ms")
            ssp.add_argument("--table", default=None, help="default: <stae.out>/stae_eval.json")
        else:
            ssp.add_argument("--quiet", action="store_true")
    sp = add("explore", cmd_explore, "design-space exploration: sweep folding, bit widths, channels, FPGA devices "
             "and ASIC libraries (grid or random sample) on Ray or a local process pool; table, Pareto fronts, "
             "the best point for a frame rate")
    for k in EXPLORE_AXES:
        conv = _str_list if k in ("devices", "libraries") else _int_list
        sp.add_argument(f"--{k.replace('_', '-')}", dest=k, type=conv, default=None,
                        help=f"comma-separated (default: explore.{k})")
    sp.add_argument("--resolution", default=None, help="frame WIDTHxHEIGHT (default: explore.resolution)")
    sp.add_argument("--sample", type=int, default=None, help="N random points of the grid (0 = all)")
    sp.add_argument("--seed", type=int, default=None, help="seed of --sample")
    sp.add_argument("--clock-mhz", type=float, default=None, help="fps clock without --pnr (0 = family default)")
    sp.add_argument("--no-synth", action="store_true", help="cycles only: no synthesis or fit check")
    sp.add_argument("--pnr", action="store_true", help="also place and route (nextpnr): Fmax -> fps")
    sp.add_argument("--asic", action="store_true", help="also the ASIC estimate on each explore.libraries entry")
    sp.add_argument("--ray", default=None, help="run on Ray: 'auto' (`ray start` on this machine), 'local' "
                    "(a new instance) or HOST:PORT of a cluster's head; default: a local process pool")
    sp.add_argument("--workers", type=int, default=0, help="local pool size (default 0 = one per CPU)")
    sp.add_argument("--point-timeout", type=float, default=None, help="seconds per point (0 = no limit)")
    sp.add_argument("--target-fps", type=float, default=None, help="report the least-LUT point reaching it")
    sp.add_argument("--device", default=None, help="for --target-fps: ecp5-85k, ice40-up5k, ... or an ASIC "
                    "library (least area); alone, it also sets --devices")
    sp.add_argument("--out", default=None, help="default: explore.out (build/explore)")
    sp.add_argument("--quiet", action="store_true")
    sp = add("engine-plan", cmd_engine_plan, "the decoder engine's PE array for a target frame rate and resolution "
             "(cycle model), and whether a device can reach it")
    sp.add_argument("--resolution", required=True, help="WIDTHxHEIGHT, e.g. 1920x1080")
    sp.add_argument("--target-fps", type=float, required=True)
    sp.add_argument("--clock-mhz", type=float, default=None,
                    help="engine clock (default: the Fmax measured by bench/engine_fpga.py, else 100 MHz)")
    sp.add_argument("--family", choices=("ecp5", "ice40"), default="ecp5")
    sp.add_argument("--device", default="85k", help="ECP5 25k/45k/85k, iCE40 up5k (default 85k)")
    sp.add_argument("--quality", type=int, default=1, help="the checkpoint whose decoder is planned (default 1)")
    sp.add_argument("--checkpoints", default=None, help="default: codec.checkpoints")
    sp = add("engine-verilog", cmd_engine_verilog, "emit the decoder engine (EngineTop: AXI4 master, AXI4-Lite "
             "registers, irq) for a checkpoint's decoder at a frame size")
    sp.add_argument("--resolution", required=True, help="WIDTHxHEIGHT the ASE-GRU units are generated for")
    sp.add_argument("--pe", type=int, default=4, help="PE = SIMD of the convolution array (default 4)")
    sp.add_argument("--gru-pe", type=int, default=1, help="the ASE-GRU units' folding (default 1: an ECP5-85 holds 8 x 8 with it)")
    sp.add_argument("--max-width", type=int, default=64, help="line-buffer width; wider maps run as strips")
    sp.add_argument("--quality", type=int, default=1)
    sp.add_argument("--checkpoints", default=None, help="default: codec.checkpoints")
    sp.add_argument("-o", "--output", default="build/engine/engine_top.v")
    sp = add("verilog", cmd_verilog, "emit the cell's Verilog from the checkpoint (or a cell_params.json)")
    sp.add_argument("--params", help="cell_params.json written by the flow (default: read the checkpoint)")
    sp.add_argument("--height", type=int, default=24)
    sp.add_argument("--width", type=int, default=40)
    sp.add_argument("-o", "--output", default=None, help="default: build/verilog/ase_gru_cell.v of the repository")
    sp = add("fpga", cmd_fpga, "FPGA bitstream of the cell behind a narrow I/O wrapper (Yosys, nextpnr, ecppack/"
             "icepack), Xilinx estimate and Vivado script")
    sp.add_argument("--family", choices=("ecp5", "ice40"), default=None, help="default: fpga.family")
    sp.add_argument("--device", default=None, help="ECP5 25k/45k/85k, iCE40 up5k (default: fpga.device)")
    sp.add_argument("--package", default=None, help="e.g. CABGA381 (default: the device's default)")
    sp.add_argument("--speed", type=int, default=None, help="ECP5 speed grade 6/7/8")
    sp.add_argument("--freq", type=float, default=None, help="nextpnr target MHz")
    sp.add_argument("--params", help="cell_params.json (default: the checkpoint's cell)")
    sp.add_argument("--height", type=int, default=None, help="feature map (default: the flow clip's)")
    sp.add_argument("--width", type=int, default=None)
    sp.add_argument("--out", default=None, help="default: build/fpga of the repository")
    sp = add("asic", cmd_asic, "ASIC area, timing, power and energy per frame on a liberty library "
             "(real features of the flow clip)")
    sp.add_argument("--library", choices=("sky130hd", "gf180mcu", "sg13g2"), default=None,
                    help="default: asic.library")
    sp.add_argument("--clock-mhz", type=float, default=None, help="default: the achievable clock from STA")
    sp.add_argument("--out", default=None, help="default: build/asic of the repository")
    sp = add("synth", cmd_synth, "Yosys synth_ecp5 resource counts of a Verilog file")
    sp.add_argument("verilog")
    sp.add_argument("--top", default=None)
    sp.add_argument("--out", default=None, help="default: build/synth of the repository")
    sp = add("baseline", cmd_baseline, "time the float PyTorch cell on the torch device (CUDA if present, else CPU) "
             "with a Jetson AGX Xavier roofline estimate")
    sp.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default: baseline.device")
    sp.add_argument("--resolution", action="append", help="WIDTHxHEIGHT (repeatable; default: baseline.resolutions)")
    sp.add_argument("--warmup", type=int, default=None)
    sp.add_argument("--iters", type=int, default=None)
    sp.add_argument("-o", "--output", default=None, help="also write the JSON here")
    sp = add("report", cmd_report, "self-contained HTML report (tables, plots) from the flow's summary.json")
    sp.add_argument("--summary", default=None, help="default: build/flow/summary.json of the repository")
    sp.add_argument("-o", "--output", default=None, help="default: build/flow/report.html of the repository")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc = args.fn(args)
    except EdgecodecError as exc:
        print(f"edgecodec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgecodec: interrupted", file=sys.stderr)
        return 130
    finally:
        if "model.distributed" in sys.modules:      # leave a torchrun process group (train, prune)
            sys.modules["model.distributed"].finish()
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
