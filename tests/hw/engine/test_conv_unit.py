"""hw.engine.conv_unit.ConvUnit: bit-exact against the integer model's convolutions (random layers swept over
shapes, strides, shifts and clamps; real layers of a shipped checkpoint), under random stalls on every stream."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from base.errors import EdgecodecError
from hw.engine.conv_unit import ConvUnit
from hw.engine.layers import ConvLayer, conv_layers, reference
from hw.rtl.emit import write_component_verilog
from quant.codec.intnet import IntSequential
from quant.fixed_point import srange
from sim.runner import run_bench
from tests.conftest import ROOT

UNIT = dict(act_bits=12, weight_bits=8, bias_bits=24, pre_bits=3, max_shift=23)


def random_layer(rng, cin: int, cout: int, stride: int, shift: int, relu: bool, weight_bits: int = 8) -> ConvLayer:
    lo, hi = srange(weight_bits)
    w = rng.integers(lo, hi + 1, size=(cout, cin, 3, 3))
    pre = rng.integers(0, 4, size=cout)
    b = rng.integers(-(1 << 18), 1 << 18, size=cout)
    olo, ohi = srange(12)
    return ConvLayer(weights=w, pre=pre, bias=b, stride=stride, shift=shift, lo=0 if relu else olo, hi=ohi,
                     out_bits=12)


def stimulus(path: Path, layers: list[ConvLayer], inputs: list[np.ndarray]) -> Path:
    arrays = {}
    for n, (layer, x) in enumerate(zip(layers, inputs)):
        arrays.update({f"L{n}_w": layer.weights, f"L{n}_pre": layer.pre, f"L{n}_b": layer.bias, f"L{n}_x": x,
                       f"L{n}_expected": reference(layer, x),
                       f"L{n}_cfg": np.array([layer.stride, layer.shift, layer.lo, layer.hi])})
    np.savez(path, **arrays)
    return path


def run_unit(tmp_path: Path, unit: ConvUnit, layers, inputs, seed=1, idle=0.2, bp=0.3, simulator="verilator"):
    v = write_component_verilog(unit, "conv_unit", tmp_path / "conv_unit.v")
    npz = stimulus(tmp_path / "stim.npz", layers, inputs)
    cycles = tmp_path / "cycles.json"
    run_bench(v, "conv_unit", "sim.tb.conv_unit", tmp_path / "sim", simulator,
              env=dict(npz=str(npz), pe=unit.pe, simd=unit.simd, act_bits=unit.act_bits,
                       weight_bits=unit.weight_bits, bias_bits=unit.bias_bits, pre_bits=unit.pre_bits, seed=seed,
                       idle=idle, backpressure=bp, cycles_json=str(cycles)))
    return json.loads(cycles.read_text())


def shipped_int(quality: int = 1) -> dict:
    """The integer model of a shipped checkpoint (its nets and widths: weight_bits is codec.int_weight_bits)."""
    from edgecodec.codec import checkpoint as ckpt
    return ckpt.load(ROOT / "checkpoints" / f"codec_q{quality}.pt")["int"]


def shipped_stacks(quality: int = 1) -> dict:
    return shipped_int(quality)["nets"]


def test_layers_match_the_integer_model():
    """The unit's arithmetic (conv_layers + reference, PixelShuffle as an ordering) is the integer model's, code for
    code, on every stack of a shipped checkpoint."""
    rng = np.random.default_rng(0)
    for name, state in shipped_stacks().items():
        seq = IntSequential.from_state(state)
        layers = conv_layers(state["layers"])
        lo, hi = srange(state["layers"][0]["in_bits"])
        x = rng.integers(lo, hi + 1, size=(layers[0].cin, 6, 10))
        want = seq.run(torch.from_numpy(x)[None])[0].numpy()
        y = x
        for layer in layers:
            y = reference(layer, y)
            if layer.shuffle > 1:
                y = torch.nn.functional.pixel_shuffle(torch.from_numpy(y)[None].double(), layer.shuffle)[0]
                y = y.to(torch.int64).numpy()
        assert np.array_equal(y, want), name


def _sweep(rng, unit: ConvUnit):
    """Layers that reach the unit's corners: full width, one row, stride 2 on odd sizes, shift 0, ReLU, narrow
    clamps, one channel group and the most."""
    P, S = unit.pe, unit.simd
    cmax, omax = unit.max_cin, unit.max_cout
    specs = [(S, P, 1, 3, unit.max_width, 9, True), (cmax, omax, 2, 5, 7, 12, False), (cmax, P, 1, 1, 4, 0, False),
             (S, omax, 2, 1, 1, 10, True), (2 * S if 2 * S <= cmax else S, omax, 1, 4, 3, 14, False)]
    layers, inputs = [], []
    for cin, cout, stride, h, w, shift, relu in specs:
        layer = random_layer(rng, cin, cout, stride, shift, relu)
        if shift == 14:
            layer = ConvLayer(**{**layer.__dict__, "lo": -5, "hi": 7})
        layers.append(layer)
        inputs.append(rng.integers(*srange(12), size=(cin, h, w)) if shift else rng.integers(-8, 9, size=(cin, h, w)))
    return layers, inputs


@pytest.mark.parametrize("pe,simd,simulator", [
    (2, 2, "icarus"), pytest.param(4, 1, "verilator", marks=pytest.mark.slow),
    pytest.param(3, 4, "verilator", marks=pytest.mark.slow)])
def test_random_layers_bit_exact_under_stalls(tmp_path, pe, simd, simulator):
    unit = ConvUnit(pe=pe, simd=simd, max_width=12, max_cin=2 * simd * 2, max_cout=3 * pe, **UNIT)
    rng = np.random.default_rng(pe * 10 + simd)
    layers, inputs = _sweep(rng, unit)
    run_unit(tmp_path, unit, layers, inputs, seed=pe + simd, idle=0.3, bp=0.4, simulator=simulator)


def test_ten_bit_weights_bit_exact_under_stalls(tmp_path):
    """The unit generated for 10-bit weight codes (codec.int_weight_bits 10: bench/int_weight_bits.py) on layers
    whose codes use the whole 10-bit range, stride 1 and 2."""
    unit = ConvUnit(pe=2, simd=2, max_width=12, max_cin=8, max_cout=8, **{**UNIT, "weight_bits": 10})
    rng = np.random.default_rng(10)
    layers = [random_layer(rng, 4, 6, 1, 12, True, weight_bits=10), random_layer(rng, 6, 4, 2, 13, False, 10)]
    layers[0].weights[0, 0, 0, :2] = srange(10)
    assert int(np.abs(layers[1].weights).max()) > 127
    inputs = [rng.integers(*srange(12), size=(4, 5, 7)), rng.integers(*srange(12), size=(6, 6, 9))]
    run_unit(tmp_path, unit, layers, inputs, seed=5, idle=0.3, bp=0.4, simulator="icarus")


def test_wider_bias_lanes_bit_exact_under_stalls(tmp_path):
    """The unit generated with 26-bit bias lanes (engine_plan.bias_bits_for: what a pruned decoder can need) on
    biases at both ends of the 26-bit range; the same layers' reference outputs differ from a 24-bit truncation."""
    unit = ConvUnit(pe=2, simd=2, max_width=12, max_cin=8, max_cout=8, **{**UNIT, "weight_bits": 10,
                                                                           "bias_bits": 26})
    rng = np.random.default_rng(26)
    layers = [random_layer(rng, 4, 6, 1, 21, False, weight_bits=10), random_layer(rng, 6, 4, 2, 20, True, 10)]
    layers[0].bias[:2] = (-(1 << 25), (1 << 25) - 1)
    layers[1].bias[:2] = ((1 << 25) - 1, -(1 << 24) - 5)
    inputs = [rng.integers(*srange(12), size=(4, 5, 7)), rng.integers(*srange(12), size=(6, 6, 9))]
    for layer, x in zip(layers, inputs):      # the top bias bits matter: cut to 24 bits, the outputs would change
        cut = ConvLayer(**{**layer.__dict__, "bias": ((layer.bias + (1 << 23)) % (1 << 24)) - (1 << 23)})
        assert not np.array_equal(reference(cut, x), reference(layer, x))
    run_unit(tmp_path, unit, layers, inputs, seed=6, idle=0.3, bp=0.4, simulator="icarus")


