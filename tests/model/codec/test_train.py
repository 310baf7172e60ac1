"""The codec's P-stage loss: the rate warm-up scales only the rate term, and the P path's encoder reads the
amplified residual."""

from __future__ import annotations

import torch

from model.codec import network as net
from model.codec.network import CodecShape, VideoCodec
from model.codec.train import LossWeights, inter_loss


def test_rate_scale_weights_only_the_rate():
    torch.manual_seed(0)
    codec = VideoCodec(CodecShape(features=8, latent=8, hyper=8, context=8))
    frames = torch.rand(2, 3, 6, 32, 32)
    w = LossWeights(lmbda=100.0, ssim=0.0, search_range=2)
    codec.train()
    out = {}
    for scale in (0.0, 1.0):
        torch.manual_seed(1)                      # the same quantization noise both times
        loss, info = inter_loss(codec, frames, w, scale)
        out[scale] = (float(loss), info)
    (l0, i0), (l1, i1) = out[0.0], out[1.0]
    assert abs(l0 - i0["D"]) < 1e-3 * i0["D"]
    assert abs(l1 - (i1["D"] + 100.0 * i1["bpp"])) < 1e-3 * l1


def test_encoder_reads_the_amplified_residual_and_the_warped_frame():
    codec = VideoCodec(CodecShape(features=8, latent=8, hyper=8, context=8))
    cur, warped = torch.full((1, 6, 4, 4), 0.52), torch.full((1, 6, 4, 4), 0.5)
    x = codec.inter.encoder_input(cur, warped)
    assert torch.allclose(x[:, :6], torch.full_like(x[:, :6], 0.02 * net.RESIDUAL_GAIN))
    assert torch.equal(x[:, 6:], torch.zeros_like(x[:, 6:]))


def _p_grads(frames: torch.Tensor, ref_grad: bool) -> dict:
    torch.manual_seed(0)
    codec = VideoCodec(CodecShape(features=8, latent=8, hyper=8, context=8))
    codec.train()
    torch.manual_seed(1)                          # the same quantization noise every time
    loss, _ = inter_loss(codec, frames, LossWeights(lmbda=100.0, ssim=0.0, search_range=2, ref_grad=ref_grad))
    loss.backward()
    return {n: p.grad.clone() for n, p in codec.inter.named_parameters() if p.grad is not None}


def test_ref_grad_lets_the_gradient_reach_the_reference_frames():
    """With ref_grad the loss of a P-frame also trains the P-frame it was coded from (its reconstruction is the
    reference): the P path's gradients change once a sample has two P-frames, not with one (whose reference is
    the I-frame, never trained here)."""
    torch.manual_seed(2)
    frames = torch.rand(1, 3, 6, 32, 32)
    one_p = frames[:, :2]
    a, b = _p_grads(one_p, False), _p_grads(one_p, True)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    a, b = _p_grads(frames, False), _p_grads(frames, True)
    assert a.keys() == b.keys() and any(not torch.allclose(a[n], b[n]) for n in a)
