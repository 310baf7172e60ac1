"""ASIC estimate (hw/asic): liberty reader, mapping, STA and power checked by hand on tiny netlists."""

from __future__ import annotations

import gzip

import pytest

from tests.conftest import require_tool

from base.errors import EdgecodecError
from hw.asic import liberty as L
from hw.asic import power, sram, sta

SKY = "sky130hd"
INV, NAND, DFF = "sky130_fd_sc_hd__inv_1", "sky130_fd_sc_hd__nand2_1", "sky130_fd_sc_hd__dfxtp_1"


@pytest.fixture(scope="module")
def sky():
    return L.load_library(SKY)


def test_liberty_sky130_spot_checks(sky):
    # numbers copied from the sky130hd_tt.lib text
    inv = sky.cell(INV)
    assert inv.area == pytest.approx(3.7536)
    assert inv.leakage_nw == pytest.approx(0.005326682)          # cell_leakage_power, leakage_power_unit 1nW
    assert inv.pins["A"].capacitance == pytest.approx(0.002302)  # pF
    assert inv.pins["Y"].function == "(!A)"
    arc = inv.pins["Y"].timing[0]
    assert arc.related_pin == "A" and arc.timing_sense == "negative_unate"
    assert arc.cell_rise(0.01, 0.0005) == pytest.approx(0.0203433)     # table corner
    assert arc.cell_fall(1.5, 0.181284) == pytest.approx(1.2016104)
    mid = arc.cell_rise((0.01 + 0.0230506) / 2, (0.0005 + 0.00133517) / 2)   # bilinear at the cell centre
    assert mid == pytest.approx((0.0203433 + 0.0255806 + 0.0255253 + 0.0306373) / 4)
    assert inv.pins["Y"].power[0].rise_power(0.01, 0.0005) == pytest.approx(0.0077341)  # pJ (pF * V^2)
    assert sky.voltage == pytest.approx(1.8)
    d = sky.cell(DFF)
    assert d.sequential == "ff" and d.seq_info["clocked_on"] == "CLK" and d.seq_info["next_state"] == "D"
    assert sky.wire_cap(1) == pytest.approx(23.2746 * 1.42e-05)
    assert "sky130_fd_sc_hd__decap_12" in sky.dont_use and INV not in sky.dont_use


def test_liberty_other_libraries():
    gf = L.load_library("gf180mcu")
    inv = gf.cell("gf180mcu_fd_sc_mcu7t5v0__inv_1")
    assert inv.area == pytest.approx(8.7808)
    # no cell_leakage_power: mean of the leakage_power states, 1uW units -> nW
    assert inv.leakage_nw == pytest.approx((7.545e-05 + 7.6495e-05) / 2 * 1e3, rel=1e-6)
    assert gf.voltage == pytest.approx(5.0)
    ihp = L.load_library("sg13g2")
    i2 = ihp.cell("sg13g2_inv_1")
    assert i2.area == pytest.approx(5.4432)
    assert i2.leakage_nw == pytest.approx(62.9723e-3)   # 1pW units
    assert ihp.voltage == pytest.approx(1.2)
    for lib in (gf, ihp):
        cells = sram.basic_cells(lib)
        assert all(c.area > 0 for c in cells.values())


def test_unknown_library_lists_choices():
    with pytest.raises(EdgecodecError) as err:
        L.load_library("tsmc7")
    for name in L.LIBRARIES:
        assert name in str(err.value)


def test_liberty_plain_text_and_units(tmp_path):
    text = """library (tiny) { time_unit : "1ps"; voltage_unit : "1V"; leakage_power_unit : "1uW";
      capacitive_load_unit (1, ff); nom_voltage : 0.9;
      lu_table_template (t2) { variable_1 : total_output_net_capacitance; variable_2 : input_net_transition;
        index_1 ("1, 2"); index_2 ("10, 20"); }
      cell (buf) { area : 2; cell_leakage_power : 0.5;
        pin (A) { direction : input; capacitance : 1.5; }
        pin (Y) { direction : output; function : "A";
          timing () { related_pin : "A"; timing_sense : positive_unate;
            cell_rise (t2) { values ("100, 200", "300, 400"); } } } } }"""
    p = tmp_path / "tiny.lib.gz"
    with gzip.open(p, "wt") as f:
        f.write(text)
    lib = L.load_library(p)
    c = lib.cell("buf")
    assert c.leakage_nw == pytest.approx(500.0)
    assert c.pins["A"].capacitance == pytest.approx(1.5e-3)
    t = c.pins["Y"].timing[0].cell_rise
    # variable_1 is the load: transposed; ps -> ns, fF -> pF
    assert t(0.010, 0.001) == pytest.approx(0.1) and t(0.020, 0.001) == pytest.approx(0.2)
    assert t(0.010, 0.002) == pytest.approx(0.3)
    assert lib.voltage == pytest.approx(0.9)


