"""The proxy task that trains the flow's cell: next-frame luma prediction through stacked ASE-GRU cells on real
footage. Float training, calibration, QAT fine-tuning, the checkpoint, and the codes entering the verified layer."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from base.errors import EdgecodecError
from base.paths import resolve
from edgecodec.config import Config
from edgecodec.flow import proxy_checkpoint as checkpoint


def log(msg: str) -> None:
    print(f"[edgecodec] {msg}", flush=True)


def float_model(cfg: Config):
    from model.proxy.predictor import NextFramePredictor
    m = cfg.model
    return NextFramePredictor(m.channels, m.layers, m.se_reduction, m.gate_kernel, m.dw_kernel, m.downsample)


def qat_model(cfg: Config, ck: dict):
    """Rebuild the QAT predictor of a checkpoint."""
    from quant.cell.qat import CellFracs, QuantASEGRUCell
    model = float_model(cfg)
    model.load_state_dict(ck["float"])
    qm = copy.deepcopy(model)
    m = cfg.model
    qm.rnn.cells = torch.nn.ModuleList(
        QuantASEGRUCell(m.channels, m.se_reduction, m.dw_kernel, m.gate_kernel, cfg.quant, CellFracs(**fr))
        for fr in ck["fracs"])
    qm.load_state_dict(ck["qat"])
    return qm.eval()


def load_clip(path: str, frames: int | None = None) -> torch.Tensor:
    from model.video import read_luma
    y = read_luma(path, frames)
    return torch.from_numpy(y.astype(np.float32) / 255.0)[None, :, None]  # (1, T, 1, H, W)


def train(cfg: Config, progress: bool = True) -> dict:
    """Float training, calibration on real frames, QAT fine-tuning; writes the checkpoint."""
    from model.proxy.train import ClipSampler, evaluate, fit, seed_everything
    from quant.cell.calibrate import quantize_predictor

    t = cfg.train
    seed_everything(t.seed)
    model = float_model(cfg)
    sampler = ClipSampler([resolve(c) for c in t.clips], t.seq_len, t.crop, t.seed)
    t0 = time.time()
    losses = fit(model, sampler, t.float_steps, t.batch, t.lr, "float train", progress)
    calib = sampler.batch(8)
    qmodel, fracs = quantize_predictor(model, cfg.quant, cfg.model.se_reduction, calib)
    qlosses = fit(qmodel, sampler, t.qat_steps, t.batch, t.lr / 4, "QAT fine-tune", progress)
    clip = load_clip(resolve(cfg.flow.clip), cfg.flow.frames)
    log(f"trained in {time.time() - t0:.1f} s")  # not stored: the checkpoint bytes must not depend on the clock
    metrics = {"float": evaluate(model, clip), "qat": evaluate(qmodel, clip),
               "final_loss_float": losses[-1] if losses else None, "final_loss_qat": qlosses[-1] if qlosses else None,
               "eval_clip": cfg.flow.clip, "eval_frames": cfg.flow.frames}
    checkpoint.save(resolve(cfg.flow.checkpoint), cfg, model.state_dict(), qmodel.state_dict(),
                    [f.to_dict() for f in fracs], metrics)
    return checkpoint.load(resolve(cfg.flow.checkpoint), cfg)


def ensure_checkpoint(cfg: Config, retrain: bool = False, progress: bool = True) -> dict:
    path = resolve(cfg.flow.checkpoint)
    if path.exists() and not retrain:
        try:
            ck = checkpoint.load(path, cfg)
            log(f"reusing checkpoint {path}")
            return ck
        except EdgecodecError as exc:
            log(f"{exc}; retraining")
    log("training the proxy model (next-frame luma prediction) on real footage")
    return train(cfg, progress)


@torch.no_grad()
def layer_codes(cfg: Config, qmodel, clip: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """x codes entering cell `flow.layer` and the QAT model's h_t codes (float64 evaluation), (T, C, H, W)."""
    from quant import fixed_point as fp
    qm = copy.deepcopy(qmodel).double().eval()
    layer = cfg.flow.layer
    cell = qm.rnn.cells[layer]
    a, fx = cfg.quant.act_bits, cell.fracs.x
    xs, hs, state = [], [], None
    for t in range(clip.shape[1]):
        x = qm.features(clip[:, t].double())
        if state is None:
            state = [torch.zeros_like(x) for _ in qm.rnn.cells]
        for i in range(layer + 1):
            if i == layer:
                xs.append(np.clip(np.round(x[0].numpy() * 2.0 ** fx), *fp.srange(a)).astype(np.int64))  # = cell.x_q
            state[i] = qm.rnn.cells[i](x, state[i])
            x = state[i]
        hs.append(np.round(state[layer][0].numpy() * 2.0 ** (a - 1)).astype(np.int64))
    return np.stack(xs), np.stack(hs)
