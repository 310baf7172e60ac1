"""The decoder engine mapped onto sky130 and run at gate level (hw.asic.engine_gatesim): a convolution program
gives the integer model's codes, a corrupted weight is caught, activity splits into load and run phases."""

from __future__ import annotations

import numpy as np
import pytest

from hw.asic import power
from hw.asic.engine_gatesim import load_regions, run_program, segment_activity, signature
from hw.asic.gatesim import GateSim
from hw.asic.liberty import load_library
from hw.asic.mapping import map_design
from hw.asic.sta import analyse, build_graph
from hw.engine.engine import EngineTop
from hw.engine.layers import reference
from hw.engine.program import EngineShape, compile_stack, descriptor_cycles, load_input, read_map
from hw.rtl.emit import write_component_verilog
from tests.hw.engine.test_conv_unit import random_layer

SHAPE = EngineShape(pe=2, simd=2, data_bits=64, max_width=8, max_cin=8, max_cout=8)
WB = SHAPE.data_bits // 8


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    out = tmp_path_factory.mktemp("engine_gates")
    v = write_component_verilog(EngineTop(SHAPE), "engine_top", out / "engine_top.v")
    m = map_design(v, "engine_top", "sky130hd", out / "map", write_verilog=False)
    return m.load(), load_library("sky130hd")


def program(seed: int):
    rng = np.random.default_rng(seed)
    layers = [random_layer(rng, 4, 6, 1, 6, True), random_layer(rng, 6, 4, 2, 7, False)]
    x = rng.integers(-200, 200, size=(4, 5, 7))
    prog = compile_stack(layers, 5, 7, SHAPE)
    load_input(prog, x, SHAPE)
    return prog, reference(layers[1], reference(layers[0], x))


def run(net, lib, prog):
    descs = descriptor_cycles(prog.image, prog.program_addr, SHAPE)
    g = run_program(GateSim(net, lib), prog.image.to_bytes(), prog.program_addr, len(descs), WB, 20_000,
                    {i: load_regions(f, WB) for i, (f, _) in enumerate(descs)})
    got = read_map(g.memory, prog.output_addr, prog.output_shape, SHAPE.pe, SHAPE.act_bits, WB)
    return g, descs, got


def test_a_program_at_gate_level_gives_the_integer_models_codes(mapped):
    net, lib = mapped
    prog, want = program(1)
    g, descs, got = run(net, lib, prog)
    assert g.status & 2 and not g.status & 4, f"STATUS {g.status:#x}"
    assert np.array_equal(got[:want.shape[0]], want)
    # two descriptors, each a load phase (fetch, weights, biases) and a run phase, in order
    assert [(s.descriptor, s.phase) for s in g.segments] == [(-1, "load"), (0, "load"), (0, "run"), (1, "load"),
                                                             (1, "run")]
    for i, (f, _) in enumerate(descs):
        load = next(s for s in g.segments if s.descriptor == i and s.phase == "load")
        words = f[9] + (f[2] & 0xFFFFFFFF)            # weight and bias words, one a cycle
        assert words + 16 <= load.cycles <= words + 40
    # the engine's cycle counter and the cycle model agree with the simulated cycles
    assert abs(g.sim_cycles - g.cycles_register) <= 8
    assert abs(sum(n for _, n in descs) - g.sim_cycles) <= 0.02 * g.sim_cycles
    assert signature(descs[0][0]) != signature(descs[1][0])
    # activity: every segment toggles nets; the run phase switches more per cycle than the load phase
    graph = build_graph(net, lib)
    slew = analyse(net, lib, graph=graph)["slew"]
    sim = GateSim(net, lib)
    clk = [b for b in sim.ports["clk"] if b > 1]
    e = {}
    for phase in ("load", "run"):
        segs = [s for s in g.segments if s.phase == phase and s.descriptor >= 0]
        act = segment_activity(sim, segs, clk)
        assert act.cycles == sum(s.cycles for s in segs)
        e[phase] = sum(power.compute(net, lib, graph, act, 50.0, slew=slew)["energy_pj_per_cycle"].values())
    assert 0 < e["load"] < e["run"]


def test_a_corrupted_weight_is_caught_at_gate_level(mapped):
    net, lib = mapped
    prog, want = program(2)
    addr = prog.image.words[prog.program_addr + 8 * WB] + 3 * WB     # the first layer's fourth weight word
    prog.image.words[addr] ^= 1 << 3
    _, _, got = run(net, lib, prog)
    assert not np.array_equal(got[:want.shape[0]], want)
