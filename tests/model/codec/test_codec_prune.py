"""model.codec.prune: the codec-wide channel groups (the ASE-GRU hidden size as one group over both stacks, the
context features, every stack's inner convolutions), kept counts snapped to a multiple, a shrunk codec that equals
the gated one, gradient decay and distillation records through the whole codec, pruned widths rebuilt from a
state dict."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from base.errors import EdgecodecError
from model.codec.motion import block_search, luma_codes
from model.codec.network import CodecShape, VideoCodec
from model.codec.prune import CONTEXT, HIDDEN, GatedCodec, codec_from_state, codec_structure, shrink_codec

SHAPE = CodecShape(channels=16, features=16, latent=8, hyper=8, context=8)


def gated_codec(multiple: int = 4, seed: int = 0) -> tuple[VideoCodec, GatedCodec]:
    torch.manual_seed(seed)
    teacher = VideoCodec(SHAPE).eval()
    return teacher, GatedCodec(copy.deepcopy(teacher), teacher, multiple)


def prune_half(g: GatedCodec) -> None:
    for name in g.groups:
        g.gate(name).tau.data = g.norms(name).detach().median()


def run(codec: VideoCodec, x: torch.Tensor) -> list[torch.Tensor]:
    """Intra frame, then two P-frames (motion from the block search): reconstructions and bits."""
    out = codec.intra(x[:, 0])
    res = [out["recon"], out["bits"][None]]
    ref = out["recon"].clamp(0, 1)
    state = codec.inter.init_state(ref)
    for t in (1, 2):
        m = block_search(luma_codes(x[:, t]), luma_codes(ref), 4, 64)
        o = codec.inter(x[:, t], ref, state, m)
        res += [o["recon"], o["bits"][None]]
        ref, state = o["recon"].clamp(0, 1), o["state"]
    return res


def test_the_hidden_size_is_one_group_over_both_gru_stacks_and_its_producers():
    groups, layers = codec_structure(VideoCodec(SHAPE))
    hidden = dict(groups[HIDDEN].producers)
    assert hidden.pop("inter.feat.2") == 1 and hidden.pop("inter.from_latent.0") == 4     # sub-pixel: 4 a channel
    cells = {f"inter.{s}.cells.{i}.{p}" for s in ("enc_rnn", "dec_rnn") for i in (0, 1)
             for p in ["proj.conv"] + [f"{wu}.{g}" for wu in "wu" for g in "zrn"]}
    assert set(hidden) == cells and set(hidden.values()) == {1}
    assert groups[HIDDEN].units == 16 and len(groups[HIDDEN].passive) == 4               # the SE fc2 rows
    assert layers["inter.synth.0"].ins == [(HIDDEN, 16), (CONTEXT, 8)]
    assert layers["inter.to_latent"].ins == [(HIDDEN, 16)] and layers["inter.to_latent"].out is None
    assert groups[CONTEXT].producers == [("inter.context.2", 1)]
    assert groups["intra.g_s.0"].producers == [("intra.g_s.0", 4)] and groups["intra.g_s.0"].units == 16
    for fixed in ("intra.g_a.4", "intra.g_s.6", "intra.hyper.h_a.4", "intra.hyper.h_s.6", "inter.synth.3"):
        assert layers[fixed].out is None, fixed                 # frame, latent and hyper-latent interfaces


def test_a_shrunk_codec_equals_the_gated_one_with_consistent_hidden_widths():
    teacher, g = gated_codec()
    prune_half(g)
    kept = g.kept()
    assert kept[HIDDEN] == 8 and kept[CONTEXT] == 4 and kept["intra.g_s.0"] == 8
    small, widths = shrink_codec(g)
    x = torch.rand(2, 3, 6, 32, 32)
    g.eval()
    with torch.no_grad():
        a, b, dense = run(g.codec, x), run(small, x), run(teacher, x)
    assert all(torch.allclose(u, v, atol=1e-5) for u, v in zip(a, b))
    assert not torch.allclose(a[2], dense[2], atol=1e-3)        # pruning changed the P-frame
    p = small.inter
    for cell in list(p.enc_rnn.cells) + list(p.dec_rnn.cells):
        assert cell.channels == 8 and cell.proj.conv.weight.shape == (8, 1, 3, 3) and cell.proj.conv.groups == 8
        assert all(cell.w[k].weight.shape[:2] == (8, 8) and cell.u[k].weight.shape[:2] == (8, 8) for k in "zrn")
        assert cell.se.fc1.weight.shape == (4, 8) and cell.se.fc2.weight.shape == (8, 4)   # bottleneck kept
    assert widths["inter.feat.2"] == 8 and widths["inter.from_latent.0"] == 32
    assert p.to_latent.weight.shape[:2] == (8, 8) and p.synth[0].in_channels == 8 + 4
    assert small.shape.channels == 8 and small.shape.context == 4


def test_kept_counts_snap_to_the_multiple_and_never_reach_zero():
    _, g = gated_codec(multiple=4, seed=1)
    for name in g.groups:
        norms = g.norms(name).detach()
        g.gate(name).tau.data = norms.sort().values[len(norms) // 3]     # about a third below tau: not a multiple
    kept = g.kept()
    assert all(k % 4 == 0 or k == g.groups[n].units for n, k in kept.items()), kept
    _, g1 = gated_codec(multiple=1, seed=1)
    for name in g1.groups:
        g1.gate(name).tau.data = g1.norms(name).detach().sort().values[len(g1.norms(name)) // 3]
    assert any(k % 4 for k in g1.kept().values())                  # without snapping the counts are not multiples
    for name in g.groups:
        g.gate(name).tau.data = torch.tensor(1e9)
    assert set(g.kept().values()) == {4}
    small, _ = shrink_codec(g)
    x = torch.rand(1, 3, 6, 32, 32)
    g.eval()
    with torch.no_grad():
        assert all(torch.allclose(u, v, atol=1e-5) for u, v in zip(run(g.codec, x), run(small, x)))


def test_decoder_macs_follow_the_kept_widths_and_the_soft_estimate_is_differentiable():
    _, g = gated_codec()
    dense = g.decoder_macs(g.full(), 1080, 1920, 8)
    prune_half(g)
    small, _ = shrink_codec(g)
    hard = g.decoder_macs(g.kept(), 1080, 1920, 8)
    groups, _ = codec_structure(small)
    again = GatedCodec(copy.deepcopy(small)).decoder_macs({n: gr.units for n, gr in groups.items()}, 1080, 1920, 8)
    assert hard == pytest.approx(again) and hard["gop_mean"] < 0.5 * dense["gop_mean"]
    soft = g.decoder_macs(g.soft_kept(), 1080, 1920, 8)["gop_mean"]
    soft.backward()
    encoder_only = {n for n in g.groups if n.startswith(("intra.g_a", "intra.hyper.h_a", "inter.feat",
                                                          "inter.hyper.h_a"))}
    for name in g.groups:                  # the decoder's budget does not reach the encoder's groups
        grad = g.gate(name).tau.grad
        assert (grad is None) if name in encoder_only else (grad is not None and grad.item() < 0), name


def test_gradient_decay_reaches_the_pruned_hidden_channels_scaled_by_beta():
    _, g = gated_codec()
    prune_half(g)
    cut = (g.mask(HIDDEN) == 0).nonzero().flatten()
    x = torch.rand(1, 3, 6, 32, 32)
    grads = {}
    for beta in (0.0, 0.5, 1.0):
        g.set_beta(beta)
        g.codec.zero_grad()
        run(g.codec, x)[4].sum().backward()
        w = g.codec.inter.dec_rnn.cells[0].w["n"].weight
        grads[beta] = w.grad[cut].clone()
    assert grads[0.0].abs().max() == 0 and grads[1.0].abs().max() > 0
    assert torch.allclose(grads[0.5], 0.5 * grads[1.0], atol=1e-7)


def test_distillation_records_each_gated_layer_against_the_teacher_by_stage():
    _, g = gated_codec()
    x = torch.rand(1, 3, 6, 32, 32)
    g.recorder = []
    run(g.codec, x)
    assert g.recorder and max(float(d.detach()) for _, d in g.recorder) < 1e-10       # nothing pruned: the teacher's features
    prune_half(g)
    g.recorder = []
    run(g.codec, x)
    intra, inter = g.distortions("intra"), g.distortions("inter")
    assert len(intra) + len(inter) == len(g.distortions("codec"))
    assert all(p.startswith("intra.") for p, _ in g.recorder[:len(intra)])
    assert max(float(d.detach()) for d in intra) > 1e-3 and max(float(d.detach()) for d in inter) > 1e-3


def test_codec_from_state_rebuilds_pruned_widths_and_leaves_dense_ones_alone():
    torch.manual_seed(0)
    dense = VideoCodec(SHAPE)
    again = codec_from_state(SHAPE, dense.state_dict())
    assert [type(m) for m in again.modules()] == [type(m) for m in dense.modules()]
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), dense.state_dict().values()))
    _, g = gated_codec()
    prune_half(g)
    small, _ = shrink_codec(g)
    rebuilt = codec_from_state(small.shape, small.state_dict())
    x = torch.rand(1, 3, 6, 32, 32)
    with torch.no_grad():
        assert all(torch.equal(u, v) for u, v in zip(run(small, x), run(rebuilt, x)))
    bad = dict(small.state_dict())
    bad["inter.synth.0.weight"] = bad["inter.synth.0.weight"][:, :3]
    with pytest.raises(EdgecodecError, match="inter.synth.0 reads 3 input channels"):
        codec_from_state(small.shape, bad)


def test_a_grouped_convolution_is_refused():
    codec = VideoCodec(SHAPE)
    codec.intra.g_a[0] = nn.Conv2d(6, 16, 5, 2, 2, groups=2)
    with pytest.raises(EdgecodecError, match="depth-wise"):
        codec_structure(codec)
