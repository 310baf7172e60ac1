"""Cell top: x -> depth-wise residual projector -> SE-gated GRU datapath -> h_t, one full cell step per frame.

Built from `quant.cell.params.CellParams` (weights and LUTs become ROM contents) and the hardware folding.
"""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from hw.config import HwConfig
from quant.cell.params import CellParams

from hw.rtl.dwconv import DWConvResidual
from hw.rtl.gru_datapath import GRUDatapath


class CellTop(wiring.Component):
    """One ASE-GRU cell over an H x W feature map.

    Parameters
    ----------
    params : integer parameters of the cell.
    height, width : feature-map size.
    hw : folding (pe, simd of the gate array; dw_parallel channels per cycle of the projector).

    Attributes
    ----------
    i : In(stream(C*A)): x codes, one pixel per beat in raster order, frames back to back.
    o : Out(stream(C*A)): h_t codes, one pixel per beat.
    step_cycles, step_count : see GRUDatapath.
    """

    def __init__(self, params: CellParams, height: int, width: int, hw: HwConfig):
        c = params.channels
        self.dw = DWConvResidual(channels=c, height=height, width=width, kernel=params.dw_kernel,
                                 act_bits=params.act_bits, weights=params.dw_w, weight_bits=params.weight_bits,
                                 bias=params.dw_b, residual_shift=params.f_dw, out_shift=params.dw_shift,
                                 parallel=hw.dw_parallel)
        self.gru = GRUDatapath(params, height, width, hw.pe, hw.simd)
        self.params, self.height, self.width, self.hw = params, height, width, hw
        super().__init__({
            "i": In(stream.Signature(unsigned(c * params.act_bits))),
            "o": Out(stream.Signature(unsigned(c * params.act_bits))),
            "step_cycles": Out(32),
            "step_count": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.dw = self.dw
        m.submodules.gru = self.gru
        connect(m, wiring.flipped(self.i), self.dw.i)
        connect(m, self.dw.o, self.gru.i)
        connect(m, self.gru.o, wiring.flipped(self.o))
        m.d.comb += [self.step_cycles.eq(self.gru.step_cycles), self.step_count.eq(self.gru.step_count)]
        return m
