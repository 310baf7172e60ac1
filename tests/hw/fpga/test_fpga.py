"""FPGA side: the byte-stream wrapper (bit-exact against quant.cell.golden), the device table, the fit check, a real
place-and-route to a bitstream, the Xilinx estimate and the Vivado script."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from tests.cellgen import random_inputs, random_params

from hw.config import HwConfig
from base.errors import EdgecodecError
from hw.fpga.devices import DEVICES, check_fit, get_device, resolve
from hw.fpga.pnr import build_fpga, implement
from hw.fpga.wrapper import TOP_NAME, FpgaTop, io_bits, write_fpga_verilog
from hw.fpga.xilinx import write_vivado_tcl, xilinx_estimate
from quant import fixed_point as fp
from quant.cell import golden
from sim.tb.wrapper import run_wrapper_bench

CACHE = Path(__file__).resolve().parents[1] / "build" / ".yowasp-cache"
# the smallest useful cell (22 multipliers: too many for the UP5K's 8 SB_MAC16, 6.4k LUT4 without them): an
# ECP5 25k (28 MULT18X18D) places and routes it in well under a minute
TINY = dict(C=4, r=2, k=3, hw=HwConfig(pe=1, simd=1, dw_parallel=1), H=4, W=5)


pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")  # tops built only for io_bits


def _tiny():
    return random_params(TINY["C"], TINY["r"], TINY["k"])


# ---- wrapper -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bus_bits, pins", [(4, 14), (8, 22), (16, 38)])
def test_wrapper_io_fits_small_packages(bus_bits, pins):
    p = random_params(8, 2, 3)
    top = FpgaTop(p, 4, 5, HwConfig(pe=2, simd=4, dw_parallel=4), bus_bits=bus_bits)
    ports = {name: len(getattr(top, name).payload) + 2 for name in ("i", "o")}     # payload + valid + ready
    assert top.io_bits() == 2 + sum(ports.values()) == pins                        # + clk, rst
    for fam, devs in DEVICES.items():
        for dev in devs.values():
            for pkg, io in dev.packages.items():
                fits = pins <= io
                # every package fits the 8- and 16-bit buses except the 21-I/O UWG30 (use bus_bits=4 there);
                # the 16-bit bus needs 38 pins: the 39-I/O SG48 still fits
                assert fits == (bus_bits < 8 or pkg != "uwg30"), (fam, dev.name, pkg)
                if pkg in ("sg48", "CABGA256", "CABGA381"):
                    assert fits, (fam, dev.name, pkg, pins, io)
    with pytest.raises(EdgecodecError, match="io 22/21"):
        check_fit({"lut": 1}, get_device("ice40", "up5k"), "uwg30", FpgaTop(p, 4, 5, HwConfig(2, 4, 4)).io_bits())


def test_wrapper_verilog_ports_are_narrow(tmp_path):
    p = random_params(8, 2, 3)
    v = write_fpga_verilog(p, 4, 5, HwConfig(pe=2, simd=4, dw_parallel=4), tmp_path / "top.v").read_text()
    m = re.search(rf"module {TOP_NAME}\((.*?)\);", v)
    assert m, "top module missing"
    names = sorted(x.strip() for x in m.group(1).split(","))
    assert names == sorted(["clk", "rst", "i__payload", "i__valid", "i__ready", "o__payload", "o__valid",
                            "o__ready"])
    body = v[m.end():v.index("endmodule", m.end())]
    widths = {n: int(w) + 1 if w else 1 for w, n in re.findall(r"^\s*(?:input|output)\s+(?:\[(\d+):0\]\s+)?(\S+);",
                                                                 body, re.M)}
    assert sum(widths.values()) == 22, widths
    assert not list(tmp_path.glob("*.tmp"))


def test_wrapper_rejects_bad_bus_width():
    with pytest.raises(EdgecodecError, match=r"bus_bits=12.*1, 2, 4, 8, 16, 32"):
        FpgaTop(random_params(8, 2, 3), 4, 5, HwConfig(pe=2, simd=4, dw_parallel=4), bus_bits=12)


def _wrapper_bench(tmp_path, p, x, hw, want, bus_bits=8, **kw):
    H, W = x.shape[2:]
    v = write_fpga_verilog(p, H, W, hw, tmp_path / f"{TOP_NAME}.v", bus_bits)
    return run_wrapper_bench(v, TOP_NAME, x, want, p.act_bits, bus_bits, tmp_path, "icarus", **kw)


@pytest.mark.parametrize("bus_bits, idle, bp", [(8, 0.3, 0.4), (16, 0.0, 0.0)])
def test_wrapper_bit_exact_icarus(tmp_path, bus_bits, idle, bp):
    p = random_params(8, 2, 3)
    x = random_inputs(p, 3, 4, 5, seed=5)
    want = golden.run_sequence(p, x)
    assert len(np.unique(want)) >= 4
    res = _wrapper_bench(tmp_path, p, x, HwConfig(pe=2, simd=4, dw_parallel=4), want, bus_bits, idle=idle,
                         backpressure=bp, seed=2)
    assert res["mismatches"] == 0 and res["extra_beats"] == 0, res["first_mismatches"]
    assert res["outputs_compared"] == x.size
    assert res["beats_out"] == 3 * 4 * 5 * (8 * 8 // bus_bits)


def test_wrapper_corrupted_input_is_caught(tmp_path):
    p = random_params(8, 2, 3)
    x = random_inputs(p, 2, 4, 5, seed=6)
    want = golden.run_sequence(p, x)
    bad = x.copy()
    lo, hi = fp.srange(p.act_bits)
    bad[0, 3, 1, 2] = hi if bad[0, 3, 1, 2] < 0 else lo            # one input code flipped to the other rail
    assert (golden.run_sequence(p, bad) != want).any()
    hw = HwConfig(pe=2, simd=4, dw_parallel=4)
    with pytest.raises(EdgecodecError, match="failed"):
        _wrapper_bench(tmp_path / "raise", p, bad, hw, want, idle=0.1, backpressure=0.2)
    res = _wrapper_bench(tmp_path / "report", p, bad, hw, want, idle=0.1, backpressure=0.2,
                         raise_on_mismatch=False)
    assert res["mismatches"] > 0 and res["first_mismatches"]
    m = res["first_mismatches"][0]
    assert golden.run_sequence(p, bad)[m["step"], m["channel"]].ravel()[m["pixel"]] == m["rtl"] != m["expected"]


# ---- device table and fit check --------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (("gowin", "85k"), r"unknown FPGA family 'gowin'; choose one of ecp5, ice40"),
    (("ecp5", "12k"), r"unknown ecp5 device '12k'; choose one of 25k, 45k, 85k"),
    (("ice40", "hx8k"), r"unknown ice40 device 'hx8k'; choose one of up5k"),
    (("ecp5", "25k", "CABGA756"), r"unknown package 'CABGA756' for ecp5 25k; choose one of CSFBGA285, CABGA256"),
    (("ecp5", "85k", None, 9), r"unknown speed grade '9' for ecp5 85k; choose one of 6, 7, 8"),
    (("ice40", "up5k", "sg48", 6), r"no speed grades"),
    (("ice40", "up5k", "tq144"), r"choose one of sg48, uwg30"),
])
def test_device_table_errors(args, message):
    with pytest.raises(EdgecodecError, match=message):
        resolve(*args)


def test_device_table_defaults_and_capacities():
    dev, pkg, spd = resolve("ECP5", "85K")
    assert (dev.part, pkg, spd) == ("LFE5U-85F", "CABGA381", 6)
    assert dev.capacity["dsp"] == 156 and dev.capacity["bram"] == 208 and dev.capacity["lut"] == 83640
    assert resolve("ecp5", "45k", "cabga256", "8")[1:] == ("CABGA256", 8)
    assert get_device("ecp5", "25k").capacity["dsp"] == 28
    up, pkg, spd = resolve("ice40", "up5k")
    assert (pkg, spd, up.capacity["dsp"], up.packages["uwg30"]) == ("sg48", None, 8, 21)


def test_fit_check_lists_every_resource():
    dev = get_device("ecp5", "85k")
    used = {"lut": 10301, "ff": 6115, "dsp": 154, "bram": 16, "lutram": 32}
    util = check_fit(used, dev, "CABGA381", 22)
    assert util["dsp"] == pytest.approx(154 / 156, abs=1e-4) and util["io"] == pytest.approx(22 / 205, abs=1e-4)
    with pytest.raises(EdgecodecError) as exc:
        check_fit(used, get_device("ecp5", "45k"), "CABGA381", 22)
    msg = str(exc.value)
    assert "dsp over capacity" in msg and "dsp 154/72" in msg and "OVER" in msg
    for frag in ("lut 10301/43848", "ff 6115/43848", "bram 16/108", "lutram 32/5481", "io 22/203"):
        assert frag in msg, msg


@pytest.mark.slow   # a full place-and-route attempt (about 2 minutes)
def test_default_size_design_does_not_fit_up5k(tmp_path):
    """The real flow stops after synthesis, before nextpnr, with used/available per resource."""
    p = random_params(16, 4, 3)
    with pytest.raises(EdgecodecError) as exc:
        build_fpga(p, 6, 8, HwConfig(pe=4, simd=4, dw_parallel=4), tmp_path, family="ice40", device="up5k",
                   cache_dir=CACHE)
    msg = str(exc.value)
    assert "does not fit iCE40UP5K" in msg and "dsp" in msg and re.search(r"dsp \d+/8 \(\d+%\) OVER", msg), msg
    assert re.search(r"lut \d+/5280", msg) and "io 22/39" in msg, msg
    assert not (tmp_path / "report.json").exists(), "nextpnr must not run on a design that does not fit"


def test_bad_fpga_arguments_fail_before_synthesis(tmp_path):
    p = _tiny()
    with pytest.raises(EdgecodecError, match="unknown package 'cabga381' for ice40 up5k; choose one of sg48, uwg30"):
        build_fpga(p, 4, 5, TINY["hw"], tmp_path, family="ice40", device="up5k", package="cabga381")
    with pytest.raises(EdgecodecError, match="unknown dsp mode 'maybe'; choose one of on, off"):
        build_fpga(p, 4, 5, TINY["hw"], tmp_path, dsp="maybe")
    assert not (tmp_path / "design.v").exists()


def test_bad_lut_mapper_fails_before_synthesis(tmp_path):
    v = tmp_path / "in.v"
    v.write_text("module top(input a, output b); assign b = ~a; endmodule\n")
    with pytest.raises(EdgecodecError, match="lut_mapper 'abc' for ice40: choose abc9$"):
        implement(v, "top", 2, tmp_path / "o1", family="ice40", device="up5k", lut_mapper="abc")
    with pytest.raises(EdgecodecError, match="lut_mapper 'fast' for ecp5: choose abc9 or abc"):
        implement(v, "top", 2, tmp_path / "o2", lut_mapper="fast")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


# ---- real place and route -------------------------------------------------------------------------------------

def _tiny_build(out: Path, seed: int = 1, **kw) -> dict:
    t = TINY
    return build_fpga(_tiny(), t["H"], t["W"], t["hw"], out, family="ecp5", device="25k", package="CABGA256",
                      speed=6, freq_mhz=25, seed=seed, cache_dir=CACHE, **kw)


@pytest.mark.slow
def test_ecp5_25k_bitstream_and_fmax(tmp_path):
    """Place and route of the tiny cell on an LFE5U-25F (about 80 s: slow since `make test` passed 10 minutes;
    synthesis stays in the fast suite through the tiny flow, place and route and bitstreams run in make test-slow and
    every `make flow`)."""
    res = _tiny_build(tmp_path)
    bit = Path(res["bitstream"])
    assert bit.name == "design.bit" and bit.stat().st_size > 100_000
    assert bit.read_bytes()[:2] == b"\xff\x00"                          # ecppack's bitstream preamble
    assert res["fmax_mhz"] > 0 and res["target_mhz"] == 25
    assert (res["part"], res["package"], res["speed"]) == ("LFE5U-25F", "CABGA256", 6)
    assert res["io_pins"] == 22 and res["capacity"]["io"] == 197
    assert 0 < res["lut"] <= 24288 and 0 < res["ff"] and 0 < res["dsp"] <= 28
    assert set(res["utilisation"]) >= {"lut", "ff", "dsp", "bram", "io"}
    assert res["pnr_utilisation"]["MULT18X18D"]["used"] == res["dsp"]
    assert res["pnr_utilisation"]["TRELLIS_IO"]["used"] == 22
    blocks = res["per_block"]
    assert set(blocks) == {"dw", "gru", "se", "other"}, blocks
    for k in ("lut", "ff", "dsp", "bram", "lutram", "carry"):
        assert sum(b[k] for b in blocks.values()) == res[k], k              # the blocks add up to the totals
    assert min(blocks[b]["lut"] for b in blocks) > 0 and blocks["dw"]["dsp"] > 0 and blocks["gru"]["dsp"] > 0
    assert set(res["seconds"]) == {"synth", "pnr", "pack"}
    assert len(res["pins"]) >= 20, res["pins"]
    assert (tmp_path / "fpga_report.json").is_file() and not list(tmp_path.glob("*.tmp"))


@pytest.mark.slow
def test_ecp5_classic_abc_lut_mapping(tmp_path):
    """The classic-ABC LUT mapping (the engine with its P-frame units needs it under Yosys 0.70) gives a routed
    ECP5 design of the tiny cell: a bitstream, an Fmax, LUT4s (wide functions as PFUMX) and its multipliers."""
    t = TINY
    v = write_fpga_verilog(_tiny(), t["H"], t["W"], t["hw"], tmp_path / "in.v")
    res = implement(v, TOP_NAME, io_bits(8), tmp_path / "abc", device="25k",
                    package="CABGA256", freq_mhz=25, cache_dir=CACHE, lut_mapper="abc")
    assert Path(res["bitstream"]).stat().st_size > 100_000 and res["fmax_mhz"] > 0
    assert 0 < res["lut"] <= 24288 and res["dsp"] > 0


@pytest.mark.slow
def test_ecp5_bitstream_is_deterministic(tmp_path):
    a = Path(_tiny_build(tmp_path / "a")["bitstream"]).read_bytes()
    b = Path(_tiny_build(tmp_path / "b")["bitstream"]).read_bytes()
    assert a == b
    c = Path(_tiny_build(tmp_path / "c", seed=7)["bitstream"]).read_bytes()
    assert c != a, "another placement seed must give another bitstream"


# ---- Xilinx --------------------------------------------------------------------------------------------------------

@pytest.mark.slow   # yosys synth_xilinx (about 30 s); the ECP5 build above keeps a synthesis in make test
def test_xilinx_estimate_small_block(tmp_path):
    p = random_params(8, 2, 3)
    v = write_fpga_verilog(p, 4, 5, HwConfig(pe=2, simd=4, dw_parallel=4), tmp_path / "top.v")
    res = xilinx_estimate(v, TOP_NAME, tmp_path / "xc7", cache_dir=CACHE)
    assert res["family"] == "xc7" and res["lut"] > 100 and res["ff"] > 100
    assert res["dsp"] > 0 and res["carry"] > 0
    assert res["bram18"] == res["ramb18"] + 2 * res["ramb36"]
    assert res["lut"] == sum(res["cells_by_type"].get(f"LUT{i}", 0) for i in range(1, 7))
    with pytest.raises(EdgecodecError, match="unknown Xilinx family 'xcu'; choose one of xc7"):
        xilinx_estimate(v, TOP_NAME, tmp_path / "x", family="xcu")


def test_vivado_tcl_names_files_part_and_clock(tmp_path):
    v = tmp_path / "src.v"
    v.write_text(f"module {TOP_NAME}(input clk, output q); assign q = clk; endmodule\n")
    tcl = write_vivado_tcl(v, TOP_NAME, tmp_path / "viv", part="xc7a35tcsg324-1", freq_mhz=125)
    text = tcl.read_text()
    xdc = (tmp_path / "viv" / f"{TOP_NAME}.xdc").read_text()
    assert (tmp_path / "viv" / "design.v").read_text() == v.read_text()
    for line in ("create_project -in_memory -part xc7a35tcsg324-1", "add_files design.v",
                 f"read_xdc {TOP_NAME}.xdc", f"synth_design -top {TOP_NAME} -part xc7a35tcsg324-1",
                 "opt_design", "place_design", "route_design", "report_utilization -file utilization.rpt",
                 "report_timing_summary", f"write_bitstream -force {TOP_NAME}.bit"):
        assert line in text, line
    order = [text.index(s) for s in ("synth_design", "opt_design", "place_design", "route_design",
                                     "write_bitstream")]
    assert order == sorted(order)
    assert "create_clock -period 8.000 -name clk [get_ports clk]" in xdc
    pinned = write_vivado_tcl(v, TOP_NAME, tmp_path / "pin", pins={"clk": "E3"}).read_text()
    assert "UCIO-1" not in pinned and "UCIO-1" in text
    assert "PACKAGE_PIN E3" in (tmp_path / "pin" / f"{TOP_NAME}.xdc").read_text()
    with pytest.raises(EdgecodecError, match="not a Xilinx 7-series part"):
        write_vivado_tcl(v, TOP_NAME, tmp_path / "bad", part="lfe5u-85f")
