"""`edgecodec prune`: structured pruning of a trained codec checkpoint (seed 002; docs/pruning.md).

The dense teacher (a codec checkpoint) is copied into a gated student (model/codec/prune.py: one learnable
threshold per channel group, masks with gradient decay) and trained on random crops (`codec_train` data) with

    L = L_RD (I-frame + P-frames, the codec's training loss at the teacher's lambda)
      + budget_weight * (hard - target) * soft      hard, soft: decoder MACs / dense (hard a constant)
      + distill_weight * mean (1 - cos) of the current distillation stage's layers against the teacher,

(the budget term is two-sided and measured on the hard masks: the soft estimate is only its lever, pushed down
while the hard masks keep more than the target and up while they keep less, in proportion to the miss; the target
falls linearly from 1 to 1 - budget over the first `prune.ramp` of the steps, and no group keeps fewer than
`prune.min_keep` of its channels, the ASE-GRU hidden group `prune.min_keep_hidden`; the thresholds move by
`step_thresholds`, in proportion to the budget's pull on each), the stages being intra codec -> P path (ASE-GRU,
residual) -> whole codec: a stage ends when the hard masks meet the budget and its distance (moving average) is
below `prune.stage_threshold`, or after `prune.stage_steps`. Beta: annealed 1 -> 0 (gd), 1 (ste) or 0 (hard).
Every `save_every` steps the state goes to `codec_q<N>.prune.pt` (an interrupted run resumes to the same bytes).
At the end the masked channels are removed, the integer model is calibrated, and `<out>/codec_q<N>.pt` is written
atomically with its per-layer widths and the decoder MACs before and after; `encode`, `decode`, `eval` read it
like any checkpoint.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

import model.codec.data as ds
from model.codec.motion import search_lambda
from model.codec.prune import DISTILL_STAGES, GatedCodec, keep_strongest, shrink_codec
from model.codec.train import LossWeights, inter_loss, intra_loss
from model.distributed import join, rank_seed
from model.prune import check_budget, decay_beta
from model.proxy.train import cosine_lr
from quant.codec.int_codec import build, nearest_rows

from edgecodec.codec import checkpoint as ckpt
from edgecodec.codec.recipe import NEUTRAL, tables
from edgecodec.config import Config, parse_resolution
from base.errors import EdgecodecError
from base.files import atomic_path
from base.hashing import content_hash
from base.paths import resolve

METHODS = ("gd", "ste", "hard")
BUDGET_RULE = 5         # in the recipe key: 1 was max(0, soft - target) (overshot, docs/pruning.md), 2 two-sided,
#                         3 two-sided with the ramp and the floors (prune.ramp, prune.min_keep*), 4 the same with
#                         the thresholds moved by their normalised gradient (step_thresholds), not Adam, 5 the same
#                         on the teacher's training crops (codec_train.scales; 1-4 drew plain crops)
EMA = 0.9               # moving average of a stage's distillation distance


def load_teacher(path: str | Path) -> dict:
    """The teacher: a codec checkpoint file (anything else: EdgecodecError)."""
    path = Path(path)
    if path.is_dir():
        raise EdgecodecError(f"prune: the teacher must be a codec checkpoint file (codec_q<N>.pt), {path} is a "
                             "folder")
    return ckpt.load(path)


def beta_at(method: str, step: int, steps: int, start: float, end: float) -> float:
    if method == "ste":
        return 1.0
    if method == "hard":
        return 0.0
    a = round(start * steps)
    return decay_beta(step, a, max(a + 1, round(end * steps)))


def prune_key(cfg: Config, teacher: dict, budget: float, method: str) -> str:
    """What a pruned checkpoint depends on: the teacher, the prune section (less its folder), the training data
    and crops, the codec's loss weights, budget and method."""
    d = cfg.to_dict()
    train = {k: d["codec_train"][k] for k in ("data", "crop", "seq_len", "batch", "search_range", "scales")}
    loss = {k: d["codec"][k] for k in ("ssim_weight", "motion_lambda", "int_act_bits", "int_weight_bits")}
    loss.update({k: d["codec"][k] for k in ("int_lut_bits", "int_lut_frac") if d["codec"][k] != NEUTRAL["codec"][k]})
    return content_hash(teacher["hash"], keyed_prune_fields(d["prune"]), train, loss, d["quant"], budget, method,
                        BUDGET_RULE).hex()


