"""`edgecodec train`: the codec's training recipe, one checkpoint per quality, resumable, seeded.

The highest quality (smallest lambda) trains from scratch (intra stage, then P stage); every lower quality
starts from the next higher one and fine-tunes both stages at its own lambda. (Top-down: a codec first trained
at a high lambda learns to send almost no residual, and fine-tuning towards lower lambdas did not revive its
residual path; docs/codec.md.) Every 200 steps the state (weights, optimizer, random
generators) goes to `codec_q<N>.resume.pt`, so an interrupted run continues where it stopped and ends with the
same bytes as an uninterrupted one. At the end of a quality the integer model is calibrated on a fixed batch
and the checkpoint is exported with its integer probability tables.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from model.codec.motion import search_lambda
from model.codec.network import VideoCodec
from model.codec.train import LossWeights, run_stage
from model.codec.data import CropSampler, list_sequences
from model.distributed import World, join, rank_seed
from edgecodec.entropy import pmf_table, scale_table
from quant.codec.int_codec import build, nearest_rows

from edgecodec.codec import checkpoint as ckpt
from edgecodec.config import CodecConfig, Config
from base.errors import EdgecodecError
from base.files import atomic_path
from base.paths import resolve
from base.hashing import content_hash, sha256_file

STAGES = ("intra", "inter")
NOT_TRAINING = ("gop", "checkpoints", "eval_clip", "eval_frames")   # codec fields the weights ignore
_STEPS = ("intra_steps", "inter_steps", "finetune_intra_steps", "finetune_steps")
_P_ONLY = ("rate_warmup", "p_seq_len", "ref_grad", "inter_restart_steps")   # codec_train fields only the P stage reads
P_RESTART_SEED = 500                # generators of the P stage's restart: seed + quality + this
# fields added after checkpoints were trained: at these values they leave a recipe's key as it was without them
NEUTRAL = {"codec": {"intra_features": 0, "intra_latent": 0, "intra_analysis": 0, "int_lut_bits": 8,
                      "int_lut_frac": 4},
            "codec_train": {"scales": [1], "p_seq_len": 0, "ref_grad": False, "intra_restart_steps": 0,
                            "inter_restart_steps": 0, "intra_from": ""}}


# the codec section's integer widths: they shape only the export (the integer model), never training
EXPORT_WIDTHS = ("int_act_bits", "int_weight_bits", "int_lut_bits", "int_lut_frac")


def recipe_key(cfg: Config, quality: int) -> str:
    """What a checkpoint of this quality depends on: the config sections that shape training, the step counts
    this quality runs (intra/inter steps for the highest quality, the fine-tuning steps below it), its own lambda, and
    the key of the next higher quality it starts from. So changing the fine-tuning schedule keeps the highest
    quality, and changing a lower quality's lambda keeps the higher ones."""
    return _key(cfg, quality, intra_only=False)


def intra_key(cfg: Config, quality: int) -> str:
    """What the intra stage of this quality depends on: its recipe key without the P stage's schedule (P steps,
    lambda warm-up). The weights, random generators and log at the end of the intra stage are kept under this key
    (`codec_q<N>.intra.pt`), so a longer or shorter P stage starts from them instead of training intra again, with
    the same bytes as a run from scratch. The integer widths (`EXPORT_WIDTHS`) shape only the export: the key takes
    them at their defaults, so an intra stage serves every width (the shipped ones were kept when the widths were
    12 / 8)."""
    widths = {k: getattr(CodecConfig(), k) for k in EXPORT_WIDTHS}
    return _key(dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, **widths)), quality, intra_only=True)


def _key(cfg: Config, quality: int, intra_only: bool) -> str:
    d = cfg.to_dict()
    for section, fields in NEUTRAL.items():
        d[section] = {k: v for k, v in d[section].items() if not (k in fields and _same(v, fields[k]))}
    lambdas = d["codec"]["lambdas"]
    n = len(lambdas)
    codec = {k: v for k, v in d["codec"].items() if k not in NOT_TRAINING + ("lambdas",)}
    train = {k: v for k, v in d["codec_train"].items() if k not in _STEPS + (_P_ONLY if intra_only else ())}
    if train.get("intra_from"):         # what the file holds, not where it lies
        train["intra_from"] = _intra_file_hash(train["intra_from"])
    if quality == n:
        steps, parent = [d["codec_train"]["intra_steps"], d["codec_train"]["inter_steps"]], ""
    else:
        steps = [d["codec_train"]["finetune_intra_steps"], d["codec_train"]["finetune_steps"]]
        parent = recipe_key(cfg, quality + 1)
    parts = [{k: d[k] for k in ("model", "quant")}, train, codec, lambdas[quality - 1]]
    if intra_only:
        parts += ["intra stage", steps[:1], parent]
    else:
        parts += [steps, parent]
    return content_hash(*parts).hex()


