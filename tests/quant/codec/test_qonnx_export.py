"""QONNX export of the integer decoder's convolution stacks: qonnx's execute_onnx gives the integer model's codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from base.errors import EdgecodecError
from edgecodec.codec import checkpoint as ckpt
from quant.codec.intnet import IntSequential
from quant.codec.qonnx_export import export_stack, run
from quant.fixed_point import srange
from tests.conftest import ROOT


def test_every_stack_of_a_shipped_checkpoint_executes_to_the_integer_codes():
    ck = ckpt.load(ROOT / "checkpoints" / "codec_q1.pt")
    rng = np.random.default_rng(0)
    for name, state in ck["int"]["nets"].items():
        model = export_stack(state, 6, 10, ck["int"]["weight_bits"], name)
        ops = {n.op_type for n in model.graph.node}
        assert {"Quant", "Im2Col", "MatMul"} <= ops and "Conv" not in ops
        lo, hi = srange(state["layers"][0]["in_bits"])
        x = rng.integers(lo, hi + 1, size=(np.asarray(state["layers"][0]["w"]).shape[1], 6, 10))
        want = IntSequential.from_state(state).run(torch.from_numpy(x)[None])[0].numpy()
        assert np.array_equal(run(model, x, state["f_in"]), want), name


def test_weights_wider_than_declared_are_refused():
    ck = ckpt.load(ROOT / "checkpoints" / "codec_q1.pt")
    with pytest.raises(EdgecodecError, match="weight codes beyond 4 bits"):
        export_stack(ck["int"]["nets"]["p_context"], 4, 4, weight_bits=4)


def p_frame_inputs(int_state: dict, latent_hw: tuple[int, int], seed: int) -> dict:
    """Random codes of a P-frame's inputs: y on p_from_latent's input, block vectors past every border, a reference
    frame, h_{t-1} of each layer."""
    from quant.cell.params import CellParams
    rng = np.random.default_rng(seed)
    nets = int_state["nets"]
    cells = [CellParams.from_json(c) for c in int_state["dec_cells"]]
    lh, lw = latent_hw
    first = nets["p_from_latent"]["layers"][0]
    y = rng.integers(-6, 7, size=(np.asarray(first["w"]).shape[1], lh, lw))
    vec = rng.integers(-70, 71, size=(2, lh, lw))
    ref = rng.integers(0, 256, size=(6, 8 * lh, 8 * lw))
    hs = [rng.integers(*srange(p.act_bits), size=(p.channels, 2 * lh, 2 * lw), endpoint=True) for p in cells]
    return {"y": y, "vectors": vec, "ref": ref, "hs": hs, "cells": cells}


def test_the_p_frame_graph_executes_like_the_integer_decoder():
    """export_p_frame (AseGruLayer and IntWarp as custom ops of quant.codec.qonnx_ops, the rest QONNX/ONNX):
    qonnx's execute_onnx gives the integer decoder's reconstruction and both layers' h_t, code for code."""
    from qonnx.core.onnx_exec import execute_onnx
    from quant.codec.int_codec import IntCodec, pack_planes, unpack_planes, warp_int
    from quant.codec.qonnx_export import export_p_frame
    ck = ckpt.load(ROOT / "checkpoints" / "codec_q1.pt")
    latent = (2, 3)
    d = p_frame_inputs(ck["int"], latent, 1)
    model = export_p_frame(ck["int"], latent)
    assert {"AseGruLayer", "IntWarp", "Im2Col", "Quant"} <= {n.op_type for n in model.graph.node}
    ic = IntCodec(ck["int"])
    warped = pack_planes(*warp_int(*unpack_planes(torch.from_numpy(d["ref"])[None]), torch.from_numpy(d["vectors"])))
    res, new = ic.inter_residual(torch.from_numpy(d["y"])[None], warped, d["hs"])
    recon = (warped + res).clamp(0, 255)[0].numpy()
    f_y = int(ck["int"]["nets"]["p_from_latent"]["f_in"])
    feed = {"y": (d["y"] * 2.0 ** -f_y)[None].astype(np.float32), "vectors": d["vectors"][None].astype(np.float32),
            "ref": d["ref"][None].astype(np.float32)}
    feed.update({f"h_prev_{n}": (h * 2.0 ** -p.f_h)[None].astype(np.float32)
                 for n, (h, p) in enumerate(zip(d["hs"], d["cells"]))})
    out = execute_onnx(model, feed)
    names = [o.name for o in model.graph.output]
    assert np.array_equal(out[names[0]][0], recon)
    for n, p in enumerate(d["cells"]):
        assert np.array_equal(out[names[1 + n]][0] * 2.0 ** p.f_h, new[n]), n
