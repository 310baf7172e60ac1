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
