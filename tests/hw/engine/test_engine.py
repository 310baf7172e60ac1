"""hw.engine.engine.ConvEngine: layer programs compiled from shipped checkpoints run from AXI memory (cocotbext-axi
AxiRam with pauses on every channel), output maps equal to the integer model's, code for code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from base.errors import EdgecodecError
from edgecodec.engine_plan import shape_for, square_shape
from hw.engine.engine import EngineTop
from hw.engine.layers import ConvLayer, conv_layers
from hw.engine.program import DESC_WORDS, EngineShape, compile_stack, load_input
from hw.rtl.emit import write_component_verilog
from quant.codec.intnet import IntSequential
from sim.runner import run_bench
from sim.tb.engine_maps import save_runs
from tests.hw.engine.test_conv_unit import random_layer, shipped_int, shipped_stacks

SMALL = EngineShape(pe=2, simd=2, data_bits=64, max_width=32, max_cin=64, max_cout=256)


def shipped_small() -> EngineShape:
    """SMALL generated for the shipped checkpoints' weight codes (codec.int_weight_bits)."""
    import dataclasses
    return dataclasses.replace(SMALL, weight_bits=int(shipped_int()["weight_bits"]))


def run_engine(tmp_path: Path, shape: EngineShape, layers, x: np.ndarray, expected: np.ndarray, simulator: str,
               idle: float = 0.2, runs: int = 1, corrupt_weight: bool = False, mem_limit=None) -> list[int]:
    prog = compile_stack(layers, x.shape[1], x.shape[2], shape)
    load_input(prog, x, shape)
    if corrupt_weight:                   # one bit of the first layer's fourth weight word (descriptor field 8)
        word_bytes = shape.data_bits // 8
        addr = prog.image.words[prog.program_addr + 8 * word_bytes] + 3 * word_bytes
        prog.image.words[addr] ^= 1 << 3
    limit = None if mem_limit is None else mem_limit(prog)       # may patch the image (before it is written)
    assert prog.channels == expected.shape[0]
    full = np.zeros(prog.output_shape, dtype=np.int64)          # padded channels must come out as zeros
    full[:prog.channels] = expected
    tmp_path.mkdir(parents=True, exist_ok=True)
    v = write_component_verilog(EngineTop(shape), "engine_top", tmp_path / "engine.v")
    np.savez(tmp_path / "stim.npz", image=np.frombuffer(prog.image.to_bytes(), dtype=np.uint8), expected=full)
    cycles = tmp_path / "cycles.json"
    run_bench(v, "engine_top", "sim.tb.engine", tmp_path / "sim", simulator,
              env=dict(npz=str(tmp_path / "stim.npz"), program_addr=prog.program_addr, output_addr=prog.output_addr,
                       lanes=shape.pe, act_bits=shape.act_bits, word_bytes=shape.data_bits // 8, seed=1, idle=idle,
                       runs=runs, cycles_json=str(cycles),
                       **({} if limit is None else {"mem_limit": limit})))
    return json.loads(cycles.read_text())


def run_engine_programs(tmp_path: Path, shape: EngineShape, cases: list, simulator: str = "icarus") -> list[int]:
    """Several convolution programs ((layers, x, expected) each) on one build of the engine, one run each, memory
    without pauses; returns each run's cycles."""
    runs = []
    for layers, x, expected in cases:
        prog = compile_stack(layers, x.shape[1], x.shape[2], shape)
        load_input(prog, x, shape)
        full = np.zeros(prog.output_shape, dtype=np.int64)
        full[:prog.channels] = expected
        runs.append((prog.image.to_bytes(), prog.program_addr, [(prog.output_addr, full, shape.pe, shape.act_bits)]))
    tmp_path.mkdir(parents=True, exist_ok=True)
    v = write_component_verilog(EngineTop(shape), "engine_top", tmp_path / "engine.v")
    save_runs(tmp_path / "stim.npz", runs)
    cycles = tmp_path / "cycles.json"
    run_bench(v, "engine_top", "sim.tb.engine", tmp_path / "sim", simulator,
              env=dict(npz=str(tmp_path / "stim.npz"), word_bytes=shape.data_bits // 8, seed=1, idle=0,
                       runs=len(cases), cycles_json=str(cycles)))
    return json.loads(cycles.read_text())


def integer_model(state: dict, x: np.ndarray) -> np.ndarray:
    return IntSequential.from_state(state).run(torch.from_numpy(x)[None])[0].numpy()


