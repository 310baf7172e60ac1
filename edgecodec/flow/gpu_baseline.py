"""Software baseline: the float PyTorch ASE-GRU cell timed on the available torch device.

CUDA when present (a Jetson or any GPU), CPU otherwise. Per resolution: warm-up steps, then timed steps with
the hidden state carried from step to step as in the codec; median and p90 milliseconds per frame. On a
Jetson, board power comes from `tegrastats` while the timed loop runs. Beside the measurements sits a
roofline *estimate* for a Jetson AGX Xavier computed from the MAC count; it is not a measurement.
"""

from __future__ import annotations

import platform
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from edgecodec.config import Config, parse_resolution
from base.errors import EdgecodecError

def pick_device(name: str = "auto") -> torch.device:
    """'auto' = CUDA if available else CPU; 'cuda' without a GPU is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise EdgecodecError(f"unknown baseline device '{name}'; choose auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgecodecError("baseline device 'cuda' requested but torch sees no CUDA device")
    return torch.device(name)


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"CPU {model or platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def is_jetson() -> bool:
    return Path("/etc/nv_tegra_release").exists()


_TEGRA_POWER = re.compile(r"\b(VDD_IN|POM_5V_IN|VIN_SYS_5V0)\s+(\d+)mW")


def parse_tegrastats(lines: list[str]) -> float | None:
    """Mean board input power in mW from tegrastats lines ('VDD_IN 5012mW/4980mW' or 'POM_5V_IN 3200/3100')."""
    vals = []
    for line in lines:
        m = _TEGRA_POWER.search(line)
        if m:
            vals.append(int(m.group(2)))
            continue
        m = re.search(r"\bPOM_5V_IN\s+(\d+)/(\d+)", line)
        if m:
            vals.append(int(m.group(1)))
    return statistics.fmean(vals) if vals else None


class TegraStats:
    """Context manager: runs `tegrastats --interval 100` while timing when it exists, else does nothing."""

    def __init__(self):
        self.proc, self.mw = None, None

    def __enter__(self):
        exe = shutil.which("tegrastats")
        if exe and is_jetson():
            self.proc = subprocess.Popen([exe, "--interval", "100"], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            out, _ = self.proc.communicate(timeout=5)
            self.mw = parse_tegrastats(out.splitlines())
        return False


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@torch.inference_mode()
def time_cell(cell: torch.nn.Module, channels: int, height: int, width: int, dev: torch.device,
              warmup: int, iters: int, seed: int = 0) -> dict:
    """Milliseconds per cell step on a (1, C, H, W) feature map; the state is carried between steps."""
    if warmup < 0 or iters < 1:
        raise EdgecodecError(f"baseline needs warmup >= 0 and iters >= 1 (got {warmup}, {iters})")
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn((4, 1, channels, height, width), generator=g).to(dev)
    h = torch.zeros((1, channels, height, width), device=dev)
    cell = cell.to(dev).eval()
    for i in range(warmup):
        h = cell(xs[i % 4], h)
    _sync(dev)
    times = []
    for i in range(iters):
        t0 = time.perf_counter()
        h = cell(xs[i % 4], h)
        _sync(dev)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return {"ms_median": statistics.median(times), "ms_p90": p90, "ms_min": times[0], "iters": iters}


@dataclass(frozen=True)
class Platform:
    """Peak figures of a target from its vendor's data sheet, for a roofline estimate."""

    name: str
    peak_gflops_fp32: float
    peak_gflops_fp16: float
    mem_gbps: float
    power_modes_w: tuple[float, ...]
    source: str


# NVIDIA Jetson AGX Xavier: 512-core Volta GPU at up to 1377 MHz (2 FLOP per core per cycle -> 1.41 TFLOPS FP32,
# 2x that in FP16 on the CUDA cores; tensor cores are not used by this model's depth-wise and 1x1 convs at
# batch 1), 256-bit LPDDR4x at 2133 MHz = 136.5 GB/s, power modes 10/15/30 W.
JETSON_AGX_XAVIER = Platform("Jetson AGX Xavier (estimate)", 1410.0, 2820.0, 136.5, (10.0, 15.0, 30.0),
                             "NVIDIA Jetson AGX Xavier Series data sheet (512 Volta cores @ 1377 MHz, "
                             "136.5 GB/s LPDDR4x, 10/15/30 W modes)")


# Per-kernel launch cost assumed for eager PyTorch on a Jetson-class GPU (CUDA launch + framework dispatch).
LAUNCH_US = 10.0