def keyed_prune_fields(section: dict) -> dict:
    """The `prune` section (as `Config.to_dict` gives it) as keys see it: less the budget, method and folder (a
    checkpoint's own or none of its business), and less `floors` while empty (it came after pruned checkpoints and
    studies were made: they keep their keys)."""
    return {k: v for k, v in section.items() if k not in ("out", "budget", "method") and (k != "floors" or v)}


def target_at(step: int, steps: int, budget: float, ramp: float) -> float:
    """The MAC fraction the hard masks should keep at `step`: 1 - budget x min(1, step / (ramp x steps))."""
    if ramp <= 0:
        return 1.0 - budget
    return 1.0 - budget * min(1.0, step / (ramp * steps))


def step_thresholds(taus: list[torch.Tensor], lr: float) -> float:
    """Move every threshold by -lr x its gradient / the largest gradient's magnitude: the group the budget term
    pulls hardest moves by lr a step, every other one in proportion to its own pull (its share of the decoder
    MACs near its threshold). Adam (rules 1-3) moved every threshold at about lr a step whatever its pull, so a
    group worth 1/8 of the GOP's MACs (the I-frame decoder) lost as large a share of its channels as the P path.
    Returns the scale (0: no gradient, nothing moves)."""
    grads = [t.grad for t in taus if t.grad is not None]
    scale = max((float(g.abs().max()) for g in grads), default=0.0)
    if scale > 0:
        with torch.no_grad():
            for t in taus:
                if t.grad is not None:
                    t.sub_(lr * t.grad / scale)
    return scale