def test_a_shipped_shuffle_layer_from_its_qonnx_export_twice(tmp_path):
    """p_from_latent of shipped q1 (64 -> 256 channels, PixelShuffle x2, Hardtanh), the program compiled from its
    QONNX export: execute_onnx, the integer model and the RTL agree code for code; the program runs twice."""
    from hw.engine.from_qonnx import layers_from_qonnx
    from quant.codec.qonnx_export import export_stack, run
    state = shipped_stacks()["p_from_latent"]
    x = np.random.default_rng(0).integers(-20, 21, size=(64, 2, 3))
    shape = shipped_small()
    model = export_stack(state, 2, 3, shape.weight_bits, "p_from_latent")
    want = integer_model(state, x)
    assert np.array_equal(run(model, x, state["f_in"]), want)
    layers, _ = layers_from_qonnx(model)
    cycles = run_engine(tmp_path, shape, layers, x, want, "icarus", runs=2)
    assert len(cycles) == 2 and all(c > 0 for c in cycles)


def test_a_program_beyond_the_memory_limit_stops_with_an_error_flag(tmp_path):
    """The second descriptor's output address moved to MEM_LIMIT (everything else in range): the first layer runs,
    then the engine stops before the second, flags STATUS.RANGE and writes nothing at or beyond the limit."""
    rng = np.random.default_rng(5)
    layers = [random_layer(rng, 2, 2, 1, 10, True), random_layer(rng, 2, 2, 1, 10, True)]
    x = rng.integers(-2048, 2048, size=(2, 2, 3))

    def beyond(prog):
        wb = SMALL.data_bits // 8
        second = prog.program_addr + DESC_WORDS * wb
        prog.image.words[second + 12 * wb] = prog.image.top        # field 12: output address
        return prog.image.top
    run_engine(tmp_path, SMALL, layers, x, stack_reference(layers, x), "icarus", idle=0, mem_limit=beyond)


def test_a_corrupted_weight_word_is_caught(tmp_path):
    """The same kind of program passes in the cycle-model test; here one bit of a weight word is flipped in memory."""
    rng = np.random.default_rng(4)
    layers = [random_layer(rng, 4, 8, 1, 10, True), random_layer(rng, 8, 4, 2, 12, False)]
    x = rng.integers(-2048, 2048, size=(4, 4, 5))
    from hw.engine.layers import reference
    want = reference(layers[1], reference(layers[0], x))
    with pytest.raises(EdgecodecError, match="failed"):
        run_engine(tmp_path / "bad", SMALL, layers, x, want, "icarus", idle=0.3, corrupt_weight=True)
    assert "mismatching codes" in (tmp_path / "bad" / "sim" / "results.xml").read_text()


@pytest.mark.slow
def test_intra_synthesis_of_a_real_frame_on_the_engine(tmp_path):
    """The whole I-frame synthesis of shipped q1 (three convolutions, three PixelShuffles) on the latent of a real
    carphone crop (the codes the encoder sends for it), equal to the integer model."""
    from edgecodec.codec import checkpoint as ckpt
    from model.codec.data import load_sequence
    from model.codec.network import CodecShape, VideoCodec
    from model.yuv import pack420
    from tests.conftest import CLIP_QCIF_MP4, ROOT
    ck = ckpt.load(ROOT / "checkpoints" / "codec_q1.pt")
    codec = VideoCodec(CodecShape(**ck["shape"]))
    y, u, v = (p[:1, :64, :64] if i == 0 else p[:1, :32, :32] for i, p in enumerate(load_sequence(CLIP_QCIF_MP4, 1)))
    state = ck["int"]["nets"]["intra_g_s"]
    codec.load_state_dict(ck["float"])
    with torch.no_grad():
        latent = torch.round(codec.intra.g_a(pack420(y, u, v) - 0.5)).clamp(-255, 255)[0].to(torch.int64).numpy()
    shape = shape_for(ck["int"], 4, 32)
    run_engine(tmp_path, shape, conv_layers(state["layers"]), latent, integer_model(state, latent), "verilator",
               idle=0.1)


