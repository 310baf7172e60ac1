"""Technology mapping with native Yosys (pyosys): RTL Verilog -> flat standard-cell netlist of one liberty.

Script (times of each step are returned):

    read_verilog; synth -flatten -top T -run :fine        generic synthesis, memories collected ($mem_v2)
    mark writable memories >= macro_min_bits as macros    kept as $mem_v2 cells, priced by hw.asic.sram
    memory_map (all other memories)                       constant ROMs -> logic, small FIFOs -> flip-flops
    opt -full; techmap; opt -fast
    dfflibmap -liberty L [-dont_use ...]                  flip-flops (sync reset/enable legalised to logic)
    abc -liberty L -constr C -D P -script "+strash;dretime;&get,-n;&nf,-D,P;&put;buffer,-p;upsize,-D,P"
                                                          one delay-aware mapping pass, then fanout buffering
                                                          and gate sizing (Yosys 0.70 has no abc -fast; its
                                                          default script, with &fraig/scorr/dc2/&dch first,
                                                          took > 5 min on the default cell); C = driving
                                                          cell (smallest inverter) and output load
    opt_clean; rename -hide w:*; rename -enumerate        every non-port net gets a plain name _N_, the same in
                                                          the JSON, the Verilog and any simulator's VCD
    write_json (+ with write_verilog: read_liberty; flatten; write_verilog -> netlist_sim.v, cells inlined)

Cells the library marks dont_use, cells without a function (fill, tap, decap, diode) and the per-library
exclusions of hw.asic.liberty.EXCLUDE are passed to dfflibmap and abc as -dont_use.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from base.errors import EdgecodecError
from base.files import write_text_atomic

from hw.asic.liberty import Library, cells_with_table, library_path, load_library, read_text

MACRO_MIN_BITS = 4096


def param_int(v) -> int:
    """A cell parameter of Yosys' JSON netlist as an int (ints stay; bit strings are binary, x/z read as 0)."""
    if isinstance(v, int):
        return v
    return int(str(v).replace("x", "0").replace("z", "0") or "0", 2)


def plain_liberty(library: str, cache_dir: Path) -> Path:
    """The library as an uncompressed .lib file (Yosys and ABC read plain text), written once, atomically."""
    src = library_path(library)
    if src.suffix != ".gz":
        return src.resolve()
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    dst = cache_dir / src.name[:-3]
    stamp = cache_dir / (dst.name + ".src")
    key = f"{src.resolve()} {src.stat().st_size} {src.stat().st_mtime_ns}"
    if dst.exists() and stamp.exists() and stamp.read_text() == key:
        return dst.resolve()
    write_text_atomic(dst, read_text(src))
    stamp.write_text(key)
    return dst.resolve()


def driving_cell(lib: Library):
    """The smallest usable inverter: drives top-level inputs and (x4 its input cap) loads outputs in ABC."""
    invs = cells_with_table(lib, 1, (1, 0))
    if not invs:
        raise EdgecodecError(f"library {lib.name} has no usable inverter")
    return min(invs, key=lambda c: (c.area, c.name))


