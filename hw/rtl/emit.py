"""Verilog emission: one command from integer parameters to a Verilog file, deterministic bytes."""

from __future__ import annotations

from pathlib import Path

from amaranth.back import verilog

from hw.config import HwConfig
from base.errors import EdgecodecError
from base.files import write_text_atomic
from quant.cell.params import CellParams

from hw.rtl.cell_top import CellTop

TOP_NAME = "ase_gru_cell"


def build_top(params: CellParams, height: int, width: int, hw: HwConfig) -> CellTop:
    """The cell top; a configuration that cannot work is an EdgecodecError before any logic is built."""
    try:
        return CellTop(params, height, width, hw)
    except ValueError as exc:
        raise EdgecodecError(f"unsupported hardware configuration: {exc}") from None


def write_verilog(params: CellParams, height: int, width: int, hw: HwConfig, path: Path) -> Path:
    top = build_top(params, height, width, hw)
    return write_component_verilog(top, TOP_NAME, path)


def write_component_verilog(component, name: str, path: Path) -> Path:
    """Verilog of an Amaranth component as module `name` (no source locations: deterministic bytes)."""
    return write_text_atomic(path, verilog.convert(component, name=name, emit_src=False))
