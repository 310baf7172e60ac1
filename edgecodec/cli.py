"""`edgecodec` command line: one entry point, one subcommand per flow stage."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import FlowError

DEFAULT_CONFIG = "configs/default.yaml"


def _cfg(args):
    from .config import load
    return load(args.config)


def cmd_flow(args) -> None:
    from .flow import run
    s = run(_cfg(args), retrain=args.retrain, progress=not args.quiet)
    print(json.dumps({k: s[k] for k in ("outputs_compared", "mismatches", "cycles_per_step", "ideal_cycles_per_step",
                                        "macs_per_step", "resources", "verilog")}, indent=2))


def cmd_train(args) -> None:
    from .flow import train
    ck = train(_cfg(args), progress=not args.quiet)
    print(json.dumps(ck["metrics"], indent=2))


def cmd_verilog(args) -> None:
    from hw.emit import write_verilog
    from quant.params import CellParams
    cfg = _cfg(args)
    if args.params:
        params = CellParams.load(Path(args.params))
    else:
        from . import checkpoint
        from .flow import qat_model
        from quant.params import extract
        params = extract(qat_model(cfg, checkpoint.load(Path(cfg.flow.checkpoint), cfg)).rnn.cells[cfg.flow.layer])
    out = write_verilog(params, args.height, args.width, cfg.hw, Path(args.output))
    print(out)


def cmd_synth(args) -> None:
    from hw.emit import TOP_NAME
    from hw.synth import synth_ecp5
    if not Path(args.verilog).is_file():
        raise FlowError(f"Verilog file not found: {args.verilog}")
    print(json.dumps(synth_ecp5(Path(args.verilog), args.top or TOP_NAME, Path(args.out), Path("build/.yowasp-cache"))))


def cmd_baseline(args) -> None:
    from . import checkpoint
    from .baseline import run_baseline
    from .flow import float_model
    cfg = _cfg(args)
    model = float_model(cfg)
    model.load_state_dict(checkpoint.load(Path(cfg.flow.checkpoint), cfg)["float"])
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
    from .html_report import write_html
    print(write_html(Path(args.summary), Path(args.output)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgecodec", description="Hardware flow for edge neural video codecs "
                                "(ASE-GRU): PyTorch -> Brevitas QAT -> QONNX -> integer golden -> Amaranth RTL -> cocotb")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name, fn, help_):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})")
        sp.set_defaults(fn=fn)
        return sp

    sp = add("flow", cmd_flow, "train or reuse -> QAT -> QONNX -> golden -> Verilog -> cocotb -> synth_ecp5")
    sp.add_argument("--retrain", action="store_true", help="ignore an existing checkpoint")
    sp.add_argument("--quiet", action="store_true", help="no progress bars")
    sp = add("train", cmd_train, "train the float model, calibrate, QAT fine-tune, write the checkpoint")
    sp.add_argument("--quiet", action="store_true")
    sp = add("verilog", cmd_verilog, "emit the cell's Verilog from the checkpoint (or a cell_params.json)")
    sp.add_argument("--params", help="cell_params.json written by the flow (default: read the checkpoint)")
    sp.add_argument("--height", type=int, default=24)
    sp.add_argument("--width", type=int, default=40)
    sp.add_argument("-o", "--output", default="build/verilog/ase_gru_cell.v")
    sp = add("synth", cmd_synth, "Yosys synth_ecp5 resource counts of a Verilog file")
    sp.add_argument("verilog")
    sp.add_argument("--top", default=None)
    sp.add_argument("--out", default="build/synth")
    sp = add("baseline", cmd_baseline, "time the float PyTorch cell on the torch device (CUDA if present, else CPU) "
             "with a Jetson AGX Xavier roofline estimate")
    sp.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default: baseline.device")
    sp.add_argument("--resolution", action="append", help="WIDTHxHEIGHT (repeatable; default: baseline.resolutions)")
    sp.add_argument("--warmup", type=int, default=None)
    sp.add_argument("--iters", type=int, default=None)
    sp.add_argument("-o", "--output", default=None, help="also write the JSON here")
    sp = add("report", cmd_report, "self-contained HTML report (tables, plots) from the flow's summary.json")
    sp.add_argument("--summary", default="build/flow/summary.json")
    sp.add_argument("-o", "--output", default="build/flow/report.html")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except FlowError as exc:
        print(f"edgecodec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgecodec: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
