"""One run on several processes (torchrun): who am I, and what must every rank agree on.

    torchrun --standalone --nproc_per_node=8 -m act_hydra.train ...

Each rank trains on its own slice of every global batch (act_hydra.data.StepBatchSampler), so
the effective batch is training.batch_size x WORLD_SIZE. The learning rate is *not* scaled with
it (as in LeRobot): scale training.lr yourself if you change the number of GPUs. Only rank 0
writes checkpoints, metrics, the summary and W&B. Each checkpoint holds every rank's RNG state
(each rank seeds its own streams: rank_seed), so a run resumed on as many ranks is
bit-identical to an uninterrupted one. ``python -m act_hydra.launch`` runs torchrun and keeps
a preempted run's exit code 75 (torchrun reports any failed worker as 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op otherwise)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def shared_run_dir(run_dir: Path, info: DistInfo) -> Path:
    """Rank 0's run directory: with the default timestamped folders, ranks started a second
    apart would otherwise disagree about where the checkpoints live."""
    if not info.enabled:
        return run_dir
    holder = [str(run_dir)]
    dist.broadcast_object_list(holder, src=0)
    return Path(holder[0])


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when the flag is set on any rank (e.g. SIGTERM reached one rank
    first): all ranks must leave the loop at the same step or the next all-reduce hangs."""
    if not info.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s RNG streams (dropout, the CVAE's latent noise).

    Rank 0 uses ``seed`` itself, so it draws what a single process draws; every other rank an
    independent seed derived from (seed, rank): with one seed everywhere, every rank would draw
    the same dropout masks and latent noise for its slice of the global batch. (The initial
    weights do not depend on it: DDP copies rank 0's to every rank.)
    """
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(1)[0])


def gather_to_main(obj: T, info: DistInfo) -> list[T] | None:
    """Every rank's ``obj`` in rank order on rank 0, None on the others (a collective: every
    rank must call it); ``[obj]`` without DDP."""
    if not info.enabled:
        return [obj]
    gathered: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def cleanup() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
