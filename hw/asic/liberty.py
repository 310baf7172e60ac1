"""Liberty (.lib / .lib.gz) reader: cell area, leakage, pin capacitance, NLDM timing and internal-power tables.

A small hand-written parser (regex tokeniser + group stack): the three shipped libraries (1.4 MB to 20 MB of
text) parse in about 1 to 6 s; the result of each file is cached per process. All numbers are converted to
one set of units on the way in, whatever the file's header says:

    time ns, capacitance pF, voltage V, leakage power nW, internal energy pJ (= pF * V^2), area um^2.

Liberty internal_power tables hold energy per transition in (capacitive_load_unit * voltage_unit^2).
"""

from __future__ import annotations

import bisect
import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

from base.errors import EdgecodecError
from base.paths import LIBERTY_DIR

LIBRARIES = {
    "sky130hd": "sky130hd_tt.lib.gz",
    "gf180mcu": "gf180mcu_fd_sc_mcu7t5v0__tt_025C_5v00.lib.gz",
    "sg13g2": "sg13g2_stdcell_typ_1p20V_25C.lib.gz",
}
DEFAULT_LIBRARY = "sky130hd"
# Cells with a function that a logic netlist should still not use: sky130's power-management (lpflow_*:
# isolation, retention, keep-alive buffers), probe cells and the delay cells kept for hold fixing.
EXCLUDE = {"sky130hd": ("__lpflow_", "__probe_", "__dlygate", "__dlymetal", "__clkdlybuf")}

def library_path(library: str | Path) -> Path:
    """A library name (sky130hd, gf180mcu, sg13g2) or a path to a .lib/.lib.gz file -> an existing file."""
    name = str(library)
    if name in LIBRARIES:
        path = LIBERTY_DIR / LIBRARIES[name]
        if not path.exists():
            raise EdgecodecError(f"liberty file for '{name}' not found at {path} (the repository ships it in data/liberty/)")
        return path
    path = Path(name)
    if path.suffix in (".lib", ".gz") and path.exists():
        return path
    raise EdgecodecError(f"unknown liberty library '{name}'; choose one of {', '.join(LIBRARIES)} "
                    f"(or give the path of an existing .lib/.lib.gz file)")


# ----------------------------------------------------------------------------------------------- parsing

@dataclass
class Group:
    kind: str
    args: list
    attrs: dict = field(default_factory=dict)      # simple "name : value ;" (last wins)
    complex: dict = field(default_factory=dict)    # "name ( a, b ) ;" -> list of arg lists
    groups: list = field(default_factory=list)

    def sub(self, kind: str) -> list["Group"]:
        return [g for g in self.groups if g.kind == kind]

    def first(self, kind: str) -> "Group | None":
        for g in self.groups:
            if g.kind == kind:
                return g
        return None


_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s(){}:;,"]+)|([(){}:;,])', re.S)
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def parse_text(text: str) -> Group:
    """Parse liberty text into a tree of Groups; the root is the `library` group."""
    text = _COMMENT.sub(" ", text).replace("\\\n", " ").replace("\\\r\n", " ")
    tokens = [(m.group(1) if m.group(1) is not None else (m.group(2) or m.group(3)), m.group(1) is not None)
              for m in _TOKEN.finditer(text)]
    root = Group("__root__", [])
    stack = [root]
    i, n = 0, len(tokens)
    while i < n:
        tok, quoted = tokens[i]
        if tok == "}" and not quoted:
            if len(stack) == 1:
                raise EdgecodecError("liberty: unbalanced '}'")
            stack.pop()
            i += 1
            if i < n and tokens[i][0] == ";" and not tokens[i][1]:
                i += 1
            continue
        if tok == ";" and not quoted:
            i += 1
            continue
        name = tok
        if i + 1 >= n:
            break
        nxt = tokens[i + 1][0]
        if nxt == ":":
            # simple attribute: value may be several tokens up to ';' (e.g. an unquoted expression)
            j = i + 2
            vals = []
            while j < n and not (tokens[j][0] in (";", "}") and not tokens[j][1]):
                vals.append(tokens[j][0])
                j += 1
                # some files omit the ';' at line ends: a following "name :" starts the next statement
                if j + 1 < n and tokens[j + 1][0] == ":" and not tokens[j][1] and vals:
                    break
            stack[-1].attrs[name] = " ".join(vals)
            i = j + 1 if j < n and tokens[j][0] == ";" else j
        elif nxt == "(":
            j = i + 2
            args = []
            while j < n and not (tokens[j][0] == ")" and not tokens[j][1]):
                if not (tokens[j][0] == "," and not tokens[j][1]):
                    args.append(tokens[j][0])
                j += 1
            j += 1
            if j < n and tokens[j][0] == "{" and not tokens[j][1]:
                g = Group(name, args)
                stack[-1].groups.append(g)
                stack.append(g)
                i = j + 1
            else:
                stack[-1].complex.setdefault(name, []).append(args)
                i = j + 1 if j < n and tokens[j][0] == ";" else j
        else:
            raise EdgecodecError(f"liberty: cannot parse near token {i}: {tok!r} {nxt!r}")
    lib = root.first("library")
    if lib is None:
        raise EdgecodecError("liberty: no library group found")
    return lib


