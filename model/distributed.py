"""Data-parallel training over several processes started by torchrun (one per GPU with NCCL, or CPU processes
with gloo).

Every rank draws the same global batch from the same seeded sampler and trains on its contiguous share
(batch / world size samples); DistributedDataParallel averages the gradients, so every rank applies the same
step and the replicas stay equal. The randomness inside a step (the rate's quantisation noise) comes from each
rank's own generator: rank 0 keeps the single-process seed, so one process under torchrun is byte-identical to a
plain run, and rank r > 0 is seeded with `rank_seed(seed, r)`. Only rank 0 writes files; the others wait at a
barrier while it does.

Without torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) a program is one process: `World()` and no
process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from base.errors import EdgecodecError

RANK_STRIDE = 1_000_003          # rank r > 0 draws its noise from seed + RANK_STRIDE * r


def rank_seed(seed: int, rank: int) -> int:
    return seed + RANK_STRIDE * rank


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def main(self) -> bool:
        """The one process that writes files and prints."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    def device(self, device: str) -> str:
        """The device of this rank: its own GPU (LOCAL_RANK) when several processes share a machine's GPUs."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.parallel else device

    def check_batch(self, batch: int, field: str) -> None:
        if batch % self.size:
            raise EdgecodecError(f"{field} = {batch} cannot be shared by {self.size} processes: make it a multiple "
                                 f"of the world size (torchrun --nproc-per-node x --nnodes)")

    def share(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch (dimension 0)."""
        if not self.parallel:
            return batch
        self.check_batch(batch.shape[0], "the batch")
        k = batch.shape[0] // self.size
        return batch[self.rank * k:(self.rank + 1) * k]

    def wrap(self, module: nn.Module) -> nn.Module:
        """`module` under DistributedDataParallel (gradients averaged in backward), or itself in one process.
        Parameters a step does not use (the other stage's, a frozen part) are allowed."""
        if not self.parallel:
            return module
        ids = [self.local_rank] if self.backend == "nccl" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True,
                                                   forward_sync_buffers=False)

    def mean(self, info: dict) -> dict:
        """The float entries of `info` averaged over the ranks (the log and every decision taken from it is
        the same on every rank); other entries unchanged."""
        if not self.parallel:
            return info
        keys = sorted(k for k, v in info.items() if isinstance(v, float))
        t = torch.tensor([info[k] for k in keys], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(t)
        return {**info, **{k: float(v) / self.size for k, v in zip(keys, t.cpu())}}

    def gather(self, obj) -> list:
        """`obj` of every rank, in rank order (on every rank)."""
        if not self.parallel:
            return [obj]
        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def rng_states(self) -> dict:
        """The torch generator states a resume file keeps (collective: call on every rank): rank 0's as "rng" (all a
        single process writes), every rank's as "rng_ranks" under several processes."""
        states = self.gather(torch.get_rng_state())
        return {"rng": states[0], **({"rng_ranks": states} if self.parallel else {})}

    def restore_rng(self, state: dict, seed: int, step: int) -> None:
        """This rank's generator from `rng_states()` as a file kept them. A file written by a different number of
        processes resumes too (rank 0 takes "rng", ranks > 0 are reseeded from `seed` and `step`), but not to the
        bytes of an uninterrupted run."""
        ranks = state.get("rng_ranks") or [state["rng"]]
        if len(ranks) == self.size:
            torch.set_rng_state(ranks[self.rank])
        elif self.rank == 0:
            torch.set_rng_state(state["rng"])
        else:
            torch.manual_seed(rank_seed(seed + 7919 * step, self.rank))

    def barrier(self) -> None:
        if self.parallel:
            dist.barrier()

    def _collective_device(self) -> str:
        return f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu"


def join(device: str, batch: int, field: str) -> tuple[World, str]:
    """A training command's World and device: `device` "auto" resolved (CUDA when torch sees it), "cuda" refused
    when it does not, the global batch (config `field`) checked against the world size; under torchrun with CUDA
    the device is this rank's GPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise EdgecodecError("--device cuda: no CUDA device is visible to torch")
    world = current(device)
    world.check_batch(batch, field)
    return world, world.device(device)


def current(device: str = "cpu") -> World:
    """This process's World: from torchrun's environment, joining the process group on first use (NCCL when
    training on CUDA, gloo otherwise); `World()` when not started by torchrun."""
    env = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    if env["WORLD_SIZE"] is None:
        return World()
    try:
        rank, size = int(env["RANK"]), int(env["WORLD_SIZE"])
        local = int(env["LOCAL_RANK"] if env["LOCAL_RANK"] is not None else env["RANK"])
    except (TypeError, ValueError):
        raise EdgecodecError(f"torchrun environment is incomplete or not numbers: {env}") from None
    if size == 1:
        return World()
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend)
    elif dist.get_backend() != backend:
        raise EdgecodecError(f"this process group uses {dist.get_backend()}, {device} training needs {backend}")
    return World(rank, size, local, backend)


def is_main_process() -> bool:
    """Whether this process prints a command's result: rank 0 of torchrun, or a process not started by it."""
    return os.environ.get("RANK", "0") == "0"


def finish() -> None:
    """Leave the process group (at the end of a command run under torchrun)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
