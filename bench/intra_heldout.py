"""I-frames of the held-out clips through the float intra codec of several models ->
bench/results/intra_heldout.json (and a markdown table on stdout).

A model is a finished codec checkpoint (`codec_q<N>.pt`) or a training state of the recipe (`codec_q<N>.intra.pt`
at the end of the intra stage, `codec_q<N>.resume.pt` in the middle of one) read with the config that trained it
(its shape). For each held-out clip (edgecodec.codec.evaluate.HELDOUT: carphone, the dog and office crops), the
frames a GOP of 8 codes as I-frames (0 and 8) go through g_a, the hyperprior and g_s in float: PSNR Y of the
decoded frame (latent rounded), of the transforms alone (latent not quantized: the ceiling), and the bits the
hyperprior estimates for the rounded latents (z and y, the padded frame) per pixel of the clip. Frames are padded
to a multiple of 64 as the coder pads them; PSNR on the original size.

Usage: python bench/intra_heldout.py --model v4=v4_q4.pt \
           --model v5=checkpoints/codec_q4.intra.pt@configs/default.yaml
(v4_q4.pt, the version-4 q4: `git show de4cb57:checkpoints/codec_q4.pt > v4_q4.pt`)
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from base.errors import EdgecodecError  # noqa: E402
from base.files import write_json_atomic  # noqa: E402
from base.paths import resolve  # noqa: E402
from edgecodec.codec import checkpoint as ckpt  # noqa: E402
from edgecodec.codec.coder import PAD  # noqa: E402
from edgecodec.codec.diagnose import HELDOUT_I_FRAMES, heldout_i_frames, heldout_intra  # noqa: E402
from edgecodec.config import load  # noqa: E402
from model.codec.network import VideoCodec  # noqa: E402

def load_model(spec: str) -> tuple[str, VideoCodec]:
    """NAME=PATH or NAME=PATH@CONFIG (a training state needs the config that gives its shape)."""
    name, _, rest = spec.partition("=")
    path, _, config = rest.partition("@")
    if not name or not path:
        raise EdgecodecError(f"--model {spec!r}: expected NAME=PATH or NAME=PATH@CONFIG")
    path = resolve(path)
    if not config:
        return name, ckpt.load(path)["codec"]
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "float" not in state:
        raise EdgecodecError(f"{path}: not a codec training state (no 'float' weights)")
    codec = VideoCodec(ckpt.shape_of(load(resolve(config))))
    try:
        codec.load_state_dict(state["float"])
    except RuntimeError as exc:
        raise EdgecodecError(f"{path} does not fit the shape of {config}: {exc}") from None
    return name, codec.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="NAME=PATH[@CONFIG] (repeatable)")
    ap.add_argument("--json", default=str(ROOT / "bench/results/intra_heldout.json"))
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    models = [load_model(m) for m in a.model]
    clips = heldout_i_frames()
    rows = [{"model": mname, "clip": cname, **r} for mname, codec in models
            for cname, r in heldout_intra(codec.intra, clips).items()]
    lines = ["| model | clip | I bpp (estimated) | PSNR Y | transforms alone (latent unquantized), PSNR Y |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['clip']} | {r['bpp']:.3f} | {r['psnr_y']:.2f} | {r['ceiling_psnr_y']:.2f} |"
              for r in rows]
    print("\n".join(lines))
    write_json_atomic(a.json, {"command": "python bench/intra_heldout.py " + shlex.join(sys.argv[1:]),
                               "models": a.model, "i_frames": list(HELDOUT_I_FRAMES), "pad": PAD,
                               "colour": "8-bit YCbCr 4:2:0 as decoded; PSNR Y on the original size",
                               "rate": "hyperprior estimate of z and y bits (float, rounded latents) per pixel",
                               "rows": rows, "markdown": "\n".join(lines)})


if __name__ == "__main__":
    main()
