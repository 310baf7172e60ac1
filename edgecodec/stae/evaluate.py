"""`edgecodec stae train|eval`: STAE on the configured data, a table like the seed's Table I and Fig. 5.

Data: the synthetic labelled set (model/stae/data.py, generated, not real video) by default, or HMDB51 /
UCF101 in their official layouts. Clip values are 8-bit RGB codes / 256 (the fixed-point contract's input).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from model.stae.network import STAE
from model.stae.attention import select_frames, select_pixels
from edgecodec.stae.coding import decode_semantic, encode_semantic, uncoded_bytes
from model.stae.train import ClipSet, load_stage, stage_key, train_stae

from base.hashing import content_hash
from base.paths import resolve
from edgecodec.config import Config
from base.errors import EdgecodecError
from base.files import atomic_path, write_json_atomic, write_text_atomic

RATES_MBPS = (10, 50, 100, 200)


def quantize_clips(x: torch.Tensor) -> torch.Tensor:
    """Float clips in [0, 1] -> 8-bit codes / 256 (what an IoT camera would hand over)."""
    return torch.round(x.clamp(0, 1) * 256).clamp(0, 255) / 256


def build_data(cfg: Config) -> tuple[ClipSet, ClipSet, str]:
    s = cfg.stae
    if s.data == "synthetic":
        from model.stae.data import make_synthetic
        xtr, ytr = make_synthetic(s.train_per_class, s.frames, s.size, s.classes, seed=s.seed)
        xte, yte = make_synthetic(s.test_per_class, s.frames, s.size, s.classes, seed=s.seed + 1)
        xtr, ytr, xte, yte = (torch.as_tensor(v) for v in (xtr, ytr, xte, yte))
        return (ClipSet(quantize_clips(xtr), ytr), ClipSet(quantize_clips(xte), yte),
                f"synthetic labelled clips (generated, not real video): {s.classes} classes, "
                f"{s.train_per_class}/{s.test_per_class} train/test clips per class")
    from model.stae import data as stae_data
    cls = stae_data.HMDB51 if s.data == "hmdb51" else stae_data.UCF101
    tr = cls(resolve(s.root), resolve(s.split_dir), split=s.split, train=True, frames=s.frames, size=s.size)
    te = cls(resolve(s.root), resolve(s.split_dir), split=s.split, train=False, frames=s.frames, size=s.size)
    return ClipSet(dataset=tr), ClipSet(dataset=te), f"{s.data} split {s.split} from {s.root}"


def make_model(cfg: Config, classes: int) -> STAE:
    s = cfg.stae
    torch.manual_seed(s.seed)
    return STAE(s.frames, 3, s.size, classes, dict(patch=s.patch, tubelet=s.tubelet, dim=s.vit_dim,
                                                   depth=s.vit_depth, heads=s.vit_heads), s.fr_width)


def budgets(cfg: Config) -> tuple[list[int], list[float]]:
    return [int(a) for a in cfg.stae.alphas], [float(b) for b in cfg.stae.betas]


def recipe(cfg: Config) -> str:
    d = cfg.to_dict()["stae"]
    return content_hash({k: v for k, v in d.items() if k != "out"}).hex()


def n_classes(cfg: Config, data: ClipSet) -> int:
    if cfg.stae.data == "synthetic":
        return cfg.stae.classes
    return len(data.dataset.classes)


def train(cfg: Config, progress: bool = True) -> tuple[STAE, dict, ClipSet, ClipSet, str]:
    s = cfg.stae
    train_set, test_set, source = build_data(cfg)
    model = make_model(cfg, n_classes(cfg, train_set))
    alphas, betas = budgets(cfg)
    steps = {"classifier": s.classifier_steps, "fa": s.fa_steps, "sa": s.sa_steps, "fr": s.fr_steps}
    states = train_stae(model, train_set, alphas, betas, steps, s.batch, s.lr, s.seed, resolve(s.out) / "stae.pt",
                        recipe(cfg), progress)
    return model, states, train_set, test_set, source


@torch.no_grad()
def accuracy(forward, data: ClipSet, batch: int = 32) -> float:
    correct = 0
    for i in range(0, len(data), batch):
        x, y = data.take(torch.arange(i, min(i + batch, len(data))))
        correct += int((forward(x).argmax(dim=1) == y).sum())
    return 100.0 * correct / len(data)


def _median_time(fn, repeats: int = 7) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


@torch.no_grad()
def measure(m: STAE, x: torch.Tensor, alpha: int, beta: float) -> dict:
    """Bytes of the real coded stream and the per-module times of eqs. 2-4 for one clip x (1, F, C, H, W)."""
    m_fa = m.fa(x)
    xf, idx = select_frames(x, m_fa, alpha)
    t = {"t_fa": _median_time(lambda: select_frames(x, m.fa(x), alpha))}
    if beta < 1.0:
        xs, mask = select_pixels(xf, m.sa(xf), beta)
        t["t_sa"] = _median_time(lambda: select_pixels(xf, m.sa(xf), beta))
    else:
        xs, mask = xf, torch.ones_like(xf[:, :, :1])
        t["t_sa"] = 0.0
    codes = torch.round(xs[0] * 256).clamp(0, 255).to(torch.uint8).numpy()
    mk = mask[0, :, 0].bool().numpy()
    f = x.shape[1]
    data = encode_semantic(idx[0].numpy(), mk, codes, f)
    t["t_ee"] = _median_time(lambda: encode_semantic(idx[0].numpy(), mk, codes, f))
    t["t_ed"] = _median_time(lambda: decode_semantic(data, f, x.shape[2], x.shape[3], x.shape[4]))
    if beta < 1.0:
        t["t_fr"] = _median_time(lambda: m.fr(xs, mask))
        xr = m.fr(xs, mask)
    else:
        t["t_fr"], xr = 0.0, xs
    t["t_vit"] = _median_time(lambda: m.vit(xr, idx))
    return {"bytes": len(data), **t}


def evaluate(cfg: Config, model: STAE, states: dict, train_set: ClipSet, test_set: ClipSet, source: str,
             progress: bool = True) -> dict:
    s = cfg.stae
    out = resolve(s.out)
    alphas, betas = budgets(cfg)
    frames = s.frames
    all_idx = lambda x: torch.arange(frames).expand(x.shape[0], -1)
    base = load_stage(model, states, "classifier")
    base_acc = accuracy(lambda x: base.vit(x, all_idx(x)), test_set)
    probe, _ = test_set.take(torch.arange(min(len(test_set), 16)))
    raw = 4 * frames * 3 * s.size * s.size
    rows = []
    for a in alphas:
        m_fa = load_stage(model, states, stage_key("fa", a))
        acc_fa = accuracy(lambda x: m_fa(x, a, 1.0, use_sa=False, use_fr=False)["logits"], test_set)
        for b in betas:
            if b >= 1.0:
                m, acc_sa, acc_stae = m_fa, acc_fa, acc_fa
            else:
                m_sa = load_stage(model, states, stage_key("sa", a, b))
                acc_sa = accuracy(lambda x: m_sa(x, a, b, use_sa=True, use_fr=False)["logits"], test_set)
                m = load_stage(model, states, stage_key("fr", a, b))
                acc_stae = accuracy(lambda x: m(x, a, b, use_sa=True, use_fr=True)["logits"], test_set)
            per = [measure(m, probe[i:i + 1], a, b) for i in range(len(probe))]
            row = {"alpha": a, "beta": b, "bytes": float(np.mean([p["bytes"] for p in per])),
                   "bytes_eq1": uncoded_bytes(a, 3, b, s.size, s.size),
                   "acc_fa": acc_fa, "acc_fa_sa": acc_sa, "acc_stae": acc_stae, "accuracy": acc_stae}
            row["ratio"] = raw / row["bytes"]
            row.update({k: statistics.median(p[k] for p in per) for k in per[0] if k.startswith("t_")})
            rows.append(row)
            if progress:
                print(f"alpha={a:2d} beta={b:.0%}: {row['bytes']:.0f} B ({row['ratio']:.0f}x), acc FA {acc_fa:.1f} "
                      f"FA+SA {acc_sa:.1f} STAE {acc_stae:.1f} %", flush=True)
    result = {"source": source, "frames": frames, "size": s.size, "classes": n_classes(cfg, test_set),
              "test_clips": len(test_set), "uncompressed_accuracy": base_acc, "raw_float32_bytes": raw,
              "machine": "CPU, torch threads %d" % torch.get_num_threads(), "rows": rows}
    result["fixed_point"] = fixed_point_accuracy(cfg, model, states, train_set, test_set)
    result["plot"] = str(plot(result, out / "accuracy_vs_latency.png"))
    write_json_atomic(out / "stae_eval.json", result, indent=1)
    write_text_atomic(out / "stae_eval.md", markdown(result))
    return result


@torch.no_grad()
def fixed_point_accuracy(cfg: Config, model: STAE, states: dict, train_set: ClipSet, test_set: ClipSet) -> list:
    """Accuracy of ViT_STAE fed by the bit-exact integer encoder (golden model of the Brevitas QAT FA/SA)."""
    from quant.stae.fixed import QuantSTAEEncoder, calibrate, extract, golden_encode
    alphas, betas = budgets(cfg)
    calib, _ = train_set.take(torch.arange(min(len(train_set), 32)))
    out = []
    for a in alphas:
        for b in betas:
            if b >= 1.0:
                continue
            m = load_stage(model, states, stage_key("fr", a, b))
            fracs = calibrate(m.fa, m.sa, calib, a, cfg.quant)
            params = extract(QuantSTAEEncoder(m.fa, m.sa, cfg.quant, fracs))
            correct, same_frames, same_pixels, n = 0, 0, 0.0, len(test_set)
            for i in range(n):
                x, y = test_set.take(torch.tensor([i]))
                codes = torch.round(x[0] * 256).clamp(0, 255).to(torch.uint8).numpy()
                idx, mask, values = golden_encode(params, codes, a, b)
                xm = torch.zeros(1, a, *x.shape[2:])
                for j in range(a):        # values[j, c] are the kept codes of frame j, channel c, raster order
                    pos = torch.from_numpy(np.flatnonzero(mask[j]))
                    xm[0, j].view(x.shape[2], -1)[:, pos] = torch.from_numpy(
                        np.asarray(values[j], dtype=np.float32)) / 256
                mk = torch.from_numpy(mask.astype(np.float32))[None, :, None]
                fidx = torch.from_numpy(np.asarray(idx, dtype=np.int64))[None]
                logits = m.vit(m.fr(xm, mk), fidx)
                correct += int(logits.argmax(1)[0] == y[0])
                ref = m(x, a, b)
                same = torch.equal(ref["frame_idx"][0], fidx[0])
                same_frames += int(same)
                same_pixels += float((ref["mask"][0, :, 0].bool().numpy() == mask).mean()) if same else 0.0
            out.append({"alpha": a, "beta": b, "acc_fixed": 100.0 * correct / n,
                        "frames_same_as_float": same_frames / n,
                        "pixel_mask_agreement": same_pixels / max(same_frames, 1)})
    return out


def plot(r: dict, path: Path) -> Path:
    """Fig. 5: accuracy vs completion time (eqs. 2-4) for every (alpha, beta), at several data rates."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from edgecodec.stae.plan import completion_time
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot(111)
    for rate in RATES_MBPS:
        ts = [1e3 * completion_time(row, rate * 1e6) for row in r["rows"]]
        ax.scatter(ts, [row["accuracy"] for row in r["rows"]], label=f"{rate} Mbps", s=18)
    ax.axhline(r["uncompressed_accuracy"], color="k", lw=0.8, ls="--", label="uncompressed classifier")
    ax.set_xscale("log")
    ax.set_xlabel("completion time (ms, eqs. 2-4, module times measured on this CPU)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"STAE: accuracy vs latency ({r['source'].split(':')[0]})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    return path


def markdown(r: dict) -> str:
    lines = [f"# STAE: {r['source']}", "",
             f"{r['frames']} frames of {r['size']}x{r['size']} RGB, {r['classes']} classes, {r['test_clips']} test "
             f"clips; uncompressed classifier accuracy {r['uncompressed_accuracy']:.1f} %; float32 input "
             f"{r['raw_float32_bytes']} bytes; times on {r['machine']}.", "",
             "| alpha | beta | bytes sent (coded) | eq. (1) bytes | ratio vs float32 | acc FA | acc FA+SA | acc STAE | "
             "t_FA ms | t_SA ms | t_EE ms | t_ED ms | t_FR ms | t_ViT ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in r["rows"]:
        lines.append(f"| {w['alpha']} | {w['beta']:.0%} | {w['bytes']:.0f} | {w['bytes_eq1']:.0f} | "
                     f"{w['ratio']:.0f}x | {w['acc_fa']:.1f} | {w['acc_fa_sa']:.1f} | {w['acc_stae']:.1f} | "
                     + " | ".join(f"{1e3 * w[k]:.2f}" for k in ("t_fa", "t_sa", "t_ee", "t_ed", "t_fr", "t_vit")) + " |")
    if r.get("fixed_point"):
        lines += ["", "Fixed-point (bit-exact integer) encoder feeding ViT_STAE:", "",
                  "| alpha | beta | acc fixed | same frames as float | pixel-mask agreement |", "|---|---|---|---|---|"]
        lines += [f"| {f['alpha']} | {f['beta']:.0%} | {f['acc_fixed']:.1f} | {f['frames_same_as_float']:.2f} | "
                  f"{f['pixel_mask_agreement']:.3f} |" for f in r["fixed_point"]]
    return "\n".join(lines) + "\n"


def run(cfg: Config, progress: bool = True) -> dict:
    model, states, tr, te, source = train(cfg, progress)
    if not states:
        raise EdgecodecError("STAE training produced no stages")
    return evaluate(cfg, model, states, tr, te, source, progress)
