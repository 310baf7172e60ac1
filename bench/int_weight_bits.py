"""What the hardware-exact mode's bit widths cost the I-frame: carphone's I-frames decoded by the float synthesis
g_s and by its integer model (docs/numerics.md, `IntSequential`) built at several activation / weight widths, the
latent y_hat the same (the float analysis and its rounding). Also every layer alone at 8-bit weights (the others
at 16), which says where the loss is.

    python bench/int_weight_bits.py [--quality 4] [--frames 0 8] [--threads 1]   # -> bench/results/int_weight_bits.json

PSNR of the luma plane (8-bit codes, the clip's own frames as reference) of the reconstructed I-frame; "loss" is
float minus integer. The shipped model is codec.int_act_bits = 12, codec.int_weight_bits = 8.
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from base.files import write_json_atomic  # noqa: E402
from base.paths import resolve  # noqa: E402
from edgecodec.codec import checkpoint as ckpt  # noqa: E402
from edgecodec.codec.metrics import psnr  # noqa: E402
from edgecodec.config import load  # noqa: E402
from model.codec.data import CropSampler, list_sequences  # noqa: E402
from model.video import read_video  # noqa: E402
from model.yuv import pack420, pad_to_multiple  # noqa: E402
import quant.codec.intnet as intnet  # noqa: E402
from quant.codec.int_codec import LATENT_BITS  # noqa: E402

WIDTHS = ((12, 8), (14, 8), (16, 8), (12, 10), (16, 12))     # (activation bits, weight bits)


def mse_grid_codes(w: torch.Tensor, bits: int, extra: int = 2):
    """Per-output-channel power-of-two codes whose grid (the max-covering one or up to `extra` finer, saturating
    the largest weights) gives the least squared error."""
    w = w.detach().double().cpu().numpy()
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    codes, fracs = [], []
    for ch in w:
        f0 = (bits - 1) - int(np.ceil(np.log2(max(float(np.abs(ch).max()), 1e-30))))
        err, q, f = min((float(np.sum((np.clip(np.round(ch * 2.0 ** f), lo, hi) / 2.0 ** f - ch) ** 2)),
                         np.clip(np.round(ch * 2.0 ** f), lo, hi), f) for f in range(f0, f0 + extra + 1))
        codes.append(q)
        fracs.append(f)
    return np.stack(codes).astype(np.int64), fracs


@torch.no_grad()
def equalized(g_s: torch.nn.Sequential, target: float = 127 / 128) -> torch.nn.Sequential:
    """g_s with every convolution but the last rescaled per group of output channels (the r^2 channels of one
    PixelShuffle output) by s in [1, 2) so that the group's largest |w| sits at `target` x a power of two; the next
    convolution's matching input channel divided by s (ReLU commutes with s > 0: the same function)."""
    g = copy.deepcopy(g_s).double()
    mods = list(g)
    convs = [i for i, m in enumerate(mods) if isinstance(m, torch.nn.Conv2d)]
    for a, b in zip(convs[:-1], convs[1:]):
        conv, nxt = mods[a], mods[b]
        r2 = conv.out_channels // nxt.in_channels
        peak = conv.weight.abs().flatten(1).amax(1).view(-1, r2).amax(1).clamp_min(1e-30)
        s = torch.pow(2.0, torch.ceil(torch.log2(peak))) * target / peak
        s = torch.where(s < 1, s * 2, s)
        conv.weight.mul_(s.repeat_interleave(r2).view(-1, 1, 1, 1))
        conv.bias.mul_(s.repeat_interleave(r2))
        nxt.weight.div_(s.view(1, -1, 1, 1))
    return g.float()


