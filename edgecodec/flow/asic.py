"""Flow step `asic`: liberty mapping, static timing, gate-level activity on real features, power."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecodec.config import Config


def asic_stage(cfg: Config, params, height: int, width: int, x_codes: np.ndarray, out: Path, cycles: int | None,
               library: str | None = None) -> dict:
    """Liberty mapping, static timing, gate-level activity on real features, power and energy per frame."""
    from hw.asic.estimate import asic_estimate

    a = cfg.asic
    ch, cw = min(a.power_height, height), min(a.power_width, width)
    return asic_estimate(params, height, width, cfg.hw, x_codes, library=library or a.library, out_dir=out,
                         clock_mhz=a.clock_mhz or None, cycles_per_step=cycles, crop=(ch, cw),
                         crop_steps=min(a.power_steps, len(x_codes)))
