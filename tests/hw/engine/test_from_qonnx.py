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
from tests.hw.engine.test_conv_unit import shipped_int, shipped_stacks


def same(a, b) -> bool:
    return (np.array_equal(a.weights, b.weights) and np.array_equal(a.pre, b.pre) and np.array_equal(a.bias, b.bias)
            and (a.stride, a.shift, a.lo, a.hi, a.out_bits, a.shuffle) ==
            (b.stride, b.shift, b.lo, b.hi, b.out_bits, b.shuffle))


def test_compiled_from_qonnx_equals_the_integer_model_on_every_stack():
    wb = shipped_int()["weight_bits"]
    for name, state in shipped_stacks().items():
        layers, f_in = layers_from_qonnx(export_stack(state, 6, 10, wb, name))
        want = conv_layers(state["layers"])
        assert f_in == state["f_in"] and len(layers) == len(want) and all(map(same, layers, want)), name


def _replace_init(model, stem: str, fn):
    for i, init in enumerate(model.graph.initializer):
        if init.name.startswith(stem):
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(init)), init.name))
            return init.name
    raise AssertionError(stem)


def test_graphs_the_engine_cannot_run_exactly_are_refused():
    state, wb = shipped_stacks()["p_from_latent"], shipped_int()["weight_bits"]
    model = export_stack(state, 4, 4, wb, "p")
    _replace_init(model, "scale", lambda s: s * 3)                 # the input Quant's scale: not a power of two
    with pytest.raises(EdgecodecError, match="not a power of two"):
        layers_from_qonnx(model)
    model = export_stack(state, 4, 4, wb, "p")
    _replace_init(model, "bias", lambda b: b + 2.0 ** -40)          # a bias off its grid
    with pytest.raises(EdgecodecError, match="not on their grid"):
        layers_from_qonnx(model)
    model = export_stack(state, 4, 4, wb, "p")
    relu = next(n for n in model.graph.node if n.op_type == "Clip")
    relu.op_type = "Sigmoid"
    with pytest.raises(EdgecodecError, match="Sigmoid"):
        layers_from_qonnx(model)


def _p_frame(latent=(2, 3)):
    from edgecodec.codec import checkpoint as ckpt
    from quant.codec.qonnx_export import export_p_frame
    from tests.conftest import ROOT
    state = ckpt.load(ROOT / "checkpoints" / "codec_q1.pt")["int"]
    return state, export_p_frame(state, latent)


def test_the_p_frame_program_compiled_from_qonnx_is_the_integer_models():
    """The whole P-frame program (warp, p_from_latent, both ASE-GRU layers, context, concatenated p_synth, adds)
    compiled from the QONNX graph: the same memory image, byte for byte, as from the integer model; the RTL runs this
    program in tests/hw/engine/test_engine_harness.py and the flow stage `engine`."""
    from hw.engine.frame_program import p_frame_program, p_frame_program_from_parts
    from hw.engine.from_qonnx import p_frame_from_qonnx
    from edgecodec.engine_plan import shape_for
    state, model = _p_frame()
    shape = shape_for(state, 4, 32)
    parts = p_frame_from_qonnx(model)
    assert len(parts["cells"]) == 2 and [c.to_json() for c in parts["cells"]] == state["dec_cells"]
    a = p_frame_program(state, (2, 3), shape)
    b = p_frame_program_from_parts(parts, (2, 3), shape)
    assert a.programs == b.programs and a.image.to_bytes() == b.image.to_bytes()


@pytest.mark.parametrize("edit,match", [
    ("concat_scale", "scale of h into the concatenation"),
    ("clip", "clamped to 0..255"),
    ("domain", "AseGruLayer of domain"),
    ("offset", "context offset")])
def test_p_frame_graphs_the_engine_cannot_run_are_refused(edit, match):
    from hw.engine.from_qonnx import p_frame_from_qonnx
    _, model = _p_frame()
    nodes = list(model.graph.node)
    if edit == "concat_scale":
        cat = next(n for n in nodes if n.op_type == "Concat")
        mul = next(n for n in nodes if n.output[0] == cat.input[0])
        _replace_init(model, mul.input[1], lambda v: v * 2)
    elif edit == "clip":
        clip = [n for n in nodes if n.op_type == "Clip"][-1]
        _replace_init(model, clip.input[2], lambda v: v - 1)
    elif edit == "domain":
        next(n for n in nodes if n.op_type == "AseGruLayer").domain = "somewhere.else"
    else:
        _replace_init(model, "minus128", lambda v: v + 1)
    with pytest.raises(EdgecodecError, match=match):
        p_frame_from_qonnx(model)