def test_cycles_match_the_model(tmp_path):
    """Without stalls the unit takes exactly `layer_cycles` cycles per layer (stride 1 and 2, odd sizes)."""
    from hw.engine.conv_unit import layer_cycles
    unit = ConvUnit(pe=2, simd=2, max_width=16, max_cin=8, max_cout=8, **UNIT)
    rng = np.random.default_rng(3)
    specs = [(4, 4, 1, 5, 7), (8, 6, 2, 6, 9), (2, 8, 1, 3, 16), (2, 2, 2, 1, 1), (6, 2, 2, 8, 16), (2, 2, 1, 9, 3)]
    layers = [random_layer(rng, ci, co, s, 9, False) for ci, co, s, _, _ in specs]
    inputs = [rng.integers(-2048, 2048, size=(ci, h, w)) for ci, _, _, h, w in specs]
    got = run_unit(tmp_path, unit, layers, inputs, idle=0, bp=0, simulator="icarus")
    want = [layer_cycles(cin_groups=ci // 2, cout_groups=co // 2, height=h, width=w, stride=s, kernel=3,
                         row_slots=unit.row_slots) for ci, co, s, h, w in specs]
    assert got == want


@pytest.mark.slow       # shipped layers also run in test_engine.py's program test
def test_real_context_layers_of_a_shipped_checkpoint(tmp_path, ffmpeg):
    """The P decoder's context stack (6 -> 64 -> 32 channels, both stride 2) of shipped q1 on a real frame's
    pixel codes, the second layer fed with the first's RTL-checked output."""
    from model.codec.data import load_sequence
    from quant.codec.int_codec import pack_planes
    from tests.conftest import CLIP_QCIF_MP4
    layers = conv_layers(shipped_stacks()["p_context"]["layers"])
    y, u, v = (torch.from_numpy(p[0].astype(np.int64)) for p in load_sequence(CLIP_QCIF_MP4, 1))
    frame = (pack_planes(y, u, v)[0, :, 20:36, 30:54] - 128).numpy()
    unit = ConvUnit(pe=8, simd=2, max_width=24, max_cin=64, max_cout=64,
                    **{**UNIT, "weight_bits": shipped_int()["weight_bits"]})
    first = reference(layers[0], frame)
    assert np.count_nonzero(first) > first.size // 4          # real activations, not a zero map
    run_unit(tmp_path, unit, layers, [frame, first], idle=0.2, bp=0.2)


