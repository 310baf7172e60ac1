"""Step-by-step training of STAE (seed 001, Algorithm 1), resumable stage by stage.

1. the video ViT classifier on all F frames;
2. for each frame budget alpha: FA inserted before the ViT, FA + ViT trained (ViT_FA);
3. for each (alpha, beta < 1): FA frozen, SA inserted, SA + ViT trained (ViT_FA+SA);
4. for each (alpha, beta < 1): FA and SA frozen, FR inserted, FR + ViT fine-tuned (ViT_STAE).

Every stage's weights go into one file (`stae.pt`) as soon as the stage ends; a rerun skips the stages already
there (same recipe key), so an interrupted training resumes at the stage it was in.
"""

from __future__ import annotations

import copy
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from base.files import atomic_path

from model.stae.network import STAE
from model.proxy.train import cosine_lr


class ClipSet:
    """Clips (N, F, C, H, W) and labels (N,) in memory, or any dataset with __len__/__getitem__."""

    def __init__(self, clips=None, labels=None, dataset=None):
        self.clips, self.labels, self.dataset = clips, labels, dataset

    def __len__(self) -> int:
        return len(self.labels) if self.dataset is None else len(self.dataset)

    def take(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        if self.dataset is None:
            return self.clips[idx], self.labels[idx]
        items = [self.dataset[int(i)] for i in idx]
        return torch.stack([torch.as_tensor(c) for c, _ in items]), torch.as_tensor([int(l) for _, l in items])


def stage_key(stage: str, alpha: int | None = None, beta: float | None = None) -> str:
    if stage == "classifier":
        return "classifier"
    if stage == "fa":
        return f"fa/a{alpha}"
    return f"{stage}/a{alpha}/b{int(round(beta * 100))}"


def _fit(model: STAE, params, data: ClipSet, steps: int, batch: int, lr: float, gen: torch.Generator,
         forward, desc: str, progress: bool) -> list[float]:
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    model.train()
    for step in tqdm(range(steps), desc=desc, disable=not progress, dynamic_ncols=True):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(lr, step, steps)
        idx = torch.randint(0, len(data), (batch,), generator=gen)
        x, y = data.take(idx)
        loss = F.cross_entropy(forward(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def _freeze(model: STAE, trainable: tuple[str, ...]) -> list:
    params = []
    for name in ("fa", "sa", "fr", "vit"):
        for p in getattr(model, name).parameters():
            p.requires_grad_(name in trainable)
            if name in trainable:
                params.append(p)
    return params


def load_stage(model: STAE, states: dict, key: str) -> STAE:
    """A copy of `model` with the modules saved by stage `key` (and the frozen modules it was trained with)."""
    m = copy.deepcopy(model)
    for name, sd in states[key]["modules"].items():
        getattr(m, name).load_state_dict(sd)
    m.eval()
    return m


def train_stae(model: STAE, data: ClipSet, alphas, betas, steps: dict, batch: int, lr: float, seed: int,
               path: Path, recipe: str, progress: bool = True) -> dict:
    """Run Algorithm 1 for every alpha in `alphas` and beta in `betas`; returns {stage key: {modules, loss}}."""
    path = Path(path)
    states = {}
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("recipe") == recipe:
            states = saved["stages"]
    torch.use_deterministic_algorithms(True)
    frames = model.vit.frames

    def run(key, base_key, trainable, forward_of, n, desc):
        if key in states:
            return
        torch.manual_seed(seed)
        m = load_stage(model, states, base_key) if base_key else copy.deepcopy(model)
        params = _freeze(m, trainable)
        gen = torch.Generator().manual_seed(seed + zlib.crc32(key.encode()) % 1000)
        losses = _fit(m, params, data, n, batch, lr, gen, forward_of(m), desc, progress)
        keep = {name: getattr(m, name).state_dict() for name in ("fa", "sa", "fr", "vit")}
        states[key] = {"modules": keep, "loss": losses[-10:]}
        with atomic_path(path) as tmp:
            torch.save({"recipe": recipe, "stages": states}, tmp)

    all_idx = lambda x: torch.arange(frames).expand(x.shape[0], -1)
    run("classifier", None, ("vit",), lambda m: (lambda x: m.vit(x, all_idx(x))), steps["classifier"],
        "classifier")
    for a in alphas:
        run(stage_key("fa", a), "classifier", ("fa", "vit"),
            lambda m, a=a: (lambda x: m(x, a, 1.0, use_sa=False, use_fr=False)["logits"]), steps["fa"], f"FA a={a}")
        for b in betas:
            if b >= 1.0:
                continue
            run(stage_key("sa", a, b), stage_key("fa", a), ("sa", "vit"),
                lambda m, a=a, b=b: (lambda x: m(x, a, b, use_sa=True, use_fr=False)["logits"]), steps["sa"],
                f"SA a={a} b={b:.0%}")
            run(stage_key("fr", a, b), stage_key("sa", a, b), ("fr", "vit"),
                lambda m, a=a, b=b: (lambda x: m(x, a, b, use_sa=True, use_fr=True)["logits"]), steps["fr"],
                f"FR a={a} b={b:.0%}")
    return states
