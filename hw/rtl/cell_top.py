"""Cell top: x -> depth-wise residual projector -> SE-gated GRU datapath -> h_t, one full cell step per frame.

Built from `quant.cell.params.CellParams` (weights and LUTs become ROM contents) and the hardware folding.
"""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from hw.config import HwConfig
from quant.cell.params import CellParams

from hw.rtl.dwconv import DWConvResidual, cycles_per_frame as dw_cycles_per_frame
from hw.rtl.gru_datapath import PIPE_LAT, GRUDatapath

SE_OVERHEAD = 13        # SE unit: start, drains between its phases and `done` (hw.rtl.se_unit docstring)
STORE_TAIL = PIPE_LAT + 3   # last beat -> store (E7) -> through the buffered output FIFO -> the step's last push


def cycles_per_step(channels: int, se_hidden: int, height: int, width: int, hw: HwConfig,
                    dw_kernel: int = 3) -> int:
    """Cycles of one cell step without stalls (the RTL's `step_cycles`): the SE phase (C + 2 C C/r + 13), then the
    pixels at the slower of the gate array (C/PE x C/SIMD beats a pixel) and the depth-wise projector feeding it,
    then the pipeline tail.

    Exact (equal to the simulated RTL, tests/hw/rtl/test_cell_cycles.py) where `cycles_model_exact` holds: the gate
    array bounds the step and a pixel takes at least 8 beats (the default C=16, PE=SIMD=4: 16). Outside it the
    figure is an estimate: with the projector bounding the step part of its frame overlaps the SE phase (C=8,
    PE=SIMD=8, P=1: RTL 246, model 267); at one beat a pixel the per-pixel issue and memory read dominate (C=4,
    PE=SIMD=4: RTL 91, model 70).
    """
    c = channels
    se = c + 2 * c * se_hidden + SE_OVERHEAD
    gate = height * width * (c // hw.pe) * (c // hw.simd)
    dw = dw_cycles_per_frame(c, height, width, dw_kernel, hw.dw_parallel)
    return se + max(gate, dw) + STORE_TAIL


def cycles_model_exact(channels: int, height: int, width: int, hw: HwConfig, dw_kernel: int = 3) -> bool:
    """Whether `cycles_per_step` is in the regime checked equal to the RTL (see there)."""
    beats = (channels // hw.pe) * (channels // hw.simd)
    return beats >= 8 and height * width * beats >= dw_cycles_per_frame(channels, height, width, dw_kernel,
                                                                          hw.dw_parallel)


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