def test_a_layer_the_engine_was_not_generated_for_is_refused():
    layer = conv_layers(shipped_stacks()["p_context"]["layers"])[0]          # 6 -> 64 channels
    small = shipped_small()
    wb = small.weight_bits
    with pytest.raises(EdgecodecError, match="layer 0 does not fit.*C_out 64 \\(at most 32"):
        compile_stack([layer], 8, 8, EngineShape(pe=4, simd=4, data_bits=256, weight_bits=wb, max_cout=32))
    assert len(compile_stack([layer], 8, 80, small).layers) == 3       # wider than max_width 32: three strips
    with pytest.raises(EdgecodecError, match="max_width 3"):
        compile_stack([layer], 8, 8, EngineShape(pe=2, simd=2, weight_bits=wb, max_width=3))
    with pytest.raises(EdgecodecError, match="PE .* must equal SIMD"):
        compile_stack([layer], 8, 8, EngineShape(pe=2, simd=1))
    with pytest.raises(EdgecodecError, match="narrower than a weight beat"):
        compile_stack([layer], 8, 8, EngineShape(pe=4, simd=4, data_bits=64))
    bad = ConvLayer(**{**layer.__dict__, "bias": layer.bias * 0 + (1 << 30)})
    with pytest.raises(EdgecodecError, match="bias beyond 24 bits"):
        compile_stack([bad], 8, 8, small)
    # 10-bit codes on an 8-bit engine (SMALL)
    wide = ConvLayer(**{**layer.__dict__, "weights": np.clip(layer.weights * 4, -512, 511)})
    assert int(np.abs(wide.weights).max()) > 127
    with pytest.raises(EdgecodecError, match="weights beyond 8 bits"):
        compile_stack([wide], 8, 8, SMALL)
    ten = square_shape(4, 32, weight_bits=10)
    assert ten.weight_bits == 10 and ten.data_bits == 256 and square_shape(4, 32).data_bits == 128
    assert square_shape(8, 64, weight_bits=10).data_bits == 1024 and square_shape(8, 64).data_bits == 512
    assert len(compile_stack([wide], 8, 8, ten).layers) == 1
    assert shape_for(shipped_int(4), 4, 32) == ten          # the shipped decoder's biases fit the 24-bit lanes


def test_the_bias_lanes_grow_to_what_a_checkpoint_needs():
    """A decoder whose bias codes pass 24 bits (a pruned one can: its narrower layers calibrate to finer accumulator
    scales) gets an engine with wider bias lanes from `shape_for`; the 24-bit engine refuses it."""
    import copy

    from edgecodec.engine_plan import bias_bits_for
    ist = copy.deepcopy(shipped_int(1))
    assert bias_bits_for(ist) == 24
    raw = ist["nets"]["p_h_s"]["layers"][0]
    raw["b"] = np.asarray(raw["b"], dtype=np.int64).copy()
    raw["b"][0] = -(1 << 25)
    assert bias_bits_for(ist) == 26
    shape = shape_for(ist, 4, 32)
    assert shape.bias_bits == 26 and shape.data_bits >= 4 * (26 + shape.pre_bits)
    layers = conv_layers(ist["nets"]["p_h_s"]["layers"])
    assert len(compile_stack(layers, 4, 4, shape).layers) == len(layers)
    with pytest.raises(EdgecodecError, match="bias beyond 24 bits"):
        compile_stack(layers, 4, 4, square_shape(4, 32, weight_bits=10))
    raw["b"][0] = (1 << 25) - 1                             # +2^25 - 1 also needs 26 bits, 2^25 would need 27
    assert bias_bits_for(ist) == 26


def test_cycle_model_matches_the_rtl_counter(tmp_path):
    """`program.engine_cycles` against the engine's cycle counter, memory without pauses: exact on two- and
    three-layer programs with stride 2 and a PixelShuffle and on a one-row map; within 0.5 % on a map split into
    strips."""
    from hw.engine.program import engine_cycles
    rng = np.random.default_rng(8)
    programs = [([(2, 4, 1, 1), (4, 4, 2, 1), (4, 2, 1, 1)], 5, 6, SMALL),
                ([(2, 16, 1, 2), (4, 2, 2, 1)], 5, 6, SMALL),
                ([(2, 2, 2, 1)], 1, 6, SMALL),
                ([(2, 4, 1, 1), (4, 2, 2, 1)], 5, 13, STRIPS)]
    cases = {}
    for specs, h, w, shape in programs:
        layers = [random_layer(rng, a, b, s, 10, True) for a, b, s, _ in specs]
        layers = [ConvLayer(**{**lay.__dict__, "shuffle": r}) for lay, (_, _, _, r) in zip(layers, specs)]
        x = rng.integers(-2048, 2048, size=(specs[0][0], h, w))
        cases.setdefault(shape, []).append((layers, x, stack_reference(layers, x)))
    for i, (shape, runs) in enumerate(cases.items()):      # one build of the engine per shape
        got = run_engine_programs(tmp_path / str(i), shape, runs)
        for cycles, (layers, x, _) in zip(got, runs):
            model = engine_cycles(compile_stack(layers, x.shape[1], x.shape[2], shape))
            if shape is STRIPS:     # a few cycles apart over a dozen strip descriptors (short rows: 3505 vs 3509)
                assert abs(cycles - model) <= 0.005 * cycles, (cycles, model)
            else:
                assert cycles == model, (cycles, model)


