"""Whole-frame benches of the decoder engine at simulator speed: `EngineTop`'s Verilog with its AXI4 master port on a
Verilog memory model (sim/rtl/axi_mem.v) in one toplevel, `engine_harness`; cocotb only loads and dumps the memory
(hex files) and drives the AXI4-Lite registers (sim/tb/engine_harness.py). cocotbext-axi's AxiRam moves every beat
through Python (about 16 k cycles a second on this engine); here a QCIF frame's tens of millions of cycles run in
Verilator alone.

`run_engine_runs` runs several programs back to back (a reset and a fresh memory image before each) and compares the
maps each must write, code for code; it returns every run's cycles and codes compared / mismatching."""

from __future__ import annotations

import json
from pathlib import Path

from base.errors import EdgecodecError
from sim.runner import run_bench

MEMORY_MODEL = Path(__file__).resolve().parent / "rtl" / "axi_mem.v"
_AXI = ("awaddr", "awlen", "awsize", "awburst", "awid", "awvalid", "awready", "wdata", "wstrb", "wlast", "wvalid",
        "wready", "bresp", "bvalid", "bid", "bready", "araddr", "arlen", "arsize", "arburst", "arid", "arvalid",
        "arready", "rdata", "rresp", "rlast", "rvalid", "rid", "rready")
_AXIL_IN = (("awaddr", 5), ("awprot", 3), ("awvalid", 1), ("wdata", 32), ("wstrb", 4), ("wvalid", 1), ("bready", 1),
            ("araddr", 5), ("arprot", 3), ("arvalid", 1), ("rready", 1))
_AXIL_OUT = (("awready", 1), ("wready", 1), ("bresp", 2), ("bvalid", 1), ("arready", 1), ("rdata", 32),
             ("rresp", 2), ("rvalid", 1))


def depth_log2(image_bytes: int, word_bytes: int) -> int:
    """Words of the memory model: the next power of two that holds the largest image (at least 2^10)."""
    return max(10, (max(1, -(-image_bytes // word_bytes)) - 1).bit_length())


def harness_verilog(engine_v: Path, out: Path, data_bits: int, depth: int, seed: int = 1) -> Path:
    """One Verilog file: the engine (module engine_top), the memory model, and `engine_harness` joining them."""
    def decl(kind, name, bits):
        public = " /*verilator public_flat_rw*/" if kind != "wire" else ""
        return f"    {kind} {'[%d:0] ' % (bits - 1) if bits > 1 else ''}{name}{public}"
    ports = [decl("input", n, 1) for n in ("clk", "rst", "mem_load", "mem_dump")]
    ports += [decl("input", "stall", 8), decl("output", "mem_fault", 1), decl("output", "irq", 1)]
    ports += [decl("input", f"s_axil__{n}", b) for n, b in _AXIL_IN]
    ports += [decl("output", f"s_axil__{n}", b) for n, b in _AXIL_OUT]
    widths = {"addr": 32, "len": 8, "size": 3, "burst": 2, "resp": 2, "data": data_bits, "strb": data_bits // 8}
    wires = "\n".join(decl("wire", f"m_{n}", widths.get(n[1:] if n[0] in "awrb" and n[1:] in widths else n[2:], 1))
                       + ";" for n in _AXI)
    eng = ", ".join([".clk(clk)", ".rst(rst)", ".irq(irq)"] +
                    [f".m_axi__{n}(m_{n})" for n in _AXI] +
                    [f".s_axil__{n}(s_axil__{n})" for n, _ in _AXIL_IN + _AXIL_OUT])
    mem = ", ".join([".clk(clk)", ".rst(rst)", ".load(mem_load)", ".dump(mem_dump)", ".stall(stall)",
                     ".fault(mem_fault)"] + [f".{n}(m_{n})" for n in _AXI])
    top = ("module engine_harness(\n" + ",\n".join(ports) + "\n);\n" + wires + "\n"
           f"    engine_top engine({eng});\n"
           f"    axi_mem #(.DATA_BITS({data_bits}), .DEPTH_LOG2({depth}), .SEED({seed})) memory({mem});\n"
           "endmodule\n")
    out = Path(out)
    out.write_text(Path(engine_v).read_text() + "\n" + MEMORY_MODEL.read_text() + "\n" + top)
    return out


def run_engine_runs(engine_v: Path, runs: list, word_bytes: int, build_dir: Path, stall: int | list = 0, seed: int = 1,
                    simulator: str = "verilator", max_cycles: int = 200_000_000,
                    raise_on_mismatch: bool = True) -> dict:
    """runs: (image bytes, program address, [(address, codes (C, H, W), lanes, bits), ...]) each; `stall` the pause
    level (0..255, /256 a cycle on every AXI channel) of all runs or one per run.
    Returns {"cycles": [...], "compared": [...], "mismatches": [...], "report": [...], "wall_seconds": the bench's
    time from the first load to the last dump, simulator build excluded} (every run, also after a
    failing one); a mismatch, a memory fault, an engine error flag or a timeout raises EdgecodecError, unless
    `raise_on_mismatch` is False: then the result comes back with "failed": True and the report."""
    from sim.tb.engine_maps import save_runs
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    depth = depth_log2(max(len(r[0]) for r in runs), word_bytes)
    v = harness_verilog(engine_v, build_dir / "engine_harness.v", word_bytes * 8, depth, seed)
    save_runs(build_dir / "runs.npz", runs)
    result = build_dir / "result.json"
    result.unlink(missing_ok=True)
    try:
        run_bench(v, "engine_harness", "sim.tb.engine_harness", build_dir / "sim", simulator, public_ports_only=True,
                  env=dict(npz=str(build_dir / "runs.npz"), runs=len(runs), word_bytes=word_bytes, depth=depth,
                           stall=stall, max_cycles=max_cycles, result_json=str(result)))
    except EdgecodecError:
        if result.is_file():
            res = json.loads(result.read_text())
            if not raise_on_mismatch:
                return {**res, "failed": True}
            raise EdgecodecError("engine harness: " + "; ".join(res.get("report", [])[:8] or ["failed"])) from None
        raise
    return json.loads(result.read_text())
