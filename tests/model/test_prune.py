"""model.prune: gradient decay scales (not replaces) the gradient of pruned weights; a shrunk stack equals the masked
one with fewer MACs; channel counts snap to a multiple."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from base.errors import EdgecodecError
from model.prune import (GatedConv, decay_mask, gate_stack, group_norms, shrink, shuffle_groups, stack_macs)


def stack() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(6, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4 * 8, 3, padding=1),
                         nn.PixelShuffle(2), nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.Hardtanh(),
                         nn.Conv2d(12, 5, 3, padding=1))


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_gradient_decay_scales_the_gradient_of_pruned_weights(beta):
    w = torch.randn(4, 3, requires_grad=True)
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(-1, 1)
    out = decay_mask(w, mask, beta)
    assert torch.equal(out, w.detach() * mask)
    g = torch.randn(4, 3)
    out.backward(g)
    assert torch.allclose(w.grad[[0, 2]], g[[0, 2]]) and torch.allclose(w.grad[[1, 3]], beta * g[[1, 3]])
    with pytest.raises(EdgecodecError, match="beta"):
        decay_mask(w, mask, 1.5)


def test_groups_follow_the_pixel_shuffle():
    s = stack()
    assert [shuffle_groups(s, i) for i in (0, 2, 4, 6)] == [1, 4, 1, 1]
    w = torch.arange(16.0).view(4, 4, 1, 1)
    assert torch.allclose(group_norms(w, 2), torch.stack([w[:2].norm(), w[2:].norm()]))


def test_a_shrunk_stack_equals_the_masked_one_with_fewer_macs():
    s = stack()
    g = gate_stack(s)
    assert [type(m).__name__ for m in g] == ["GatedConv", "ReLU", "GatedConv", "PixelShuffle", "GatedConv",
                                            "Hardtanh", "Conv2d"]
    gates = [m.gate for m in g if isinstance(m, GatedConv)]
    for gate, m in zip(gates, [m for m in g if isinstance(m, GatedConv)]):
        norms = group_norms(m.conv.weight.detach(), gate.group)
        gate.tau.data = norms.median()                         # prune about half of each layer
    x = torch.randn(2, 6, 8, 10)
    small = shrink(g)
    assert all(isinstance(m, (nn.Conv2d, nn.ReLU, nn.PixelShuffle, nn.Hardtanh)) for m in small)
    widths = [m.out_channels for m in small if isinstance(m, nn.Conv2d)]
    assert widths[0] < 16 and widths[1] < 32 and widths[1] % 4 == 0 and widths[2] < 12 and widths[3] == 5
    with torch.no_grad():
        assert torch.allclose(small(x), g(x), atol=1e-5)
        assert not torch.allclose(s(x), g(x), atol=1e-3)     # pruning changed the function
    full = stack_macs(s, 8, 10)
    kept = {i: m.out_channels for i, m in enumerate(small) if isinstance(m, nn.Conv2d)}
    assert stack_macs(small, 8, 10) == stack_macs(s, 8, 10, kept) < full
    assert full == sum(m.weight.numel() * h * w for m, (h, w) in
                       zip([m for m in s if isinstance(m, nn.Conv2d)], [(8, 10)] * 4))


def test_kept_channels_snap_to_a_multiple_and_a_layer_never_prunes_to_nothing():
    s = stack()
    g = gate_stack(s)
    for m in g:
        if isinstance(m, GatedConv):
            m.gate.tau.data = torch.tensor(1e9)                # prune everything
    small = shrink(g)
    assert [m.out_channels for m in small if isinstance(m, nn.Conv2d)] == [1, 4, 1, 5]
    g4 = gate_stack(s, multiple=4)
    for m in g4:
        if isinstance(m, GatedConv):
            m.gate.tau.data = torch.tensor(1e9)
    snapped = shrink(g4)
    assert [m.out_channels for m in snapped if isinstance(m, nn.Conv2d)] == [4, 16, 4, 5]   # 16 = 4 groups of 4
    x = torch.randn(1, 6, 8, 8)
    with torch.no_grad():
        assert torch.allclose(snapped(x), g4(x), atol=1e-5)
    with pytest.raises(EdgecodecError, match="multiple"):
        gate_stack(s, multiple=0)


def test_the_keep_estimate_moves_with_tau():
    s = stack()
    g = gate_stack(s)
    m = g[0]
    m.gate.tau.data = torch.tensor(0.0)
    k = m.gate.keep_fraction(m.conv.weight)
    k.backward()
    assert k.item() > 0.99 and m.gate.tau.grad.item() <= 0       # raising tau lowers the kept fraction


def test_layerwise_distillation_compares_each_layer_with_the_teacher_on_the_students_input():
    from model.prune import decay_beta, distill_stack, feature_distortion
    s = stack()
    g = gate_stack(s)
    x = torch.randn(2, 6, 8, 8)
    out, losses = distill_stack(g, s, x)
    assert len(losses) == 3 and all(v.item() < 1e-12 for v in losses)   # tau 0: nothing pruned yet
    assert torch.allclose(out, s(x))
    m = g[2]
    m.gate.tau.data = group_norms(m.conv.weight.detach(), 4).median()
    _, losses = distill_stack(g, s, x)
    assert losses[0].item() < 1e-12 and losses[1].item() > 1e-4    # the pruned layer drifts from its teacher
    a = torch.randn(1, 3, 2, 2)
    assert float(feature_distortion(a, 5 * a)) < 1e-12                # scale-free: normalised per pixel
    with pytest.raises(EdgecodecError, match="shapes"):
        feature_distortion(a, a[:, :2])
    assert [decay_beta(t, 10, 20) for t in (0, 10, 15, 20, 30)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    with pytest.raises(EdgecodecError, match="end > start"):
        decay_beta(0, 5, 5)


@pytest.mark.parametrize("budget", [0.0, 1.0, -0.5, 1.5])
def test_a_budget_outside_zero_one_is_refused(budget):
    from model.prune import check_budget
    with pytest.raises(EdgecodecError, match=r"\(0, 1\)"):
        check_budget(budget)


def test_soft_macs_are_differentiable_and_fall_as_tau_rises():
    from model.prune import soft_stack_macs
    s = stack()
    g = gate_stack(s)
    macs = soft_stack_macs(g, 8, 8)
    macs.backward()
    taus = [m.gate.tau for m in g if isinstance(m, GatedConv)]
    assert all(t.grad is not None and t.grad.item() <= 0 for t in taus)
    assert macs.item() <= stack_macs(s, 8, 8) + 1e-3
