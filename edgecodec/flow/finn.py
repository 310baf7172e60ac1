"""Flow step `finn`: FINN's analytic estimates for the same layers and folding, our figures beside them."""

from __future__ import annotations

from pathlib import Path

from edgecodec.config import Config


def finn_stage(cfg: Config, cell, height: int, width: int, out: Path, cycles: int | None, qonnx: Path,
               fpga: dict | None) -> dict:
    """FINN's analytic estimates for the same layers and folding; our post-synthesis figures beside them."""
    from hw.finn_compare import finn_compare

    r = finn_compare(cell, height, width, cfg.hw, out, measured_step_cycles=cycles, whole_cell_qonnx=qonnx)
    ecp5 = (fpga or {}).get("per_block") or {}
    xil = ((fpga or {}).get("xilinx") or {}).get("per_block") or {}
    for name, blk in r["blocks"].items():
        ours = {"projector": "dw", "gates": "gru"}[name]
        for src, tag in ((ecp5, "ecp5"), (xil, "xilinx")):
            for key in ("lut", "ff", "dsp", "bram"):
                if key in src.get(ours, {}):
                    blk[f"ours_{key}_{tag}"] = src[ours][key]
    r["ours_blocks_note"] = ("our 'gates' figures are the whole GRU datapath block (gate array, LUT epilogue, "
                             "hidden-state memory, output FIFO); 'projector' is the depth-wise conv block with its "
                             "residual add and requantisation")
    return r
