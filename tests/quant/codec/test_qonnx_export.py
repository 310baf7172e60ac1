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
