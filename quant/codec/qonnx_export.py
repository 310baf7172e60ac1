"""QONNX export of the integer decoder's convolution stacks (`quant.codec.intnet.IntSequential`).

The graph is the one FINN reads after lowering convolutions, in real values with power-of-two `Quant` nodes, every
value exact (a code times its scale: float32 between Quant nodes, as qonnx's Quant produces it, float64 for the
dot products and the bias): the input goes through `Quant` on its grid; each
convolution is Transpose (NCHW -> NHWC) -> `Im2Col` (qonnx) -> MatMul with a per-output-channel `Quant`-ed weight
matrix -> Add bias -> `Quant` on the output grid (round half to even, saturating: the requantisation) -> Relu or
Clip (Hardtanh) -> Transpose back, and DepthToSpace (CRD) for a PixelShuffle. `qonnx.core.onnx_exec.execute_onnx`
runs it; `run` returns the output codes, equal to `IntSequential.run` (tested), and `hw.engine.from_qonnx`
compiles the engine's layers from it.
"""

from __future__ import annotations

import json

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from base.errors import EdgecodecError
from quant.fixed_point import srange

OPSET = 13
QONNX_DOMAIN = "qonnx.custom_op.general"


class _Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, stem: str) -> str:
        self.n += 1
        return f"{stem}_{self.n}"

    def const(self, stem: str, value, dtype=np.float64) -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], domain: str = "", **attrs) -> str:
        out = self.name(op.lower())
        kw = {"domain": domain} if domain else {}
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **kw, **attrs))
        return out

    def quant(self, x: str, scale, bits: int) -> str:
        return self.node("Quant", [x, self.const("scale", scale), self.const("zeropt", 0.0),
                                   self.const("bitwidth", float(bits))], domain=QONNX_DOMAIN,
                         signed=1, narrow=0, rounding_mode="ROUND")


def _stack(g: _Graph, state: dict, x: str, height: int, width: int, weight_bits: int, name: str, nhwc: list):
    """The stack `state` on real-valued tensor x (quantised on entry to its input grid): (output tensor, its grid
    f, output height, width)."""
    layers = state["layers"]
    if not layers or layers[0]["kind"] != "conv":
        raise EdgecodecError(f"{name}: a stack starts with a convolution")
    f, bits = int(state["f_in"]), int(layers[0]["in_bits"])
    x = g.quant(x, 2.0 ** -f, bits)
    h, w = height, width
    for layer in layers:
        kind = layer["kind"]
        if kind == "conv":
            wc = np.asarray(layer["w"], dtype=np.int64)
            fw = np.asarray(layer["f_w"], dtype=np.int64)
            cout, cin, k, _ = wc.shape
            s, p = int(layer["stride"]), int(layer["pad"])
            t = g.node("Transpose", [x], perm=[0, 2, 3, 1])
            nhwc.append(t)
            t = g.node("Im2Col", [t], domain=QONNX_DOMAIN, stride=[s, s], kernel_size=[k, k],
                       input_shape=f"(1, {h}, {w}, {cin})", pad_amount=[p, p, p, p], pad_value=0)
            scale = 2.0 ** -fw.astype(np.float64)
            mat = wc.transpose(2, 3, 1, 0).reshape(k * k * cin, cout) * scale[None, :]
            lo, hi = srange(weight_bits)
            if wc.min() < lo or wc.max() > hi:
                raise EdgecodecError(f"{name}: weight codes beyond {weight_bits} bits")
            wq = g.quant(g.const("w", mat), scale[None, :], weight_bits)
            # qonnx's Quant hands on float32 (exact: codes of <= 24 bits times a power of two); the dot products
            # are summed in float64, where they are exact too
            t = g.node("MatMul", [g.node("Cast", [t], to=TensorProto.DOUBLE), g.node("Cast", [wq], to=TensorProto.DOUBLE)])
            acc_f = f + int(fw.max())
            t = g.node("Add", [t, g.const("bias", np.asarray(layer["b"], dtype=np.float64) * 2.0 ** -acc_f)])
            f = acc_f - int(layer["shift"])
            bits = int(layer["bits"])
            t = g.quant(t, 2.0 ** -f, bits)
            x = g.node("Transpose", [t], perm=[0, 3, 1, 2])
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif kind == "relu":
            x = g.node("Relu", [x])
        elif kind == "hardtanh":
            x = g.node("Clip", [x, g.const("lo", layer["lo"] * 2.0 ** -f, np.float32),
                                g.const("hi", layer["hi"] * 2.0 ** -f, np.float32)])
        elif kind == "shuffle":
            x = g.node("DepthToSpace", [x], blocksize=int(layer["r"]), mode="CRD")
            h, w = h * int(layer["r"]), w * int(layer["r"])
        else:
            raise EdgecodecError(f"{name}: no QONNX form for layer kind {kind!r}")
    return x, f, h, w


def _wrap(g: _Graph, name: str, inputs: list, outputs: list, nhwc: list, domains: tuple = ()):
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    graph = helper.make_graph(g.nodes, name, inputs, outputs, g.inits)
    model = ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)] + [
        helper.make_opsetid(d, 1) for d in (QONNX_DOMAIN,) + domains]))
    model = model.transform(InferShapes())
    for t in nhwc:             # Im2Col reads its input's datatype annotation; the values are exact float64
        model.set_tensor_datatype(t, DataType["FLOAT32"])
    return model


