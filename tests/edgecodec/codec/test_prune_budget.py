"""The budget term of `edgecodec prune` (edgecodec.codec.prune.budget_term) on a gated codec, its ramp and the
groups' floors."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from base.errors import EdgecodecError
from edgecodec.codec.prune import budget_term, step_thresholds, target_at
from edgecodec.config import PruneConfig
from model.codec.network import VideoCodec
from model.codec.prune import HIDDEN, GatedCodec

from tests.model.codec.test_codec_prune import SHAPE, gated_codec, prune_half


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


def test_the_target_ramps_from_dense_to_the_budget():
    assert target_at(0, 1000, 0.65, 0.5) == 1.0
    assert target_at(250, 1000, 0.65, 0.5) == pytest.approx(1 - 0.65 / 2)
    assert target_at(500, 1000, 0.65, 0.5) == pytest.approx(0.35)
    assert target_at(999, 1000, 0.65, 0.5) == pytest.approx(0.35)
    assert target_at(0, 1000, 0.65, 0.0) == pytest.approx(0.35)      # no ramp: the whole budget at once


def test_no_group_falls_below_its_floor_however_high_its_threshold():
    """min_keep / min_keep_hidden: thresholds above every norm still keep the floor (then the multiple); without
    floors every group falls to one multiple."""
    torch.manual_seed(0)
    teacher = VideoCodec(SHAPE).eval()
    free = GatedCodec(copy.deepcopy(teacher), teacher, 4)
    floored = GatedCodec(copy.deepcopy(teacher), teacher, 4, min_keep=0.25, min_keep_hidden=0.5)
    with torch.no_grad():                   # in place with a version bump: the cached masks see it
        for g in (free, floored):
            for name in g.groups:
                g.gate(name).tau.fill_(1e9)
    full = free.full()
    assert all(n == min(4, full[name]) for name, n in free.kept().items())
    kept = floored.kept()
    assert kept[HIDDEN] == max(4, -(-full[HIDDEN] // 2)) and kept[HIDDEN] > 4
    for name, n in kept.items():
        want = math.ceil((0.5 if name == HIDDEN else 0.25) * full[name])
        assert n == min(full[name], -(-want // 4) * 4), name
    with pytest.raises(EdgecodecError, match="floor"):
        GatedCodec(copy.deepcopy(teacher), teacher, 4, min_keep=1.5)


@pytest.mark.parametrize("field,value", [("ramp", 1.5), ("min_keep", -0.1), ("min_keep_hidden", 2.0)])
def test_ramp_and_floors_outside_their_range_are_refused(field, value):
    with pytest.raises(EdgecodecError, match=field):
        dataclasses.replace(PruneConfig(), **{field: value}).validate()


def test_thresholds_move_in_proportion_to_their_pull():
    """step_thresholds: the threshold with the largest gradient moves by lr, the others by lr x their gradient over
    it (a group pulled harder by the budget, more of the decoder's MACs, prunes faster); no gradient, no move."""
    taus = [torch.nn.Parameter(torch.tensor(v)) for v in (0.0, 0.5, 1.0, 2.0)]
    for t, g in zip(taus[:3], (-4.0, 1.0, -0.5)):
        t.grad = torch.tensor(g)
    assert step_thresholds(taus, 0.1) == 4.0
    assert [round(float(t), 6) for t in taus] == [0.1, 0.475, 1.0125, 2.0]
    for t in taus:
        t.grad = None
    assert step_thresholds(taus, 0.1) == 0.0 and [round(float(t), 6) for t in taus] == [0.1, 0.475, 1.0125, 2.0]
