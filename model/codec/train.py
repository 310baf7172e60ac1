"""Training of the ASE-GRU codec (seed 000, section 3.5): L = L_D + lambda R.

L_D = 255^2 MSE (all six packed 4:2:0 planes, i.e. YUV weighted 4:1:1 per pixel) + ssim_weight (1 - SSIM_Y);
R = bits per luma pixel of everything coded (y, z and, for P-frames, Delta_t). Delta_t comes from the encoder's
rate-constrained block search on the previous reconstruction (`model.codec.motion.block_search`, cost SSE +
motion_lambda * lambda * bits): the seed's smoothness term L_S lives there, as the bits of each vector's
difference from its neighbours' median.

Stage "intra": the I-frame codec on single frames. Stage "inter": the P-frame codec on sequences whose first
frame is coded by the frozen intra codec, gradients through time across the P-frames of a sample (through the
ASE-GRU states; through the reference frames too when `LossWeights.ref_grad`, else they are detached). Each further
quality starts from the previous quality's weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from pytorch_msssim import ssim
from tqdm import tqdm

from model.codec.motion import block_search, luma_codes, search_lambda
from model.codec.network import VideoCodec
from model.distributed import World
from model.proxy.train import cosine_lr


@dataclass(frozen=True)
class LossWeights:
    lmbda: float
    ssim: float
    motion_lambda: float = 1.0      # the block search's SSE per bit = motion_lambda * lmbda
    search_range: int = 16          # the block search's range in luma pixels
    rate_warmup: int = 0            # P stage: lambda ramps linearly from 0 over this many steps
    ref_grad: bool = False          # P stage: gradients flow into the references (previous reconstructions)

    @property
    def search_lam(self) -> int:
        return search_lambda(self.motion_lambda, self.lmbda)


def luma(x: torch.Tensor) -> torch.Tensor:
    return F.pixel_shuffle(x[:, :4], 2)


def distortion(rec: torch.Tensor, x: torch.Tensor, w: LossWeights) -> torch.Tensor:
    d = 255.0 ** 2 * F.mse_loss(rec, x)
    if w.ssim > 0:
        d = d + w.ssim * (1 - ssim(luma(rec), luma(x), data_range=1.0, win_size=7))
    return d


def luma_pixels(x: torch.Tensor) -> int:
    return x.shape[0] * x.shape[2] * x.shape[3] * 4


def intra_loss(codec: VideoCodec, x: torch.Tensor, w: LossWeights) -> tuple[torch.Tensor, dict]:
    out = codec.intra(x)
    bpp = out["bits"] / luma_pixels(x)
    d = distortion(out["recon"], x, w)
    return d + w.lmbda * bpp, {"D": float(d.detach()), "bpp": float(bpp.detach())}


def inter_loss(codec: VideoCodec, frames: torch.Tensor, w: LossWeights, rate_scale: float = 1.0
               ) -> tuple[torch.Tensor, dict]:
    """frames (N, T, 6, h, w): frame 0 through the frozen intra codec, frames 1.. as P-frames; the rate term is
    weighted rate_scale * lambda (the warm-up)."""
    with torch.no_grad():
        ref = codec.intra(frames[:, 0])["recon"].clamp(0, 1)
    state = codec.inter.init_state(ref)
    total, d_sum, bpp_sum, gain_sum = 0.0, 0.0, 0.0, 0.0
    steps = frames.shape[1] - 1
    for t in range(1, frames.shape[1]):
        x = frames[:, t]
        if not w.ref_grad:
            ref = ref.detach()
        motion = block_search(luma_codes(x), luma_codes(ref), w.search_range, w.search_lam).to(x.device)
        out = codec.inter(x, ref, state, motion)
        bpp = out["bits"] / luma_pixels(x)
        d = distortion(out["recon"], x, w)
        total = total + d + rate_scale * w.lmbda * bpp
        d_sum, bpp_sum = d_sum + float(d.detach()), bpp_sum + float(bpp.detach())
        with torch.no_grad():   # what the P path adds over the warped frame, dB (the diagnosis's residual gain)
            gain_sum += 10 * float(torch.log10(F.mse_loss(out["warped"], x) / F.mse_loss(out["recon"], x).clamp_min(1e-12)))
        ref, state = out["recon"].clamp(0, 1), out["state"]
    return total / steps, {"D": d_sum / steps, "bpp": bpp_sum / steps, "gain_db": gain_sum / steps}


class StageLoss(nn.Module):
    """One training step's loss of a stage as a module (what DistributedDataParallel wraps): forward(frames,
    rate_scale) -> (loss, info)."""

    def __init__(self, codec: VideoCodec, stage: str, w: LossWeights):
        super().__init__()
        self.codec, self.stage, self.w = codec, stage, w

    def forward(self, frames: torch.Tensor, rate_scale: float = 1.0) -> tuple[torch.Tensor, dict]:
        if self.stage == "intra":
            return intra_loss(self.codec, frames[:, 0], self.w)
        return inter_loss(self.codec, frames, self.w, rate_scale)


def run_stage(codec: VideoCodec, stage: str, sampler, steps: int, start: int, batch: int, lr: float,
              w: LossWeights, opt_state: dict | None, progress: bool, desc: str, on_checkpoint=None,
              every: int = 200, device: str = "cpu", world: World = World()) -> list[dict]:
    """Adam (cosine schedule) over `steps`, resuming at `start`; `on_checkpoint(step, opt)` is called every
    `every` steps (on every rank) so an interrupted run resumes where it stopped. Under several processes
    (`world`) each rank trains on its share of every batch and the gradients are averaged (model/distributed.py);
    the log holds the ranks' mean."""
    module = codec.intra if stage == "intra" else codec.inter
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    log = []
    codec.train()
    codec.intra.train(stage == "intra")
    step_loss = world.wrap(StageLoss(codec, stage, w))
    bar = tqdm(range(start, steps), desc=desc, disable=not (progress and world.main), dynamic_ncols=True,
               initial=start, total=steps)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(lr, step, steps)
        frames = world.share(sampler.batch(batch)).to(device)
        # warm-up (P stage): a P path trained under the full rate term from the start learns to send no latent
        # at all (the decoder's context features give a free gain, y_t -> 0, and a decoder that only ever sees
        # y_t = 0 passes no gradient to it); starting near lambda = 0 makes y_t carry the residual first
        scale = min(1.0, (step + 1) / w.rate_warmup) if stage == "inter" and w.rate_warmup else 1.0
        loss, info = step_loss(frames, scale)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        info.update(step=step, loss=float(loss.detach()))
        info = world.mean(info)
        log.append(info)
        bar.set_postfix(D=f"{info['D']:.1f}", bpp=f"{info['bpp']:.3f}",
                        **({"gain_dB": f"{info['gain_db']:.2f}"} if "gain_db" in info else {}))
        if on_checkpoint is not None and (step + 1) % every == 0 and step + 1 < steps:
            on_checkpoint(step + 1, opt)
    codec.eval()
    return log
