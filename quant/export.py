"""QONNX export of one QAT cell step (inputs x, h_{t-1}; output h_t) and its execution with qonnx."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from base.errors import EdgecodecError


def export_module(module, args: tuple, path: Path, **names) -> Path:
    """QONNX of a Brevitas module (a float32 copy in eval mode) for example inputs `args`.

    brevitas.export.export_qonnx with the TorchScript exporter (dynamo does not trace Brevitas proxies), then
    qonnx's cleanup (shape inference, constant folding) so the graph executes under onnx_exec. `names`:
    input_names / output_names for the exporter.
    """
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    m = copy.deepcopy(module).float().eval()
    raw = path.with_suffix(".raw.onnx")
    export_qonnx(m, args, export_path=str(raw), dynamo=False, **names)
    model = cleanup_model(ModelWrapper(str(raw)))
    model.save(str(path))
    raw.unlink()
    return path


def export_cell(qcell, channels: int, height: int, width: int, path: Path) -> Path:
    """One cell step: inputs x, h (1, C, H, W) -> output h_next."""
    args = (torch.zeros(1, channels, height, width), torch.zeros(1, channels, height, width))
    return export_module(qcell, args, path, input_names=["x", "h"], output_names=["h_next"])


def run_cell(path: Path, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Execute the exported step on real-valued (1, C, H, W) float32 inputs with qonnx.core.onnx_exec."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    model = ModelWrapper(str(path))
    names = [i.name for i in model.graph.input]
    if len(names) != 2:
        raise EdgecodecError(f"{path}: expected a cell graph with inputs (x, h), found {names}")
    out = execute_onnx(model, {names[0]: x.astype(np.float32), names[1]: h.astype(np.float32)})
    return out[model.graph.output[0].name]


def run_sequence_codes(path: Path, x_codes: np.ndarray, f_x: int, act_bits: int) -> np.ndarray:
    """h_t codes over a sequence of x codes (T, C, H, W), through the QONNX graph (float32 execution)."""
    h = np.zeros((1,) + x_codes.shape[1:], dtype=np.float32)
    outs = []
    for x in x_codes:
        h = run_cell(path, (x[None] * 2.0 ** -f_x).astype(np.float32), h)
        outs.append(np.round(h[0] * 2.0 ** (act_bits - 1)).astype(np.int64))
    return np.stack(outs)