def export_stack(state: dict, height: int, width: int, weight_bits: int = 8, name: str = "stack"):
    """A qonnx ModelWrapper of the IntSequential `state` (weight codes of `weight_bits`) on a (1, C, height, width)
    input."""
    g, nhwc = _Graph(), []
    x, f, _, _ = _stack(g, state, "x", height, width, weight_bits, name, nhwc)
    cin0 = np.asarray(state["layers"][0]["w"]).shape[1]
    model = _wrap(g, name, [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, cin0, height, width])],
                  [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], nhwc)
    model.set_metadata_prop("edgecodec_output_frac", str(f))
    return model


def export_p_frame(int_state: dict, latent_hw: tuple[int, int], weight_bits: int | None = None):
    """The P-frame decoder of an integer codec state (`quant.codec.int_codec.IntCodec.inter_residual`, the warp and
    the reconstruction) as one QONNX graph. Inputs (real values, float32): `y` (1, C_y, h, w) on p_from_latent's
    input grid, `vectors` (1, 2, H/16, W/16) quarter luma pixels, `ref` (1, 6, H/2, W/2) packed pixel codes,
    `h_prev_<n>` per ASE-GRU layer (grid f_h). Outputs: `recon` (the packed reconstruction, pixel codes) and `h_<n>`.
    Weight codes of `weight_bits` (default: the state's own, codec.int_weight_bits).

        y -> p_from_latent -> AseGruLayer 0 -> Quant (requant to layer 1's f_x) -> AseGruLayer 1 -> h
        ref, vectors -> IntWarp -> warped;  warped - 128 -> p_context -> ctx
        Concat(h, ctx) on p_synth's grid -> p_synth -> residual;  Clip(residual + warped, 0, 255) -> recon
    """
    from quant.cell.params import CellParams
    from quant.codec.qonnx_ops import DOMAIN
    nets = int_state["nets"]
    weight_bits = int(int_state["weight_bits"]) if weight_bits is None else weight_bits
    cells = [CellParams.from_json(c) for c in int_state["dec_cells"]]
    lh, lw = latent_hw
    mh, mw, fh, fw = 2 * lh, 2 * lw, 8 * lh, 8 * lw
    g, nhwc = _Graph(), []
    x, f, _, _ = _stack(g, nets["p_from_latent"], "y", lh, lw, weight_bits, "p_from_latent", nhwc)
    if f != cells[0].f_x:
        raise EdgecodecError(f"p_from_latent ends on grid {f}, the first ASE-GRU layer takes {cells[0].f_x}")
    hs = []
    for n, p in enumerate(cells):
        if n:
            x = g.quant(hs[-1], 2.0 ** -p.f_x, p.act_bits)
        hs.append(g.node("AseGruLayer", [x, f"h_prev_{n}"], domain=DOMAIN, cell=json.dumps(p.to_json())))
    warped = g.node("IntWarp", ["ref", "vectors"], domain=DOMAIN)
    f_ctx_in = int(nets["p_context"]["f_in"])
    ctx_in = g.node("Mul", [g.node("Add", [warped, g.const("minus128", -128.0, np.float32)]),
                            g.const("scale", 2.0 ** -f_ctx_in, np.float32)])
    ctx, f_ctx, _, _ = _stack(g, nets["p_context"], ctx_in, fh, fw, weight_bits, "p_context", nhwc)
    f_s = int(nets["p_synth"]["f_in"])      # the integer model concatenates the codes of h and ctx on this grid
    cat = g.node("Concat", [g.node("Mul", [hs[-1], g.const("scale", 2.0 ** (cells[-1].f_h - f_s), np.float32)]),
                            g.node("Mul", [ctx, g.const("scale", 2.0 ** (f_ctx - f_s), np.float32)])], axis=1)
    res, f_res, _, _ = _stack(g, nets["p_synth"], cat, mh, mw, weight_bits, "p_synth", nhwc)
    recon = g.node("Clip", [g.node("Add", [g.node("Mul", [res, g.const("scale", 2.0 ** f_res, np.float32)]), warped]),
                            g.const("lo", 0.0, np.float32), g.const("hi", 255.0, np.float32)])
    c = cells[0].channels
    cy = np.asarray(nets["p_from_latent"]["layers"][0]["w"]).shape[1]
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("y", f32, [1, cy, lh, lw]),
              helper.make_tensor_value_info("vectors", f32, [1, 2, fh // 8, fw // 8]),
              helper.make_tensor_value_info("ref", f32, [1, 6, fh, fw])] + [
        helper.make_tensor_value_info(f"h_prev_{n}", f32, [1, c, mh, mw]) for n in range(len(cells))]
    outputs = [helper.make_tensor_value_info(recon, f32, None)] + [
        helper.make_tensor_value_info(h, f32, None) for h in hs]
    model = _wrap(g, "p_frame", inputs, outputs, nhwc, (DOMAIN,))
    model.set_metadata_prop("edgecodec_outputs", json.dumps(["recon"] + [f"h_{n}" for n in range(len(cells))]))
    return model


def run(model, codes: np.ndarray, f_in: int) -> np.ndarray:
    """Output codes of the exported stack on input codes (C, H, W) (grid f_in), through qonnx's execute_onnx."""
    from qonnx.core.onnx_exec import execute_onnx
    x = codes.astype(np.float64)[None] * 2.0 ** -f_in
    out = execute_onnx(model, {"x": x})[model.graph.output[0].name][0]
    f_out = int(model.get_metadata_prop("edgecodec_output_frac"))
    scaled = out * 2.0 ** f_out
    if not np.array_equal(scaled, np.round(scaled)):
        raise EdgecodecError("QONNX execution left the output grid (a non-exact intermediate)")
    return scaled.astype(np.int64)
