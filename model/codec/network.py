"""The ASE-GRU video codec of seed 000 (sections 3.4-3.5): intra codec, motion, residual coder, hyperprior.

Frames travel as packed 4:2:0 tensors (N, 6, H/2, W/2) on the grid 1/256 (`model.yuv.pack420`): the four
luma phases and the two chroma planes share one half-resolution grid.

- I-frame: `IntraCodec` (strided-conv analysis, hyperprior, sub-pixel-conv synthesis).
- P-frame: `PFrameCodec`: the encoder's block search (`model.codec.motion`) gives Delta_t, one quarter-pel
  vector per 16x16 luma block, coded as differences from a median predictor under a factorized Laplace prior;
  the previous reconstruction is warped block by block (bilinear sampling, luma and chroma); the residual
  and the warped frame go through a feature extractor, two stacked ASE-GRU layers and a 3x3 convolution to the
  latent y_t (hyperprior-coded); the decoder mirrors it with its own ASE-GRU state and a synthesis that also
  sees context features of the warped frame (conditional coding), and adds its output to the warped frame.

All convolutional stacks are `nn.Sequential`s of Conv2d / ReLU / Hardtanh / PixelShuffle only: that is what the
integer model (`quant.codec.intnet`) converts, layer for layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from model.cell.ase_gru import ASEGRUStack
from model.codec import motion as mc
from model.codec.motion import predict_median, warp_packed

SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 64.0, 64   # the entropy model's scale table (edgecodec/entropy.py)
MOTION_UNITS = mc.UNITS                               # Delta_t is coded in quarter luma pixels
MOTION_STRIDE = mc.BLOCK                              # one motion vector per 16x16 luma block
LATENT_STRIDE = 16                                    # y_t: 1/16 of the luma resolution
HYPER_STRIDE = 64                                     # z_t: 1/64
FEATURE_BOUND = 2.0                                   # ASE-GRU inputs are Hardtanh-bounded to +-2
RESIDUAL_GAIN = 8.0                                   # the P encoder reads the residual x 8 (see encoder_input)
LATENT_INIT_GAIN = 4.0                                # y_t starts 4x larger than the default init gives


def conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def up(cin: int, cout: int) -> list[nn.Module]:
    """x2 sub-pixel convolution (3x3 conv to 4*cout channels, then PixelShuffle)."""
    return [conv(cin, 4 * cout), nn.PixelShuffle(2)]


def ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


def _laplace_cdf(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 0.5 + 0.5 * torch.sign(x) * (1 - torch.exp(-x.abs() / b))


def bits_gaussian(v: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """-log2 P(v) of integer-binned v under N(0, scale) (summed)."""
    s = scale.clamp(SCALE_MIN, SCALE_MAX)
    p = _std_normal_cdf((0.5 - v.abs()) / s) - _std_normal_cdf((-0.5 - v.abs()) / s)
    return -torch.log2(p.clamp_min(1e-9)).sum()


def bits_laplace(v: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """-log2 P(v) of integer-binned v under Laplace(0, scale) (summed)."""
    b = scale.clamp(SCALE_MIN, SCALE_MAX)
    a = v.abs()
    p = _laplace_cdf(a + 0.5, b) - _laplace_cdf(a - 0.5, b)
    return -torch.log2(p.clamp_min(1e-9)).sum()


def quantize(v: torch.Tensor, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(value for the rate: noisy in training, rounded otherwise; value for the decoder: rounded, STE)."""
    if training:
        return v + torch.empty_like(v).uniform_(-0.5, 0.5), ste_round(v)
    r = torch.round(v)
    return r, r


class Hyperprior(nn.Module):
    """Scale hyperprior: z = h_a(y) (factorized Laplace prior per channel), log sigma_y = h_s(z_hat)."""

    def __init__(self, latent: int, hyper: int):
        super().__init__()
        self.h_a = nn.Sequential(conv(latent, hyper), nn.ReLU(), conv(hyper, hyper, 3, 2), nn.ReLU(),
                                 conv(hyper, hyper, 3, 2))
        self.h_s = nn.Sequential(*up(hyper, hyper), nn.ReLU(), *up(hyper, hyper), nn.ReLU(), conv(hyper, latent))
        self.z_log_scale = nn.Parameter(torch.zeros(hyper))

    def forward(self, y: torch.Tensor) -> dict:
        z_rate, z_hat = quantize(self.h_a(y), self.training)
        log_scale = self.h_s(z_hat)
        y_rate, y_hat = quantize(y, self.training)
        bits = bits_gaussian(y_rate, torch.exp(log_scale)) + \
            bits_laplace(z_rate, torch.exp(self.z_log_scale)[None, :, None, None])
        return {"y_hat": y_hat, "z_hat": z_hat, "log_scale": log_scale, "bits": bits}


class IntraCodec(nn.Module):
    """I-frame codec on packed frames: g_a -> y (1/16 luma) -> hyperprior -> g_s. `analysis` > 0 widens g_a alone
    (the encoder side, which no decoder pays for)."""

    def __init__(self, features: int, latent: int, hyper: int, analysis: int = 0):
        super().__init__()
        f, fa = features, analysis or features
        self.g_a = nn.Sequential(conv(6, fa, 5, 2), nn.ReLU(), conv(fa, fa, 5, 2), nn.ReLU(), conv(fa, latent, 5, 2))
        self.g_s = nn.Sequential(*up(latent, f), nn.ReLU(), *up(f, f), nn.ReLU(), *up(f, 6))
        self.hyper = Hyperprior(latent, hyper)

    def forward(self, x: torch.Tensor) -> dict:
        out = self.hyper(self.g_a(x - 0.5))
        out["recon"] = self.g_s(out["y_hat"]) + 0.5
        return out