def _chain_netlist():
    """input a -> ff1 -> inv -> nand2(B also from ff1) -> ff2; one output port q."""
    return {
        "ports": {"clk": {"direction": "input", "bits": [2]}, "a": {"direction": "input", "bits": [3]},
                  "q": {"direction": "output", "bits": [7]}},
        "cells": {
            "ff1": {"type": DFF, "connections": {"CLK": [2], "D": [3], "Q": [4]}},
            "u1": {"type": INV, "connections": {"A": [4], "Y": [5]}},
            "u2": {"type": NAND, "connections": {"A": [5], "B": [4], "Y": [6]}},
            "ff2": {"type": DFF, "connections": {"CLK": [2], "D": [6], "Q": [7]}},
        },
        "netnames": {"clk": {"bits": [2]}, "a": {"bits": [3]}, "n4": {"bits": [4]}, "n5": {"bits": [5]},
                     "n6": {"bits": [6]}, "q": {"bits": [7]}},
    }


def test_sta_by_hand(sky):
    net = _chain_netlist()
    res = sta.analyse(net, sky, input_slew_ns=0.1, clock_slew_ns=0.1)
    inv, nand, dff = sky.cell(INV), sky.cell(NAND), sky.cell(DFF)
    wl = sky.wire_cap
    c4 = inv.pins["A"].capacitance + nand.pins["B"].capacitance + wl(2)
    c5 = nand.pins["A"].capacitance + wl(1)
    c6 = dff.pins["D"].capacitance + wl(1)
    q = [a for a in dff.pins["Q"].timing if a.timing_type == "rising_edge"][0]
    r4, f4 = q.cell_rise(0.1, c4), q.cell_fall(0.1, c4)
    sr4, sf4 = q.rise_transition(0.1, c4), q.fall_transition(0.1, c4)
    ia = inv.pins["Y"].timing[0]                     # negative unate: rise from fall and fall from rise
    r5, f5 = f4 + ia.cell_rise(sf4, c5), r4 + ia.cell_fall(sr4, c5)
    sr5, sf5 = ia.rise_transition(sf4, c5), ia.fall_transition(sr4, c5)
    arcs = {a.related_pin: a for a in nand.pins["Y"].timing}
    r6 = max(f5 + arcs["A"].cell_rise(sf5, c6), f4 + arcs["B"].cell_rise(sf4, c6))
    f6 = max(r5 + arcs["A"].cell_fall(sr5, c6), r4 + arcs["B"].cell_fall(sr4, c6))
    rise_slew6 = arcs["A"].rise_transition(sf5, c6) if f5 + arcs["A"].cell_rise(sf5, c6) >= \
        f4 + arcs["B"].cell_rise(sf4, c6) else arcs["B"].rise_transition(sf4, c6)
    fall_slew6 = arcs["A"].fall_transition(sr5, c6) if r5 + arcs["A"].cell_fall(sr5, c6) >= \
        r4 + arcs["B"].cell_fall(sr4, c6) else arcs["B"].fall_transition(sr4, c6)
    setup = sta.setup_time(dff, "D", max(rise_slew6, fall_slew6), 0.1)
    assert 0.0 < setup < 1.0
    expected = max(r6, f6) + setup
    assert res["critical_path_ns"] == pytest.approx(expected, abs=1e-4)    # reported to 0.1 ps
    assert res["fmax_mhz"] == pytest.approx(1000.0 / expected, rel=1e-3)
    assert res["logic_levels"] == 2 and [p["type"] for p in res["path"]] == [INV, NAND]
    assert res["start"].startswith("ff1") and res["end"].startswith("ff2")
    # a sanity range for two gates after a flip-flop in 130 nm
    assert 0.2 < expected < 2.0


