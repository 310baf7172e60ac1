"""model.stae.network (feature recovery, video ViT, STAE) and model.stae.data (synthetic set, HMDB51/UCF101 folders)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from base.errors import EdgecodecError
from model.stae.network import STAE, VIT_BASE, FeatureRecovery, VideoViT
from model.stae.attention import FRAME_BUDGETS, pixel_count
from model.stae.data import CLASS_NAMES, HMDB51, UCF101, make_synthetic, sample_clip, write_dataset_folder

TINY_VIT = dict(patch=8, dim=16, depth=1, heads=2)


def _tiny_stae(frames: int = 16) -> STAE:
    torch.manual_seed(0)
    return STAE(frames=frames, channels=3, image=16, classes=3, vit=TINY_VIT, fr_width=4).eval()


# ---- model --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", FRAME_BUDGETS)
def test_stae_shapes_for_every_frame_budget(alpha):
    model = _tiny_stae()
    x = torch.rand(2, 16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for beta in (1.0, 0.7, 0.4):
            out = model(x, alpha, beta)
            assert out["logits"].shape == (2, 3)
            assert out["frame_idx"].shape == (2, alpha)
            assert torch.all(out["frame_idx"][:, 1:] > out["frame_idx"][:, :-1])          # time order
            for key in ("x_kept", "x_sent", "x_rec"):
                assert out[key].shape == (2, alpha, 3, 16, 16), key
            kept = out["mask"].sum(dim=(2, 3, 4))
            assert torch.all(kept == pixel_count(beta, 16, 16))
            on = out["mask"].bool().expand_as(out["x_rec"])
            assert torch.equal(out["x_rec"][on], out["x_sent"][on])                    # received pixels kept
            if beta < 1:
                assert torch.all(out["x_sent"][~on] == 0) and not torch.equal(out["x_rec"], out["x_sent"])


def test_stae_full_budget_is_the_plain_classifier_and_switches_work():
    model = _tiny_stae()
    x = torch.rand(1, 16, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(x, 16, 1.0)
        assert torch.equal(out["frame_idx"], torch.arange(16)[None])
        assert torch.all(out["mask"] == 1)
        # the straight-through factor of select_frames rounds (1 + w) - w to within 1 ulp of 1
        torch.testing.assert_close(out["logits"], model.vit(x), atol=1e-5, rtol=0)
        assert torch.all(model(x, 4, 0.4, use_sa=False)["mask"] == 1)               # no SA: nothing dropped
        no_fr = model(x, 4, 0.4, use_fr=False)
        assert torch.equal(no_fr["x_rec"], no_fr["x_sent"])
        assert model(x, 2.0, 0.7)["frame_idx"].shape == (1, 2)                      # integral floats accepted


def test_stae_budget_and_shape_validation():
    model = _tiny_stae(frames=8)
    x = torch.rand(1, 8, 3, 16, 16)
    for alpha in (3, 16, 0, 2.5, True, "4"):
        with pytest.raises(EdgecodecError, match=r"alpha=.*one of \[1, 2, 4, 8\]"):
            model(x, alpha, 1.0)
    for beta in (0.45, 0.3, 1.1, None):
        with pytest.raises(EdgecodecError, match=r"beta=.*one of \[1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4\]"):
            model(x, 4, beta)
    with pytest.raises(EdgecodecError, match="expected"):
        model(torch.rand(1, 16, 3, 16, 16), 4, 1.0)
    with pytest.raises(EdgecodecError, match="frames"):
        STAE(frames=8, image=16, vit=dict(frames=16))
    with pytest.raises(EdgecodecError, match="bad vit settings"):
        STAE(frames=8, image=16, vit=dict(width=3))


@pytest.mark.parametrize("a", FRAME_BUDGETS)
def test_feature_recovery_keeps_received_pixels_exactly(a):
    torch.manual_seed(0)
    fr = FeatureRecovery(channels=3, width=4)
    g = torch.Generator().manual_seed(a)
    x = torch.rand(1, a, 3, 8, 12, generator=g)
    mask = (torch.rand(1, a, 1, 8, 12, generator=g) < 0.5).float()
    xm = (x * mask).requires_grad_()
    out = fr(xm, mask)
    assert out.shape == x.shape
    on = mask.bool().expand_as(x)
    assert torch.equal(out[on], xm[on])
    assert torch.all((out[~on] > 0) & (out[~on] < 1))
    out.sum().backward()
    assert fr.first.weight.grad.abs().sum() > 0 and fr.enc.weight.grad.abs().sum() > 0   # both branches learn


def test_feature_recovery_rejects_bad_input():
    fr = FeatureRecovery(width=4)
    with pytest.raises(EdgecodecError, match="multiple of 4"):
        fr(torch.zeros(1, 2, 3, 6, 8), torch.ones(1, 2, 1, 6, 8))
    with pytest.raises(EdgecodecError, match="mask"):
        fr(torch.zeros(1, 2, 3, 8, 8), torch.ones(1, 1, 1, 8, 8))


def test_vit_uses_the_original_frame_times():
    torch.manual_seed(0)
    vit = VideoViT(frames=16, image=16, **TINY_VIT, classes=4).eval()
    x = torch.rand(1, 2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        early, late = vit(x, torch.tensor([[0, 1]])), vit(x, torch.tensor([[6, 13]]))
        assert not torch.allclose(early, late)
        torch.testing.assert_close(vit(x), early)                                 # None = 0..A-1
    with pytest.raises(EdgecodecError, match="frame_idx values"):
        vit(x, torch.tensor([[0, 16]]))
    with pytest.raises(EdgecodecError, match="integer tensor"):
        vit(x, torch.tensor([[0.0, 1.0]]))
    with pytest.raises(EdgecodecError, match="A<=16"):
        vit(torch.rand(1, 17, 3, 16, 16))


def test_vit_tubelet_repeats_the_last_frame():
    torch.manual_seed(0)
    vit = VideoViT(frames=16, image=16, tubelet=2, **TINY_VIT).eval()
    x = torch.rand(1, 3, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    idx = torch.tensor([[2, 5, 9]])
    with torch.no_grad():
        padded = vit(torch.cat([x, x[:, -1:]], 1), torch.tensor([[2, 5, 9, 9]]))
        torch.testing.assert_close(vit(x, idx), padded, atol=0, rtol=0)
        assert vit(x[:, :1], idx[:, :1]).shape == (1, 6)


def test_vit_base_builds_and_runs_one_frame():
    torch.manual_seed(0)
    vit = VideoViT(frames=16, image=224, classes=51, **VIT_BASE).eval()
    params = sum(p.numel() for p in vit.parameters())
    assert 85e6 < params < 88e6, params
    with torch.no_grad():                                     # alpha = 1: one tubelet of 196 tokens, ~1 s on CPU
        assert vit(torch.rand(1, 1, 3, 224, 224), torch.tensor([[7]])).shape == (1, 51)


# ---- synthetic set ------------------------------------------------------------------------------------------------

def _object_frames(clip: torch.Tensor) -> list[int]:
    r, g, b = clip[:, 0], clip[:, 1], clip[:, 2]
    hits = ((r > 0.75) & (g < 0.45) & (b < 0.2)).sum(dim=(1, 2))                # the background never is red-orange
    return torch.nonzero(hits >= 4).flatten().tolist()


def test_synthetic_set_is_deterministic_balanced_and_windowed():
    x, y = make_synthetic(2, seed=3)
    x2, y2 = make_synthetic(2, seed=3)
    assert x.shape == (12, 16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, make_synthetic(2, seed=4)[0])
    assert torch.equal(make_synthetic(1, seed=3)[0], x[:6])                          # clips depend on (seed, c, j)
    assert torch.equal(torch.bincount(y), torch.full((6,), 2))
    assert x.min() >= 0 and x.max() < 1 and torch.equal(x * 256, torch.round(x * 256))
    for clip, label in zip(x, y):
        seen = _object_frames(clip)
        blink = CLASS_NAMES[label] == "blink"
        assert seen and seen[-1] - seen[0] + 1 <= 10, (label, seen)
        assert len(seen) >= (3 if blink else 6) and (blink or seen == list(range(seen[0], seen[-1] + 1)))


def test_synthetic_set_rejects_bad_arguments():
    for kwargs in (dict(classes=9), dict(classes=1), dict(n_per_class=0), dict(size=8), dict(frames=1)):
        with pytest.raises(EdgecodecError, match="make_synthetic"):
            make_synthetic(**{"n_per_class": 1, **kwargs})


# ---- dataset folders ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_set():
    return make_synthetic(2, frames=8, size=16, classes=2, seed=5)


def _write(tmp_path, tiny_set, layout):
    clips, labels = tiny_set
    return write_dataset_folder(tmp_path, clips, labels, CLASS_NAMES[:2], layout=layout)


@pytest.mark.parametrize("layout, loader", [("hmdb51", HMDB51), ("ucf101", UCF101)])
def test_dataset_folders_read_back_exactly(tmp_path, tiny_set, layout, loader):
    clips, labels = tiny_set
    videos, splits = _write(tmp_path, tiny_set, layout)
    train = loader(videos, splits, split=1, train=True, frames=8, size=16)
    test = loader(videos, splits, split=1, train=False, frames=8, size=16)
    assert (len(train), len(test)) == (2, 2) and sorted(train.classes) == sorted(CLASS_NAMES[:2])
    found = []
    for ds in (train, test):
        for i in range(len(ds)):
            clip, label = ds[i]
            assert clip.shape == (8, 3, 16, 16) and clip.dtype == torch.float32
            match = [j for j in range(len(clips))
                     if CLASS_NAMES[labels[j]] == ds.classes[label] and torch.equal(clips[j], clip)]
            assert match, f"{ds.items[i][0]} is none of the written clips"         # lossless 8-bit round trip
            found += match
    assert sorted(found) == [0, 1, 2, 3]
    assert {p for p, _ in test.items} != {p for p, _ in loader(videos, splits, split=2, train=False,
                                                               frames=8, size=16).items}
    full = train[0][0]
    sub = loader(videos, splits, split=1, train=True, frames=4, size=16)[0][0]   # uniform frames 1, 3, 5, 7
    assert torch.equal(sub, full[1::2])
    small = loader(videos, splits, split=1, train=True, frames=8, size=8)[0][0]
    assert small.shape == (8, 3, 8, 8)
    torch.testing.assert_close(small, full.reshape(8, 3, 8, 2, 8, 2).mean(dim=(3, 5)), atol=0.1, rtol=0)


def test_sample_clip_crops_the_centre_square():
    video = np.zeros((3, 6, 10, 3), np.uint8)
    video[:, :, 2:8] = 128                                                          # the centre 6x6 square
    video[2] = 200
    out = sample_clip(video, frames=5, size=6)
    assert out.shape == (5, 3, 6, 6) and torch.all(out[:2] == 0.5)
    assert torch.all(out[2:] == 200 / 256)                                          # short: last frame repeated
    assert torch.equal(sample_clip(video, 3, 6), out[:3])                          # T == F: every frame
    assert torch.equal(sample_clip(video, 1, 6), out[1:2])                         # the middle of 3 frames


def test_hmdb51_errors(tmp_path, tiny_set):
    videos, splits = _write(tmp_path, tiny_set, "hmdb51")
    name = CLASS_NAMES[1]
    lines = (splits / f"{name}_test_split1.txt").read_text()
    (splits / f"{name}_test_split1.txt").write_text(lines.replace(" 1\n", " 0\n"))     # unused lines skipped
    assert len(HMDB51(videos, splits, frames=8, size=16)) == 1
    (splits / f"{name}_test_split1.txt").write_text(lines)

    clip = videos / name / f"{name}_0.avi"
    clip.write_bytes(b"not a video at all" * 10)
    ds = HMDB51(videos, splits, train=True, frames=8, size=16)
    with pytest.raises(EdgecodecError, match=f"{clip.name}.*cannot decode"):
        [ds[i] for i in range(len(ds))]
    clip.unlink()
    with pytest.raises(EdgecodecError, match=f"lists {clip.name}"):
        HMDB51(videos, splits, frames=8, size=16)
    (splits / f"{name}_test_split1.txt").write_text("just_one_field\n")
    with pytest.raises(EdgecodecError, match=r"test_split1.txt:1"):
        HMDB51(videos, splits, frames=8, size=16)
    (splits / f"{name}_test_split1.txt").unlink()
    with pytest.raises(EdgecodecError, match=f"missing split file .*{name}_test_split1.txt"):
        HMDB51(videos, splits, frames=8, size=16)
    shutil.rmtree(videos / name)
    (splits / f"{name}_test_split1.txt").write_text(lines)
    with pytest.raises(EdgecodecError, match=f"missing class folder .*{name}"):
        HMDB51(videos, splits, frames=8, size=16)
    with pytest.raises(EdgecodecError, match="split folder not found"):
        HMDB51(videos, tmp_path / "nowhere")


def test_ucf101_errors_and_short_clip_policy(tmp_path, tiny_set):
    clips, _ = tiny_set
    videos, splits = _write(tmp_path, tiny_set, "ucf101")
    short = UCF101(videos, splits, frames=12, size=16)
    clip, label = short[0]
    assert clip.shape == (12, 3, 16, 16)
    assert all(torch.equal(clip[k], clip[7]) for k in range(8, 12))                 # last frame repeated
    with pytest.raises(EdgecodecError, match="8 frames, fewer than frames=12"):
        UCF101(videos, splits, frames=12, size=16, min_frames="refuse")[0]
    with pytest.raises(EdgecodecError, match="min_frames"):
        UCF101(videos, splits, min_frames="pad")

    train = (splits / "trainlist01.txt").read_text()
    (splits / "trainlist01.txt").write_text(train.replace(" 1\n", " 2\n", 1))
    with pytest.raises(EdgecodecError, match="label 2 but folder"):
        UCF101(videos, splits)
    (splits / "trainlist01.txt").write_text(train)
    shutil.rmtree(videos / CLASS_NAMES[0])
    with pytest.raises(EdgecodecError, match=f"missing class folder .*{CLASS_NAMES[0]}"):
        UCF101(videos, splits)
    (splits / "classInd.txt").unlink()
    with pytest.raises(EdgecodecError, match="missing split file .*classInd.txt"):
        UCF101(videos, splits)


def test_writer_rejects_bad_input(tmp_path, tiny_set):
    clips, labels = tiny_set
    with pytest.raises(EdgecodecError, match="layout"):
        write_dataset_folder(tmp_path, clips, labels, CLASS_NAMES[:2], layout="kinetics")
    with pytest.raises(EdgecodecError, match="class names"):
        write_dataset_folder(tmp_path, clips, labels, ["a b", "c"])
    with pytest.raises(EdgecodecError, match="labels must be"):
        write_dataset_folder(tmp_path, clips, labels, ["only"])
