"""Host side of the cell bench: pack codes, write Verilog, run cocotb, read the comparison back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgecodec.errors import FlowError
from quant.fixed_point import pack_codes, unpack_codes

from .runner import run_bench


def pack_pixels(codes: np.ndarray, bits: int) -> np.ndarray:
    """(T, C, H, W) signed codes -> (T, H*W) object array of pixel words (channel c at bits [c*bits, ...))."""
    t, c, h, w = codes.shape
    flat = codes.reshape(t, c, h * w).transpose(0, 2, 1)
    out = np.empty((t, h * w), dtype=object)
    for ti in range(t):
        for pi in range(h * w):
            out[ti, pi] = pack_codes(flat[ti, pi], bits)
    return out


def unpack_pixels(words: np.ndarray, channels: int, height: int, width: int, bits: int) -> np.ndarray:
    """Inverse of pack_pixels: (T, H*W) words -> (T, C, H, W) signed codes."""
    codes = np.array([[unpack_codes(v, channels, bits) for v in step] for step in words], dtype=np.int64)
    return codes.transpose(0, 2, 1).reshape(len(words), channels, height, width)


def run_pixel_bench(verilog: Path, toplevel: str, test_module: str, inputs: np.ndarray, expected: np.ndarray,
                    bits: int, build_dir: Path, simulator: str, prm: dict, raise_on_mismatch: bool = True,
                    **data) -> dict:
    """Write the packed pixels (+ `data`) for a pixel-stream bench, run `test_module`, return its JSON result.

    `prm` are the bench parameters besides `data` and `result`. A failing bench raises FlowError unless
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
    except FlowError:
        if raise_on_mismatch or not result.exists():
            raise
    if not result.exists():
        raise FlowError(f"cocotb bench wrote no result ({result}); the simulation did not complete")
    return json.loads(result.read_text())


def run_cell_bench(verilog: Path, toplevel: str, inputs: np.ndarray, expected: np.ndarray, bits: int,
                   build_dir: Path, simulator: str = "icarus", idle: float = 0.0, backpressure: float = 0.0,
                   reset_mid: bool = False, seed: int = 0, raise_on_mismatch: bool = True) -> dict:
    """Compare the RTL in `verilog` with `expected` (T, C, H, W) codes for `inputs` (T, C, H, W)."""
    prm = {"idle": idle, "backpressure": backpressure,
           "watchdog": 20000 + 50 * inputs.shape[2] * inputs.shape[3] * inputs.shape[1] ** 2,
           "reset_mid": reset_mid, "seed": seed}
    return run_pixel_bench(verilog, toplevel, "sim.tb_cell", inputs, expected, bits, build_dir, simulator, prm,
                           raise_on_mismatch)
