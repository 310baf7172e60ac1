"""QONNX custom ops of the integer decoder's operators that ONNX has no form for (domain
`quant.codec.qonnx_ops`: qonnx's registry imports this module by its domain name and finds the classes here).

- `AseGruLayer`: one ASE-GRU layer step (`quant.cell.golden.cell_step`: the depth-wise projector, the SE gains from
  h_{t-1}'s pool, the gates with their LUTs), inputs x (real values on the layer's grid f_x) and h_{t-1} (grid f_h),
  output h_t (grid f_h); the layer's integer parameters are the node's `cell` attribute (CellParams JSON: weight codes,
  LUTs, fractional bits), so the graph carries everything the engine's GRU unit is generated from.
- `IntWarp`: the integer motion compensation of `quant.codec.int_codec.warp_int` on a packed frame (6 pixel-code
  channels at half resolution: Y as four phases, U, V), inputs the reference frame and the block vectors (quarter
  luma pixels, one per 16 x 16 luma block), output the warped packed frame.

Values are exact floats (codes times powers of two) as everywhere in the exported graphs; an input off its grid is
an error, not a rounding.
"""

from __future__ import annotations

import json

import numpy as np
from onnx import helper

from base.errors import EdgecodecError
from qonnx.custom_op.base import CustomOp

DOMAIN = "quant.codec.qonnx_ops"


def _codes(values: np.ndarray, frac: int, what: str) -> np.ndarray:
    scaled = np.asarray(values, dtype=np.float64) * 2.0 ** frac
    if not np.array_equal(scaled, np.round(scaled)):
        raise EdgecodecError(f"{what}: input values are not on the grid 2^-{frac}")
    return np.round(scaled).astype(np.int64)


class AseGruLayer(CustomOp):
    def get_nodeattr_types(self):
        return {"cell": ("s", True, "")}

    def params(self):
        from quant.cell.params import CellParams
        return CellParams.from_json(json.loads(self.get_nodeattr("cell")))

    def make_shape_compatible_op(self, model):
        return helper.make_node("Identity", [self.onnx_node.input[1]], [self.onnx_node.output[0]])

    def infer_node_datatype(self, model):
        from qonnx.core.datatype import DataType
        model.set_tensor_datatype(self.onnx_node.output[0], DataType["FLOAT32"])

    def execute_node(self, context, graph):
        from quant.cell.golden import cell_step
        node, p = self.onnx_node, self.params()
        x = _codes(context[node.input[0]], p.f_x, node.name)
        h = _codes(context[node.input[1]], p.f_h, node.name)
        out = np.stack([cell_step(p, xi, hi) for xi, hi in zip(x, h)])
        context[node.output[0]] = (out * 2.0 ** -p.f_h).astype(np.float32)

    def verify_node(self):
        return [] if self.get_nodeattr("cell") else ["AseGruLayer: the cell attribute is empty"]


class IntWarp(CustomOp):
    def get_nodeattr_types(self):
        return {}

    def make_shape_compatible_op(self, model):
        return helper.make_node("Identity", [self.onnx_node.input[0]], [self.onnx_node.output[0]])

    def infer_node_datatype(self, model):
        from qonnx.core.datatype import DataType
        model.set_tensor_datatype(self.onnx_node.output[0], DataType["FLOAT32"])

    def execute_node(self, context, graph):
        import torch
        from quant.codec.int_codec import pack_planes, unpack_planes, warp_int
        node = self.onnx_node
        ref = _codes(context[node.input[0]], 0, node.name)
        vec = _codes(context[node.input[1]], 0, node.name)
        out = [pack_planes(*warp_int(*unpack_planes(torch.from_numpy(r[None])), torch.from_numpy(v)))[0].numpy()
               for r, v in zip(ref, vec)]
        context[node.output[0]] = np.stack(out).astype(np.float32)

    def verify_node(self):
        return []


custom_op = {"AseGruLayer": AseGruLayer, "IntWarp": IntWarp}