def roofline(macs: int, bytes_moved: int, kernels: int = 0, plat: Platform = JETSON_AGX_XAVIER,
             fp16: bool = True, launch_us: float = LAUNCH_US) -> dict:
    """Time per step = max(compute bound, memory bound) + kernels x launch cost; energy at each power mode.

    `bytes_moved` and `kernels` come from counting the eager run's ATen ops (`eager_traffic`). Caches,
    tensor cores and DLA are ignored. It is an estimate, labelled as such, not a measurement.
    """
    flops = 2 * macs
    peak = plat.peak_gflops_fp16 if fp16 else plat.peak_gflops_fp32
    t_compute = flops / (peak * 1e9)
    t_memory = bytes_moved / (plat.mem_gbps * 1e9)
    t_launch = kernels * launch_us * 1e-6
    t = max(t_compute, t_memory) + t_launch
    return {"platform": plat.name, "estimate": True, "source": plat.source, "precision": "fp16" if fp16 else "fp32",
            "flops": flops, "bytes": bytes_moved, "kernels": kernels, "launch_us_assumed": launch_us,
            "ms_compute_bound": t_compute * 1e3, "ms_memory_bound": t_memory * 1e3, "ms_launch": t_launch * 1e3,
            "ms_per_frame": t * 1e3,
            "bound": "launch" if t_launch >= max(t_compute, t_memory) else
                     ("compute" if t_compute >= t_memory else "memory"),
            "energy_per_frame_mj": {f"{w:g}W": w * t * 1e3 for w in plat.power_modes_w}}


@torch.inference_mode()
def eager_traffic(cell: torch.nn.Module, channels: int, height: int, width: int, elem_bytes: int = 2) -> dict:
    """ATen ops of one eager cell step and the bytes they read and write (at `elem_bytes` per element).

    Counted with a TorchDispatchMode on the CPU: every op that reaches the dispatcher is one GPU kernel in an
    unfused eager run, and each reads its tensor inputs and writes its outputs once.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops, self.elems = 0, 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket.__name__ not in ("detach", "view", "_unsafe_view", "t", "expand", "permute"):
                self.ops += 1
                for a in tree_flatten((args, kwargs or {}, out))[0]:
                    if isinstance(a, torch.Tensor):
                        self.elems += a.numel()
            return out

    cell = cell.cpu().eval()
    x = torch.zeros((1, channels, height, width))
    h = torch.zeros_like(x)
    with Count() as c:
        cell(x, h)
    return {"kernels": c.ops, "bytes": c.elems * elem_bytes}


def run_baseline(cell: torch.nn.Module, channels: int, downsample: int, resolutions: list[str], device: str = "auto",
                 warmup: int = 5, iters: int = 20) -> dict:
    """Time the float cell at each frame resolution (feature map = frame / downsample) and add the roofline."""
    from model.macs import count_cell, total

    dev = pick_device(device)
    rows = []
    for text in resolutions:
        w, h = parse_resolution(text)
        fh, fw = max(1, h // downsample), max(1, w // downsample)
        macs = total(count_cell(cell, fh, fw)).macs
        with TegraStats() as ts:
            t = time_cell(cell, channels, fh, fw, dev, warmup, iters)
        row = {"resolution": text, "feature_map": [channels, fh, fw], "macs": int(macs), **t}
        if ts.mw is not None:
            row["board_power_mw"] = ts.mw
            row["energy_per_frame_mj"] = ts.mw * t["ms_median"] / 1e3
        tr = eager_traffic(cell, channels, fh, fw)
        row["roofline_xavier"] = roofline(macs, tr["bytes"], tr["kernels"])
        rows.append(row)
    return {"device": device_name(dev), "torch": torch.__version__, "jetson": is_jetson(),
            "tegrastats": any("board_power_mw" in r for r in rows), "warmup": warmup, "iters": iters,
            "what": "float PyTorch ASE-GRU cell step (fp32), batch 1, state carried between steps",
            "rows": rows}


def baseline_stage(cfg: Config, float_cell, frame_size: str) -> dict:
    """The float cell on the torch device at the configured resolutions and at the flow clip's frame size.

    `ms_per_frame` (and `resolution`) is the median at the clip's frame size, the size the RTL was verified at.
    """
    b = cfg.baseline
    res = list(b.resolutions)
    if frame_size not in res:
        res.insert(0, frame_size)
    r = run_baseline(float_cell, cfg.model.channels, cfg.model.downsample, res, b.device, b.warmup, b.iters)
    row = next(x for x in r["rows"] if x["resolution"] == frame_size)
    r["resolution"], r["ms_per_frame"] = frame_size, row["ms_median"]
    return r
