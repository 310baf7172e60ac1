"""The forward-adaptive motion prior (since stream version 2): the encoder picks, per P-frame and motion component,
the Laplace row that codes the frame's vector differences in the fewest bits and sends it as an offset; the frames
stay the same, the bits drop, and a row outside the table is refused. The hyper-latent z gets one row offset
for all its channels per frame (stream version 3), chosen the same way."""

from __future__ import annotations

import numpy as np
import pytest

from base.errors import BitstreamError
from edgecodec.codec import checkpoint as ckpt
from edgecodec.codec.bitstream import VERSION, parse_stream
from edgecodec.codec.coder import Coder, decode
from model.video import read_video
from tests.conftest import CLIP_160, ROOT

CHECKPOINTS = ROOT / "checkpoints"


@pytest.fixture(scope="module")
def coder():
    return Coder(ckpt.load(CHECKPOINTS, 1))


def _cost(coder, m, rows):
    """Bits (1/65536 units) of motion codes m (1, 2, h, w) under per-component rows, without the side symbols."""
    lap = coder.n_scales
    big_m = (coder._motion_cost.shape[1] - 1) // 2
    return sum(int(coder._motion_cost[rows[c] - lap, np.clip(m[0, c], -big_m, big_m) + big_m].sum())
               for c in range(2))


def test_still_motion_picks_a_narrower_row_and_wide_motion_a_wider_one(coder):
    still = np.zeros((1, 2, 6, 8), np.int64)
    rows = coder.motion_rows(still)
    assert (rows < coder.rows_m).all()
    assert _cost(coder, still, rows) < _cost(coder, still, coder.rows_m)
    wide = np.random.default_rng(0).laplace(0, 40, (1, 2, 30, 40)).round().astype(np.int64)
    assert (coder.motion_rows(wide) > coder.rows_m).all()


def test_chosen_rows_are_the_cheapest_with_their_side_cost(coder):
    m = np.random.default_rng(1).laplace(0, 2, (1, 2, 9, 11)).round().astype(np.int64)
    lap, big_m = coder.n_scales, (coder._motion_cost.shape[1] - 1) // 2
    rows = coder.motion_rows(m)
    for c in range(2):
        def total(r):
            side = coder._motion_cost[coder.side_row - lap, r - int(coder.rows_m[c]) + big_m]
            return int(coder._motion_cost[r - lap, m[0, c] + big_m].sum()) + int(side)
        best = min(range(lap, 2 * lap), key=total)
        assert rows[c] == best


def test_same_frames_fewer_bits_and_a_row_outside_the_table_is_refused(coder, monkeypatch):
    y, u, v, _ = read_video(CLIP_160, 4)
    r = coder.encode(y, u, v, gop=4)
    header, frames = parse_stream(r.data)
    assert header.version == VERSION == 3
    _, rec = decode(r.data, CHECKPOINTS)
    assert all(np.array_equal(a, b) for a, b in zip(rec, r.recon))
    # with the checkpoint's fixed rows (version 1's prior) the same frames cost more bits
    fixed = Coder(ckpt.load(CHECKPOINTS, 1))
    monkeypatch.setattr(fixed, "motion_rows", lambda m: fixed.rows_m.copy())
    r_fixed = fixed.encode(y, u, v, gop=4)
    assert all(np.array_equal(a, b) for a, b in zip(r_fixed.recon, r.recon))
    assert sum(r.frame_bits[1:]) < sum(r_fixed.frame_bits[1:])
    # a stream whose motion row points past the table
    bad = Coder(ckpt.load(CHECKPOINTS, 1))

    def write_offset_past_the_table(m_hat, enc):
        enc.add(np.full((1, 2), 100), np.full((1, 2), bad.side_row))
        enc.add(m_hat.numpy(), bad.rows_m[None, :, None, None])
    monkeypatch.setattr(bad, "_write_motion", write_offset_past_the_table)
    with pytest.raises(BitstreamError, match="motion prior rows"):
        decode(bad.encode(y, u, v, gop=4).data, CHECKPOINTS)


def test_z_offset_narrows_rows_for_an_all_zero_z_and_is_the_cheapest(coder):
    rows = coder.rows_z["p"]
    zero = np.zeros((1, len(rows), 2, 3), np.int64)
    assert coder.z_offset(zero, rows) < 0
    wide = np.random.default_rng(2).laplace(0, 30, (1, len(rows), 4, 5)).round().astype(np.int64)
    assert coder.z_offset(wide, rows) > 0
    lap, big_m = coder.n_scales, (coder._motion_cost.shape[1] - 1) // 2
    z = np.random.default_rng(3).laplace(0, 1.5, (1, len(rows), 3, 4)).round().astype(np.int64)

    def total(o):
        r = np.clip(rows + o, lap, 2 * lap - 1) - lap
        bits = sum(int(coder._motion_cost[r[c], np.clip(z[0, c], -big_m, big_m) + big_m].sum()) for c in range(len(r)))
        return bits + int(coder._motion_cost[coder.side_row - lap, o + big_m])
    best = min(range(-(lap - 1), lap), key=lambda o: (total(o), abs(o), o))
    assert coder.z_offset(z, rows) == best


def test_a_z_offset_out_of_range_is_refused(coder, monkeypatch):
    y, u, v, _ = read_video(CLIP_160, 2)
    bad = Coder(ckpt.load(CHECKPOINTS, 1))

    def write_offset_out_of_range(z_hat, rows, enc):
        enc.add(np.full((1, 1), 200), np.full((1, 1), bad.side_row))
        enc.add(z_hat, bad._z_rows(rows, 0))
    monkeypatch.setattr(bad, "_write_z", write_offset_out_of_range)
    with pytest.raises(BitstreamError, match="z prior offset"):
        decode(bad.encode(y, u, v, gop=4).data, CHECKPOINTS)