def _intra_file_hash(path: str) -> str:
    p = resolve(path)
    if not p.is_file():
        raise EdgecodecError(f"codec_train.intra_from: {p} is not a file (a codec_q<N>.pt or codec_q<N>.intra.pt)")
    return sha256_file(p)


def intra_weights(path: str) -> dict:
    """The I-frame codec's float weights (`codec.intra` state, keys without the prefix) of a codec checkpoint or a
    kept intra stage (`codec_train.intra_from`)."""
    p = resolve(path)
    try:
        snap = torch.load(p, map_location="cpu", weights_only=True)
        state = snap["float"]
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same error for the user
        raise EdgecodecError(f"codec_train.intra_from: {p} is not a codec checkpoint or kept intra stage "
                             f"({type(exc).__name__})") from None
    out = {k[len("intra."):]: torch.as_tensor(v) for k, v in state.items() if k.startswith("intra.")}
    if not out:
        raise EdgecodecError(f"codec_train.intra_from: {p} holds no I-frame codec weights")
    return out


def _same(a, b) -> bool:
    return list(a) == list(b) if isinstance(a, (list, tuple)) else a == b


def tables() -> dict:
    s = scale_table()
    return {"scales": s, "gaussian": pmf_table("gaussian", s), "laplace": pmf_table("laplace", s)}


def export(codec: VideoCodec, cfg: Config, quality: int, calib: torch.Tensor, log: dict) -> dict:
    c = cfg.codec
    lam = search_lambda(c.motion_lambda, c.lambdas[quality - 1])
    int_state = build(codec, calib, c.cell_quant(cfg.quant), c.int_act_bits, c.int_weight_bits,
                      cfg.codec_train.search_range, lam)
    int_state["rows"] = {"intra_z": nearest_rows(codec.intra.hyper.z_log_scale),
                         "p_z": nearest_rows(codec.inter.hyper.z_log_scale),
                         "motion": nearest_rows(codec.inter.motion_log_scale)}
    payload = {"shape": dict(codec.shape.__dict__), "float": codec.state_dict(), "int": int_state,
               "tables": tables(), "quality": quality, "lambda": c.lambdas[quality - 1], "gop": c.gop,
               "recipe": recipe_key(cfg, quality), "train_log": log,
               "search": {"range": c.search_range, "lam": lam}}
    payload = ckpt.compact(payload)
    payload["hash"] = ckpt.checkpoint_hash(payload).hex()
    return payload


def _exported_at_other_widths(path: Path, cfg: Config, quality: int) -> dict | None:
    """The checkpoint at `path` when the recipe trained it but exported its integer model at other widths than
    the codec section's `EXPORT_WIDTHS` (training never reads them: the weights are those the new widths would
    train), else None."""
    if not path.is_file():
        return None
    try:
        ck = ckpt.load(path)
        cell = ck["int"]["dec_cells"][0]
        widths = {"int_act_bits": int(ck["int"]["act_bits"]), "int_weight_bits": int(ck["int"]["weight_bits"]),
                  "int_lut_bits": int(cell["lut_bits"]), "int_lut_frac": int(cell["lut_frac"])}
    except (EdgecodecError, KeyError, TypeError):
        return None
    then = dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, **widths))
    return ck if ck.get("recipe") == recipe_key(then, quality) != recipe_key(cfg, quality) else None


def _existing(path: Path, key: str) -> bool:
    if not path.is_file():
        return False
    try:
        return ckpt.load(path).get("recipe") == key
    except EdgecodecError:
        return False


