"""Power of a mapped netlist from recorded switching activity (VCD) and the liberty tables.

    leakage    = sum of cell_leakage_power (+ the memory model's leakage)
    internal   = sum over output-pin transitions of the cell's internal_power (mean of rise_power and
                 fall_power over its arcs, at the net's propagated slew and its load)
                 + sum over input-pin transitions (e.g. flip-flop clock pins) of the input pin's internal_power
    switching  = sum over net transitions of 1/2 * C_net * V^2  (C_net = sink pins + wire-load estimate)
    memory     = reads * E_read + writes * E_write of the macro model, accesses counted at rising clock edges
    power      = energy in the window / (window cycles * clock period)

Units: pJ for energy, ns for time, so pJ / ns = mW.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from base.errors import EdgecodecError

from hw.asic.liberty import Cell, Library
from hw.asic.sta import MACRO, NetGraph, pin_direction


@dataclass
class Activity:
    toggles: dict                 # bit -> 0<->1 transitions in the window
    cycles: int                   # rising clock edges in the window
    samples: dict = field(default_factory=dict)   # sample group -> rising edges where any bit was 1
    signals: int = 0


def read_vcd(path: Path, netlist: dict, top: str, clock: str = "clk", sample: dict | None = None,
             start_ns: float = 0.0) -> Activity:
    """Count 0<->1 transitions per netlist bit from a VCD of the netlist's top-level nets.

    Only variables declared directly in the `top` scope are read (cell-model internals are ignored); their
    names are matched to the netlist's netnames. `sample` = {group: [bits]}: for each group, the number of
    rising edges of `clock` at which any of the bits was 1 just before the edge (memory enables).
    Transitions from or to x/z are not counted. Changes before `start_ns` are not counted.
    """
    name_bits = {}
    for name, net in netlist["netnames"].items():
        name_bits[name] = net["bits"]
    for name, port in netlist["ports"].items():
        name_bits.setdefault(name, port["bits"])
    sample = sample or {}
    watch = {}
    for g, bits in sample.items():
        for b in bits:
            if not isinstance(b, str):
                watch.setdefault(b, []).append(g)
    ids: dict = {}          # vcd id -> list of bits (LSB first)
    seen: set = set()
    scope: list = []
    clk_id = None
    path = Path(path)
    if not path.exists():
        raise EdgecodecError(f"VCD {path} does not exist (the gate-level simulation wrote no waves)")
    toggles: dict = {}
    cur: dict = {}          # vcd id -> value string (MSB first, as in the file)
    bitval: dict = {}       # watched bit -> '0'/'1'/'x'
    before: dict = {}
    counts = {g: 0 for g in sample}
    cycles = 0
    clk_rose = False
    now = 0.0
    with open(path, "r", errors="replace") as f:
        for line in f:
            if line.startswith("$scope"):
                scope.append(line.split()[2])
                continue
            if line.startswith("$upscope"):
                scope.pop()
                continue
            if line.startswith("$var"):
                parts = line.split()
                width, vid, ref = int(parts[2]), parts[3], parts[4]
                if scope and scope[-1] == top:
                    name = ref.lstrip("\\")
                    if name == clock:
                        clk_id = vid
                    bits = name_bits.get(name)
                    if bits is not None and len(bits) == width:
                        # a bit seen under an earlier name (an alias) is counted there only
                        bits = [b if isinstance(b, str) or b not in seen else "x" for b in bits]
                        seen.update(b for b in bits if not isinstance(b, str))
                        ids.setdefault(vid, []).extend([bits])
                continue
            if line.startswith("$enddefinitions"):
                break
        if clk_id is None:
            raise EdgecodecError(f"VCD {path}: no clock '{clock}' in scope '{top}'")

        def apply(vid, val):
            nonlocal clk_rose
            if vid == clk_id and val == "1" and cur.get(vid) == "0" and now >= start_ns:
                clk_rose = True
            old = cur.get(vid)
            cur[vid] = val
            groups = ids.get(vid)
            if groups is None:
                return
            width = len(groups[0])
            if len(val) < width:
                val = val.rjust(width, "0" if val[0] in "01" else val[0])
            if old is not None and len(old) < width:
                old = old.rjust(width, "0" if old[0] in "01" else old[0])
            for bits in groups:
                for k, b in enumerate(bits):
                    if isinstance(b, str):
                        continue
                    nv = val[width - 1 - k]
                    if b in watch:
                        if b not in before:
                            before[b] = bitval.get(b, "x")
                        bitval[b] = nv
                    if old is None or now < start_ns:
                        continue
                    ov = old[width - 1 - k]
                    if ov != nv and ov in "01" and nv in "01":
                        toggles[b] = toggles.get(b, 0) + 1

        def end_of_step():
            nonlocal cycles, clk_rose
            if clk_rose:
                cycles += 1
                for g, bits in sample.items():
                    if any(before.get(b, bitval.get(b, "x")) == "1" for b in bits if not isinstance(b, str)):
                        counts[g] += 1
            clk_rose = False
            before.clear()

        for line in f:
            c = line[:1]
            if c == "#":
                end_of_step()
                now = float(line[1:])
            elif c in "01xzXZ":
                apply(line[1:].strip(), c.lower())
            elif c in "bB":
                val, vid = line[1:].split()
                apply(vid, val.lower())
            elif c in "rR":
                continue
        end_of_step()
    return Activity(toggles, cycles, counts, len(ids))


def _mean_energy(arcs, slew: float, load: float) -> float:
    vals = []
    for arc in arcs:
        for t in (arc.rise_power, arc.fall_power):
            if t is not None:
                vals.append(t(slew, load))
    return sum(vals) / len(vals) if vals else 0.0


def compute(netlist: dict, lib: Library, graph: NetGraph, activity: Activity, clock_mhz: float,
            slew: dict | None = None, default_slew_ns: float = 0.1, memory_models: dict | None = None,
            memory_groups: dict | None = None) -> dict:
    """Power in mW from `activity` (toggles over activity.cycles clock cycles) at `clock_mhz`.

    memory_models: {memid: MemoryModel}; memory_groups: {memid: (read sample group, write sample group)}.
    """
    if activity.cycles <= 0:
        raise EdgecodecError("activity window has no clock cycles")
    if clock_mhz <= 0:
        raise EdgecodecError(f"clock must be > 0 MHz (got {clock_mhz})")
    slew = slew or {}
    v2 = lib.voltage ** 2
    tg = activity.toggles
    e_sw = sum(n * 0.5 * graph.load.get(b, 0.0) * v2 for b, n in tg.items())
    e_int = 0.0
    leak_nw = 0.0
    for cname, cell in netlist["cells"].items():
        t = cell["type"]
        if t in (MACRO, "$scopeinfo"):
            continue
        lc: Cell = lib.cells[t]
        leak_nw += lc.leakage_nw
        conns = cell["connections"]
        for pin, bits in conns.items():
            b = bits[0]
            if isinstance(b, str) or b not in tg:
                continue
            p = lc.pins.get(pin)
            if p is None or not p.power:
                continue
            n = tg[b]
            if pin_direction(lib, cell, pin) == "output":
                # input slew of the arc: the related pin's net slew (mean over the arcs' related pins)
                rel = [conns[a.related_pin][0] for a in p.power if a.related_pin in conns]
                s_in = [slew.get(rb, default_slew_ns) for rb in rel if not isinstance(rb, str)]
                s = sum(s_in) / len(s_in) if s_in else default_slew_ns
                e_int += n * _mean_energy(p.power, s, graph.load.get(b, 0.0))
            else:
                e_int += n * _mean_energy(p.power, slew.get(b, default_slew_ns), 0.0)
    period_ns = 1000.0 / clock_mhz
    window_ns = activity.cycles * period_ns
    mem = {}
    e_mem = 0.0
    mem_leak_nw = 0.0
    for memid, model in (memory_models or {}).items():
        rgrp, wgrp = (memory_groups or {}).get(memid, (None, None))
        reads = activity.samples.get(rgrp, 0) if rgrp else 0
        writes = activity.samples.get(wgrp, 0) if wgrp else 0
        e = reads * model.read_pj + writes * model.write_pj
        e_mem += e
        mem_leak_nw += model.leakage_nw
        mem[memid] = {"reads": reads, "writes": writes, "reads_per_cycle": round(reads / activity.cycles, 4),
                      "writes_per_cycle": round(writes / activity.cycles, 4), "energy_pj": round(e, 3)}
    leakage_mw = (leak_nw + mem_leak_nw) * 1e-6
    res = {
        "leakage": leakage_mw,
        "leakage_logic": leak_nw * 1e-6,
        "leakage_memory": mem_leak_nw * 1e-6,
        "internal": e_int / window_ns,
        "switching": e_sw / window_ns,
        "memory": e_mem / window_ns,
    }
    res["total"] = res["leakage"] + res["internal"] + res["switching"] + res["memory"]
    nets = max(1, len(graph.load))
    return {"power_mw": res, "memory_access": mem, "energy_pj_per_cycle": {
        "internal": e_int / activity.cycles, "switching": e_sw / activity.cycles, "memory": e_mem / activity.cycles},
        "mean_toggle_rate": sum(tg.values()) / nets / activity.cycles}
