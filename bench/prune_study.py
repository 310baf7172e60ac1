"""The pruning study of issue 13: gradient decay (gd), the straight-through estimator (ste) and plain hard masking
at several decoder-MAC budgets, on the same schedule, against the dense teacher and x264 medium on a held-out clip.

For every method and budget, each quality of the teacher set (`--teachers`, default codec.checkpoints: codec_q1..
q4.pt) is pruned with `edgecodec prune` (edgecodec.codec.prune.prune; `--steps`, `--batch` override prune.steps and
codec_train.batch for every run alike) into <out>/<method>_<budget>/codec_q<N>.pt. Finished checkpoints of the same
recipe are reused and an interrupted run continues from its state file, so the study resumes where it stopped.
Across sessions (a fresh checkout has no build/): the JSON (`--json`, committed) is written after the teacher's
evaluation and after every set, with `complete` false until the last; a later run whose key (`study_key`: the
teachers' hashes, the prune and codec_train sections, GOP, clip, frames) is the JSON's takes its teacher evaluation
and finished sets from it and runs only the rest (`--fresh`: ignore it).
Each set (the teacher's and every pruned one) is then evaluated on the clip (`edgecodec eval`'s machinery, int
mode, ANS, every stream decoded again and compared with the encoder's frames); x264 medium on the same frames.

Per pruned set: BD-rate and BD-PSNR (YUV 6:1:1 and luma) against the teacher and against x264, the decoder MACs
removed (1080p GOP mean, from the checkpoints), the kept ASE-GRU hidden size, and the CPU decode time of the clip
against the teacher's (the speed-up; one thread, `--threads`; indicative only, from the evaluations' decode fps,
possibly measured in different sessions: bench/prune_hw.py measures it best of 3 side by side). `--narrow DIR`:
a dense narrow codec set evaluated beside them, every set's BD figures against it (`vs_narrow`). Writes
<out>/prune_study.json and .md, and the JSON to `--json` (default bench/results/prune_study.json).

    python bench/prune_study.py --steps 300 --batch 4          # hours on 2 cores: 4 qualities x methods x budgets
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("psnr_yuv611", "psnr_y")


def compare(anchor: list[dict], test: list[dict]) -> dict:
    """BD-rate (%) and BD-PSNR (dB) of `test` against `anchor` per metric, None with the reason where the curves
    give no number."""
    from base.errors import EdgecodecError
    from edgecodec.codec.rd import bd_detail
    out = {}
    for metric in METRICS:
        row = {}
        for kind, key in (("rate", "bd_rate_pct"), ("psnr", "bd_psnr_db")):
            try:
                d = bd_detail(anchor, test, metric, kind)
                row[key] = None if d["value"] is None else round(d["value"], 3)
                if d["reason"]:
                    row[key + "_reason"] = d["reason"]
            except EdgecodecError as exc:
                row[key], row[key + "_reason"] = None, str(exc)
        out[metric] = row
    return out


def decode_seconds(points: list[dict], frames: int) -> float:
    """Seconds to decode the clip, summed over the qualities (from the evaluation's decode fps)."""
    return sum(frames / p["decode_fps"] for p in points)


def prune_set(cfg, teachers: Path, out: Path, budget: float, method: str, progress: bool) -> list[dict]:
    from edgecodec.codec import checkpoint as ckpt
    from edgecodec.codec.prune import prune
    return [prune(cfg, ckpt.path_for(teachers, q), out, budget, method, progress=progress)
            for q in ckpt.available(teachers)]


def evaluate_set(checkpoints: Path, clip: str, frames: int, gop: int, out: Path, x264: bool) -> dict:
    from edgecodec.codec.evaluate import evaluate
    return evaluate(clip, frames, gop, checkpoints, None, out, modes=("int",), baselines=("x264",) if x264 else (),
                    progress=False)


def study_key(cfg, teachers: Path, clip: str, frames: int) -> str:
    """What every row of a study depends on: the teachers (their checkpoint hashes), the prune and codec_train
    config sections, the GOP, the clip and the frame count (a row's method and budget are its own)."""
    from base.hashing import content_hash
    from edgecodec.codec.prune import BUDGET_RULE, keyed_prune_fields
    d = cfg.to_dict()
    return content_hash(teacher_key(cfg, teachers, clip, frames), keyed_prune_fields(d["prune"]), d["codec_train"],
                        BUDGET_RULE).hex()


def teacher_key(cfg, teachers: Path, clip: str, frames: int) -> str:
    """What the teacher's evaluation depends on: the teachers' checkpoint hashes, the GOP, the clip and the frame
    count (a study with another prune schedule reuses it)."""
    from base.hashing import content_hash
    from edgecodec.codec import checkpoint as ckpt
    hashes = [ckpt.load(teachers, q)["hash"] for q in ckpt.available(teachers)]
    return content_hash(hashes, cfg.codec.gop, Path(clip).name, frames).hex()


def narrow_part(narrow: Path, clip: str, frames: int, gop: int, out: Path, teacher: list, x264: list,
                previous: dict | None) -> dict:
    """The dense narrow codec the pruned sets must beat (issue 13: pruned wide against dense narrow of equal MACs):
    its points, decoder MACs per luma pixel (GOP mean, from `edgecodec eval`'s hooks) and BD figures against the
    teacher and x264; an earlier evaluation of the same checkpoints, clip and frames (`previous`) is reused."""
    from base.hashing import content_hash
    from edgecodec.codec import checkpoint as ckpt
    key = content_hash([ckpt.load(narrow, q)["hash"] for q in ckpt.available(narrow)], gop, Path(clip).name,
                       frames).hex()
    if previous and previous.get("key") == key:
        return previous
    ev = evaluate_set(narrow, clip, frames, gop, out / "eval_narrow", x264=False)
    pts = ev["curves"]["ours-int"]
    return {"key": key, "checkpoints": str(narrow),
            "points": [{k: p[k] for k in ("quality", "bpp", *METRICS, "decode_fps")} for p in pts],
            "decoder_macs_per_pixel": ev.get("decoder_macs_per_pixel"),
            "vs_teacher": compare(teacher, pts), "vs_x264": compare(x264, pts)}


def study(cfg, teachers: Path, out: Path, methods, budgets, clip: str, frames: int, progress: bool = True,
          previous: dict | None = None, on_row=None, narrow: Path | None = None) -> dict:
    """The study's result. `previous` (an earlier result, e.g. the committed JSON) lends its teacher evaluation
    and its rows when its key is this study's, so a study spread over several sessions runs each set once;
    `on_row(result)` is called with the partial result after the teacher's evaluation and after every set
    (`complete` False until the last). `narrow` (a folder of dense narrow checkpoints) adds that codec's
    evaluation and every set's BD figures against it (`vs_narrow`)."""
    from edgecodec.codec import checkpoint as ckpt
    gop = cfg.codec.gop
    t0 = time.perf_counter()
    key, tkey = study_key(cfg, teachers, clip, frames), teacher_key(cfg, teachers, clip, frames)
    previous = previous or {}
    done = {(r["method"], r["budget"]): r for r in previous["rows"]} if previous.get("key") == key else {}
    if previous.get("key") == key or previous.get("teacher_key") == tkey:
        teacher_part = previous["teacher"]
    else:
        dense = evaluate_set(teachers, clip, frames, gop, out / "eval_teacher", x264=True)
        teacher, x264 = dense["curves"]["ours-int"], dense["curves"]["x264"]
        teacher_part = {"points": [{k: p[k] for k in ("quality", "bpp", *METRICS, "decode_fps")} for p in teacher],
                        "x264": [{k: p[k] for k in ("bpp", *METRICS)} for p in x264],
                        "vs_x264": compare(x264, teacher)}
    teacher, x264 = teacher_part["points"], teacher_part["x264"]
    result = {"bench": "prune_study", "key": key, "teacher_key": tkey, "clip": clip, "frames": frames, "gop": gop,
              "teachers": str(teachers), "steps": cfg.prune.steps, "stage_steps": cfg.prune.stage_steps,
              "batch": cfg.codec_train.batch,
              "methods": list(methods), "budgets": list(budgets),
              "colour": "8-bit YCbCr 4:2:0; PSNR YUV 6:1:1; whole-file bits per luma pixel; int mode, ANS",
              "teacher": teacher_part, "rows": [], "complete": False, "machine": platform.platform()}
    if cfg.prune.floors:
        result["floors"] = list(cfg.prune.floors)
    if narrow is not None:
        result["narrow"] = narrow_part(narrow, clip, frames, gop, out, teacher, x264, previous.get("narrow"))

    def against_narrow(row: dict) -> dict:       # a reused row's figures against another narrow set are dropped
        row = {k: v for k, v in row.items() if k != "vs_narrow"}
        return {**row, "vs_narrow": compare(result["narrow"]["points"], row["points"])} if narrow else row
    if on_row:
        on_row(result)
    for method in methods:
        for budget in budgets:
            name = f"{method}_{budget:g}"
            if (method, budget) in done:
                result["rows"].append(against_narrow(done[(method, budget)]))
                continue
            summaries = prune_set(cfg, teachers, out / name, budget, method, progress)
            ev = evaluate_set(out / name, clip, frames, gop, out / f"eval_{name}", x264=False)
            pts = ev["curves"]["ours-int"]
            cks = [ckpt.load(s["checkpoint"]) for s in summaries]
            result["rows"].append(against_narrow({
                "method": method, "budget": budget,
                "decoder_macs_removed": [c["prune"]["decoder_macs"]["removed"] for c in cks],
                "hidden_c": [int(c["shape"]["channels"]) for c in cks],
                "vs_teacher": compare(teacher, pts), "vs_x264": compare(x264, pts),
                "decode_speedup": round(decode_seconds(teacher, frames) / decode_seconds(pts, frames), 3),
                "points": [{k: p[k] for k in ("quality", "bpp", *METRICS)} for p in pts],
                "seconds": round(time.perf_counter() - t0, 1)}))
            t0 = time.perf_counter()
            if progress:
                r = result["rows"][-1]
                print(f"{name}: MACs removed {r['decoder_macs_removed']}, BD-rate vs teacher "
                      f"{r['vs_teacher']['psnr_yuv611']['bd_rate_pct']} %, BD-PSNR "
                      f"{r['vs_teacher']['psnr_yuv611']['bd_psnr_db']} dB, decode x{r['decode_speedup']}",
                      flush=True)
            if on_row:
                on_row(result)
    result["complete"] = True
    return result


def markdown(r: dict) -> str:
    todo = len(r["methods"]) * len(r["budgets"]) - len(r["rows"])
    lines = [f"Pruning study: {Path(r['clip']).name}, {r['frames']} frames, GOP {r['gop']}, int mode; prune "
             f"{r['steps']} steps (stages of at most {r.get('stage_steps', 500)}), batch {r['batch']} "
             "(`python bench/prune_study.py`)"
             + ("" if r.get("complete") else f"; in progress: {todo} of the sets still to run"), "",
             "| method | budget | decoder MACs removed (q1..q4) | C | BD-rate vs teacher | BD-PSNR vs teacher | "
             "BD-rate vs x264 | decode speed-up |", "|---|---|---|---|---|---|---|---|"]
    t = r["teacher"]["vs_x264"]["psnr_yuv611"]["bd_rate_pct"]
    lines.append(f"| teacher | — | 0 | — | 0 | 0 | {_pct(t)} | 1 |")
    if r.get("narrow"):
        n = r["narrow"]
        vt, vx = n["vs_teacher"]["psnr_yuv611"], n["vs_x264"]["psnr_yuv611"]
        macs = (n.get("decoder_macs_per_pixel") or {}).get("q1", {}).get("gop_mean")
        lines.append(f"| dense narrow ({n['checkpoints']}) | — | {_macs(macs)} | — | {_pct(vt['bd_rate_pct'])} | "
                     f"{_db(vt['bd_psnr_db'])} | {_pct(vx['bd_rate_pct'])} | — |")
    for row in r["rows"]:
        vt, vx = row["vs_teacher"]["psnr_yuv611"], row["vs_x264"]["psnr_yuv611"]
        removed = ", ".join(f"{m:.0%}" for m in row["decoder_macs_removed"])
        lines.append(f"| {row['method']} | {row['budget']:g} | {removed} | {sorted(set(row['hidden_c']))} | "
                     f"{_pct(vt['bd_rate_pct'])} | {_db(vt['bd_psnr_db'])} | {_pct(vx['bd_rate_pct'])} | "
                     f"{row['decode_speedup']:.2f}x |")
    if r.get("narrow"):
        vs = [(row, row["vs_narrow"]["psnr_yuv611"]) for row in r["rows"]]
        lines += ["", "Against the dense narrow codec (YUV 6:1:1): "
                  + "; ".join(f"{row['method']} {row['budget']:g}: BD-rate {_pct(v['bd_rate_pct'])}, BD-PSNR "
                              f"{_db(v['bd_psnr_db'])}" for row, v in vs)]
    return "\n".join(lines) + "\n"


def _macs(v) -> str:
    return "—" if v is None else f"{v:.0f} MACs/px (GOP mean)"


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:+.1f} %"


