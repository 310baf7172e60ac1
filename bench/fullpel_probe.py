"""Probe of the P-frames' drift: the shipped decoder, its encoder restricted to full-pel vectors.

If the drift of the P-frames over a GOP came from the repeated bilinear interpolation of sub-pel motion (each
P-frame a low-passed copy of the last), an encoder that sends only full-pel vectors (the luma warp a pure copy)
would drift less. Runs `edgecodec eval` with the block search's sub-pel refinement switched off
(`block_search(subpel=False)`), the bitstream and decoder unchanged; the drift per GOP is in
<out>/<clip>/eval.json as for any evaluation (docs/codec.md, "Version 7").

    python bench/fullpel_probe.py --heldout --frames 16 --quality 4 --mode int --no-ffmpeg --out build/fullpel
"""

from __future__ import annotations

import functools
import sys

import edgecodec.codec.coder as coder
from edgecodec.cli import main
from model.codec.motion import block_search

if __name__ == "__main__":
    coder.block_search = functools.partial(block_search, subpel=False)
    sys.exit(main(["eval", *sys.argv[1:]]))
