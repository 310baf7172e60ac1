"""hw.engine.axi_dma.AxiDma against cocotbext-axi's AxiRam: bursts split at max_burst and at 4 KB boundaries,
concurrent reads and writes, random pauses on every AXI channel and stream."""

from __future__ import annotations

import pytest

from hw.engine.axi_dma import AxiDma
from hw.rtl.emit import write_component_verilog
from sim.runner import run_bench


@pytest.mark.parametrize("data_bits,max_burst,simulator", [
    (64, 16, "icarus"), pytest.param(32, 4, "verilator", marks=pytest.mark.slow)])
def test_reads_and_writes_under_pauses(tmp_path, data_bits, max_burst, simulator):
    bb = data_bits // 8
    dma = AxiDma(addr_bits=16, data_bits=data_bits, max_burst=max_burst)
    v = write_component_verilog(dma, "axi_dma", tmp_path / "axi_dma.v")
    reads = [[0, 1], [4096 - 3 * bb, 7], [8192 + 5 * bb, 40], [12288 - bb, 2]]    # two cross a 4 KB page
    writes = [[20480 - 2 * bb, 5], [24576 + bb, 33], [32768, 1]]
    run_bench(v, "axi_dma", "sim.tb.axi_dma", tmp_path / "sim", simulator,
              env=dict(data_bits=data_bits, addr_bits=16, seed=max_burst, idle=0.3, backpressure=0.3, reads=reads,
                       writes=writes))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")   # the half-built object is dropped
@pytest.mark.parametrize("kwargs,match", [(dict(data_bits=24), "power of two"), (dict(max_burst=0), "max_burst"),
                                          (dict(addr_bits=8), "addr_bits")])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AxiDma(**kwargs)