def test_sta_detects_loop(sky):
    net = {"ports": {}, "cells": {"u1": {"type": INV, "connections": {"A": [5], "Y": [6]}},
                                  "u2": {"type": INV, "connections": {"A": [6], "Y": [5]}}}, "netnames": {}}
    with pytest.raises(EdgecodecError, match="loop"):
        sta.analyse(net, sky)


def test_power_by_hand(sky, tmp_path):
    net = _chain_netlist()
    # 4 clock cycles of 10 ns; a toggles 2x, n4 3x, n5 3x, n6 none (x -> 0 does not count), q none
    vcd = tmp_path / "w.vcd"
    lines = ["$timescale 1ns $end", "$scope module TOP $end", "$scope module tiny $end",
             "$var wire 1 ! clk $end", "$var wire 1 \" a $end", "$var wire 1 # n4 $end", "$var wire 1 $ n5 $end",
             "$var wire 1 % n6 $end", "$var wire 1 & q $end",
             "$scope module u1 $end", "$var wire 1 ' internal $end", "$upscope $end",
             "$upscope $end", "$upscope $end", "$enddefinitions $end",
             "#0", "0!", "0\"", "0#", "1$", "x%", "0&", "0'"]
    t = 0
    changes = {1: ["1\"", "1#", "0$", "0%", "1'"], 2: ["0#", "1$"], 3: ["0\"", "1#", "0$", "1'"], 4: []}
    for cyc in range(1, 5):
        t += 5
        lines += [f"#{t}", "1!"] + changes[cyc]
        t += 5
        lines += [f"#{t}", "0!"]
    vcd.write_text("\n".join(lines) + "\n")
    act = power.read_vcd(vcd, net, "tiny", "clk", sample={"n4_high": [4]})
    assert act.cycles == 4
    assert act.toggles == {2: 8, 3: 2, 4: 3, 5: 3}
    assert act.samples == {"n4_high": 2}     # n4 is 1 just before the edges at #15 and #35
    g = sta.build_graph(net, sky)
    res = power.compute(net, sky, g, act, clock_mhz=100.0, slew={}, default_slew_ns=0.1)
    v2 = 1.8 ** 2
    inv, nand, dff = sky.cell(INV), sky.cell(NAND), sky.cell(DFF)
    sw = sum(n * 0.5 * g.load[b] * v2 for b, n in act.toggles.items())

    def mean(arcs, s, c):
        vals = [tb(s, c) for a in arcs for tb in (a.rise_power, a.fall_power) if tb is not None]
        return sum(vals) / len(vals) if vals else 0.0

    internal = (3 * mean(dff.pins["Q"].power, 0.1, g.load[4])          # ff1.Q = n4
                + 3 * mean(inv.pins["Y"].power, 0.1, g.load[5])        # u1.Y = n5
                + 8 * 2 * mean(dff.pins["CLK"].power, 0.1, 0.0)        # both flip-flops' clock pins
                + 2 * mean(dff.pins["D"].power, 0.1, 0.0)              # ff1.D = a
                + 3 * mean(inv.pins["A"].power, 0.1, 0.0) + 3 * mean(nand.pins["A"].power, 0.1, 0.0)
                + 3 * mean(nand.pins["B"].power, 0.1, 0.0))
    window = 4 * 10.0
    pw = res["power_mw"]
    assert pw["switching"] == pytest.approx(sw / window, rel=1e-9)
    assert pw["internal"] == pytest.approx(internal / window, rel=1e-9)
    assert pw["leakage"] == pytest.approx((inv.leakage_nw + nand.leakage_nw + 2 * dff.leakage_nw) * 1e-6)
    assert pw["total"] == pytest.approx(pw["switching"] + pw["internal"] + pw["leakage"])
    assert pw["switching"] > 0 and pw["internal"] > 0


def test_sram_model_scales(sky):
    small, big = sram.register_file(sky, "a", 16, 8), sram.register_file(sky, "b", 64, 8)
    cells = sram.basic_cells(sky)
    assert small.cells[cells["latch"].name] == 16 * 8
    assert big.area_um2 > 3.5 * small.area_um2 and big.read_pj > small.read_pj > 0 and big.leakage_nw > 0
    with pytest.raises(EdgecodecError):
        sram.register_file(sky, "bad", 0, 8)