def train(cfg: Config, out_dir: str | Path, qualities: list[int] | None = None, progress: bool = True,
          retrain: bool = False, device: str = "cpu") -> list[Path]:
    """Train (or resume) the checkpoints of `qualities` (default: all lambdas) into out_dir.

    device "cuda" trains on a GPU (not bit-reproducible: some CUDA kernels have no deterministic version);
    the export (calibration, integer model) always runs on the CPU. Started by torchrun, every process trains on
    its share of each batch (model/distributed.py: gradients averaged by DistributedDataParallel, NCCL on GPUs,
    gloo on CPUs) and rank 0 alone writes the checkpoints and resume states."""
    c, t = cfg.codec, cfg.codec_train
    n = len(c.lambdas)
    wanted = sorted(set(qualities or range(1, n + 1)))
    bad = [q for q in wanted if not 1 <= q <= n]
    if bad:
        raise EdgecodecError(f"quality {bad} does not exist: codec.lambdas defines qualities 1..{n}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world, device = join(device, t.batch, "codec_train.batch")
    torch.use_deterministic_algorithms(True, warn_only=device != "cpu")
    seqs = list_sequences([resolve(d) for d in t.data])
    written, prev_state = [], None
    for q in range(n, min(wanted) - 1, -1):
        world.barrier()                 # every rank sees the files rank 0 wrote for the previous quality
        path = ckpt.path_for(out_dir, q)
        key = recipe_key(cfg, q)
        if not retrain and _existing(path, key):
            prev_state = ckpt.load(path)["float"]
            if q in wanted:
                written.append(path)
            continue
        old = None if retrain else _exported_at_other_widths(path, cfg, q)
        if old is not None:             # trained by this recipe, exported at other integer widths: export again
            if world.main:
                calib = CropSampler(seqs, t.seq_len, t.crop, t.seed + 7).batch(4)
                ckpt.save(path, export(old["codec"], cfg, q, calib, old["train_log"]))
            prev_state = old["codec"].state_dict()
            if q in wanted:
                written.append(path)
            continue
        torch.manual_seed(t.seed + q)
        codec = VideoCodec(ckpt.shape_of(cfg))
        if prev_state is not None:
            codec.load_state_dict(prev_state)
        if world.rank:                  # the same weights, its own noise
            torch.manual_seed(rank_seed(t.seed + q, world.rank))
        steps = {"intra": t.intra_steps, "intra_restart": t.intra_restart_steps, "inter": t.inter_steps,
                 "inter_restart": t.inter_restart_steps} \
            if q == n else {"intra": t.finetune_intra_steps, "inter": t.finetune_steps}
        restart = q == n and t.intra_restart_steps > 0
        p_restart = q == n and t.inter_restart_steps > 0
        seeded = q == n and bool(t.intra_from)      # the intra stage replaced by a finished I-frame codec
        stages = ("intra_restart", "inter") if restart and seeded else ("intra", "intra_restart", "inter") if restart \
            else ("inter",) if seeded else STAGES
        stages += ("inter_restart",) if p_restart else ()
        w = LossWeights(c.lambdas[q - 1], c.ssim_weight, c.motion_lambda, t.search_range,
                        t.rate_warmup if q == n else 0, t.ref_grad)
        resume_path = path.with_name(path.stem + ".resume.pt")
        intra_path = path.with_name(path.stem + ".intra.pt")
        ikey = intra_key(cfg, q)
        first_p = recipe_key(_without_p_restart(cfg), q) if p_restart else ""
        res = _load_resume(resume_path, key) or (
            p_restart and _load_first_p_cycle((path.with_name(path.stem + ".inter.pt"), path), first_p)) or \
            _load_intra(intra_path, ikey)
        if res is None and restart:     # the kept first cycle: the same recipe without the restart
            res = _load_intra(intra_path, intra_key(_without_restart(cfg), q), "intra_restart")
        if res is None and seeded:
            try:
                codec.intra.load_state_dict(intra_weights(t.intra_from))
            except RuntimeError as exc:
                raise EdgecodecError(f"codec_train.intra_from: {t.intra_from} does not fit this recipe's I-frame "
                                     f"codec: {str(exc).splitlines()[0]}") from None
        if res is not None and res["stage"] == "inter_restart" and res["step"] == 0:
            # the first P cycle: its weights alone (the restart reseeds its generators)
            codec.load_state_dict({k: torch.as_tensor(v) for k, v in res["float"].items()})
            sampler_q = None
        else:
            sampler_q = CropSampler(seqs, t.seq_len, t.crop, t.seed + 1000 * q, scales=t.scales) if res is None \
                else _restore(res, codec, seqs, t, world)
        log, t0 = {"stages": {}}, time.time()
        if res is not None:
            log = res["log"]
        for stage in stages:
            if res is not None and stages.index(stage) < stages.index(res["stage"]):
                continue
            start = res["step"] if res is not None and res["stage"] == stage else 0
            opt_state = res["opt"] if res is not None and res["stage"] == stage else None
            if stage == "inter_restart" and start == 0:     # a start that is the first cycle's weights alone
                torch.manual_seed(rank_seed(t.seed + q + P_RESTART_SEED, world.rank))
                sampler_q = CropSampler(seqs, t.seq_len, t.crop, t.seed + 1000 * q + P_RESTART_SEED,
                                        scales=t.scales)

            def save_resume(step, opt, stage=stage):
                rngs = world.rng_states()
                if world.main:
                    with atomic_path(resume_path) as tmp:
                        torch.save({"recipe": key, "stage": stage, "step": step,
                                    "float": {k: v.cpu() for k, v in codec.state_dict().items()},
                                    "opt": opt.state_dict(), "sampler": sampler_q.gen.get_state(),
                                    **rngs, "log": log}, tmp)

            intra = stage.startswith("intra")
            sampler_q.seq_len = t.seq_len if intra else t.p_seq_len or t.seq_len
            codec.to(device)
            hist = run_stage(codec, "intra" if intra else "inter", sampler_q, steps[stage], start, t.batch, t.lr,
                             dataclasses.replace(w, rate_warmup=0) if stage == "inter_restart" else w, opt_state,
                             progress, f"q{q} {stage}", save_resume, device=device, world=world)
            codec.cpu()
            log["stages"].setdefault(stage, []).extend(
                {k: round(v, 5) if isinstance(v, float) else v for k, v in h.items()} for h in hist[-20:])
            res = None
            if stage == "inter" and p_restart and world.main:      # the first P cycle, for a longer restart
                with atomic_path(path.with_name(path.stem + ".inter.pt")) as tmp:
                    torch.save({"recipe": first_p, "float": {k: v.cpu() for k, v in codec.state_dict().items()},
                                "log": log}, tmp)
            if "inter" in stages and stages.index(stage) == stages.index("inter") - 1:  # intra's end (+ restart)
                rngs = world.rng_states()
                if world.main:
                    with atomic_path(intra_path) as tmp:
                        torch.save({"intra_key": ikey, "float": {k: v.cpu() for k, v in codec.state_dict().items()},
                                    "sampler": sampler_q.gen.get_state(), **rngs, "log": log}, tmp)
        log["seconds"] = round(time.time() - t0, 1)
        if world.main:
            calib = CropSampler(seqs, t.seq_len, t.crop, t.seed + 7).batch(4)
            payload = export(codec, cfg, q, calib, log)
            ckpt.save(path, payload)
            resume_path.unlink(missing_ok=True)
        prev_state = codec.state_dict()
        if q in wanted:
            written.append(path)
    world.barrier()                     # the last checkpoint is written before any rank returns
    return written[::-1]


def _snapshot(path: Path, field: str, key: str) -> dict | None:
    """The dict saved at `path` when its `field` is `key`; None when there is none, it is damaged (the stage it
    would skip is trained again) or it belongs to another recipe."""
    if not path.is_file():
        return None
    try:
        snap = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is one that is not there
        return None
    return snap if isinstance(snap, dict) and snap.get(field) == key else None


def _load_resume(path: Path, key: str) -> dict | None:
    return _snapshot(path, "recipe", key)


def _without_restart(cfg: Config) -> Config:
    return dataclasses.replace(cfg, codec_train=dataclasses.replace(cfg.codec_train, intra_restart_steps=0))


def _without_p_restart(cfg: Config) -> Config:
    return dataclasses.replace(cfg, codec_train=dataclasses.replace(cfg.codec_train, inter_restart_steps=0))


def _load_first_p_cycle(paths: tuple[Path, ...], key: str) -> dict | None:
    """The end of the first P cycle (a kept `codec_q<N>.inter.pt` or a checkpoint of the recipe without the P
    restart) as a start of the restart: its float weights and log."""
    for p in paths:
        snap = _snapshot(p, "recipe", key)
        if snap is not None and "float" in snap:
            log = snap.get("log") or snap.get("train_log") or {"stages": {}}
            return {"float": snap["float"], "log": {k: v for k, v in log.items() if k != "seconds"},
                    "stage": "inter_restart", "step": 0, "opt": None}
    return None


def _load_intra(path: Path, key: str, stage: str = "inter") -> dict | None:
    """The end of a finished intra stage as a resume state at step 0 of the next stage (the P stage, or the
    intra stage's restart: a fresh Adam either way, as in an uninterrupted run)."""
    snap = _snapshot(path, "intra_key", key)
    return None if snap is None else {**snap, "stage": stage, "step": 0, "opt": None}


def _restore(res: dict, codec: VideoCodec, seqs, t, world: World) -> CropSampler:
    """Weights, sampler and this rank's generator from a resume state. A state written by a different number of
    processes resumes too (same weights, sampler and optimizer; ranks > 0 reseeded from the step), but not to the
    bytes of an uninterrupted run."""
    codec.load_state_dict(res["float"])
    world.restore_rng(res, t.seed, res["step"])
    sampler = CropSampler(seqs, t.seq_len, t.crop, t.seed, scales=t.scales)
    sampler.gen.set_state(res["sampler"])
    return sampler