def budget_term(gated: GatedCodec, dense_macs: float, resolution: tuple[int, int], gop: int,
                target: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(hard - target) x soft, with hard and soft the GOP-mean decoder MAC fractions of the hard masks (a constant)
    and of the soft estimate; returns (term, soft)."""
    height, width = resolution
    soft = gated.decoder_macs(gated.soft_kept(), height, width, gop)["gop_mean"] / dense_macs
    hard = gated.decoder_macs(gated.kept(), height, width, gop)["gop_mean"] / dense_macs
    return (hard - target) * soft, soft


class PruneLoss(nn.Module):
    """One pruning step's loss as a module (what DistributedDataParallel wraps): forward(frames, stage) ->
    (loss, info with the soft and hard MAC fractions and the stage's distillation distance).

    The budget term budget_weight * (hard - target) * soft: its gradient moves the thresholds (and the norms near
    them) by the signed miss of the hard masks, so pruning stops where the hard masks meet the budget and turns
    back if they pass it (a one-sided term on the soft estimate overshot: 80 % removed for a 65 % budget)."""

    def __init__(self, gated: GatedCodec, lw: LossWeights, dense_macs: float, resolution: tuple[int, int],
                 gop: int, budget_weight: float, distill_weight: float, target: float):
        """`target`: the kept MAC fraction aimed at; the training loop moves it along the ramp (`target_at`)."""
        super().__init__()
        self.gated, self.lw, self.dense, self.resolution, self.gop = gated, lw, dense_macs, resolution, gop
        self.budget_weight, self.distill_weight, self.target = budget_weight, distill_weight, target

    def forward(self, frames: torch.Tensor, stage: str) -> tuple[torch.Tensor, dict]:
        gated, student = self.gated, self.gated.codec
        gated.recorder = []
        li, ii = intra_loss(student, frames[:, 0], self.lw)
        lp, ip = inter_loss(student, frames, self.lw)
        dist = gated.distortions(stage)
        gated.recorder = None
        d = torch.stack(dist).mean() if dist else torch.zeros((), device=frames.device)
        term, soft = budget_term(gated, self.dense, self.resolution, self.gop, self.target)
        loss = li + lp + self.budget_weight * term + self.distill_weight * d
        return loss, {"D_I": ii["D"], "D_P": ip["D"], "bpp_P": ip["bpp"], "soft": float(soft.detach()),
                      "distill": float(d.detach())}


def prune(cfg: Config, teacher_path: str | Path, out_dir: str | Path | None = None, budget: float | None = None,
          method: str | None = None, progress: bool = True, retrain: bool = False, device: str = "cpu") -> dict:
    """Prune the teacher checkpoint to `budget` (default prune.budget) with `method` (default prune.method);
    returns a summary (checkpoint path, widths, decoder MACs before/after).

    device "cuda" trains on a GPU (not bit-reproducible); the export runs on the CPU. Started by torchrun, every
    process trains on its share of each batch (model/distributed.py) and rank 0 alone writes files."""
    p, t = cfg.prune, cfg.codec_train
    budget = check_budget(p.budget if budget is None else budget)
    method = p.method if method is None else method
    if method not in METHODS:
        raise EdgecodecError(f"prune: method must be one of {METHODS}, got {method!r}")
    teacher_ck = load_teacher(teacher_path)
    quality = int(teacher_ck["quality"])
    out_dir = Path(out_dir) if out_dir is not None else resolve(p.out)
    path = ckpt.path_for(out_dir, quality)
    if Path(teacher_path).resolve() == path.resolve():
        raise EdgecodecError(f"prune: the output {path} would overwrite the teacher")
    world, device = join(device, t.batch, "codec_train.batch")
    key = prune_key(cfg, teacher_ck, budget, method)
    if not retrain and path.is_file():
        try:
            done = ckpt.load(path)
        except EdgecodecError:
            done = None
        if done is not None and done.get("recipe") == key:
            return summary(path, done)
    seqs = ds.list_sequences([resolve(d) for d in t.data])
    width, height = parse_resolution(p.resolution)
    gop = int(teacher_ck["gop"])
    torch.use_deterministic_algorithms(True, warn_only=device != "cpu")
    torch.manual_seed(p.seed)
    teacher = teacher_ck["codec"].eval().to(device)
    for prm in teacher.parameters():
        prm.requires_grad_(False)
    student = copy.deepcopy(teacher)
    for prm in student.parameters():
        prm.requires_grad_(True)
    gated = GatedCodec(student, teacher, p.multiple, p.temperature, p.min_keep, p.min_keep_hidden,
                       p.floor_map()).to(device)
    dense = gated.decoder_macs(gated.full(), height, width, gop)
    if world.rank:                      # the same weights, its own noise
        torch.manual_seed(rank_seed(p.seed, world.rank))
    weights = list(student.parameters())
    taus = list(gated.gates.parameters())
    opt = torch.optim.Adam(weights, lr=p.lr)
    lw = LossWeights(float(teacher_ck["lambda"]), cfg.codec.ssim_weight, cfg.codec.motion_lambda, t.search_range)
    sampler = ds.CropSampler(seqs, t.seq_len, t.crop, p.seed + 2000, scales=t.scales)   # the teacher's crops
    state_path = path.with_name(path.stem + ".prune.pt")
    run = {"step": 0, "stage": 0, "stage_start": 0, "ema": None, "log": []}
    res = _load_state(state_path, key)
    if res is not None:
        gated.load_state_dict(res["gated"])
        opt.load_state_dict(res["opt"])
        sampler.gen.set_state(res["sampler"])
        world.restore_rng(res, p.seed, res["run"]["step"])
        run = res["run"]
    loss_mod = PruneLoss(gated, lw, dense["gop_mean"], (height, width), gop, p.budget_weight, p.distill_weight,
                         1.0 - budget)
    step_loss = world.wrap(loss_mod)
    bar = tqdm(range(run["step"], p.steps), desc=f"prune q{quality} {method} {budget:g}",
               disable=not (progress and world.main), dynamic_ncols=True, initial=run["step"], total=p.steps)
    student.train()
    for step in bar:
        opt.param_groups[0]["lr"] = cosine_lr(p.lr, step, p.steps)
        gated.set_beta(beta_at(method, step, p.steps, p.decay_start, p.decay_end))
        loss_mod.target = target_at(step, p.steps, budget, p.ramp)
        frames = world.share(sampler.batch(t.batch)).to(device)
        stage = DISTILL_STAGES[run["stage"]]
        loss, parts = step_loss(frames, stage)
        opt.zero_grad()
        for tau in taus:
            tau.grad = None
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        opt.step()
        step_thresholds(taus, p.tau_lr)
        hard = gated.decoder_macs(gated.kept(), height, width, gop)["gop_mean"] / dense["gop_mean"]
        parts = world.mean({**parts, "loss": float(loss.detach())})     # every rank takes the same decisions
        dv = parts["distill"]
        run["ema"] = dv if run["ema"] is None else EMA * run["ema"] + (1 - EMA) * dv
        info = {"step": step, "stage": stage, "loss": round(parts["loss"], 4), "D_I": round(parts["D_I"], 3),
                "D_P": round(parts["D_P"], 3), "bpp_P": round(parts["bpp_P"], 4), "macs": round(hard, 4),
                "soft_macs": round(parts["soft"], 4), "target": round(loss_mod.target, 4), "distill": round(dv, 5)}
        run["log"] = (run["log"] + [info])[-50:]
        if run["stage"] + 1 < len(DISTILL_STAGES) and (
                (hard <= 1.0 - budget and run["ema"] < p.stage_threshold)     # the whole budget, not the ramp's
                or step + 1 - run["stage_start"] >= p.stage_steps):
            run.update(stage=run["stage"] + 1, stage_start=step + 1, ema=None)
        bar.set_postfix(stage=stage, macs=f"{hard:.3f}", distill=f"{dv:.4f}", D_P=f"{parts['D_P']:.1f}")
        run["step"] = step + 1
        if run["step"] % p.save_every == 0 and run["step"] < p.steps:
            rngs = world.rng_states()
            if world.main:           # tensors on a GPU are read back with map_location="cpu" (_load_state)
                out_dir.mkdir(parents=True, exist_ok=True)
                with atomic_path(state_path) as tmp:
                    torch.save({"key": key, "gated": gated.state_dict(), "opt": opt.state_dict(),
                                "sampler": sampler.gen.get_state(), **rngs, "run": run}, tmp)
    student.eval()
    gated.cpu()
    if not world.main:                  # rank 0 exports; the others wait for the file
        world.barrier()
        return summary(path, ckpt.load(path))
    narrow, widths = shrink_codec(gated)
    kept = gated.kept()
    pruned = gated.decoder_macs(kept, height, width, gop)
    meta = {"teacher": teacher_ck["hash"], "budget": budget, "method": method,
            "multiple": p.multiple, "steps": p.steps, "groups": kept, "resolution": p.resolution,
            "decoder_macs": {"dense": _rounded(dense), "pruned": _rounded(pruned),
                             "removed": round(1 - pruned["gop_mean"] / dense["gop_mean"], 4)}}
    calib = ds.CropSampler(seqs, t.seq_len, t.crop, p.seed + 7).batch(4)
    # the log through JSON: fresh objects either way, so a resumed run (log read back from the state file) pickles
    # to the same bytes as an uninterrupted one (pickle writes a shared object once, copies each time)
    log = json.loads(json.dumps({"stages": run["log"]}))
    payload = export(narrow, cfg, teacher_ck, calib, key, log, widths, meta)
    ckpt.save(path, payload)
    state_path.unlink(missing_ok=True)
    world.barrier()
    return summary(path, ckpt.load(path))


def structural(teacher_ck: dict, cfg: Config, fraction: float, multiple: int, calib: torch.Tensor,
               groups: dict[str, int] | None = None) -> dict:
    """An *untrained* structural prune of a codec checkpoint (for sizing the hardware of a pruned decoder, not
    for its rate-distortion): every group keeps round(fraction x its channels) of its largest-norm channels (or
    `groups[g]` channels where given), snapped up to `multiple` as training's masks are; the channels are removed
    and the integer model calibrated on `calib` as `prune` does. Returns the checkpoint payload (`prune.method`
    "structural", `steps` 0)."""
    if not 0 < fraction <= 1:
        raise EdgecodecError(f"prune: a kept fraction must be in (0, 1], got {fraction}")
    student = copy.deepcopy(teacher_ck["codec"]).eval()
    gated = GatedCodec(student, None, multiple)
    kept = {g: max(1, round(fraction * grp.units)) for g, grp in gated.groups.items()}
    kept.update(groups or {})
    keep_strongest(gated, kept)
    width, height = parse_resolution(cfg.prune.resolution)
    gop = int(teacher_ck["gop"])
    dense = gated.decoder_macs(gated.full(), height, width, gop)
    narrow, widths = shrink_codec(gated)
    got = gated.kept()
    pruned = gated.decoder_macs(got, height, width, gop)
    meta = {"teacher": teacher_ck["hash"], "budget": None, "method": "structural", "multiple": multiple,
            "steps": 0, "fraction": fraction, "groups": got, "resolution": cfg.prune.resolution,
            "decoder_macs": {"dense": _rounded(dense), "pruned": _rounded(pruned),
                             "removed": round(1 - pruned["gop_mean"] / dense["gop_mean"], 4)}}
    key = content_hash({"teacher": teacher_ck["hash"], "structural": kept, "multiple": multiple}).hex()
    return export(narrow, cfg, teacher_ck, calib, key, {"stages": []}, widths, meta)


def _rounded(m: dict) -> dict:
    return {k: int(round(float(v))) for k, v in m.items()}


def export(codec, cfg: Config, teacher: dict, calib: torch.Tensor, key: str, log: dict, widths: dict,
           meta: dict) -> dict:
    """The pruned checkpoint: as `recipe.export` writes a trained one (integer model calibrated on `calib`,
    tables, hash), with the teacher's quality, lambda, GOP and block search, plus `widths` (output channels of
    every convolution) and `prune` (teacher, budget, method, decoder MACs before and after)."""
    c = cfg.codec
    quality, lmbda = int(teacher["quality"]), float(teacher["lambda"])
    lam = search_lambda(c.motion_lambda, lmbda)
    int_state = build(codec, calib, c.cell_quant(cfg.quant), c.int_act_bits, c.int_weight_bits,
                      cfg.codec_train.search_range, lam)
    int_state["rows"] = {"intra_z": nearest_rows(codec.intra.hyper.z_log_scale),
                         "p_z": nearest_rows(codec.inter.hyper.z_log_scale),
                         "motion": nearest_rows(codec.inter.motion_log_scale)}
    search = {k: int(v) for k, v in teacher["search"].items()}
    payload = {"shape": dict(codec.shape.__dict__), "float": codec.state_dict(), "int": int_state,
               "tables": tables(), "quality": quality, "lambda": lmbda, "gop": int(teacher["gop"]),
               "recipe": key, "train_log": log, "search": search, "widths": widths, "prune": meta}
    payload = ckpt.compact(payload)
    payload["hash"] = ckpt.checkpoint_hash(payload).hex()
    return payload


def summary(path: Path, ck: dict) -> dict:
    meta = ck.get("prune") or {}
    return {"checkpoint": str(path), "quality": int(ck["quality"]), "budget": meta.get("budget"),
            "method": meta.get("method"), "groups": meta.get("groups"), "resolution": meta.get("resolution"),
            "decoder_macs": meta.get("decoder_macs"), "hash": ck["hash"]}


def _load_state(path: Path, key: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        res = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged state file: start again
        return None
    return res if isinstance(res, dict) and res.get("key") == key else None