# ------------------------------------------------------------------------------------------------ model

_SCALE = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3}


def _unit(text: str, base: str) -> float:
    """'1ns' -> 1e-9 (for base 's'); '10ps' -> 1e-11; '1nW' -> 1e-9."""
    m = re.fullmatch(rf"\s*([0-9.eE+-]*)\s*([fpnumk]?){base}\s*", text, re.I if base == "V" else 0)
    if not m:
        raise EdgecodecError(f"liberty: cannot read unit '{text}' (expected a multiple of {base})")
    mult = float(m.group(1)) if m.group(1) else 1.0
    return mult * _SCALE[m.group(2)]


@dataclass
class Table:
    """A 1-D or 2-D lookup table indexed by (input slew [ns], output load [pF]); values in library units."""
    slew: list[float]
    load: list[float]
    values: list[list[float]]   # values[slew_index][load_index]
    variables: tuple = ()       # the template's (variable_1, variable_2) as written, after any transpose

    def __call__(self, slew: float, load: float) -> float:
        return _interp2(self.slew, self.load, self.values, slew, load)


def _interp1(xs, x):
    """Index pair and weight for linear interpolation; extrapolates linearly outside the table."""
    if len(xs) == 1:
        return 0, 0, 0.0
    k = bisect.bisect_right(xs, x) - 1
    k = min(max(k, 0), len(xs) - 2)
    x0, x1 = xs[k], xs[k + 1]
    return k, k + 1, (x - x0) / (x1 - x0) if x1 != x0 else 0.0


def _interp2(xs, ys, v, x, y):
    i0, i1, a = _interp1(xs, x)
    j0, j1, b = _interp1(ys, y)
    v00, v01, v10, v11 = v[i0][j0], v[i0][j1], v[i1][j0], v[i1][j1]
    return (1 - a) * ((1 - b) * v00 + b * v01) + a * ((1 - b) * v10 + b * v11)


@dataclass
class TimingArc:
    related_pin: str
    timing_type: str          # combinational, rising_edge, setup_rising, hold_rising, ...
    timing_sense: str
    cell_rise: Table | None = None
    cell_fall: Table | None = None
    rise_transition: Table | None = None
    fall_transition: Table | None = None
    rise_constraint: Table | None = None
    fall_constraint: Table | None = None


@dataclass
class PowerArc:
    related_pin: str
    rise_power: Table | None
    fall_power: Table | None
    when: str = ""


@dataclass
class Pin:
    name: str
    direction: str
    capacitance: float = 0.0          # pF
    function: str = ""
    clock: bool = False
    max_capacitance: float = 0.0      # pF, 0 = not given
    timing: list[TimingArc] = field(default_factory=list)
    power: list[PowerArc] = field(default_factory=list)


@dataclass
class Cell:
    name: str
    area: float                      # um^2
    leakage_nw: float                # nW (cell_leakage_power, else the mean of the `when` leakage_power states)
    pins: dict[str, Pin]
    sequential: str = ""             # "ff", "latch" or ""
    seq_info: dict = field(default_factory=dict)   # the ff/latch group's attributes (clocked_on, next_state, ...)
    dont_use: bool = False

    @property
    def inputs(self) -> list[str]:
        return [p for p, v in self.pins.items() if v.direction == "input"]

    @property
    def outputs(self) -> list[str]:
        return [p for p, v in self.pins.items() if v.direction == "output"]

    @property
    def usable(self) -> bool:
        """A logic cell synthesis may use: has an output with a function or is an ff/latch, not dont_use."""
        return not self.dont_use and (bool(self.sequential) or any(self.pins[o].function for o in self.outputs))


