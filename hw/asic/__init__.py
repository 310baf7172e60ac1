"""ASIC estimate of the cell on open standard-cell libraries (docs/asic.md).

    asic_estimate(params, height, width, hw, x_codes, library="sky130hd", ...) -> dict
    LIBRARIES: {"sky130hd": file, "gf180mcu": file, "sg13g2": file} (in data/liberty/)
"""

from hw.asic.estimate import asic_estimate
from hw.asic.liberty import DEFAULT_LIBRARY, LIBRARIES, LIBERTY_DIR, load_library

__all__ = ["asic_estimate", "load_library", "LIBRARIES", "LIBERTY_DIR", "DEFAULT_LIBRARY"]
