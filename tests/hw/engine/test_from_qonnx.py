"""The engine's layers compiled from the decoder's QONNX export equal the integer model's layers; graphs the engine
cannot run exactly are refused by node."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper

from base.errors import EdgecodecError
from hw.engine.from_qonnx import layers_from_qonnx
from hw.engine.layers import conv_layers
from quant.codec.qonnx_export import export_stack
from tests.hw.engine.test_conv_unit import shipped_stacks


def same(a, b) -> bool:
    return (np.array_equal(a.weights, b.weights) and np.array_equal(a.pre, b.pre) and np.array_equal(a.bias, b.bias)
            and (a.stride, a.shift, a.lo, a.hi, a.out_bits, a.shuffle) ==
            (b.stride, b.shift, b.lo, b.hi, b.out_bits, b.shuffle))


def test_compiled_from_qonnx_equals_the_integer_model_on_every_stack():
    for name, state in shipped_stacks().items():
        layers, f_in = layers_from_qonnx(export_stack(state, 6, 10, 8, name))
        want = conv_layers(state["layers"])
        assert f_in == state["f_in"] and len(layers) == len(want) and all(map(same, layers, want)), name


def _replace_init(model, stem: str, fn):
    for i, init in enumerate(model.graph.initializer):
        if init.name.startswith(stem):
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(init)), init.name))
            return init.name
    raise AssertionError(stem)


def test_graphs_the_engine_cannot_run_exactly_are_refused():
    state = shipped_stacks()["p_from_latent"]
    model = export_stack(state, 4, 4, 8, "p")
    _replace_init(model, "scale", lambda s: s * 3)                 # the input Quant's scale: not a power of two
    with pytest.raises(EdgecodecError, match="not a power of two"):
        layers_from_qonnx(model)
    model = export_stack(state, 4, 4, 8, "p")
    _replace_init(model, "bias", lambda b: b + 2.0 ** -40)          # a bias off its grid
    with pytest.raises(EdgecodecError, match="not on their grid"):
        layers_from_qonnx(model)
    model = export_stack(state, 4, 4, 8, "p")
    relu = next(n for n in model.graph.node if n.op_type == "Clip")
    relu.op_type = "Sigmoid"
    with pytest.raises(EdgecodecError, match="Sigmoid"):
        layers_from_qonnx(model)