@dataclass
class Library:
    name: str
    path: Path
    voltage: float                   # V (nom_voltage, else the operating conditions)
    units: dict                      # the header's units in SI, for the record
    cells: dict[str, Cell]
    wire_load: dict | None           # {capacitance per length, slope, fanout_length{n: len}} in pF
    default_input_cap: float = 0.0

    def cell(self, name: str) -> Cell:
        try:
            return self.cells[name]
        except KeyError:
            raise EdgecodecError(f"cell '{name}' is not in library {self.name}") from None

    def wire_cap(self, fanout: int) -> float:
        """Wire capacitance [pF] of a net with `fanout` sinks from the library's default wire-load model
        (length from the fanout_length table, linear extrapolation with `slope` past its end); 0 without one."""
        wl = self.wire_load
        if not wl or fanout <= 0:
            return 0.0
        table = wl["fanout_length"]
        if fanout in table:
            length = table[fanout]
        else:
            top = max(table)
            length = table[top] + wl["slope"] * (fanout - top) if fanout > top else table[min(table)]
        return length * wl["capacitance"]

    @property
    def dont_use(self) -> list[str]:
        return sorted(n for n, c in self.cells.items() if not c.usable)


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.replace(",", " ").split()]


def _table(g: Group, templates: dict, time_scale: float, cap_scale: float, value_scale: float) -> Table:
    """A table group -> Table with index slew (ns) x load (pF), whatever the template's variable order."""
    tmpl = templates.get(g.args[0] if g.args else "", {})
    idx = {}
    for k in ("index_1", "index_2", "index_3"):
        if k in g.complex:
            idx[k] = _floats(" ".join(g.complex[k][0]))
        elif k in tmpl:
            idx[k] = tmpl[k]
    rows = [_floats(r) for r in g.complex.get("values", [[]])[0]]
    if not rows:
        raise EdgecodecError(f"liberty: table {g.kind} without values")
    var = [tmpl.get("variable_1", ""), tmpl.get("variable_2", "")]
    if tmpl.get("name") == "scalar" or not idx:
        v = rows[0][0] * value_scale
        return Table([0.0], [0.0], [[v]])

    def axis(name):
        if "transition" in name:
            return "slew"
        if "capacitance" in name:
            return "load"
        return "other"

    a1, a2 = axis(var[0]), axis(var[1])
    i1 = idx.get("index_1", [0.0])
    i2 = idx.get("index_2", [0.0])
    if len(rows) == 1 and len(i1) > 1 and "index_2" not in idx:
        rows = [[v] for v in rows[0]]       # a 1-D table given as one row
    vals = [[v * value_scale for v in r] for r in rows]
    sc = {"slew": time_scale, "load": cap_scale, "other": time_scale}
    i1 = [x * sc[a1] for x in i1]
    i2 = [x * sc[a2] for x in i2]
    if a1 == "load" and a2 != "load":
        # variable_1 is the load: transpose to (slew, load)
        vals = [list(col) for col in zip(*vals)] if len(i2) > 1 else [[v[0] for v in vals]]
        return Table(i2 if len(i2) > 1 else [0.0], i1, vals, (var[1], var[0]))
    if a1 == "load" and a2 == "load":
        return Table([0.0], i1, [[r[0] for r in vals]], (var[0],))
    return Table(i1, i2 if "index_2" in idx else [0.0], vals, tuple(var))


