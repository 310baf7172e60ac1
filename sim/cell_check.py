"""Host side of the cell bench: pack codes, write Verilog, run cocotb, read the comparison back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from base.errors import EdgecodecError
from quant.fixed_point import pack_pixels

from sim.runner import run_bench


def run_pixel_bench(verilog: Path, toplevel: str, test_module: str, inputs: np.ndarray, expected: np.ndarray,
                    bits: int, build_dir: Path, simulator: str, prm: dict, raise_on_mismatch: bool = True,
                    **data) -> dict:
    """Write the packed pixels (+ `data`) for a pixel-stream bench, run `test_module`, return its JSON result.

    `prm` are the bench parameters besides `data` and `result`. A failing bench raises EdgecodecError unless
    `raise_on_mismatch` is False and it wrote its result (then the result lists the mismatches).
    """
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    npz = build_dir / "bench_data.npz"
    result = build_dir / "bench_result.json"
    if result.exists():
        result.unlink()
    np.savez(npz, inputs=pack_pixels(inputs, bits), expected=pack_pixels(expected, bits),
             channels=inputs.shape[1], bits=bits, **data)
    prm = {"data": str(npz.resolve()), "result": str(result.resolve()), **prm}
    try:
        run_bench(verilog, toplevel, test_module, build_dir / f"sim_{simulator}", simulator, env=prm)
    except EdgecodecError:
        if raise_on_mismatch or not result.exists():
            raise
    if not result.exists():
        raise EdgecodecError(f"cocotb bench wrote no result ({result}); the simulation did not complete")
    return json.loads(result.read_text())


def run_cell_bench(verilog: Path, toplevel: str, inputs: np.ndarray, expected: np.ndarray, bits: int,
                   build_dir: Path, simulator: str = "icarus", idle: float = 0.0, backpressure: float = 0.0,
                   reset_mid: bool = False, seed: int = 0, raise_on_mismatch: bool = True) -> dict:
    """Compare the RTL in `verilog` with `expected` (T, C, H, W) codes for `inputs` (T, C, H, W)."""
    prm = {"idle": idle, "backpressure": backpressure,
           "watchdog": 20000 + 50 * inputs.shape[2] * inputs.shape[3] * inputs.shape[1] ** 2,
           "reset_mid": reset_mid, "seed": seed}
    return run_pixel_bench(verilog, toplevel, "sim.tb.cell", inputs, expected, bits, build_dir, simulator, prm,
                           raise_on_mismatch)