def codec_row(cfg, calib: torch.Tensor, weight_bits: int, frames: int) -> dict:
    """Every shipped quality exported again with `weight_bits`-bit weights (the export of `edgecodec train`: the
    same calibration batch, the float weights unchanged) into build/int_weight_bits/w<bits>/, then `edgecodec eval`
    (int and float, no anchors) on codec.eval_clip: BD-rate of int against float, and the int points."""
    import dataclasses
    from edgecodec.codec.evaluate import evaluate
    from edgecodec.codec.recipe import export
    c = cfg.codec
    wcfg = dataclasses.replace(cfg, codec=dataclasses.replace(c, int_weight_bits=weight_bits))
    folder = ROOT / "build" / "int_weight_bits" / f"w{weight_bits}"
    for q in ckpt.available(resolve(c.checkpoints)):
        ck = ckpt.load(resolve(c.checkpoints), q)
        if export(ck["codec"], cfg, q, calib, ck["train_log"])["hash"] != ck["hash"]:
            raise SystemExit(f"quality {q}: exported again at the shipped widths, the checkpoint differs")
        ckpt.save(ckpt.path_for(folder, q), export(ck["codec"], wcfg, q, calib, ck["train_log"]))
    r = evaluate(resolve(c.eval_clip), frames, c.gop, folder, None, folder / "eval", baselines=(), progress=False)
    row = {"weight_bits": weight_bits, "act_bits": c.int_act_bits, "frames": frames,
           "bd_rate_int_vs_float": r.get("bd_rate_int_vs_float"),
           "int": [{k: p[k] for k in ("quality", "bpp", "psnr_yuv611", "psnr_y")} for p in r["curves"]["ours-int"]],
           "float": [{k: p[k] for k in ("quality", "bpp", "psnr_yuv611", "psnr_y")} for p in r["curves"]["ours-float"]]}
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    ap.add_argument("--quality", type=int, default=4)
    ap.add_argument("--frames", type=int, nargs="+", default=[0, 8])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--codec", type=int, nargs="*", default=[],
                    help="weight widths at which every quality is exported again (its float weights as they are) "
                         "and the whole codec evaluated int against float on codec.eval_clip (--codec-frames)")
    ap.add_argument("--codec-frames", type=int, default=32)
    ap.add_argument("--out", default=str(ROOT / "bench/results/int_weight_bits.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    cfg = load(args.config)
    c, t = cfg.codec, cfg.codec_train
    ck = ckpt.load(resolve(c.checkpoints), args.quality)
    codec = ck["codec"]
    g_s = codec.intra.g_s
    seqs = list_sequences([resolve(d) for d in t.data])
    calib = CropSampler(seqs, t.seq_len, t.crop, t.seed + 7).batch(4)     # the export's calibration batch
    captured = []
    hook = g_s.register_forward_pre_hook(lambda _m, a: captured.append(a[0].detach().clone()))
    with torch.no_grad():
        codec.intra(calib[:, 0])
    hook.remove()

    y, u, v, _ = read_video(resolve(c.eval_clip), max(args.frames) + 1)
    h, w = y.shape[1:]

    def luma(packed_codes: torch.Tensor) -> np.ndarray:
        return torch.nn.functional.pixel_shuffle(packed_codes[:, :4].double(), 2)[0, 0, :h, :w].numpy()

    latents, refs = [], []
    with torch.no_grad():
        for i in args.frames:
            py, pu, pv, _ = pad_to_multiple(y[i:i + 1], u[i:i + 1], v[i:i + 1], 64)
            x = pack420(py, pu, pv)
            latents.append(codec.intra.hyper(codec.intra.g_a(x - 0.5))["y_hat"])
            refs.append(y[i])
        flt = [psnr(luma((g_s(z) + 0.5).mul(256).round().clamp(0, 255)), r) for z, r in zip(latents, refs)]

    def integer(net) -> list[float]:
        return [psnr(luma((net.run(intnet.to_codes(z, 0, LATENT_BITS)) + 128).clamp(0, 255)), r)
                for z, r in zip(latents, refs)]

    def row(name: str, net) -> dict:
        got = integer(net)
        r = {"name": name, "psnr_y": [round(p, 3) for p in got],
             "loss_db": [round(f - p, 3) for f, p in zip(flt, got)]}
        print(r, flush=True)
        return r

    nets = {(a, wb): intnet.convert(g_s, captured, 0, LATENT_BITS, a, wb, out_frac=8, out_bits=10) for a, wb in WIDTHS}
    shipped = intnet.IntSequential.from_state(ck["int"]["nets"]["intra_g_s"])
    same = nets[(c.int_act_bits, c.int_weight_bits)].to_state()
    if not all(np.array_equal(np.asarray(p["w"]), np.asarray(q["w"])) for p, q in
               zip(same["layers"], shipped.to_state()["layers"]) if p["kind"] == "conv"):
        raise SystemExit("the rebuilt integer g_s at the shipped widths differs from the checkpoint's")
    rows = [row(f"act {a} / weight {wb} bits", net) for (a, wb), net in nets.items()]
    real = intnet._weight_codes
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in g_s)
    try:
        for k in range(n_conv):
            seen = {"i": 0}

            def one_layer(wt, bits, k=k, seen=seen):
                i, seen["i"] = seen["i"], seen["i"] + 1
                return real(wt, bits if i == k else 16)

            intnet._weight_codes = one_layer
            rows.append(row(f"act {c.int_act_bits}, layer {k} alone at weight {c.int_weight_bits} bits (others 16)",
                            intnet.convert(g_s, captured, 0, LATENT_BITS, c.int_act_bits, c.int_weight_bits,
                                           out_frac=8, out_bits=10)))
        # two post-training alternatives at the shipped widths: each channel's weight grid chosen for the least
        # squared error (a few codes may saturate), and cross-layer equalization (every group of output channels
        # that one PixelShuffle output takes scaled up to just below a power of two, the next convolution's input
        # channel scaled down: the same float function, the 8-bit range better used)
        intnet._weight_codes = mse_grid_codes
        rows.append(row(f"act {c.int_act_bits} / weight {c.int_weight_bits} bits, least-squares weight grid",
                        intnet.convert(g_s, captured, 0, LATENT_BITS, c.int_act_bits, c.int_weight_bits,
                                       out_frac=8, out_bits=10)))
    finally:
        intnet._weight_codes = real
    rows.append(row(f"act {c.int_act_bits} / weight {c.int_weight_bits} bits, cross-layer equalized",
                    intnet.convert(equalized(g_s), captured, 0, LATENT_BITS, c.int_act_bits, c.int_weight_bits,
                                   out_frac=8, out_bits=10)))
    codec_rows = [codec_row(cfg, calib, wb, args.codec_frames) for wb in args.codec]
    write_json_atomic(Path(args.out), {
        "command": "python bench/int_weight_bits.py " + " ".join(sys.argv[1:]),
        "checkpoint": str(ck["path"].relative_to(ROOT)) if ck["path"].is_relative_to(ROOT) else str(ck["path"]),
        "clip": c.eval_clip, "frames": args.frames, "float_psnr_y": [round(p, 3) for p in flt],
        "shipped": {"act_bits": c.int_act_bits, "weight_bits": c.int_weight_bits},
        "g_s_convs": [list(m.weight.shape) for m in g_s if isinstance(m, torch.nn.Conv2d)],
        "rows": rows, "codec_rows": codec_rows, "machine": f"{platform.machine()}, torch threads {args.threads}",
        "seconds": round(time.perf_counter() - t0, 1)}, indent=1)
    print(args.out)


if __name__ == "__main__":
    main()
