"""Block motion: the encoder's search finds known shifts (whole and quarter pel), vectors survive the median
prediction round trip, the bit estimate and the float32 SSE are exact, block-constant compensation moves blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.codec import motion as mc


def _texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth random texture of luma codes (a search needs gradients to lock on)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, h // 4 + 2, w // 4 + 2, generator=g)
    x = F.interpolate(x, size=(h + 8, w + 8), mode="bicubic", align_corners=False)[0, 0, 4:-4, 4:-4]
    return torch.round((x - x.min()) / (x.max() - x.min()) * 255).to(torch.int64)


@pytest.mark.parametrize("dx, dy", [(3, -2), (-5, 4), (0, 0)])
def test_search_finds_a_whole_pixel_shift(dx, dy):
    big = _texture(96 + 32, 128 + 32)
    ref = big[16:16 + 96, 16:16 + 128]
    cur = big[16 + dy:16 + dy + 96, 16 + dx:16 + dx + 128]      # cur(p) = ref(p + d)
    mv = mc.block_search(cur[None], ref[None], radius=8, lam=4)
    inner = mv[0, :, 1:-1, 1:-1]                                # border blocks see clamped pixels
    assert torch.all(inner[0] == 4 * dx) and torch.all(inner[1] == 4 * dy)


def test_search_finds_a_quarter_pel_shift_through_the_decoders_sampler():
    ref = _texture(64, 64, seed=3)
    true = torch.zeros(1, 2, 4, 4, dtype=torch.int64)
    true[0, 0], true[0, 1] = 6, -3                               # 1.5 px right, 0.75 px up
    pad = 4
    refpad = F.pad(ref[None, None].double(), (pad,) * 4, mode="replicate")[:, 0].to(torch.int64)
    cur = mc._predict_block(refpad, pad, true, 16)
    mv = mc.block_search(cur, ref[None], radius=2, lam=1)
    assert torch.equal(mv[:, :, 1:-1, 1:-1], true[:, :, 1:-1, 1:-1])


def test_without_subpel_the_search_sends_the_nearest_whole_pixels():
    """subpel=False (the full-pel probe, bench/fullpel_probe.py): the same quarter-pel shift gives whole-pixel
    vectors only, within a pixel of the true one, and a whole-pixel shift is found as before."""
    ref = _texture(64, 64, seed=3)
    true = torch.zeros(1, 2, 4, 4, dtype=torch.int64)
    true[0, 0], true[0, 1] = 6, -3
    pad = 4
    refpad = F.pad(ref[None, None].double(), (pad,) * 4, mode="replicate")[:, 0].to(torch.int64)
    cur = mc._predict_block(refpad, pad, true, 16)
    mv = mc.block_search(cur, ref[None], radius=2, lam=1, subpel=False)
    assert torch.all(mv % 4 == 0) and torch.all((mv - true)[:, :, 1:-1, 1:-1].abs() <= 3)
    assert not torch.equal(mv, mc.block_search(cur, ref[None], radius=2, lam=1))
    big = _texture(128, 160)
    whole = big[16 - 2:16 - 2 + 96, 16 + 3:16 + 3 + 128]
    fp = mc.block_search(whole[None], big[16:16 + 96, 16:16 + 128][None], radius=8, lam=4, subpel=False)
    assert torch.all(fp[0, 0, 1:-1, 1:-1] == 12) and torch.all(fp[0, 1, 1:-1, 1:-1] == -8)


def test_rate_term_prefers_the_predicted_vector_on_a_flat_frame():
    flat = torch.full((1, 64, 64), 100, dtype=torch.int64)
    mv = mc.block_search(flat, flat, radius=4, lam=10)
    assert torch.count_nonzero(mv) == 0                         # every candidate costs SSE 0: the zero vector wins


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (6, 7)])
def test_median_prediction_round_trips(shape):
    g = torch.Generator().manual_seed(sum(shape))
    mv = torch.randint(-60, 61, (1, 2, *shape), generator=g)
    mvd = mv - mc.predict_median(mv)
    back = mc.rebuild_from_differences(mvd[0].numpy())
    assert np.array_equal(back, mv[0].numpy())


def test_median_predictor_rules():
    mv = torch.tensor([[[1, 2, 3], [4, 5, 6]], [[0, 0, 0], [0, 0, 0]]])[None]
    p = mc.predict_median(mv)[0, 0]
    assert p.tolist() == [[0, 1, 2], [1, 3, 3]]   # row 0: left; (1,0): top; (1,1): med(4,2,3); (1,2): med(5,3,2)


def test_golomb_bits():
    d = torch.tensor([0, 1, -1, 2, -2, 3, 7, -8, 255])
    assert mc.golomb_bits(d).tolist() == [1, 3, 3, 5, 5, 5, 7, 9, 17]


def test_block_sse_in_float32_is_exact():
    cur = torch.zeros(1, 16, 16, dtype=torch.int64)
    ref = torch.full((1, 16, 16), 255, dtype=torch.int64)
    ref[0, 0, 0] = 254                                          # 255 * 255^2 + 254^2: needs all 24 bits
    exact = int(((cur - ref) ** 2).sum())
    assert int(mc._block_sse(cur.float(), ref.float(), 16)[0, 0, 0]) == exact
    with pytest.raises(ValueError, match="overflow"):
        mc.block_search(torch.zeros(1, 32, 32, dtype=torch.int64), torch.zeros(1, 32, 32, dtype=torch.int64), 1, 1,
                        block=32)


def test_block_constant_warp_moves_only_its_block():
    ref = torch.rand(1, 6, 32, 32)
    m = torch.zeros(1, 2, 4, 4)
    m[0, :, 2, 1] = torch.tensor([8.0, 4.0])                    # 2 px right, 1 px down
    w = mc.warp_packed(ref, m)
    diff = (w - ref).abs().sum(1)[0]                            # packed grid: 8x8 per block
    rows, cols = diff.nonzero().T
    assert rows.min() >= 16 and rows.max() < 24 and cols.min() >= 8 and cols.max() < 16