def _to_library(lib: Group, path: Path) -> Library:
    a = lib.attrs
    time_s = _unit(a.get("time_unit", "1ns"), "s")
    volt = _unit(a.get("voltage_unit", "1V"), "V")
    leak_w = _unit(a.get("leakage_power_unit", "1nW"), "W")
    cap_args = lib.complex.get("capacitive_load_unit", [["1", "pf"]])[0]
    cap_f = float(cap_args[0]) * {"ff": 1e-15, "pf": 1e-12, "nf": 1e-9}[cap_args[1].lower()]
    t_scale, c_scale = time_s / 1e-9, cap_f / 1e-12             # -> ns, pF
    e_scale = cap_f * volt * volt / 1e-12                         # -> pJ
    l_scale = leak_w / 1e-9                                       # -> nW
    voltage = None
    if "nom_voltage" in a:
        voltage = float(a["nom_voltage"]) * volt
    else:
        oc = lib.first("operating_conditions")
        if oc is not None and "voltage" in oc.attrs:
            voltage = float(oc.attrs["voltage"]) * volt
    if voltage is None:
        raise EdgecodecError(f"liberty {path}: no nom_voltage or operating_conditions voltage")
    templates = {}
    for g in lib.groups:
        if g.kind in ("lu_table_template", "power_lut_template") and g.args:
            t = {"name": g.args[0]}
            for k in ("variable_1", "variable_2", "variable_3"):
                if k in g.attrs:
                    t[k] = g.attrs[k]
            for k in ("index_1", "index_2", "index_3"):
                if k in g.complex:
                    t[k] = _floats(" ".join(g.complex[k][0]))
            templates[g.args[0]] = t
    templates.setdefault("scalar", {"name": "scalar"})
    wire_load = None
    wl_name = a.get("default_wire_load")
    if wl_name:
        for g in lib.sub("wire_load"):
            if g.args and g.args[0] == wl_name:
                fl = {int(float(x[0])): float(x[1]) for x in g.complex.get("fanout_length", [])}
                if fl:
                    wire_load = {"name": wl_name, "capacitance": float(g.attrs.get("capacitance", 0)) * c_scale,
                                 "slope": float(g.attrs.get("slope", 0)), "fanout_length": fl}
    cells = {}
    for cg in lib.sub("cell"):
        name = cg.args[0]
        pins = {}
        pin_groups = list(cg.sub("pin"))
        for bus in cg.sub("bus"):
            pin_groups += bus.sub("pin")
        for pg in pin_groups:
            for pname in pg.args:
                p = Pin(pname, pg.attrs.get("direction", "input"),
                        float(pg.attrs.get("capacitance", a.get("default_input_pin_cap", 0) or 0)) * c_scale,
                        pg.attrs.get("function", ""), pg.attrs.get("clock", "false") == "true",
                        float(pg.attrs.get("max_capacitance", 0) or 0) * c_scale)
                for tg in pg.sub("timing"):
                    arc = TimingArc(tg.attrs.get("related_pin", ""), tg.attrs.get("timing_type", "combinational"),
                                    tg.attrs.get("timing_sense", ""))
                    for k in ("cell_rise", "cell_fall", "rise_transition", "fall_transition", "rise_constraint",
                              "fall_constraint"):
                        sub = tg.first(k)
                        if sub is not None:
                            setattr(arc, k, _table(sub, templates, t_scale, c_scale, t_scale))
                    p.timing.append(arc)
                for ig in pg.sub("internal_power"):
                    rp, fp_ = ig.first("rise_power"), ig.first("fall_power")
                    pw = ig.first("power")
                    p.power.append(PowerArc(
                        ig.attrs.get("related_pin", ""),
                        _table(rp or pw, templates, t_scale, c_scale, e_scale) if (rp or pw) else None,
                        _table(fp_ or pw, templates, t_scale, c_scale, e_scale) if (fp_ or pw) else None,
                        ig.attrs.get("when", "")))
                pins[pname] = p
        if "cell_leakage_power" in cg.attrs:
            leak = float(cg.attrs["cell_leakage_power"]) * l_scale
        else:
            groups = [g for g in cg.sub("leakage_power") if "value" in g.attrs]
            # the mean over the `when` states (equiprobable inputs); an unconditional group only without them
            states = [float(g.attrs["value"]) for g in groups if "when" in g.attrs] or \
                [float(g.attrs["value"]) for g in groups]
            leak = (sum(states) / len(states) * l_scale) if states else \
                float(a.get("default_cell_leakage_power", 0) or 0) * l_scale
        seq, info = "", {}
        for kind in ("ff", "latch", "ff_bank", "latch_bank", "statetable"):
            sg = cg.first(kind)
            if sg is not None:
                seq, info = kind, dict(sg.attrs, _args=list(sg.args))
                break
        cells[name] = Cell(name, float(cg.attrs.get("area", 0.0)), leak, pins, seq, info,
                           cg.attrs.get("dont_use", "false").lower() == "true")
    units = {"time_s": time_s, "voltage_v": volt, "leakage_power_w": leak_w, "capacitance_f": cap_f}
    return Library(lib.args[0] if lib.args else path.stem, path, voltage, units, cells, wire_load,
                   float(a.get("default_input_pin_cap", 0) or 0) * c_scale)


_CACHE: dict[str, Library] = {}


