"""The budget term of `edgecodec prune` (edgecodec.codec.prune.budget_term) on a gated codec."""

from __future__ import annotations

import pytest

from edgecodec.codec.prune import budget_term

from tests.model.codec.test_codec_prune import gated_codec, prune_half


def test_the_budget_term_pushes_the_thresholds_toward_the_budget_from_either_side():
    """The two-sided budget term: while the hard masks keep more MACs than the target, its gradient raises every
    decoder group's threshold (prunes); once they keep fewer, it lowers them (restores); at the target it is 0."""
    for target, sign in ((0.3, -1), (0.9, 1)):
        _, g = gated_codec()
        prune_half(g)
        dense = g.decoder_macs(g.full(), 1080, 1920, 8)["gop_mean"]
        hard = g.decoder_macs(g.kept(), 1080, 1920, 8)["gop_mean"] / dense
        assert 0.3 < hard < 0.9
        term, soft = budget_term(g, dense, (1080, 1920), 8, target)
        assert term.item() == pytest.approx((hard - target) * soft.item())
        term.backward()
        taus = [g.gate(n).tau.grad for n in g.groups]
        assert any(t is not None and t.item() != 0 for t in taus)
        assert all(t is None or t.item() * sign >= 0 for t in taus)     # descent moves tau by -grad
        assert budget_term(g, dense, (1080, 1920), 8, hard)[0].item() == pytest.approx(0, abs=1e-9)
