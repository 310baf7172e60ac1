"""Cycle-based, zero-delay gate-level simulation of a mapped netlist (numpy), with toggle counting.

Why not the cocotb bench on the netlist: measured on the default cell's 6x8 crop (~110k cells), Icarus ran
the instance netlist at under one cycle per second, and Verilator needed 327 s to verilate the inlined
netlist into 593 MB of C++ (then many more minutes of compilation), far beyond the flow's budget.

Here every combinational liberty cell output becomes a truth table (from its `function`, up to 6 inputs),
cells are levelised once, and each clock cycle evaluates the levels with a few numpy gathers; flip-flops
update from their ff group (next_state, clear, preset) at the rising edge; macro memories ($mem_v2 cells
kept by hw.asic.mapping) are simulated behaviourally (synchronous read with enable / reset / transparency,
per-bit write enable). The bench protocol is the one of sim/tb/cell.py (reset 3 cycles, a source that holds
i__valid with the next pixel word until i__ready at a rising edge, an always-ready sink), so every output
code is compared with the golden model, and the toggles of every net are counted cycle by cycle.
Zero-delay simulation counts no glitches (see docs/asic.md for the expected error).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from base.errors import EdgecodecError

from hw.asic.liberty import Library, clock_pins, eval_function, truth_table
from hw.asic.mapping import param_int
from hw.asic.power import Activity
from hw.asic.sta import MACRO

MAX_INPUTS = 6


@dataclass
class _Mem:
    name: str
    size: int
    width: int
    offset: int
    data: list
    rd: dict
    wr: dict
    transparent: bool
    srst_value: int
    ce_over_srst: bool


class GateSim:
    def __init__(self, netlist: dict, lib: Library):
        self.lib = lib
        bits = set()
        for p in netlist["ports"].values():
            bits.update(b for b in p["bits"] if not isinstance(b, str))
        cells = {n: c for n, c in netlist["cells"].items() if c["type"] != "$scopeinfo"}
        for c in cells.values():
            for bl in c["connections"].values():
                bits.update(b for b in bl if not isinstance(b, str))
        self.index = {b: i + 2 for i, b in enumerate(sorted(bits))}   # 0 = const 0, 1 = const 1
        self.n = len(self.index) + 2
        ix = self.idx
        # combinational outputs -> truth tables; sequential cells; macros
        comb, self.mems = [], []
        ff_rows = []
        self._fftab, self._ff_off = [], {}
        tt_cache: dict = {}
        for name in sorted(cells):
            c = cells[name]
            t = c["type"]
            if t == MACRO:
                self.mems.append(self._mem(name, c))
                continue
            lc = lib.cells.get(t)
            if lc is None:
                raise EdgecodecError(f"cell {name}: type {t} is not in {lib.name}")
            conns = c["connections"]
            if lc.sequential == "ff":
                ff_rows.append(self._ff(name, c, lc, tt_cache))
                continue
            if lc.sequential:
                raise EdgecodecError(f"cell {name} ({t}): {lc.sequential} cells are not simulated")
            ins = [p for p in lc.inputs if p in conns]
            if len(ins) > MAX_INPUTS:
                raise EdgecodecError(f"cell type {t} has {len(ins)} inputs; the simulator handles {MAX_INPUTS}")
            for o in lc.outputs:
                if o not in conns or isinstance(conns[o][0], str):
                    continue
                key = (t, o)
                if key not in tt_cache:
                    tt_cache[key] = np.array(truth_table(lc.pins[o].function, ins), dtype=np.uint8)
                comb.append((name, [ix(conns[p][0]) for p in ins], ix(conns[o][0]), tt_cache[key]))
        # levelise
        driver = {out: k for k, (_, _, out, _) in enumerate(comb)}
        level = [-1] * len(comb)
        order = []
        state = [0] * len(comb)    # 0 new, 1 visiting, 2 done
        for k0 in range(len(comb)):
            if state[k0] == 2:
                continue
            stack = [(k0, 0)]
            while stack:
                k, i = stack.pop()
                if i == 0:
                    if state[k] == 2:
                        continue
                    state[k] = 1
                ins = comb[k][1]
                if i < len(ins):
                    stack.append((k, i + 1))
                    d = driver.get(ins[i])
                    if d is not None:
                        if state[d] == 1:
                            raise EdgecodecError(f"combinational loop through cell {comb[d][0]}")
                        if state[d] == 0:
                            stack.append((d, 0))
                    continue
                level[k] = 1 + max((level[driver[b]] for b in ins if b in driver), default=-1)
                state[k] = 2
                order.append(k)
        self.levels = []
        tts, offs = [], {}
        for k in range(len(comb)):
            key = id(comb[k][3])
            if key not in offs:
                offs[key] = sum(len(t) for t in tts)
                tts.append(np.pad(comb[k][3], (0, (1 << MAX_INPUTS) - len(comb[k][3]))))
        self.tt = np.concatenate(tts) if tts else np.zeros(1, np.uint8)
        by_level: dict = {}
        for k in range(len(comb)):
            by_level.setdefault(level[k], []).append(k)
        w = (1 << np.arange(MAX_INPUTS)).astype(np.int64)
        for lv in sorted(by_level):
            ks = by_level[lv]
            inp = np.zeros((len(ks), MAX_INPUTS), dtype=np.int64)   # unused inputs read const 0
            for r, k in enumerate(ks):
                inp[r, :len(comb[k][1])] = comb[k][1]
            self.levels.append((inp, np.array([offs[id(comb[k][3])] for k in ks], dtype=np.int64),
                                np.array([comb[k][2] for k in ks], dtype=np.int64)))
        self.w = w
        # flip-flops (vectorised by input count: next = table[inputs..., IQ])
        self.ffs = []
        groups: dict = {}
        for row in ff_rows:
            groups.setdefault(len(row[0]), []).append(row)
        for n_in, rows in groups.items():
            self.ffs.append((np.array([r[0] for r in rows], dtype=np.int64).reshape(len(rows), n_in),
                             np.array([r[1] for r in rows], dtype=np.int64), None, [r[3] for r in rows]))
        self.ff_state = [np.zeros(len(g[3]), dtype=np.uint8) for g in self.ffs]
        self.fftab = np.concatenate(self._fftab) if self._fftab else np.zeros(1, np.uint8)
        self.nets = np.zeros(self.n, dtype=np.uint8)
        self.nets[1] = 1
        self.ports = {p: [ix(b) for b in v["bits"]] for p, v in netlist["ports"].items()}

    def idx(self, b) -> int:
        if isinstance(b, str):
            return 1 if b == "1" else 0
        return self.index[b]

    def _ff(self, name, c, lc, cache):
        info = lc.seq_info
        conns = c["connections"]
        ins = [p for p in lc.inputs if p in conns and p not in clock_pins(lc)]
        iq, iqn = (info["_args"] + ["IQN"])[:2] if info.get("_args") else ("IQ", "IQN")
        key = ("ff", lc.name)
        if key not in cache:
            names = ins + [iq]
            tbl = np.zeros(1 << len(names), dtype=np.uint8)
            for k in range(len(tbl)):
                env = {p: (k >> i) & 1 for i, p in enumerate(names)}
                env[iqn] = 1 - env[iq]
                if "clear" in info and eval_function(info["clear"], env):
                    v = 0
                elif "preset" in info and eval_function(info["preset"], env):
                    v = 1
                else:
                    v = 1 if eval_function(info["next_state"], env) else 0
                tbl[k] = v
            # output functions of the state alone: evaluate with IQN = !IQ
            fixed = []
            for o in lc.outputs:
                fn = lc.pins[o].function
                fixed.append((o, np.array([1 if eval_function(fn, {iq: v, iqn: 1 - v}) else 0 for v in (0, 1)],
                                          dtype=np.uint8)))
            cache[key] = (tbl, fixed)
        tbl, fixed = cache[key]
        outs = [(self.idx(conns[o][0]), f) for o, f in fixed if o in conns and not isinstance(conns[o][0], str)]
        if key not in self._ff_off:
            self._ff_off[key] = sum(len(t) for t in self._fftab)
            self._fftab.append(tbl)
        return ([self.idx(conns[p][0]) for p in ins], self._ff_off[key], None, outs)

    def _mem(self, name, c):
        p = c["parameters"]
        conns = c["connections"]
        size, width = param_int(p["SIZE"]), param_int(p["WIDTH"])
        if param_int(p["RD_PORTS"]) != 1 or param_int(p["WR_PORTS"]) != 1 or not param_int(p["RD_CLK_ENABLE"]):
            raise EdgecodecError(f"macro {name}: only 1 synchronous read + 1 write port are simulated")
        init = str(p.get("INIT", "0")).replace("x", "0")
        init_int = int(init, 2) if init else 0
        data = [(init_int >> (i * width)) & ((1 << width) - 1) for i in range(size)]
        ix = self.idx
        rd = {k: [ix(b) for b in conns.get(k, [])] for k in ("RD_EN", "RD_ADDR", "RD_DATA", "RD_SRST", "RD_ARST")}
        wr = {k: [ix(b) for b in conns.get(k, [])] for k in ("WR_EN", "WR_ADDR", "WR_DATA")}
        return _Mem(str(p.get("MEMID", name)).lstrip("\\"), size, width, param_int(p.get("OFFSET", 0)), data, rd, wr,
                    bool(param_int(p.get("RD_TRANSPARENCY_MASK", 0))), param_int(p.get("RD_SRST_VALUE", 0)),
                    bool(param_int(p.get("RD_CE_OVER_SRST", 0))))

    # ------------------------------------------------------------------------------------------ running

    def _word(self, idxs) -> int:
        v = 0
        vals = self.nets[idxs]
        for i in np.nonzero(vals)[0]:
            v |= 1 << int(i)
        return v

    def _set_word(self, idxs, value: int) -> None:
        for i, b in enumerate(idxs):
            if b > 1:
                self.nets[b] = (value >> i) & 1

    def set_port(self, name: str, value: int) -> None:
        self._set_word(self.ports[name], int(value))

    def port(self, name: str) -> int:
        return self._word(self.ports[name])

    def settle(self) -> None:
        nets, tt, w = self.nets, self.tt, self.w
        for inp, off, out in self.levels:
            nets[out] = tt[off + nets[inp].astype(np.int64) @ w]

    def clock(self, counts: dict | None = None) -> None:
        """Rising edge: flip-flops and memories take their next state from the settled nets."""
        nets, fftab = self.nets, self.fftab
        new_states = []
        for (inp, off, _, outs), st in zip(self.ffs, self.ff_state):
            n_in = inp.shape[1]
            idx = (nets[inp].astype(np.int64) @ (1 << np.arange(n_in))) if n_in else np.zeros(len(off), np.int64)
            idx = idx + (st.astype(np.int64) << n_in)
            new_states.append(fftab[off + idx])
        mem_updates = []
        for m in self.mems:
            en = self.nets[m.rd["RD_EN"]].all() if m.rd["RD_EN"] else True
            srst = bool(self.nets[m.rd["RD_SRST"]].any()) if m.rd["RD_SRST"] else False
            wen = self._word(m.wr["WR_EN"])
            waddr = self._word(m.wr["WR_ADDR"]) - m.offset
            wdata = self._word(m.wr["WR_DATA"])
            rdata = None
            if srst and (m.ce_over_srst is False or en):
                rdata = m.srst_value
            elif en:
                raddr = self._word(m.rd["RD_ADDR"]) - m.offset
                rdata = m.data[raddr] if 0 <= raddr < m.size else 0
                if m.transparent and wen and raddr == waddr:
                    rdata = (rdata & ~wen) | (wdata & wen)
                if counts is not None:
                    counts[f"{m.name}.rd"] = counts.get(f"{m.name}.rd", 0) + 1
            if wen and 0 <= waddr < m.size:
                m.data[waddr] = (m.data[waddr] & ~wen) | (wdata & wen)
                if counts is not None:
                    counts[f"{m.name}.wr"] = counts.get(f"{m.name}.wr", 0) + 1
            mem_updates.append((m, rdata))
        for g, (ffg, st) in enumerate(zip(self.ffs, new_states)):
            self.ff_state[g] = st
            for k, outs in enumerate(ffg[3]):
                for oidx, f in outs:
                    nets[oidx] = f[st[k]]
        for m, rdata in mem_updates:
            if rdata is not None:
                self._set_word(m.rd["RD_DATA"], rdata)


def run_cell(netlist: dict, lib: Library, inputs: np.ndarray, expected: np.ndarray, bits: int,
             reset_cycles: int = 3, max_cycles: int | None = None) -> tuple[dict, Activity]:
    """The tb_cell protocol on the netlist: compare every output code with `expected`; count toggles."""
    from quant.fixed_point import pack_pixels

    from quant.fixed_point import unpack_codes

    sim = GateSim(netlist, lib)
    words = pack_pixels(inputs, bits)
    beats = [int(w) for t in range(words.shape[0]) for w in words[t]]
    n_out = len(beats)
    channels = inputs.shape[1]
    limit = max_cycles or (200 + 60 * n_out + 50 * inputs.shape[2] * inputs.shape[3] * channels)
    toggles = np.zeros(sim.n, dtype=np.int64)
    counts: dict = {}
    out, cycles_per_step = [], []
    prev = None
    cycle = 0
    clk_bits = [b for b in sim.ports.get("clk", []) if b > 1]
    state = {"step": 0}
    exp_words = pack_pixels(expected, bits)

    def cycle_once(rst, valid, payload, ready, record):
        nonlocal prev, cycle
        sim.set_port("rst", rst)
        sim.set_port("i__valid", valid)
        if payload is not None:
            sim.set_port("i__payload", payload)
        sim.set_port("o__ready", ready)
        sim.settle()
        counted = record and prev is not None
        if record:
            if prev is not None:
                toggles[:] += sim.nets != prev
            prev = sim.nets.copy()
        step_now = sim.port("step_count")
        if record and step_now != state["step"]:
            cycles_per_step.append(sim.port("step_cycles"))
        state["step"] = step_now
        fired_in = bool(sim.port("i__ready")) and valid
        got = sim.port("o__payload") if ready and sim.port("o__valid") else None
        sim.clock(counts if counted else None)
        cycle += 1
        return fired_in, got

    for _ in range(reset_cycles):
        cycle_once(1, 0, None, 0, False)
    cycle_once(0, 0, None, 0, False)
    k = 0
    start = cycle
    while len(out) < n_out:
        if cycle - start > limit:
            raise EdgecodecError(f"gate-level run: only {len(out)} of {n_out} pixels after {limit} cycles")
        valid = 1 if k < len(beats) else 0
        fired, got = cycle_once(0, valid, beats[k] if valid else None, 1, True)
        if fired:
            k += 1
        if got is not None:
            out.append(got)
    cycle_once(0, 0, None, 1, True)     # the step counter of the last frame updates after its last output
    window = cycle - start
    mismatches, first = 0, []
    for i, word in enumerate(out):
        t, pix = divmod(i, inputs.shape[2] * inputs.shape[3])
        got = unpack_codes(word, channels, bits)
        exp = unpack_codes(int(exp_words[t][pix]), channels, bits)
        for ch, (g, e) in enumerate(zip(got, exp)):
            if g != e:
                mismatches += 1
                if len(first) < 10:
                    first.append({"step": t, "pixel": pix, "channel": ch, "netlist": g, "expected": e})
    inv = {i: b for b, i in sim.index.items()}
    tg = {inv[i]: int(v) for i, v in enumerate(toggles) if v and i in inv}
    for b in clk_bits:
        tg[inv[b]] = 2 * (window - 1)       # the clock is not simulated as a net: two edges per cycle
    act = Activity(tg, window - 1, counts, len(inv))
    return {"outputs_compared": len(out) * channels, "mismatches": mismatches, "first_mismatches": first,
            "cycles_per_step": cycles_per_step, "sim_cycles": window}, act