@contextlib.contextmanager
def quiet(log: Path):
    """Send what libyosys echoes on the process's stdout (file descriptor 1) to `log` while Yosys runs."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@dataclass
class Mapped:
    library: str
    top: str
    netlist_json: Path
    netlist_v: Path | None                # simulation netlist (cells inlined), when write_verilog
    memories: list[dict]                  # every memory of the design and what became of it
    seconds: dict = field(default_factory=dict)

    def load(self) -> dict:
        return json.loads(Path(self.netlist_json).read_text())["modules"][self.top]


def map_design(verilog: Path, top: str, library: str, out_dir: Path, clock_ns: float = 10.0,
               macro_min_bits: int = MACRO_MIN_BITS, write_verilog: bool = True,
               macros: set[str] | None = None) -> Mapped:
    """Map `verilog` (top module `top`) onto `library`; files go to out_dir (netlist.json, netlist.v, yosys.log).

    Writable memories of at least `macro_min_bits` bits with synchronous read ports stay macros, or exactly those
    named in `macros` (memories read asynchronously never do).
    """
    from pyosys import libyosys as ys

    lib = load_library(library)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    libfile = plain_liberty(library, out_dir.parent / "_liberty")
    log = out_dir / "yosys.log"
    log.write_text("")
    dont_use = " ".join(f"-dont_use {name}" for name in lib.dont_use)
    period_ps = max(1, int(round(clock_ns * 1000)))
    design = ys.Design()
    seconds: dict = {}

    def run(step: str, *cmds: str) -> None:
        t0 = time.time()
        with quiet(log):
            for cmd in cmds:
                try:
                    ys.run_pass(f"tee -q -a {log} {cmd}", design)
                except Exception as exc:  # pyosys raises RuntimeError on a Yosys ERROR
                    raise EdgecodecError(f"yosys '{cmd.split()[0]}' failed while mapping {verilog} to {library}: "
                                    f"{exc}; see {log}") from None
        seconds[step] = round(seconds.get(step, 0.0) + time.time() - t0, 2)

    if not Path(verilog).exists():
        raise EdgecodecError(f"Verilog file {verilog} does not exist")
    run("synth", f"read_verilog {Path(verilog).resolve()}", f"hierarchy -check -top {top}",
        f"synth -flatten -top {top} -run :fine")
    memories = []
    attr = ys.IdString("\\asic_macro")
    module = design.top_module()
    for cell in module.cells_.values():
        if cell.type.str() != "$mem_v2":
            continue
        prm = {k.str().lstrip("\\"): v for k, v in cell.parameters.items()}
        words, width = prm["SIZE"].as_int(), prm["WIDTH"].as_int()
        wr, rd = prm["WR_PORTS"].as_int(), prm["RD_PORTS"].as_int()
        name = cell.name.str().lstrip("\\")
        clocked = prm["RD_CLK_ENABLE"].as_int() == (1 << rd) - 1      # every read port synchronous
        # the register-file model (and the gate-level simulator) covers a synchronous read port: a memory read
        # asynchronously stays flip-flops and gates whatever its size
        macro = wr > 0 and clocked and (name in macros if macros is not None else words * width >= macro_min_bits)
        if macro:
            cell.set_bool_attribute(attr, True)
            if wr != 1 or rd != 1:
                raise EdgecodecError(f"memory {name} has {rd} read and {wr} write ports; the register-file model "
                                f"covers 1 read + 1 write port")
        memories.append({"name": name, "words": words, "width": width, "read_ports": rd, "write_ports": wr,
                         "mapped_to": "macro" if macro else ("logic (ROM)" if wr == 0 else
                                                             "flip-flops" if clocked else "flip-flops (asynchronous read)")})
    memories.sort(key=lambda m: m["name"])
    run("memory_map", "memory_map t:$mem_v2 a:asic_macro %d", "opt -full", "techmap", "opt -fast")
    run("dfflibmap", f"dfflibmap -liberty {libfile} {dont_use}")
    drv = driving_cell(lib)
    constr = out_dir / "abc.constr"
    constr.write_text(f"set_driving_cell {drv.name}\nset_load {4 * drv.pins[drv.inputs[0]].capacitance:.6f}\n")
    script = f"+strash;dretime;&get,-n;&nf,-D,{period_ps};&put;buffer,-p;upsize,-D,{period_ps}"
    run("abc", f"abc -liberty {libfile} -constr {constr} -D {period_ps} -script {script} {dont_use}")
    run("write", "opt_clean", "delete t:$scopeinfo", "rename -hide w:*", "rename -enumerate",
        f"write_json {out_dir / 'netlist.json.tmp'}")
    (out_dir / "netlist.json.tmp").replace(out_dir / "netlist.json")
    vpath = None
    if write_verilog:
        # simulation netlist: each cell instance replaced by its liberty behaviour (function / ff / latch
        # groups read by read_liberty), inlined by flatten; nets and their names are unchanged
        vpath = out_dir / "netlist_sim.v"
        run("write", f"read_liberty -ignore_miss_func -ignore_miss_dir -ignore_miss_data_latch {libfile}",
            f"hierarchy -top {top}", "flatten", f"write_verilog -noattr {out_dir / 'netlist_sim.v.tmp'}")
        (out_dir / "netlist_sim.v.tmp").replace(vpath)
    return Mapped(str(library), top, out_dir / "netlist.json", vpath, memories, seconds)


def cell_types(netlist: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cell in netlist["cells"].values():
        counts[cell["type"]] = counts.get(cell["type"], 0) + 1
    return dict(sorted(counts.items()))


def area_breakdown(netlist: dict, lib: Library) -> dict:
    """Cell area split into logic and flip-flops (latches count as flip-flops); macros are left out here."""
    logic = ff = 0.0
    n_logic = n_ff = 0
    unknown = {}
    for cell in netlist["cells"].values():
        t = cell["type"]
        if t == "$mem_v2":
            continue
        c = lib.cells.get(t)
        if c is None:
            unknown[t] = unknown.get(t, 0) + 1
            continue
        if c.sequential:
            ff += c.area
            n_ff += 1
        else:
            logic += c.area
            n_logic += 1
    if unknown:
        raise EdgecodecError(f"mapped netlist has cells that are not in {lib.name}: {unknown}")
    return {"logic_um2": logic, "ff_um2": ff, "logic_cells": n_logic, "ff_cells": n_ff}