@dataclass(frozen=True)
class CodecShape:
    """Sizes of one codec (config `codec` + the ASE-GRU sizes of config `model`)."""

    channels: int = 16       # ASE-GRU hidden size C (the accelerator's cell; the seed's 512 works too)
    layers: int = 2
    reduction: int = 4
    gate_kernel: int = 1
    dw_kernel: int = 3
    features: int = 32
    latent: int = 32
    hyper: int = 32
    context: int = 16        # channels of the warped frame's context features (conditional P decoder)
    intra_features: int = 0  # conv widths of the I-frame codec; 0: `features`
    intra_latent: int = 0    # latent channels of the I-frame codec; 0: `latent`
    intra_analysis: int = 0  # conv widths of the I-frame analysis g_a (encoder side); 0: the I-frame codec's

    @property
    def i_features(self) -> int:
        return self.intra_features or self.features

    @property
    def i_latent(self) -> int:
        return self.intra_latent or self.latent


class PFrameCodec(nn.Module):
    """Low-delay P-frame codec around two ASE-GRU stacks (encoder and decoder, each with its own state).

    Conditional coding (DCVC-style, in the form the integer model converts): the encoder sees the residual and
    the warped frame; the decoder's synthesis sees its ASE-GRU output beside context features of the warped
    frame, so it can predict what motion compensation got wrong without bits. Delta_t comes from the encoder's
    block search (`model.codec.motion.block_search`) and is given to `forward`."""

    def __init__(self, s: CodecShape):
        super().__init__()
        f, c = s.features, s.channels
        self.motion_log_scale = nn.Parameter(torch.zeros(2))
        self.feat = nn.Sequential(conv(12, f, 3, 2), nn.ReLU(), conv(f, c, 3, 2),
                                  nn.Hardtanh(-FEATURE_BOUND, FEATURE_BOUND))
        self.enc_rnn = ASEGRUStack(c, s.layers, s.reduction, s.gate_kernel, s.dw_kernel)
        self.to_latent = conv(c, s.latent, 3, 2)
        with torch.no_grad():        # latents below the quantizer's step at the start never learn to carry bits
            self.to_latent.weight.mul_(LATENT_INIT_GAIN)
            self.to_latent.bias.mul_(LATENT_INIT_GAIN)
        self.hyper = Hyperprior(s.latent, s.hyper)
        self.from_latent = nn.Sequential(*up(s.latent, c), nn.Hardtanh(-FEATURE_BOUND, FEATURE_BOUND))
        self.dec_rnn = ASEGRUStack(c, s.layers, s.reduction, s.gate_kernel, s.dw_kernel)
        self.context = nn.Sequential(conv(6, f, 3, 2), nn.ReLU(), conv(f, s.context, 3, 2), nn.Hardtanh(-1.0, 1.0))
        self.synth = nn.Sequential(*up(c + s.context, f), nn.ReLU(), *up(f, 6))

    def init_state(self, x: torch.Tensor) -> tuple[list, list]:
        """Zero hidden states for a packed frame batch x (reset at every I-frame)."""
        n, _, h2, w2 = x.shape
        z = x.new_zeros(n, self.enc_rnn.cells[0].channels, h2 // 4, w2 // 4)
        return self.enc_rnn.init_state(z), self.dec_rnn.init_state(z)

    def encoder_input(self, cur: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
        """What the encoder's feature extractor reads: the residual, amplified to the scale of the warped frame
        (residuals are a few code values; unamplified, the features see mostly the warped frame), and the warped
        frame."""
        return torch.cat([(cur - warped) * RESIDUAL_GAIN, warped - 0.5], dim=1)

    def forward(self, cur: torch.Tensor, ref: torch.Tensor, state: tuple[list, list], motion: torch.Tensor) -> dict:
        """cur, ref packed frames; motion (N, 2, H/16, W/16) quarter-pel block vectors (integers)."""
        warped = warp_packed(ref, motion)
        h_enc, enc_state = self.enc_rnn(self.feat(self.encoder_input(cur, warped)), state[0])
        out = self.hyper(self.to_latent(h_enc))
        h_dec, dec_state = self.dec_rnn(self.from_latent(out["y_hat"]), state[1])
        ctx = self.context(warped - 0.5)
        out["recon"] = warped + self.synth(torch.cat([h_dec, ctx], dim=1))
        mvd = (motion - predict_median(motion)).to(cur.dtype)
        out["motion_bits"] = bits_laplace(mvd, torch.exp(self.motion_log_scale)[None, :, None, None])
        out["bits"] = out["bits"] + out["motion_bits"]
        out.update(motion=motion, warped=warped, state=(enc_state, dec_state))
        return out


class VideoCodec(nn.Module):
    """Intra + P codec of one quality."""

    def __init__(self, s: CodecShape):
        super().__init__()
        self.shape = s
        self.intra = IntraCodec(s.i_features, s.i_latent, s.hyper, s.intra_analysis)
        self.inter = PFrameCodec(s)
