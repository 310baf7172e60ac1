"""The engine's layers compiled from a QONNX graph (the form `quant.codec.qonnx_export` writes, which is FINN's
lowered-convolution form with power-of-two Quant nodes).

The graph is walked from its input along the data path: an input `Quant` (the input grid), then per convolution
Transpose -> Im2Col -> MatMul (weights: a per-output-channel `Quant` of a constant matrix, Casts allowed) -> Add
(constant bias) -> `Quant` (the output grid and width) -> Transpose, followed by any Relu, Clip and DepthToSpace
(CRD, block 2). Scales must be powers of two and the constants exact on their grids; anything else is refused with
the node's name, so a graph the engine cannot run exactly never becomes a program.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import numpy_helper

from base.errors import EdgecodecError
from hw.engine.layers import ConvLayer, aligned_bias, pre_shifts
from quant.fixed_point import srange


def _frac(scale, where: str) -> np.ndarray:
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    f = -np.log2(s)
    if not np.all(f == np.round(f)):
        raise EdgecodecError(f"QONNX {where}: scale {s.tolist()[:4]} is not a power of two")
    return f.astype(np.int64)


def _exact(values: np.ndarray, where: str) -> np.ndarray:
    if not np.array_equal(values, np.round(values)):
        raise EdgecodecError(f"QONNX {where}: constants are not on their grid")
    return np.round(values).astype(np.int64)


class _Walker:
    def __init__(self, model):
        self.model = model
        self.inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}

    def const(self, name: str, where: str) -> np.ndarray:
        if name not in self.inits:
            raise EdgecodecError(f"QONNX {where}: input {name!r} is not a constant")
        return self.inits[name].astype(np.float64)

    def next(self, tensor: str, ops: tuple[str, ...] | None = None):
        node = self.model.find_consumer(tensor)
        if node is not None and ops is not None and node.op_type not in ops:
            raise EdgecodecError(f"QONNX node {node.name!r} ({node.op_type}): expected {' or '.join(ops)} here")
        return node

    def attr(self, node, name: str):
        for a in node.attribute:
            if a.name == name:
                from onnx import helper
                return helper.get_attribute_value(a)
        return None

    def quant(self, node) -> tuple[np.ndarray, int]:
        if self.attr(node, "signed") != 1 or self.attr(node, "narrow") not in (0, None) or \
                (self.attr(node, "rounding_mode") or b"ROUND") not in (b"ROUND", "ROUND"):
            raise EdgecodecError(f"QONNX node {node.name!r}: only signed, non-narrow, ROUND (half-even) Quant")
        if np.any(self.const(node.input[2], node.name) != 0):
            raise EdgecodecError(f"QONNX node {node.name!r}: zero points must be 0")
        return self.const(node.input[1], node.name), int(self.const(node.input[3], node.name).reshape(-1)[0])


def layers_from_qonnx(model) -> tuple[list[ConvLayer], int]:
    """(the ConvLayers of the graph, the input grid f_in)."""
    w = _Walker(model)
    first = w.next(model.graph.input[0].name, ("Quant",))
    if first is None:
        raise EdgecodecError("QONNX graph: the input has no consumer")
    layers, f_in, _, _ = _walk_stack(w, first, ())
    return layers, f_in


def _walk_stack(w: _Walker, first, stop: tuple[str, ...]) -> tuple[list[ConvLayer], int, str, int]:
    """From an input Quant along lowered convolutions until a consumer of type `stop` (or none):
    (layers, input grid, the stack's output tensor, its grid)."""
    scale, _ = w.quant(first)
    f = int(_frac(scale, first.name)[0])
    f_in, t, layers = f, first.output[0], []
    node = w.next(t)
    while node is not None and node.op_type not in stop:
        if node.op_type != "Transpose" or list(w.attr(node, "perm")) != [0, 2, 3, 1]:
            raise EdgecodecError(f"QONNX node {node.name!r} ({node.op_type}): expected a lowered convolution")
        im = w.next(node.output[0], ("Im2Col",))
        k = list(w.attr(im, "kernel_size"))
        stride = list(w.attr(im, "stride"))
        pad = list(w.attr(im, "pad_amount") or [0, 0, 0, 0])
        if k[0] != k[1] or stride[0] != stride[1] or len(set(pad)) != 1 or pad[0] != k[0] // 2 or \
                list(w.attr(im, "dilations") or [1, 1]) != [1, 1]:
            raise EdgecodecError(f"QONNX node {im.name!r}: square kernels, equal strides, padding k//2 only")
        t = im.output[0]
        nxt = w.next(t, ("Cast", "MatMul"))
        mm = w.next(nxt.output[0], ("MatMul",)) if nxt.op_type == "Cast" else nxt
        src = w.model.find_producer(mm.input[1])
        while src is not None and src.op_type == "Cast":
            src = w.model.find_producer(src.input[0])
        if src is None or src.op_type != "Quant":
            raise EdgecodecError(f"QONNX node {mm.name!r}: the weights must come from a Quant of a constant")
        wscale, wbits = w.quant(src)
        fw = _frac(wscale, src.name)
        mat = w.const(src.input[0], src.name)
        kk, cout = mat.shape
        cin = kk // (k[0] * k[0])
        if fw.size == 1:
            fw = np.full(cout, fw[0])
        codes = _exact(mat * 2.0 ** fw[None, :], src.name)
        lo, hi = srange(wbits)
        if codes.min() < lo or codes.max() > hi:
            raise EdgecodecError(f"QONNX node {src.name!r}: weight codes beyond {wbits} bits")
        weights = codes.reshape(k[0], k[0], cin, cout).transpose(3, 2, 0, 1)
        add = w.next(mm.output[0], ("Add",))
        bias_name = add.input[1] if add.input[0] == mm.output[0] else add.input[0]
        acc_f = f + int(fw.max())
        bias = _exact(w.const(bias_name, add.name).reshape(-1) * 2.0 ** acc_f, add.name)
        q = w.next(add.output[0], ("Quant",))
        qscale, bits = w.quant(q)
        of = int(_frac(qscale, q.name)[0])
        back = w.next(q.output[0], ("Transpose",))
        if list(w.attr(back, "perm")) != [0, 3, 1, 2]:
            raise EdgecodecError(f"QONNX node {back.name!r}: expected the transpose back to NCHW")
        pre, shift = pre_shifts(fw, acc_f - of)
        olo, ohi = srange(bits)
        shuffle, t = 1, back.output[0]
        node = w.next(t)
        while node is not None and node.op_type in ("Relu", "Clip", "DepthToSpace"):
            if node.op_type == "Relu":
                olo = max(olo, 0)
            elif node.op_type == "Clip":
                olo = max(olo, math.ceil(float(w.const(node.input[1], node.name)) * 2.0 ** of))
                ohi = min(ohi, math.floor(float(w.const(node.input[2], node.name)) * 2.0 ** of))
            else:
                mode = w.attr(node, "mode") or b"DCR"
                if mode not in (b"CRD", "CRD") or w.attr(node, "blocksize") != 2 or shuffle != 1:
                    raise EdgecodecError(f"QONNX node {node.name!r}: only one DepthToSpace (CRD, block 2) a layer")
                shuffle = 2
            t = node.output[0]
            node = w.next(t)
        layers.append(ConvLayer(weights=weights, pre=pre.astype(np.int64), bias=aligned_bias(bias, acc_f - of),
                                stride=stride[0],
                                shift=int(shift), lo=olo, hi=ohi, out_bits=bits, shuffle=shuffle))
        f = of
    if not layers:
        raise EdgecodecError(f"QONNX graph: no convolution after {first.name!r}")
    return layers, f_in, t, f


def _const_scalar(w: _Walker, node, where: str) -> float:
    other = [i for i in node.input if i in w.inits]
    if len(other) != 1:
        raise EdgecodecError(f"QONNX node {node.name!r} ({node.op_type}): expected one constant operand ({where})")
    v = w.const(other[0], node.name).reshape(-1)
    if v.size != 1:
        raise EdgecodecError(f"QONNX node {node.name!r}: a scalar constant expected ({where})")
    return float(v[0])


def _pow2(w: _Walker, node, value: float, where: str) -> None:
    got = _const_scalar(w, node, where)
    if got != value:
        raise EdgecodecError(f"QONNX node {node.name!r}: {where} must be {value!r}, the graph has {got!r}")


def p_frame_from_qonnx(model) -> dict:
    """The parts of a P-frame program from the graph `quant.codec.qonnx_export.export_p_frame` writes (or any graph of
    the same form): {"p_from_latent", "p_context", "p_synth": ConvLayer lists, "cells": CellParams per ASE-GRU
    layer}. The concatenation and the adds must map codes to codes as the engine does (the Mul scales exactly
    2^(f_in - f_s) on each concatenated input, -128 and the pixel clamp 0..255 on the reconstruction); anything else
    is refused with the node's name."""
    import json

    from quant.cell.params import CellParams
    from quant.codec.qonnx_ops import DOMAIN
    w = _Walker(model)
    y_q = w.next("y", ("Quant",))
    if y_q is None:
        raise EdgecodecError("QONNX P-frame graph: input 'y' has no consumer")
    parts = {}
    parts["p_from_latent"], _, t, f = _walk_stack(w, y_q, ("AseGruLayer",))
    cells = []
    node = w.next(t, ("AseGruLayer",))
    while True:
        if node.domain != DOMAIN:
            raise EdgecodecError(f"QONNX node {node.name!r}: AseGruLayer of domain {DOMAIN} expected")
        p = CellParams.from_json(json.loads(w.attr(node, "cell")))
        if p.f_x != f:
            raise EdgecodecError(f"QONNX node {node.name!r}: its x comes on grid {f}, the layer takes {p.f_x}")
        if node.input[1] != f"h_prev_{len(cells)}":
            raise EdgecodecError(f"QONNX node {node.name!r}: h_(t-1) must be the graph input h_prev_{len(cells)}")
        cells.append(p)
        nxt = w.next(node.output[0], ("Quant", "Mul"))
        if nxt.op_type == "Mul":
            break
        scale, bits = w.quant(nxt)
        f = int(_frac(scale, nxt.name)[0])
        node = w.next(nxt.output[0], ("AseGruLayer",))
        if bits != CellParams.from_json(json.loads(w.attr(node, "cell"))).act_bits:
            raise EdgecodecError(f"QONNX node {nxt.name!r}: the requantisation must give the next layer's width")
    mul_h = nxt
    cat = w.next(mul_h.output[0], ("Concat",))
    if w.attr(cat, "axis") != 1 or len(cat.input) != 2 or cat.input[0] != mul_h.output[0]:
        raise EdgecodecError(f"QONNX node {cat.name!r}: Concat(h, context) on the channel axis expected")
    s_q = w.next(cat.output[0], ("Quant",))
    f_s = int(_frac(w.quant(s_q)[0], s_q.name)[0])
    _pow2(w, mul_h, 2.0 ** (cells[-1].f_h - f_s), "the scale of h into the concatenation")
    warp = next((n for n in model.graph.node if n.op_type == "IntWarp"), None)
    if warp is None or warp.domain != DOMAIN or list(warp.input) != ["ref", "vectors"]:
        raise EdgecodecError(f"QONNX P-frame graph: IntWarp(ref, vectors) of domain {DOMAIN} expected")
    adds = model.find_consumers(warp.output[0])
    # the context's Add has a constant operand (-128); the reconstruction's adds the residual
    add_ctx = next((n for n in adds if any(i in w.inits for i in n.input)), None)
    add_rec = next((n for n in adds if n is not add_ctx), None)
    if len(adds) != 2 or {n.op_type for n in adds} != {"Add"} or add_ctx is None:
        raise EdgecodecError(f"QONNX node {warp.name!r}: the warped frame feeds the context (- 128) and the "
                             "reconstruction (two Adds)")
    _pow2(w, add_ctx, -128.0, "the context offset")
    mul_ctx = w.next(add_ctx.output[0], ("Mul",))
    c_q = w.next(mul_ctx.output[0], ("Quant",))
    f_c = int(_frac(w.quant(c_q)[0], c_q.name)[0])
    _pow2(w, mul_ctx, 2.0 ** -f_c, "the context input scale")
    parts["p_context"], _, t, f_ctx = _walk_stack(w, c_q, ("Mul",))
    mul_c = w.next(t, ("Mul",))
    if w.next(mul_c.output[0], ("Concat",)).name != cat.name or cat.input[1] != mul_c.output[0]:
        raise EdgecodecError(f"QONNX node {mul_c.name!r}: the context must be the concatenation's second input")
    _pow2(w, mul_c, 2.0 ** (f_ctx - f_s), "the scale of the context into the concatenation")
    parts["p_synth"], _, t, f_res = _walk_stack(w, s_q, ("Mul",))
    mul_r = w.next(t, ("Mul",))
    _pow2(w, mul_r, 2.0 ** f_res, "the residual's scale to codes")
    if w.next(mul_r.output[0], ("Add",)).name != add_rec.name:
        raise EdgecodecError(f"QONNX node {add_rec.name!r}: the reconstruction adds the residual to the warped frame")
    clip = w.next(add_rec.output[0], ("Clip",))
    if (float(w.const(clip.input[1], clip.name).reshape(-1)[0]), float(w.const(clip.input[2], clip.name).reshape(-1)[0])) \
            != (0.0, 255.0):
        raise EdgecodecError(f"QONNX node {clip.name!r}: the reconstruction is clamped to 0..255")
    parts["cells"] = cells
    return parts
