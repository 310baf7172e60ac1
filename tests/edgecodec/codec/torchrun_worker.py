"""What the torchrun tests start on every rank: `edgecodec.cli.main(argv)` with resume points every 2 steps and,
when TEST_INTERRUPT_AT=N is set, a KeyboardInterrupt at the N-th batch drawn (the same step on every rank:
they draw the same batches), so a test can stop a multi-process run after a resume point."""

from __future__ import annotations

import os
import sys

import model.codec.data as ds
import model.codec.train as mct
import edgecodec.codec.recipe as recipe
from edgecodec.cli import main


def _every_two(fn):
    def wrapped(*a, **kw):
        kw["every"] = 2
        return fn(*a, **kw)
    return wrapped


def _interrupt_at(n: int) -> None:
    real, calls = ds.CropSampler.batch, {"n": 0}

    def batch(self, k):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(self, k)

    ds.CropSampler.batch = batch


if __name__ == "__main__":
    recipe.run_stage = _every_two(mct.run_stage)
    if os.environ.get("TEST_INTERRUPT_AT"):
        _interrupt_at(int(os.environ["TEST_INTERRUPT_AT"]))
    sys.exit(main(sys.argv[1:]))