def test_a_corrupted_weight_is_reported_at_its_pixel(tmp_path):
    unit = ConvUnit(pe=2, simd=2, max_width=8, max_cin=4, max_cout=4, **UNIT)
    rng = np.random.default_rng(5)
    layer = random_layer(rng, 4, 4, 1, 6, False)
    x = rng.integers(-2048, 2048, size=(4, 3, 5))
    v = write_component_verilog(unit, "conv_unit", tmp_path / "conv_unit.v")
    npz = tmp_path / "stim.npz"
    bad_w = layer.weights.copy()
    bad_w[3, 1, 1, 1] += 1 if bad_w[3, 1, 1, 1] < 127 else -1      # output channel 3, centre tap
    np.savez(npz, L0_w=bad_w, L0_pre=layer.pre, L0_b=layer.bias, L0_x=x, L0_expected=reference(layer, x),
             L0_cfg=np.array([1, layer.shift, layer.lo, layer.hi]))
    with pytest.raises(EdgecodecError, match="failed"):
        run_bench(v, "conv_unit", "sim.tb.conv_unit", tmp_path / "sim", "icarus",
                  env=dict(npz=str(npz), pe=2, simd=2, act_bits=12, weight_bits=8, bias_bits=24, pre_bits=3))
    report = (tmp_path / "sim" / "results.xml").read_text()
    assert "channel 3" in report and "channel 2" not in report


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")   # the half-built object is dropped
@pytest.mark.parametrize("kwargs,match", [
    (dict(pe=0), "pe must be a positive integer"),
    (dict(kernel=4), "kernel must be odd"),
    (dict(max_cin=6, simd=4), "multiple of simd"),
    (dict(max_cout=6, pe=4), "multiple of simd"),
])
def test_bad_generation_parameters(kwargs, match):
    args = dict(pe=2, simd=2, max_width=8, max_cin=8, max_cout=8, **UNIT)
    with pytest.raises(ValueError, match=match):
        ConvUnit(**{**args, **kwargs})