def test_map_small_block(tmp_path):
    require_tool("pyosys")
    from hw.asic.mapping import area_breakdown, map_design
    v = tmp_path / "addreg.v"
    v.write_text("module addreg(input clk, input [3:0] a, input [3:0] b, output reg [4:0] s);\n"
                 "  always @(posedge clk) s <= a + b;\nendmodule\n")
    m = map_design(v, "addreg", SKY, tmp_path / "map", clock_ns=5.0, write_verilog=True)
    net = m.load()
    lib = L.load_library(SKY)
    areas = area_breakdown(net, lib)
    assert areas["ff_cells"] == 5 and areas["logic_cells"] > 3
    assert areas["logic_um2"] > 0 and areas["ff_um2"] == pytest.approx(5 * min(
        c.area for c in lib.cells.values() if c.sequential == "ff" and c.usable), rel=0.5)
    assert all(c["type"] in lib.cells and lib.cells[c["type"]].usable for c in net["cells"].values())
    assert m.netlist_v.exists() and not list((tmp_path / "map").glob("*.tmp"))
    res = sta.analyse(net, lib)
    assert 0.1 < res["critical_path_ns"] < 5.0


def test_a_memory_read_asynchronously_is_never_a_macro(tmp_path):
    """The register-file model and the gate-level simulator cover synchronous read ports: a 64 x 64 memory read
    combinationally stays flip-flops, the same memory read on the clock becomes a macro."""
    require_tool("pyosys")
    from hw.asic.mapping import map_design
    got = {}
    for kind, read in (("async", "assign q = mem[ra];"), ("sync", "always @(posedge clk) q <= mem[ra];")):
        v = tmp_path / f"{kind}.v"
        v.write_text(f"module buf64(input clk, input we, input [5:0] wa, input [5:0] ra, input [63:0] d,\n"
                     f"  output {'reg ' if kind == 'sync' else ''}[63:0] q);\n  reg [63:0] mem [0:63];\n"
                     f"  always @(posedge clk) if (we) mem[wa] <= d;\n  {read}\nendmodule\n")
        m = map_design(v, "buf64", SKY, tmp_path / kind, write_verilog=False)
        got[kind] = [mm["mapped_to"] for mm in m.memories]
    assert got == {"async": ["flip-flops (asynchronous read)"], "sync": ["macro"]}


@pytest.fixture(scope="module")
def small_cell(tmp_path_factory):
    """A random 8-channel cell (pe=1, simd=2: a small netlist) emitted for 4x5 and mapped to sky130."""
    require_tool("pyosys")
    from tests.cellgen import random_inputs, random_params
    from hw.config import HwConfig
    from hw.asic.mapping import map_design
    from hw.rtl.emit import write_verilog
    from quant.cell.golden import run_sequence

    p = random_params(8, 2, 3)
    hw = HwConfig(pe=1, simd=2, dw_parallel=2)
    d = tmp_path_factory.mktemp("asic_cell")
    v = write_verilog(p, 4, 5, hw, d / "cell.v")
    m = map_design(v, "ase_gru_cell", SKY, d / "map", clock_ns=10.0, write_verilog=False, macro_min_bits=256)
    x = random_inputs(p, 2, 4, 5, seed=3)
    return p, m, x, run_sequence(p, x)


def test_gate_level_sim_bit_exact_and_power(small_cell, sky):
    from hw.asic import gatesim
    p, m, x, expected = small_cell
    assert any(mm["mapped_to"] == "macro" for mm in m.memories)          # hmem kept as a macro
    net = m.load()
    res, act = gatesim.run_cell(net, sky, x, expected, p.act_bits)
    assert res["mismatches"] == 0 and res["outputs_compared"] == x.size
    assert len(res["cycles_per_step"]) == 2 and act.cycles > 20
    assert any(k.endswith(".wr") and v == 2 * 4 * 5 for k, v in act.samples.items())   # one write per pixel
    g = sta.build_graph(net, sky)
    pw = power.compute(net, sky, g, act, clock_mhz=50.0)["power_mw"]
    assert pw["internal"] > 0 and pw["switching"] > 0 and pw["total"] > pw["leakage"] > 0