STRIPS = EngineShape(pe=2, simd=2, data_bits=64, max_width=5, max_cin=64, max_cout=256)


def stack_reference(layers, x):
    from hw.engine.layers import reference
    for lay in layers:
        x = reference(lay, x)
        if lay.shuffle == 2:
            x = torch.nn.functional.pixel_shuffle(torch.from_numpy(x)[None].double(), 2)[0].to(torch.int64).numpy()
    return x


def test_strips_of_a_wide_map_under_pauses(tmp_path):
    """A map wider than the unit (max_width 5): every layer runs as strips with halos (stride 1 and 2, odd widths, a
    PixelShuffle), the halo outputs dropped; equal to the reference under AXI pauses."""
    from hw.engine.program import strips
    rng = np.random.default_rng(9)
    layers = [random_layer(rng, 2, 16, 1, 10, True), random_layer(rng, 4, 4, 2, 11, False),
              random_layer(rng, 4, 2, 1, 12, False)]
    layers[0] = ConvLayer(**{**layers[0].__dict__, "shuffle": 2})
    x = rng.integers(-2048, 2048, size=(2, 3, 11))
    assert len(strips(11, 1, 5)) > 1 and len(strips(22, 2, 5)) > 1
    run_engine(tmp_path, STRIPS, layers, x, stack_reference(layers, x), "icarus", idle=0.3)


@pytest.mark.slow
def test_an_i_frame_of_a_real_stream_decoded_on_the_engine(tmp_path):
    """A host decodes an I-frame of a real stream as firmware would: z from the stream; the engine runs the
    hyper-synthesis (its output codes give the entropy rows); y from the stream with those rows; the engine runs
    the synthesis with the reconstruction folded into its last layer. The frame equals `edgecodec decode --mode int`
    byte for byte."""
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.codec.bitstream import parse_stream
    from edgecodec.codec.coder import Coder, decode, padded_size
    from edgecodec.entropy import FrameDecoder
    from hw.engine.program import pixel_output
    from model.codec.data import load_sequence
    from quant.codec.int_codec import rows_from_codes, unpack_planes
    from tests.conftest import CLIP_QCIF_MP4, ROOT
    y, u, v = load_sequence(CLIP_QCIF_MP4, 1)
    y, u, v = (np.ascontiguousarray(p[:, 16:80, 40:104]) if i == 0 else np.ascontiguousarray(p[:, 8:40, 20:52])
               for i, p in enumerate((y, u, v)))
    folder = ROOT / "checkpoints"
    ck = ckpt.load(folder, 1)
    data = Coder(ck, "int", "ans").encode(y, u, v, 1).data
    _, want = decode(data, folder)
    header, frames = parse_stream(data)
    coder = Coder(ck, "int", "ans")
    hp, wp = padded_size(header)
    dec = FrameDecoder(frames[0][1], coder.tables, coder.entropy)
    s = coder.net.shape
    z_hat = coder._read_z(dec, coder.rows_z["intra"], (1, s.hyper, hp // 64, wp // 64))[0].numpy()
    nets = ck["int"]["nets"]
    shape = shape_for(ck["int"], 4, 32)

    def on_engine(name, layers, x, expected, sub):
        run_engine(tmp_path / sub, shape, layers, x, expected, "verilator", idle=0.1)
        return expected                  # run_engine has checked the RTL's map against it, code for code

    h_s = conv_layers(nets["intra_h_s"]["layers"])
    codes = on_engine("intra_h_s", h_s, z_hat, integer_model(nets["intra_h_s"], z_hat), "h_s")
    rows = rows_from_codes(torch.from_numpy(codes)[None], ck["int"]["thresholds"]["intra"]).numpy()
    y_hat = dec.read(rows)[0]
    dec.close()
    g_s = conv_layers(nets["intra_g_s"]["layers"])
    g_s[-1] = pixel_output(g_s[-1])
    pixels = (integer_model(nets["intra_g_s"], y_hat) + 128).clip(0, 255)
    on_engine("intra_g_s", g_s, y_hat, pixels, "g_s")
    planes = unpack_planes(torch.from_numpy(pixels)[None])
    for got, ref in zip(planes, want):
        assert np.array_equal(got.numpy()[:ref.shape[1], :ref.shape[2]].astype(np.uint8), ref[0])
