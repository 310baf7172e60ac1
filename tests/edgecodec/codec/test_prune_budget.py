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


def test_named_floors_replace_min_keep_for_their_groups():
    """prune.floors: a named group keeps its own floor (here the P synthesis' first layer at 0.5, the hidden group
    at 1.0), the others min_keep; a name that is no group of the codec is refused, naming it."""
    torch.manual_seed(0)
    teacher = VideoCodec(SHAPE).eval()
    floors = PruneConfig(floors=("inter.synth.0=0.5", f"{HIDDEN}=1")).floor_map()
    assert floors == {"inter.synth.0": 0.5, HIDDEN: 1.0}
    g = GatedCodec(copy.deepcopy(teacher), teacher, 4, min_keep=0.25, min_keep_hidden=0.5, floors=floors)
    with torch.no_grad():
        for name in g.groups:
            g.gate(name).tau.fill_(1e9)
    full, kept = g.full(), g.kept()
    for name, n in kept.items():
        want = math.ceil({"inter.synth.0": 0.5, HIDDEN: 1.0}.get(name, 0.25) * full[name])
        assert n == min(full[name], -(-want // 4) * 4), name
    assert kept[HIDDEN] == full[HIDDEN]
    with pytest.raises(EdgecodecError, match="no channel group 'inter.synth.9'"):
        GatedCodec(copy.deepcopy(teacher), teacher, 4, floors={"inter.synth.9": 0.5})


@pytest.mark.parametrize("floors", [("inter.synth.0",), ("inter.synth.0=1.5",), ("=0.5",), ("x=half",)])
def test_malformed_floors_are_refused(floors):
    with pytest.raises(EdgecodecError, match="prune.floors"):
        dataclasses.replace(PruneConfig(), floors=floors).validate()


def test_no_floors_leave_the_prune_key_as_it_was():
    """The field came after pruned checkpoints were made: empty, it is not part of their key (the literal is the
    key of these arguments with no floors field at all, at BUDGET_RULE 5: a new rule changes every key, and this
    literal with it); named floors are."""
    from edgecodec import config
    from edgecodec.codec.prune import prune_key
    teacher = {"hash": "00" * 32}
    assert prune_key(config.from_dict({}), teacher, 0.5, "gd") == "926ee9b5f16fd0a9"
    named = config.from_dict({"prune": {"floors": ["inter.synth.0=0.5"]}})
    assert prune_key(named, teacher, 0.5, "gd") != "926ee9b5f16fd0a9"


def test_prune_reach_counts_what_each_group_can_give():
    """bench/prune_reach.py: each group alone at its floor removes a share of the decoder MACs, every group at its
    floor removes more than any one alone, and a higher floor on a group leaves less to take."""
    import importlib.util
    from tests.conftest import ROOT
    spec = importlib.util.spec_from_file_location("prune_reach_for_test", ROOT / "bench" / "prune_reach.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    codec = VideoCodec(SHAPE).eval()
    low = mod.reach(codec, PruneConfig(multiple=1), 8)
    alone = {n: v["removed_alone"] for n, v in low["groups"].items()}
    assert 0 < max(alone.values()) < low["removed_at_floors"] < 1
    assert alone["intra.g_a.0"] == 0                     # the encoder's analysis: no decoder MACs
    high = mod.reach(codec, PruneConfig(multiple=1, floors=("inter.synth.0=1",)), 8)
    assert high["groups"]["inter.synth.0"]["removed_alone"] == 0
    assert high["removed_at_floors"] < low["removed_at_floors"]
