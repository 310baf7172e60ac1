"""Flow step `fpga`: the verified cell in the byte-stream wrapper -> Yosys -> nextpnr -> bitstream on the
configured device; the Xilinx estimate and a Vivado script beside it."""

from __future__ import annotations

from pathlib import Path

from base.hashing import sha256_file
from base.paths import YOWASP_CACHE as CACHE
from edgecodec.config import Config


def fps(clock_mhz: float | None, cycles_per_step: int | None) -> float | None:
    """Cell steps (frames) per second at a clock, from the RTL's measured cycles per step."""
    if not clock_mhz or not cycles_per_step:
        return None
    return clock_mhz * 1e6 / cycles_per_step


def fpga_stage(cfg: Config, params, height: int, width: int, out: Path, cycles: int | None,
               device: str | None = None) -> dict:
    """Wrapper -> Yosys -> nextpnr -> bitstream on the configured device; Xilinx estimate and Vivado script."""
    from hw.fpga.pnr import build_fpga
    from hw.fpga.wrapper import TOP_NAME, write_fpga_verilog
    from hw.fpga.xilinx import write_vivado_tcl, xilinx_estimate

    f = cfg.fpga
    dev = device or f.device
    r = build_fpga(params, height, width, cfg.hw, out / f"{f.family}_{dev}", family=f.family, device=dev,
                   package=f.package or None, speed=f.speed or None, freq_mhz=f.freq_mhz or None, seed=f.seed,
                   cache_dir=CACHE, bus_bits=f.bus_bits)
    r["fps"] = fps(r.get("fmax_mhz"), cycles)
    if r.get("bitstream"):
        r["bitstream_sha256"] = sha256_file(r["bitstream"])
    r["fps_basis"] = f"nextpnr Fmax x measured {cycles} cycles per step on the {height}x{width} feature map"
    # the same wrapper as on the ECP5, so the Xilinx figures compare like for like
    wrapper = write_fpga_verilog(params, height, width, cfg.hw, out / "wrapper" / f"{TOP_NAME}.v", f.bus_bits)
    r["xilinx"] = xilinx_estimate(wrapper, TOP_NAME, out / f"xilinx_{f.xilinx_family}", family=f.xilinx_family,
                                  cache_dir=CACHE)
    r["vivado_tcl"] = str(write_vivado_tcl(wrapper, TOP_NAME, out / "vivado", part=f.xilinx_part,
                                           freq_mhz=r.get("fmax_mhz") or 100.0))
    return r