# ---------------------------------------------------------------- cell functions
def eval_function(fn: str, env: dict) -> bool:
    """Evaluate a liberty function: ! and postfix ' (not), & * and juxtaposition (and), + | (or), ^ (xor),
    parentheses, constants 0/1. Translated to Python bitwise operators on 0/1 ints (unary ~ binds tightest;
    xor binds between and and or, as in Python; the libraries' xor expressions are parenthesised)."""
    s = fn.replace("\"", "")
    toks = re.findall(r"[A-Za-z_][A-Za-z0-9_\[\]]*|[!&*+^|()']|[01]", s)
    out: list[str] = []
    prev_operand = False
    for t in toks:
        starts_operand = t in ("(", "!") or re.match(r"[A-Za-z_01]", t) is not None
        if starts_operand and prev_operand:
            out.append("&")
        if t == "!":
            out.append("~")
            prev_operand = False
        elif t in ("&", "*"):
            out.append("&")
            prev_operand = False
        elif t in ("+", "|"):
            out.append("|")
            prev_operand = False
        elif t == "^":
            out.append("^")
            prev_operand = False
        elif t == "'":
            # postfix not: applies to the previous operand (a name, constant or parenthesised group)
            if out and out[-1] == ")":
                depth, k = 0, len(out) - 1
                while k >= 0:
                    depth += out[k] == ")"
                    depth -= out[k] == "("
                    if depth == 0:
                        break
                    k -= 1
                out.insert(k, "~")
            else:
                out.insert(len(out) - 1, "~")
            prev_operand = True
        elif t == "(":
            out.append("(")
            prev_operand = False
        elif t == ")":
            out.append(")")
            prev_operand = True
        elif t in ("0", "1"):
            out.append(t)
            prev_operand = True
        else:
            out.append(str(int(bool(env[t]))))
            prev_operand = True
    return bool(eval("".join(out), {"__builtins__": {}}) & 1)  # noqa: S307 - only our own token stream


def truth_table(fn: str, inputs: list[str], extra: dict | None = None) -> tuple[int, ...]:
    """Output of `fn` (0/1) for every input combination; row k sets inputs[i] = bit i of k (+ `extra` pins)."""
    rows = []
    for k in range(1 << len(inputs)):
        env = {p: (k >> i) & 1 for i, p in enumerate(inputs)}
        if extra:
            env.update(extra)
        rows.append(int(eval_function(fn, env)))
    return tuple(rows)


def has_function(cell: "Cell", n_inputs: int, test) -> bool:
    """A usable combinational cell with one output function of `n_inputs` non-clock inputs for which
    `test(inputs, function)` holds."""
    outs = [o for o in cell.outputs if cell.pins[o].function]
    ins = [i for i in cell.inputs if not cell.pins[i].clock]
    return (cell.usable and not cell.sequential and len(outs) == 1 and len(ins) == n_inputs
            and test(ins, cell.pins[outs[0]].function))


def cells_with_table(lib: "Library", n_inputs: int, table: tuple[int, ...]) -> list["Cell"]:
    """Usable single-output combinational cells of `lib` computing `table` (see truth_table), e.g. (1, 0) = NOT."""
    return [c for c in lib.cells.values() if has_function(c, n_inputs, lambda ins, f: truth_table(f, ins) == table)]


def clock_pins(cell: "Cell") -> set[str]:
    """Pins that clock a sequential cell (liberty `clock : true`, or named in clocked_on / enable)."""
    pins = {p for p, v in cell.pins.items() if v.clock}
    for key in ("clocked_on", "enable"):
        expr = cell.seq_info.get(key, "")
        pins |= {p for p in cell.inputs if p in expr.replace("!", " ").replace("'", " ").replace("(", " ")
                 .replace(")", " ").split()}
    return pins


def read_text(path: Path) -> str:
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
                return f.read()
        return path.read_text(encoding="utf-8", errors="replace")
    except (OSError, EOFError) as exc:
        raise EdgecodecError(f"cannot read liberty file {path}: {exc}") from None


def load_library(library: str | Path = DEFAULT_LIBRARY) -> Library:
    """Parse (once per process) the named library (sky130hd, gf180mcu, sg13g2) or a liberty file path."""
    path = library_path(library)
    key = str(path.resolve())
    if key not in _CACHE:
        lib = _to_library(parse_text(read_text(path)), path)
        for pattern in EXCLUDE.get(str(library), ()):
            for cell in lib.cells.values():
                if pattern in cell.name:
                    cell.dont_use = True
        _CACHE[key] = lib
    return _CACHE[key]
