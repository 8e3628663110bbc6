"""Where a run sits (a single run or one job of a local sweep), and the plumbing a sweep job
needs inside a reused joblib worker process: a free GPU, a DataLoader-friendly start method, a
recorded failure instead of an exit, and its memory freed for the next job."""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, read_write

from act_hydra import atomic
from act_hydra.errors import ActHydraError, Preempted
from act_hydra.run_dir import write_hydra_files

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """Where this run sits: its output folder and, in a local sweep, its slot."""

    run_dir: Path
    job_num: int | None = None  # index in a multirun, None for a single run
    n_parallel_jobs: int = 1

    @property
    def in_sweep(self) -> bool:
        return self.job_num is not None


def job_context() -> JobContext:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    if hc.mode == RunMode.MULTIRUN:
        n_jobs = int(hc.launcher.get("n_jobs", 1) or 1) if "launcher" in hc else 1
        if n_jobs < 0:  # joblib: -1 is all CPUs, -2 all but one, ...
            n_jobs = (os.cpu_count() or 1) + 1 + n_jobs
        return JobContext(run_dir, job_num=hc.job.num, n_parallel_jobs=max(1, n_jobs))
    return JobContext(run_dir)


@contextmanager
def hold_free_gpu(sweep_dir: Path, job_num: int, n_gpus: int) -> Iterator[int]:
    """Yield a GPU index no other job of this local sweep holds, and hold it until the job ends.

    Round-robin by job number alone puts two jobs on one GPU as soon as jobs finish out of
    order (joblib starts the next job in whichever worker frees up first). Each GPU has a lock
    file in ``<sweep dir>/.gpu_slots``; a job takes the first free one, starting from
    ``job_num % n_gpus``. The OS releases the lock of a job that dies. With more parallel jobs
    than GPUs (``hydra.launcher.n_jobs`` raised by hand) the job shares its round-robin GPU.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): round-robin
        yield job_num % n_gpus
        return
    slots = sweep_dir / ".gpu_slots"
    slots.mkdir(parents=True, exist_ok=True)
    for index in [(job_num + k) % n_gpus for k in range(n_gpus)]:
        with open(slots / f"cuda{index}.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            yield index  # closing the file releases the lock
            return
    yield job_num % n_gpus


def record_failure(run_dir: Path, err: BaseException, task_config: DictConfig) -> None:
    """A failed job (or a run that hit a bug) leaves a summary that says why, and the config
    it ran with, for the sweep summary table and whoever debugs it."""
    write_hydra_files(run_dir, task_config, only_if_missing=True)
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {"status": "failed"}
    summary["error"] = f"{type(err).__name__}: {err}"
    atomic.write_json(path, summary)


def use_platform_start_method() -> None:
    """joblib's loky workers make "loky" the default start method, with which a DataLoader
    cannot start its workers (data.num_workers > 0 fails with AttributeError: 'Process' object
    has no attribute 'env'; pytorch#44687): use the platform's usual method."""
    if multiprocessing.get_start_method(allow_none=True) == "loky":
        multiprocessing.set_start_method(
            "fork" if sys.platform.startswith("linux") else "spawn", force=True
        )


def run_sweep_job(
    dcfg: DictConfig,
    job: JobContext,
    execute: Callable[[DictConfig, JobContext], dict[str, Any]],
) -> dict[str, Any] | None:
    """Run one job of a local sweep in a reused worker: never exit the process, and let one
    failure not stop the others (record why it failed for the sweep summary and go on)."""
    assert job.job_num is not None
    use_platform_start_method()
    try:
        with ExitStack() as stack:
            n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if dcfg.training.device == "auto" and n_gpus > 1 and job.n_parallel_jobs > 1:
                index = stack.enter_context(
                    hold_free_gpu(Path(HydraConfig.get().sweep.dir), job.job_num, n_gpus)
                )
                with read_write(dcfg):
                    dcfg.training.device = f"cuda:{index}"
                torch.cuda.set_device(index)  # pinned memory, streams: not on GPU 0
            return execute(dcfg, job)
    except ActHydraError as err:  # a message the user can act on: no traceback
        (log.warning if isinstance(err, Preempted) else log.error)(
            "%s (exit code %d)", err, err.exit_code
        )
        record_failure(job.run_dir, err, dcfg)
        return None
    except Exception as err:
        log.exception("job %d failed", job.job_num)  # Hydra 1.3 logs no traceback
        record_failure(job.run_dir, err, dcfg)
        return None
    finally:
        # The worker runs the next job next: free this one's memory (and DataLoader workers)
        # now rather than whenever the garbage collector gets to it.
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
