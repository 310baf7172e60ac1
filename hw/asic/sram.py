"""Area, leakage, access energy and timing of the large writable memories, kept out of logic synthesis.

Model: a standard-cell register file ("latch RAM", the structure of DFFRAM-style memories in open PDKs), built
only from cells of the same liberty file, so the three libraries are treated alike and every number is
traceable to the library. No SRAM compiler output ships with the project for gf180mcu or sg13g2, and a
per-bit figure taken from elsewhere could not be checked here; a compiled 6T SRAM macro would be denser than
this model, so its area is an upper bound for a macro and close to what a standard-cell flow would build.

For a memory of W words x B bits with one synchronous read port and one write port:

    storage      W * B   latches (smallest transparent-high latch with a function)
    write path   B       DFFs (write-data capture) + W word-enable gates (AND2) + decoder (W * (ceil(log2 W) - 1) AND2)
    read path    B * (W - 1) MUX2 (read mux tree) + B DFFs (synchronous read register)

Energy per access (pJ), from the same cells' internal_power tables at the library's smallest slew and a load
of one input pin of the next cell, plus 1/2 C V^2 on the switched nets:

    write   B * (toggle fraction a) * (latch D energy) + the enabled word's latch enable (B latch gates)
            + decoder path (ceil(log2 W) AND2 toggles) + B DFF clock energies
    read    B * a * (ceil(log2 W) mux levels) mux transitions + B DFF clock energies

with a = 0.5 (random data). Leakage = sum of the cells' cell_leakage_power. Read access time =
clk->Q of the address register (4-pin load: the select fan-out is assumed buffered) + ceil(log2 W) MUX2 delays
(all from the NLDM tables at a one-pin load).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from base.errors import EdgecodecError

from hw.asic.liberty import Cell, Library, eval_function, has_function, truth_table

DATA_TOGGLE = 0.5


def _smallest(lib: Library, pred, what: str) -> Cell:
    cands = [c for c in lib.cells.values() if c.usable and pred(c)]
    if not cands:
        raise EdgecodecError(f"library {lib.name} has no usable {what} cell for the register-file model")
    return min(cands, key=lambda c: (c.area, c.name))


def basic_cells(lib: Library) -> dict[str, Cell]:
    """The smallest AND2, MUX2, DFF (D, CLK -> Q) and latch of the library."""
    and2 = _smallest(lib, lambda c: has_function(c, 2, lambda ins, f: truth_table(f, ins) == (0, 0, 0, 1)), "AND2")

    def is_mux(ins, fn):
        # find the select input: out = s ? b : a for the other two
        for s in ins:
            a, b = [p for p in ins if p != s]
            ok = all(eval_function(fn, {s: sv, a: av, b: bv}) == bool(bv if sv else av) for sv in (0, 1)
                     for av in (0, 1) for bv in (0, 1))
            ok2 = all(eval_function(fn, {s: sv, a: av, b: bv}) == bool(av if sv else bv) for sv in (0, 1)
                      for av in (0, 1) for bv in (0, 1))
            if ok or ok2:
                return True
        return False

    mux2 = _smallest(lib, lambda c: has_function(c, 3, is_mux), "MUX2")

    def plain(c: Cell, kind: str, strict: bool) -> bool:
        """A D flip-flop / latch with positive clock or enable; strict: no clear/preset/scan pins either."""
        info = c.seq_info
        trig = info.get("clocked_on" if kind == "ff" else "enable", "!")
        if c.sequential != kind or "!" in trig or "'" in trig or "(" in trig:
            return False
        if not any(c.pins[o].function for o in c.outputs):
            return False
        if strict:
            return len(c.inputs) == 2 and not any(k in info for k in ("clear", "preset"))
        return info.get("next_state", info.get("data_in", "")).strip() in c.inputs

    def seq(kind: str, what: str) -> Cell:
        try:
            return _smallest(lib, lambda c: plain(c, kind, True), what)
        except EdgecodecError:   # e.g. sg13g2 has only flip-flops with an asynchronous reset
            return _smallest(lib, lambda c: plain(c, kind, False), what)

    dff = seq("ff", "DFF")
    latch = seq("latch", "latch")
    return {"and2": and2, "mux2": mux2, "dff": dff, "latch": latch}


def _pin_energy(cell: Cell, lib: Library, out_only: bool = True) -> float:
    """Mean internal energy (pJ) per output transition at the smallest table slew and a one-pin load."""
    load = _in_cap(cell)
    vals = []
    for o in cell.outputs:
        for arc in cell.pins[o].power:
            for t in (arc.rise_power, arc.fall_power):
                if t is not None:
                    vals.append(t(t.slew[0], load))
    e = sum(vals) / len(vals) if vals else 0.0
    return e + 0.5 * load * lib.voltage ** 2


def _clock_pin_energy(cell: Cell) -> float:
    """Mean internal energy (pJ) per clock/enable-pin transition (input-pin internal_power groups)."""
    vals = []
    for p in cell.inputs:
        pin = cell.pins[p]
        if not pin.clock and cell.sequential != "latch":
            continue
        for arc in pin.power:
            for t in (arc.rise_power, arc.fall_power):
                if t is not None:
                    vals.append(t(t.slew[0], 0.0))
    return sum(vals) / len(vals) if vals else 0.0


def _in_cap(cell: Cell) -> float:
    caps = [cell.pins[i].capacitance for i in cell.inputs]
    return sum(caps) / len(caps) if caps else 0.0


def _delay(cell: Cell, load: float, slew: float | None = None) -> float:
    worst = 0.0
    for o in cell.outputs:
        for arc in cell.pins[o].timing:
            for t in (arc.cell_rise, arc.cell_fall):
                if t is not None:
                    worst = max(worst, t(t.slew[0] if slew is None else slew, load))
    return worst


@dataclass
class MemoryModel:
    name: str
    words: int
    width: int
    area_um2: float
    leakage_nw: float
    read_pj: float
    write_pj: float
    access_ns: float
    setup_ns: float
    cells: dict

    @property
    def bits(self) -> int:
        return self.words * self.width

    def as_dict(self) -> dict:
        return {"name": self.name, "words": self.words, "width": self.width, "bits": self.bits,
                "area_um2": round(self.area_um2, 1), "leakage_nw": round(self.leakage_nw, 3),
                "read_pj": round(self.read_pj, 4), "write_pj": round(self.write_pj, 4),
                "access_ns": round(self.access_ns, 4), "model": "standard-cell latch register file",
                "cells": self.cells}


def register_file(lib: Library, name: str, words: int, width: int) -> MemoryModel:
    """The register-file model above for one W x B memory with 1 read + 1 write port."""
    if words < 1 or width < 1:
        raise EdgecodecError(f"memory {name}: words and width must be >= 1 (got {words} x {width})")
    c = basic_cells(lib)
    levels = max(1, math.ceil(math.log2(words))) if words > 1 else 0
    counts = {
        c["latch"].name: words * width,
        c["dff"].name: 2 * width + levels,                  # write data + read data + read address registers
        c["and2"].name: words + words * max(levels - 1, 0),  # word enables + decoder
        c["mux2"].name: width * (words - 1),
    }
    merged: dict[str, int] = {}
    for k, v in counts.items():
        merged[k] = merged.get(k, 0) + v
    area = sum(lib.cells[k].area * v for k, v in merged.items())
    leak = sum(lib.cells[k].leakage_nw * v for k, v in merged.items())
    e_latch = _pin_energy(c["latch"], lib)
    e_latch_en = _clock_pin_energy(c["latch"])
    e_and = _pin_energy(c["and2"], lib)
    e_mux = _pin_energy(c["mux2"], lib)
    e_dff_clk = _clock_pin_energy(c["dff"])
    e_dff_q = _pin_energy(c["dff"], lib)
    write = (width * DATA_TOGGLE * e_latch + 2 * width * e_latch_en + 2 * levels * e_and
             + width * (2 * e_dff_clk + DATA_TOGGLE * e_dff_q))
    read = (width * DATA_TOGGLE * levels * e_mux + width * (2 * e_dff_clk + DATA_TOGGLE * e_dff_q)
            + levels * (2 * e_dff_clk + DATA_TOGGLE * e_dff_q))
    mux_load = _in_cap(c["mux2"])
    access = _delay(c["dff"], 4 * mux_load) + levels * _delay(c["mux2"], mux_load)
    setup = 0.0
    for p in c["dff"].inputs:
        for arc in c["dff"].pins[p].timing:
            if arc.timing_type.startswith("setup"):
                for t in (arc.rise_constraint, arc.fall_constraint):
                    if t is not None:
                        setup = max(setup, t(t.slew[0], t.load[0]))
    return MemoryModel(name, words, width, area, leak, read, write, access, setup, merged)