def _db(v) -> str:
    return "n/a" if v is None else f"{v:+.2f} dB"


def main() -> None:
    import torch

    from base.files import write_json_atomic, write_text_atomic
    from base.paths import DEFAULT_CONFIG, resolve
    from edgecodec import config
    from edgecodec.codec.evaluate import HELDOUT
    from model.prune import check_budget

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--teachers", default=None, help="folder of the dense codec_q<N>.pt (default codec.checkpoints)")
    ap.add_argument("--methods", default="gd,ste,hard")
    ap.add_argument("--budgets", default="0.5,0.65,0.8")
    ap.add_argument("--steps", type=int, default=None, help="default prune.steps")
    ap.add_argument("--stage-steps", type=int, default=None, help="default prune.stage_steps")
    ap.add_argument("--batch", type=int, default=None, help="default codec_train.batch")
    ap.add_argument("--floor", action="append", default=[], help="GROUP=FRACTION, added to prune.floors")
    ap.add_argument("--clip", default=HELDOUT[0][1], help="held-out clip (default carphone)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "build/prune_study"))
    ap.add_argument("--json", default=str(ROOT / "bench/results/prune_study.json"))
    ap.add_argument("--fresh", action="store_true", help="ignore the rows of an earlier run in --json")
    ap.add_argument("--narrow", default=None, help="folder of a dense narrow codec_q<N>.pt set to compare against")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = config.load(args.config)
    for field in ("steps", "stage_steps"):
        if getattr(args, field) is not None:
            cfg = dataclasses.replace(cfg, prune=dataclasses.replace(cfg.prune, **{field: getattr(args, field)}))
    if args.batch is not None:
        cfg = dataclasses.replace(cfg, codec_train=dataclasses.replace(cfg.codec_train, batch=args.batch))
    if args.floor:
        cfg = dataclasses.replace(cfg, prune=dataclasses.replace(cfg.prune, floors=(*cfg.prune.floors, *args.floor)))
    cfg.validate()
    methods = [m for m in args.methods.split(",") if m]
    budgets = [check_budget(float(b)) for b in args.budgets.split(",") if b]
    teachers = Path(args.teachers) if args.teachers else resolve(cfg.codec.checkpoints)
    out = Path(args.out)
    json_path = Path(args.json)
    previous = None
    if json_path.is_file() and not args.fresh:
        previous = json.loads(json_path.read_text())

    def save(r: dict) -> None:
        r = {**r, "threads": args.threads}
        write_json_atomic(out / "prune_study.json", r, indent=1)
        write_text_atomic(out / "prune_study.md", markdown(r))
        write_json_atomic(json_path, r, indent=1)

    r = study(cfg, teachers, out, methods, budgets, str(resolve(args.clip)), args.frames, previous=previous,
              on_row=save, narrow=Path(args.narrow) if args.narrow else None)
    save(r)
    print(markdown(r))


if __name__ == "__main__":
    main()
