"""The hardware sections: folding of the generated RTL (`hw`), FPGA implementation (`fpga`), ASIC estimate
(`asic`)."""

from __future__ import annotations

from dataclasses import dataclass

from base.errors import check_config as _check

from model.config import ModelConfig


@dataclass(frozen=True)
class HwConfig:
    """Hardware folding.

    Parameters
    ----------
    pe : output channels computed in parallel by the gate MAC array (must divide channels).
    simd : input channels consumed per cycle by each PE (must divide channels).
    dw_parallel : channels per cycle of the depth-wise conv accelerator (must divide channels).
    """

    pe: int = 4
    simd: int = 4
    dw_parallel: int = 4

    def validate(self, model: ModelConfig) -> None:
        c = model.channels
        _check(self.pe >= 1 and c % self.pe == 0, f"hw.pe={self.pe} must divide model.channels={c}")
        _check(self.simd >= 1 and c % self.simd == 0, f"hw.simd={self.simd} must divide model.channels={c}")
        _check(self.dw_parallel >= 1 and c % self.dw_parallel == 0,
               f"hw.dw_parallel={self.dw_parallel} must divide model.channels={c}")


@dataclass(frozen=True)
class FpgaConfig:
    """FPGA implementation (hw/fpga): Yosys + nextpnr + ecppack/icepack, all open tools.

    Parameters
    ----------
    family : 'ecp5' or 'ice40'.
    device : ECP5 '25k', '45k', '85k'; iCE40 'up5k'.
    package : package name (empty = the device's default package).
    speed : ECP5 speed grade 6, 7 or 8 (0 = the device's default).
    freq_mhz : clock target handed to nextpnr (0 = 50 MHz on ECP5, 24 MHz on iCE40).
    bus_bits : width of the wrapper's byte-stream I/O.
    seed : nextpnr placement seed (fixed: same inputs -> same bitstream bytes).
    xilinx_family : family for the Yosys synth_xilinx estimate and the Vivado script.
    xilinx_part : part named in the Vivado script (not run here).
    """

    family: str = "ecp5"
    device: str = "85k"
    package: str = ""
    speed: int = 0
    freq_mhz: float = 0.0
    bus_bits: int = 8
    seed: int = 1
    xilinx_family: str = "xc7"
    xilinx_part: str = "xc7a100tcsg324-1"

    def validate(self) -> None:
        _check(self.bus_bits in (1, 2, 4, 8, 16, 32), "fpga.bus_bits must be one of 1, 2, 4, 8, 16, 32")
        _check(self.freq_mhz >= 0, "fpga.freq_mhz must be >= 0")
        _check(self.speed >= 0, "fpga.speed must be >= 0 (0 = default)")


@dataclass(frozen=True)
class AsicConfig:
    """ASIC estimate (hw/asic): Yosys + ABC mapping to a liberty, static timing, power from simulated activity.

    Parameters
    ----------
    library : 'sky130hd' (default), 'gf180mcu' or 'sg13g2' (files in data/liberty).
    clock_mhz : clock for power and energy (0 = the achievable clock from static timing).
    power_height, power_width : feature-map crop of the real features simulated at gate level for switching
        activity (the mapped netlist of a cell of that size, same memories as macros; docs/asic.md).
    power_steps : cell steps of that simulation.
    """

    library: str = "sky130hd"
    clock_mhz: float = 0.0
    power_height: int = 6
    power_width: int = 8
    power_steps: int = 2

    def validate(self) -> None:
        libs = ("sky130hd", "gf180mcu", "sg13g2")   # = hw.asic.LIBRARIES (not imported: config stays light)
        _check(self.library in libs, f"asic.library '{self.library}' is unknown; choose one of {', '.join(libs)}")
        _check(self.clock_mhz >= 0, "asic.clock_mhz must be >= 0")
        _check(self.power_height >= 3 and self.power_width >= 3, "asic.power_height/width must be >= 3")
        _check(self.power_steps >= 2, "asic.power_steps must be >= 2")
