"""`edgecodec train` and `edgecodec prune` under torchrun: two CPU processes with gloo on a tiny config. One
checkpoint written (by rank 0), the command's result printed once, the same bytes for the same seed, resume after
an interruption to the bytes of an uninterrupted run; a batch the processes cannot share is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from base.errors import EdgecodecError
from edgecodec.codec import checkpoint as ckpt
from model.distributed import World, current

from tests.conftest import CLIP_160 as CLIP
from tests.conftest import ROOT

TINY = {"codec": {"features": 8, "latent": 8, "hyper": 8, "context": 8, "lambdas": [256], "gop": 3},
        "codec_train": {"data": [str(CLIP)], "crop": 64, "seq_len": 2, "batch": 2, "intra_steps": 3,
                        "inter_steps": 5},
        "prune": {"steps": 4, "save_every": 2, "stage_steps": 1, "budget": 0.5, "tau_lr": 1.0, "multiple": 4,
                  "ramp": 0.0}}


def torchrun(args: list[str], nproc: int | None = 2, interrupt_at: int | None = None
             ) -> subprocess.CompletedProcess:
    """The worker on `nproc` ranks (None: a plain process, no torchrun), one thread each (a CPU result depends
    on the thread count)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for var in ("TEST_INTERRUPT_AT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(var, None)
    if interrupt_at is not None:
        env["TEST_INTERRUPT_AT"] = str(interrupt_at)
    launch = [] if nproc is None else ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd = [sys.executable, *launch, "-m", "tests.edgecodec.codec.torchrun_worker", *args, "--quiet"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def ok(run: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("torchrun") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_two_gloo_processes_train_once_and_resume_to_the_same_bytes(cfg_path, tmp_path):
    whole = ok(torchrun(["train", "--config", str(cfg_path), "--out", str(tmp_path / "a")]))
    assert json.loads(whole.stdout) == [str(tmp_path / "a" / "codec_q1.pt")]      # printed once, by rank 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["codec_q1.intra.pt", "codec_q1.pt"]
    # interrupted after the P stage's resume point at step 2 (batch 7 of each rank), then restarted
    cut = torchrun(["train", "--config", str(cfg_path), "--out", str(tmp_path / "b")], interrupt_at=7)
    assert cut.returncode != 0 and "interrupted" in cut.stderr
    state = torch.load(tmp_path / "b" / "codec_q1.resume.pt", weights_only=True)
    assert (state["stage"], state["step"], len(state["rng_ranks"])) == ("inter", 2, 2)
    assert not torch.equal(state["rng_ranks"][0], state["rng_ranks"][1])      # each rank its own noise
    ok(torchrun(["train", "--config", str(cfg_path), "--out", str(tmp_path / "b")]))
    a, b = (ckpt.load(tmp_path / d / "codec_q1.pt") for d in "ab")
    assert a["hash"] == b["hash"]
    assert not (tmp_path / "b" / "codec_q1.resume.pt").exists()
    assert [s["step"] for s in a["train_log"]["stages"]["inter"]] == list(range(5))


@pytest.mark.slow
def test_one_process_under_torchrun_is_a_plain_run_and_two_are_another(cfg_path, tmp_path):
    one = ok(torchrun(["train", "--config", str(cfg_path), "--out", str(tmp_path / "t")], nproc=1))
    assert json.loads(one.stdout) == [str(tmp_path / "t" / "codec_q1.pt")]
    ok(torchrun(["train", "--config", str(cfg_path), "--out", str(tmp_path / "p")], nproc=None))
    plain = tmp_path / "p" / "codec_q1.pt"
    assert ckpt.load(plain)["hash"] == ckpt.load(tmp_path / "t" / "codec_q1.pt")["hash"]
    # two processes are a different run (rank 1 draws its own noise)
    ok(torchrun(["train", "--config", str(cfg_path), "--out", str(tmp_path / "two")]))
    assert ckpt.load(tmp_path / "two" / "codec_q1.pt")["hash"] != ckpt.load(plain)["hash"]


@pytest.mark.slow
def test_two_gloo_processes_prune_and_resume_to_the_same_bytes(cfg_path, tmp_path):
    from edgecodec import config
    from edgecodec.codec.recipe import train
    [teacher] = train(config.from_dict(TINY), tmp_path / "t", progress=False)
    teacher = str(teacher)
    whole = ok(torchrun(["prune", teacher, "--config", str(cfg_path), "--out", str(tmp_path / "a")]))
    summary = json.loads(whole.stdout)
    assert summary["checkpoint"] == str(tmp_path / "a" / "codec_q1.pt")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["codec_q1.pt"]
    # prune draws 1 batch a step: stopped at step 3, after the state written at step 2
    cut = torchrun(["prune", teacher, "--config", str(cfg_path), "--out", str(tmp_path / "b")], interrupt_at=4)
    assert cut.returncode != 0 and (tmp_path / "b" / "codec_q1.prune.pt").is_file()
    again = ok(torchrun(["prune", teacher, "--config", str(cfg_path), "--out", str(tmp_path / "b")]))
    assert json.loads(again.stdout)["hash"] == summary["hash"]


def test_a_batch_the_processes_cannot_share_is_refused():
    with pytest.raises(EdgecodecError, match=r"codec_train.batch = 3 cannot be shared by 2 processes"):
        World(0, 2).check_batch(3, "codec_train.batch")
    assert torch.equal(World(1, 2).share(torch.arange(4)), torch.tensor([2, 3]))
    with pytest.raises(EdgecodecError, match="the batch = 5"):
        World(1, 2).share(torch.arange(5))


def test_without_torchrun_or_with_one_process_there_is_no_process_group(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert current() == World()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert current() == World() and not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(EdgecodecError, match="torchrun environment"):
        current()
