"""Activation ranges from real frames -> power-of-two fractional bits, and the float -> QAT model swap."""

from __future__ import annotations

import copy

import torch

from quant.config import QuantConfig

from quant import fixed_point as fp
from quant.cell.qat import CellFracs, from_float


@torch.no_grad()
def cells_fracs(cells, run, act_bits: int) -> list[CellFracs]:
    """Calibrated fracs of ASE-GRU cells: `run()` drives the float model over real data while hooks record
    max |v| of each calibrated tensor (cell input x, projector output x', SE hidden, U_n h~) per cell."""
    peaks = [dict(x=0.0, xp=0.0, s1=0.0, p=0.0) for _ in cells]
    hooks = []
    for i, cell in enumerate(cells):
        def rec(key, i=i):
            def hook(_m, args, out=None):
                v = args[0] if out is None else out
                peaks[i][key] = max(peaks[i][key], float(v.abs().max()))
            return hook
        hooks.append(cell.register_forward_pre_hook(rec("x")))
        hooks.append(cell.proj.register_forward_hook(rec("xp")))
        hooks.append(cell.se.fc1.register_forward_hook(lambda m, a, o, i=i: peaks[i].__setitem__(
            "s1", max(peaks[i]["s1"], float(o.clamp(min=0).max())))))
        hooks.append(cell.u["n"].register_forward_hook(rec("p")))
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return [CellFracs(x=fp.frac_for_range(pk["x"], act_bits), xp=fp.frac_for_range(pk["xp"], act_bits),
                      s1=fp.frac_for_range(pk["s1"], act_bits, signed=False), p=fp.frac_for_range(pk["p"], act_bits))
            for pk in peaks]


def cell_fracs(model, frames: torch.Tensor, act_bits: int) -> list[CellFracs]:
    """Run the float predictor on frames (N, T, 1, H, W), record max |v| of each calibrated tensor per cell."""
    model.eval()
    return cells_fracs(list(model.rnn.cells), lambda: model(frames), act_bits)


def quantize_predictor(model, quant: QuantConfig, se_reduction: int, calib_frames: torch.Tensor):
    """A copy of the float predictor whose ASE-GRU cells are QAT cells calibrated on real frames."""
    fracs = cell_fracs(model, calib_frames, quant.act_bits)
    qmodel = copy.deepcopy(model)
    qmodel.rnn.cells = torch.nn.ModuleList(
        from_float(cell, quant, fr, se_reduction) for cell, fr in zip(model.rnn.cells, fracs))
    return qmodel, fracs
