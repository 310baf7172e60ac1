"""edgecodec.engine_host: the host driver's memory images for the engine's P-frames (the RTL runs them in the slow
tests of tests/hw/engine/test_engine_p.py)."""

from __future__ import annotations

import numpy as np

from edgecodec.codec import checkpoint as ckpt
from edgecodec.codec.coder import Coder
from edgecodec.engine_host import p_frame_runs
from edgecodec.engine_plan import shape_for
from hw.engine.program import read_map
from model.codec.data import load_sequence
from tests.conftest import CLIP_QCIF_MP4, ROOT


def test_the_host_fills_each_p_frames_memory():
    """A 64 x 64 crop, 3 frames, GOP 2 (I P I): one P-frame run; its image holds the reference frame and y, and the
    maps it expects (warped, reconstruction, h and sums of both layers) are on the integer decoder's grid (checked
    against decode --mode int inside p_frame_runs)."""
    y, u, v = load_sequence(CLIP_QCIF_MP4, 3)
    y, u, v = (np.ascontiguousarray(p[:, 16:80, 40:104]) if i == 0 else np.ascontiguousarray(p[:, 8:40, 20:52])
               for i, p in enumerate((y, u, v)))
    folder = ROOT / "checkpoints"
    ck = ckpt.load(folder, 1)
    data = Coder(ck, "int", "ans").encode(y, u, v, 2).data
    shape = shape_for(ck["int"], 4, 32)
    runs, specs = p_frame_runs(data, folder, shape)
    assert [r.frame for r in runs] == [1] and len(specs) == 2
    run = runs[0]
    assert len(run.expected) == 2 + 2 * len(specs)
    recon = run.expected[1][1]
    assert recon.shape == (8, 32, 32) and recon.min() >= 0 and recon.max() <= 255 and not recon[6:].any()
    warped_addr = run.expected[0][0]
    wb = shape.data_bits // 8
    assert not any(read_map(run.image, warped_addr, (8, 32, 32), 4, 12, wb).reshape(-1))   # the RTL writes it


def test_a_crop_of_every_frame_decodes_as_a_small_video():
    """frame_runs(crop=(1, 1)): the top-left latent of each frame (16 x 16 pixels; z 1 x 1) as a video of its own,
    the runs of the full decode in the same order, y cut from the full frame's y."""
    from edgecodec.engine_host import frame_runs
    y, u, v = load_sequence(CLIP_QCIF_MP4, 2)
    y, u, v = (np.ascontiguousarray(p[:, :64, :64]) if i == 0 else np.ascontiguousarray(p[:, :32, :32])
               for i, p in enumerate((y, u, v)))
    folder = ROOT / "checkpoints"
    ck = ckpt.load(folder, 1)
    data = Coder(ck, "int", "ans").encode(y, u, v, 8).data
    shape = shape_for(ck["int"], 4, 32)
    full, _ = frame_runs(data, folder, shape)
    runs, specs = frame_runs(data, folder, shape, crop=(1, 1))
    assert [(r.frame, r.kind) for r in runs] == [(r.frame, r.kind) for r in full] == [
        (0, "intra_h_s"), (0, "intra_g_s"), (1, "p_h_s"), (1, "p_frame")]
    assert [(s.height, s.width) for s in specs] == [(2, 2), (2, 2)]
    # a 64 x 64 frame has a 1 x 1 z: the same hyper-synthesis either way
    assert runs[0].expected[0][1].shape[1:] == (4, 4) and np.array_equal(runs[0].expected[0][1], full[0].expected[0][1])
    recon = runs[1].expected[0][1]
    assert recon.shape == (8, 8, 8) and 0 <= recon.min() and recon.max() <= 255 and recon[:6].std() > 0
    assert runs[3].expected[1][1].shape == (8, 8, 8)
    # the I-frame synthesis reads y cut from the full frame's y (4 x 4 latent): its first pixel
    wb = shape.data_bits // 8
    y_full = read_map(full[1].image, 0, (64, 4, 4), 4, 12, wb)
    y_crop = read_map(runs[1].image, 0, (64, 1, 1), 4, 12, wb)
    assert np.array_equal(y_crop[:, 0, 0], y_full[:, 0, 0]) and y_full.std() > 0
