"""Static timing of a mapped netlist (Yosys write_json) with the liberty NLDM tables.

* Net load = sum of the sink pins' capacitance + the library's default wire-load model for the net's fanout
  (Library.wire_cap; no wire load when the library defines none, e.g. gf180mcu) + `output_load_pf` on
  top-level outputs.
* Rise and fall arrival times and slews are propagated separately through each timing arc, honouring
  timing_sense (positive_unate, negative_unate, non_unate); delay = cell_rise/cell_fall(input slew, load),
  output slew = rise_transition/fall_transition(input slew, load), tables interpolated bilinearly.
* Nets with more than MAX_FANOUT sinks (not clocks) get a modelled buffer tree, as placement-time repair
  would build: ceil(log8(fanout)) - 1 stages (at least 1) of the fastest library buffer, each driving 8 sinks;
  the driver sees the first stage, the stage delays/slews come from the buffer's tables. Their count and
  area are reported (buffer_trees) and their input capacitance is added to the net's switched load.
* Ideal clock (no skew, slew `clock_slew_ns`). Start points: flip-flop outputs (clk->Q arc at the clock
  slew), top-level inputs (arrival 0, slew `input_slew_ns`) and macro read data (the memory model's access
  time). End points: flip-flop data pins (+ setup from the setup_rising tables), macro inputs (+ the model's
  setup) and top-level outputs. Critical delay = max(arrival + setup); fmax = 1 / delay.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from base.errors import EdgecodecError

from hw.asic.liberty import Cell, Library, cells_with_table, clock_pins

MACRO = "$mem_v2"


MAX_FANOUT = 16          # nets with more sinks get a modelled buffer tree (as a placer's repair_design would)
TREE_FANOUT = 8          # sinks per buffer in that tree


@dataclass
class NetGraph:
    drivers: dict          # bit -> (cell, pin) ; ("", port) for top-level inputs
    sinks: dict            # bit -> [(cell, pin)] ; ("", port) for top-level outputs
    cells: dict            # name -> json cell
    clock_bits: set        # bits feeding clock / enable pins of sequential cells and macros
    load: dict             # bit -> pF: all sink pins + wire load (switched capacitance, for power)
    drive_load: dict       # bit -> pF the driver sees (the first buffer stage for a buffered net)
    trees: dict            # bit -> (stages, buffers) of the modelled buffer tree
    buffer: object = None  # the liberty buffer cell of the trees


def tree_buffer(lib: Library):
    """The usable buffer with the least delay driving TREE_FANOUT typical pins + their wire load."""
    bufs = [c for c in cells_with_table(lib, 1, (0, 1)) if c.pins[c.outputs[0]].timing]
    if not bufs:
        return None
    load = TREE_FANOUT * bufs[0].pins[bufs[0].inputs[0]].capacitance + lib.wire_cap(TREE_FANOUT)

    def delay(c):
        arc = c.pins[c.outputs[0]].timing[0]
        return max(t(0.1, load) for t in (arc.cell_rise, arc.cell_fall) if t is not None) + 1e-6 * c.area
    return min(bufs, key=lambda c: (delay(c), c.name))


def pin_direction(lib: Library, cell: dict, pin: str) -> str:
    """'input' or 'output' of a cell pin: from the liberty (abc's cells carry no port_directions in the JSON)."""
    lc = lib.cells.get(cell["type"])
    if lc is not None and pin in lc.pins:
        return lc.pins[pin].direction
    d = cell.get("port_directions", {}).get(pin)
    if d:
        return d
    return "output" if cell["type"] == MACRO and pin == "RD_DATA" else "input"


def _pin_cap(lib: Library, cell_type: str, pin: str, macro_pin_cap: float) -> float:
    if cell_type == MACRO:
        return macro_pin_cap
    c = lib.cells.get(cell_type)
    if c is None or pin not in c.pins:
        return 0.0
    return c.pins[pin].capacitance


def build_graph(netlist: dict, lib: Library, output_load_pf: float = 0.0, macro_pin_cap: float | None = None
                ) -> NetGraph:
    if macro_pin_cap is None:
        caps = [c.pins[p].capacitance for c in lib.cells.values() if c.sequential == "ff" for p in c.inputs]
        macro_pin_cap = min(caps) if caps else 0.0
    drivers, sinks, clock_bits = {}, {}, set()
    for pname, port in netlist["ports"].items():
        for b in port["bits"]:
            if isinstance(b, str):
                continue
            if port["direction"] == "input":
                drivers[b] = ("", pname)
            else:
                sinks.setdefault(b, []).append(("", pname))
    for cname, cell in netlist["cells"].items():
        t = cell["type"]
        if t == "$scopeinfo":
            continue
        lc = lib.cells.get(t)
        if lc is None and t != MACRO:
            raise EdgecodecError(f"cell {cname} of type {t} is not in library {lib.name}")
        clk = clock_pins(lc) if lc is not None and lc.sequential else set()
        for pin, bits in cell["connections"].items():
            direction = pin_direction(lib, cell, pin)
            for b in bits:
                if isinstance(b, str):
                    continue
                if direction == "output":
                    drivers[b] = (cname, pin)
                else:
                    sinks.setdefault(b, []).append((cname, pin))
                    if pin in clk or (t == MACRO and pin.endswith("CLK")):
                        clock_bits.add(b)
    load, drive_load, trees = {}, {}, {}
    buf = tree_buffer(lib)
    buf_cap = buf.pins[buf.inputs[0]].capacitance if buf else 0.0
    for b in set(drivers) | set(sinks):
        s = sinks.get(b, [])
        c = sum(_pin_cap(lib, netlist["cells"][n]["type"], p, macro_pin_cap) if n else output_load_pf
                for n, p in s)
        load[b] = c + lib.wire_cap(len(s))
        drive_load[b] = load[b]
        if buf is not None and len(s) > MAX_FANOUT and b not in clock_bits:
            stages = math.ceil(math.log(len(s)) / math.log(TREE_FANOUT)) - 1
            stages = max(stages, 1)
            nbuf = sum(math.ceil(len(s) / TREE_FANOUT ** k) for k in range(1, stages + 1))
            trees[b] = (stages, nbuf)
            first = math.ceil(len(s) / TREE_FANOUT ** stages)
            drive_load[b] = first * buf_cap + lib.wire_cap(first)
            load[b] += nbuf * buf_cap
    return NetGraph(drivers, sinks, netlist["cells"], clock_bits, load, drive_load, trees, buf)


def _eval_constraint(t, data_slew: float, clock_slew: float) -> float:
    vals = []
    for v in t.variables[:2]:
        vals.append(clock_slew if "related" in v else data_slew)
    while len(vals) < 2:
        vals.append(0.0)
    return t(vals[0], vals[1])


def setup_time(cell: Cell, pin: str, data_slew: float, clock_slew: float) -> float:
    worst = 0.0
    for arc in cell.pins[pin].timing:
        if arc.timing_type.startswith("setup"):
            for t in (arc.rise_constraint, arc.fall_constraint):
                if t is not None:
                    worst = max(worst, _eval_constraint(t, data_slew, clock_slew))
    return worst


def analyse(netlist: dict, lib: Library, input_slew_ns: float = 0.1, clock_slew_ns: float = 0.1,
            macro_access_ns: float | dict = 0.0, macro_setup_ns: float | dict = 0.0, output_load_pf: float = 0.0,
            graph: NetGraph | None = None, path_cells: int = 8) -> dict:
    """Critical path of `netlist` -> {critical_path_ns, fmax_mhz, start, end, path[...], slew{bit: ns}}."""
    g = graph or build_graph(netlist, lib, output_load_pf)
    cells = {n: c for n, c in g.cells.items() if c["type"] != "$scopeinfo"}
    arr: dict = {}     # bit -> [rise, fall]
    slew: dict = {}    # bit -> [rise, fall]
    prev: dict = {}    # (bit, edge) -> (bit_in, edge_in, cell)

    def per_macro(value, cname):
        return value.get(cells[cname].get("attributes", {}).get("MEMID", cname), 0.0) \
            if isinstance(value, dict) else value

    # start points
    for b, (cname, pin) in g.drivers.items():
        if not cname:
            if b not in g.clock_bits:
                arr[b], slew[b] = [0.0, 0.0], [input_slew_ns, input_slew_ns]
            continue
        t = cells[cname]["type"]
        if t == MACRO:
            a = per_macro(macro_access_ns, cname)
            arr[b], slew[b] = [a, a], [input_slew_ns, input_slew_ns]
            continue
        lc = lib.cells[t]
        if lc.sequential:
            r = f = None
            sr = sf = input_slew_ns
            for arc in lc.pins[pin].timing:
                if arc.timing_type in ("rising_edge", "falling_edge") or (lc.sequential == "latch" and
                                                                         arc.related_pin in clock_pins(lc)):
                    if arc.cell_rise:
                        r = max(r or 0.0, arc.cell_rise(clock_slew_ns, g.drive_load[b]))
                        sr = arc.rise_transition(clock_slew_ns, g.drive_load[b]) if arc.rise_transition else sr
                    if arc.cell_fall:
                        f = max(f or 0.0, arc.cell_fall(clock_slew_ns, g.drive_load[b]))
                        sf = arc.fall_transition(clock_slew_ns, g.drive_load[b]) if arc.fall_transition else sf
            arr[b], slew[b] = [r or 0.0, f or 0.0], [sr, sf]
            _tree(g, b, arr, slew)
    # combinational cells in topological order
    comb = {n: c for n, c in cells.items() if c["type"] != MACRO and not lib.cells[c["type"]].sequential}
    pending, users = {}, {}
    for n, c in comb.items():
        k = 0
        for pin, bits in c["connections"].items():
            if pin_direction(lib, c, pin) == "output":
                continue
            for b in bits:
                if isinstance(b, str):
                    continue
                d = g.drivers.get(b)
                if d and d[0] in comb:
                    k += 1
                    users.setdefault(b, []).append(n)
        pending[n] = k
    ready = deque(sorted(n for n, k in pending.items() if k == 0))
    done = 0
    while ready:
        n = ready.popleft()
        done += 1
        c = comb[n]
        lc = lib.cells[c["type"]]
        for opin, obits in c["connections"].items():
            if pin_direction(lib, c, opin) != "output":
                continue
            ob = obits[0]
            if isinstance(ob, str):
                continue
            load = g.drive_load.get(ob, 0.0)
            best = [None, None]
            bslew = [0.0, 0.0]
            for arc in lc.pins[opin].timing:
                ibits = c["connections"].get(arc.related_pin)
                if not ibits or isinstance(ibits[0], str) or ibits[0] not in arr:
                    continue
                ib = ibits[0]
                sense = arc.timing_sense or "non_unate"
                for oe, table, ttable in ((0, arc.cell_rise, arc.rise_transition),
                                          (1, arc.cell_fall, arc.fall_transition)):
                    if table is None:
                        continue
                    ies = [oe] if sense == "positive_unate" else [1 - oe] if sense == "negative_unate" else [0, 1]
                    for ie in ies:
                        s_in = slew[ib][ie]
                        t = arr[ib][ie] + table(s_in, load)
                        if best[oe] is None or t > best[oe]:
                            best[oe] = t
                            bslew[oe] = ttable(s_in, load) if ttable else s_in
                            prev[(ob, oe)] = (ib, ie, n)
            if best[0] is not None or best[1] is not None:
                arr[ob] = [best[0] if best[0] is not None else best[1], best[1] if best[1] is not None else best[0]]
                slew[ob] = bslew
                _tree(g, ob, arr, slew)
            for u in users.get(ob, []):
                pending[u] -= 1
                if pending[u] == 0:
                    ready.append(u)
    if done != len(comb):
        raise EdgecodecError(f"combinational loop: {len(comb) - done} cells could not be ordered")
    # end points
    worst, worst_end = 0.0, None
    for b, sl in g.sinks.items():
        if b not in arr or b in g.clock_bits:
            continue
        for cname, pin in sl:
            if not cname:
                setup = 0.0
            elif cells[cname]["type"] == MACRO:
                setup = per_macro(macro_setup_ns, cname)
            else:
                lc = lib.cells[cells[cname]["type"]]
                if not lc.sequential:
                    continue
                if pin in clock_pins(lc):
                    continue
                setup = setup_time(lc, pin, max(slew[b]), clock_slew_ns)
            for e in (0, 1):
                total = arr[b][e] + setup
                if total > worst:
                    worst, worst_end = total, (b, e, cname or "<output>", pin, setup)
    path = []
    if worst_end is not None:
        b, e = worst_end[0], worst_end[1]
        while (b, e) in prev:
            ib, ie, cname = prev[(b, e)]
            path.append({"cell": cname, "type": cells[cname]["type"], "arrival_ns": round(arr[b][e], 4),
                         "edge": "rise" if e == 0 else "fall"})
            b, e = ib, ie
        start = g.drivers.get(b, ("", "?"))
        start_desc = (f"{start[0]} ({cells[start[0]]['type']}) {start[1]}" if start[0] else f"input {start[1]}")
        path.reverse()
    else:
        start_desc = ""
    names = _bit_names(netlist)
    end = worst_end
    return {
        "critical_path_ns": round(worst, 4),
        "fmax_mhz": round(1000.0 / worst, 2) if worst > 0 else None,
        "start": start_desc,
        "end": (f"{end[2]} ({cells[end[2]]['type'] if end[2] in cells else 'port'}) pin {end[3]} "
                f"[net {names.get(end[0], end[0])}], setup {end[4]:.4f} ns") if end else "",
        "logic_levels": len(path),
        "path": path[:path_cells // 2] + ([{"cell": "..."}] if len(path) > path_cells else []) +
        path[-(path_cells - path_cells // 2):] if len(path) > path_cells else path,
        "slew": {b: max(s) for b, s in slew.items()},
        "buffer_trees": {"nets": len(g.trees), "buffers": sum(n for _, n in g.trees.values()),
                         "buffer_cell": g.buffer.name if g.buffer else None,
                         "area_um2": sum(n for _, n in g.trees.values()) * (g.buffer.area if g.buffer else 0.0)},
        "graph": g,
    }


def _tree(g: NetGraph, b, arr: dict, slew: dict) -> None:
    """Add the modelled buffer tree of a high-fanout net: `stages` buffers, each driving TREE_FANOUT pins."""
    if b not in g.trees:
        return
    stages, _ = g.trees[b]
    buf = g.buffer
    arc = buf.pins[buf.outputs[0]].timing[0]
    n_sinks = len(g.sinks[b])
    per = min(TREE_FANOUT, n_sinks)
    stage_load = (g.load[b] - g.trees[b][1] * buf.pins[buf.inputs[0]].capacitance) / max(n_sinks, 1) * per
    for e in (0, 1):
        s = slew[b][e]
        for _ in range(stages):
            t_d = arc.cell_rise if e == 0 else arc.cell_fall
            t_s = arc.rise_transition if e == 0 else arc.fall_transition
            arr[b][e] += t_d(s, stage_load)
            s = t_s(s, stage_load)
        slew[b][e] = s


def _bit_names(netlist: dict) -> dict:
    names = {}
    for name, net in netlist.get("netnames", {}).items():
        if net.get("hide_name"):
            continue
        for i, b in enumerate(net["bits"]):
            if not isinstance(b, str) and b not in names:
                names[b] = f"{name}[{i}]" if len(net["bits"]) > 1 else name
    return names