def test_gate_level_sim_detects_a_wrong_cell(small_cell, sky):
    """Swap one NAND2 for an AND2 in the netlist: the comparison with the golden model must fail."""
    import copy

    from hw.asic import gatesim
    p, m, x, expected = small_cell
    net = copy.deepcopy(m.load())
    nands = sorted(n for n, c in net["cells"].items() if c["type"] == NAND)
    assert nands
    changed = 0
    for n in nands:   # several, so that at least one lies on a data path the inputs exercise
        net["cells"][n]["type"] = "sky130_fd_sc_hd__and2_1"
        net["cells"][n]["connections"] = {"A": net["cells"][n]["connections"]["A"],
                                         "B": net["cells"][n]["connections"]["B"],
                                         "X": net["cells"][n]["connections"]["Y"]}
        changed += 1
        if changed == 20:
            break
    try:
        res, _ = gatesim.run_cell(net, sky, x, expected, p.act_bits, max_cycles=3000)
    except EdgecodecError as exc:          # the corruption stalled the stream: also a detected difference
        assert "pixels after" in str(exc)
    else:
        assert res["mismatches"] > 0


@pytest.mark.slow
def test_asic_estimate_entry_point(tmp_path):
    require_tool("pyosys")
    from tests.cellgen import random_inputs, random_params
    from hw.config import HwConfig
    from hw.asic import LIBRARIES, asic_estimate

    p = random_params(8, 2, 3)
    hw = HwConfig(pe=1, simd=2, dw_parallel=2)
    x = random_inputs(p, 3, 6, 8, seed=5)
    with pytest.raises(EdgecodecError, match="sky130hd, gf180mcu, sg13g2"):
        asic_estimate(p, 6, 8, hw, x, library="nangate45", out_dir=tmp_path)
    r = asic_estimate(p, 6, 8, hw, x, library="sky130hd", out_dir=tmp_path, crop=(4, 5), crop_steps=2,
                      clock_mhz=50.0, macro_min_bits=1024)
    assert set(LIBRARIES) == {"sky130hd", "gf180mcu", "sg13g2"}
    assert r["gate_level_bit_exact"] and r["gate_level_mismatches"] == 0
    b = r["area_breakdown"]
    assert r["area_um2"] == pytest.approx(b["logic"] + b["ff"] + b["memory"], rel=1e-6) and b["memory"] > 0
    assert 0 < r["ff_share"] < 1 and r["cells"] > 100
    assert r["critical_path_ns"] > 0 and r["fmax_mhz"] == pytest.approx(1000 / r["critical_path_ns"], rel=1e-3)
    pw = r["power_mw"]
    assert pw["total"] == pytest.approx(pw["leakage"] + pw["internal"] + pw["switching"] + pw["memory"], rel=1e-3)
    # energy per frame = P * cycles / f, with the cycles scaled from the crop run
    assert r["energy_per_frame_mj"] == pytest.approx(pw["total"] * r["cycles_per_step"] / 50e6, rel=1e-3)
    assert r["activity"]["window_cycles"] > 0 and 0 < r["activity"]["mean_toggle_rate"] < 1
    assert set(r["seconds"]) >= {"map", "sta", "sim", "power"}
    assert (tmp_path / "sky130hd" / "asic_estimate.json").exists()


def test_liberty_function_evaluation():
    from hw.asic.liberty import eval_function as _eval
    # gf180mcu writes xor3 as (A1^A2^A3): a chained comparison would get 1^1^1 wrong
    assert _eval("(A1^A2^A3)", {"A1": 1, "A2": 1, "A3": 1}) is True
    assert _eval("(A1^A2^A3)", {"A1": 1, "A2": 1, "A3": 0}) is False
    assert _eval("(!(A1^A2))", {"A1": 0, "A2": 0}) is True
    assert _eval("A B", {"A": 1, "B": 0}) is False                       # juxtaposition = and
    assert _eval("(A+B)'", {"A": 0, "B": 0}) is True                     # postfix not of a group
    assert _eval("(SCE*SCD)+(SCE'*D)", {"SCE": 0, "SCD": 1, "D": 0}) is False
    assert _eval("!A&B", {"A": 1, "B": 1}) is False                      # ! binds tighter than &
