"""Train an ACT policy from a composed Hydra config.

    python -m act_hydra.train                     # quickstart: synthetic task, small ACT
    python -m act_hydra.train experiment=aloha_sim_transfer_cube data.dataset_dir=/data/cube
    python -m act_hydra.train scheduler=cosine logger=wandb
    python -m act_hydra.train --multirun training.lr=1e-5,5e-5,1e-4

`train()` reads top-down: validate -> device and seed -> data -> policy -> optimizer and
schedule -> resume -> loop -> summary. Outputs follow the run-directory contract in DESIGN.md.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, read_write

from act_hydra.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_atomic,
)
from act_hydra.compose import CONF_DIR
from act_hydra.config import TrainConfig
from act_hydra.data import (
    DatasetError,
    EpisodeDataset,
    StepBatchSampler,
    compute_norm_stats,
    ensure_synthetic_dataset,
    scan_dataset,
    split_episodes,
)
from act_hydra.distributed import any_rank, cleanup, init_distributed, shared_run_dir
from act_hydra.model import ACTPolicy, count_trainable_parameters
from act_hydra.rollout import evaluate_policy
from act_hydra.schedule import build_scheduler, restore_scheduler
from act_hydra.step import autocast_context, build_optimizer, build_train_loader, train_step
from act_hydra.tracking import Tracker
from act_hydra.validate import ConfigError, validate_config

log = logging.getLogger("act_hydra.train")

# Exit codes of a single run (documented in the README; OSMO's exitActions name EXIT_PREEMPTED).
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_IO_ERROR = 4  # disk full, unwritable output, vanished dataset: earlier results are intact
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later", the run can resume from its checkpoint


class Diverged(RuntimeError):
    def __init__(self, step: int):
        super().__init__(
            f"training diverged: the loss became non-finite at step {step}. The last good "
            "checkpoint and metrics are kept. Fix: lower training.lr (or set "
            "training.grad_clip_norm=10) and start a new run directory.")
        self.step = step


class Preempted(RuntimeError):
    pass


class RunIOError(RuntimeError):
    """The file system failed the run (not the config): say where, and what is still intact."""


@dataclass
class JobContext:
    """Where this run sits: its output folder and, in a local sweep, its slot."""

    run_dir: Path
    job_num: int | None = None  # index in a multirun, None for a single run
    n_parallel_jobs: int = 1


# ----------------------------------------------------------------------------- helpers

def pick_device(requested: str, job_num: int | None) -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        # Round-robin the jobs of a local sweep over the visible GPUs.
        return torch.device("cuda", (job_num or 0) % torch.cuda.device_count())
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_dataset_dir(cfg: TrainConfig) -> Path:
    """Recorded data is read in place; the synthetic task is generated once into a cache."""
    if cfg.data.synthetic is None:
        return Path(cfg.data.dataset_dir)
    # For the synthetic task, dataset_dir (when set) is the cache root.
    return ensure_synthetic_dataset(cfg.data.synthetic, cache_root=cfg.data.dataset_dir)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def check_run_dir_writable(run_dir: Path) -> None:
    probe = run_dir / f".write_probe-{os.getpid()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"hydra.run.dir={str(run_dir)!r} is invalid: the run directory must be writable "
            f"({err.strerror}). Fix: pass hydra.run.dir=<a writable folder>.") from err


def find_resume_checkpoint(resume: str, run_dir: Path) -> Path | None:
    if resume == "never":
        if (run_dir / "checkpoints" / "last.pt").exists():
            raise ConfigError(
                f"training.resume=never is invalid here: {run_dir} already holds a run "
                "(checkpoints/last.pt) that starting over would overwrite. Fix: pass "
                "hydra.run.dir=<a new folder>, or training.resume=auto to continue it.")
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / "last.pt"
        return last if last.exists() else None
    path = Path(resume)
    if not path.is_file():
        raise ConfigError(
            f"training.resume={resume!r} is invalid: no checkpoint file at that path. Fix: pass "
            "training.resume=auto (continue this run directory), training.resume=never, or the "
            "path of an existing checkpoints/last.pt.")
    return path


def check_resume_compatible(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to continue a checkpoint under a config that changes its model or data."""
    changed = [f"{group}.{key}: {saved[group].get(key)!r} -> {value!r}"
               for group in ("model", "data") for key, value in current[group].items()
               if key not in ("num_workers", "preload_max_mib")
               and saved[group].get(key) != value]
    if changed:
        raise ConfigError(
            "cannot resume: the checkpoint was trained with a different model or dataset ("
            + "; ".join(changed) + "). Fix: restore those values, or start fresh with "
            "training.resume=never in a new run directory (hydra.run.dir=...). Changing "
            "training.num_steps to train longer is allowed.")


class StopSignal:
    """SIGTERM (how schedulers preempt) asks the loop to checkpoint and stop."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        # Signal handlers can only be installed from the main thread.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


@torch.no_grad()
def evaluate(policy: ACTPolicy, batches: list[dict[str, torch.Tensor]], device, kl_weight,
             precision: str, seed: int) -> dict[str, float]:
    """Mean losses over a fixed set of validation batches.

    As in the original, the CVAE encoder runs with a sampled z; the noise is drawn from a
    forked RNG with a fixed seed so the validation loss is comparable across evaluations and
    training's own RNG stream (hence exact resume) is untouched.
    """
    policy.eval()
    totals: dict[str, float] = {}
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for batch in batches:
            with autocast_context(precision, device):
                _, parts = policy(to_device(batch, device), kl_weight)
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + float(v)
    policy.train()
    return {f"val/{k}": v / len(batches) for k, v in totals.items()}


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(run_dir / "summary.json")


# ----------------------------------------------------------------------------- training

def train(cfg: TrainConfig, job: JobContext, resolved_config: dict[str, Any]) -> dict[str, Any]:
    t0 = time.time()
    t = cfg.training

    # --- validate everything we can before any side effect ------------------------------
    validate_config(cfg)
    dist_info = init_distributed()
    run_dir = shared_run_dir(job.run_dir, dist_info)
    check_run_dir_writable(run_dir)
    resume_path = find_resume_checkpoint(t.resume, run_dir)
    try:
        saved = load_checkpoint(resume_path) if resume_path else None
    except Exception as err:  # truncated or foreign file
        raise ConfigError(
            f"training.resume={t.resume!r}: {resume_path} is not a readable act-hydra "
            f"checkpoint ({type(err).__name__}: {err}). Fix: pass training.resume=<path of a "
            "checkpoints/last.pt written by act-hydra>, or training.resume=never in a new "
            "hydra.run.dir.") from err
    if saved is not None and not (isinstance(saved, dict) and "format" in saved):
        raise ConfigError(
            f"training.resume={t.resume!r}: {resume_path} was not written by act-hydra (no "
            "'format' entry). Fix: point training.resume at an act-hydra checkpoints/last.pt.")
    if saved is not None:
        check_resume_compatible(saved["config"], resolved_config)
    if cfg.logger.backend == "wandb":
        from act_hydra.wandb_logger import check_wandb_ready

        check_wandb_ready(cfg.logger)

    # --- device, threads, seed ------------------------------------------------------------
    if dist_info.enabled and torch.cuda.is_available():
        device = torch.device("cuda", dist_info.local_rank)
    else:
        device = pick_device(t.device, job.job_num)
    if job.job_num is not None and device.type == "cpu":
        # Parallel sweep jobs share the CPU: give each a fair share of threads.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // job.n_parallel_jobs))
    if t.precision == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_everything(t.seed)

    # --- data -------------------------------------------------------------------------------
    dataset_dir = resolve_dataset_dir(cfg)
    info = scan_dataset(dataset_dir, list(cfg.data.camera_names))
    train_ids, val_ids = split_episodes(len(info.episode_paths), cfg.data.train_ratio,
                                        cfg.data.split_seed)
    if cfg.model.chunk_size > max(info.episode_lengths):
        log.warning("model.chunk_size=%d is longer than every episode (at most %d steps): the "
                    "end of each chunk is padding and masked out of the loss.",
                    cfg.model.chunk_size, max(info.episode_lengths))
    # Normalisation stats are computed once and then travel with the checkpoint.
    norm_stats = saved["norm_stats"] if saved else compute_norm_stats(info, train_ids)
    chunk = cfg.model.chunk_size
    train_set = EpisodeDataset(info, train_ids, chunk, list(cfg.data.camera_names),
                               cfg.data.preload_max_mib)
    val_set = EpisodeDataset(info, val_ids, chunk, list(cfg.data.camera_names),
                             cfg.data.preload_max_mib)
    start_step = saved["step"] if saved else 0
    loader = build_train_loader(train_set, t, cfg.data.num_workers, device, start_step,
                                dist_info.rank, dist_info.world_size)
    val_sampler = iter(StepBatchSampler(len(val_set), t.batch_size, cfg.data.split_seed))
    val_batches = [torch.utils.data.default_collate([val_set[i] for i in next(val_sampler)])
                   for _ in range(t.val_batches)]
    log.info("dataset %s: %d episodes (%d train, %d val), cameras %s",
             dataset_dir, len(info.episode_paths), len(train_ids), len(val_ids),
             list(cfg.data.camera_names))

    # --- policy, optimizer, schedule ----------------------------------------------------------
    policy = ACTPolicy(cfg.model, info.state_dim, info.action_dim, norm_stats).to(device)
    log.info("trainable parameters: %d", count_trainable_parameters(policy))
    # DDP averages gradients across ranks; `policy` stays the plain module for evaluation,
    # checkpoints and rollouts, `trainer` is what the training step calls.
    trainer = policy
    if device.type == "cuda":
        # cuDNN convolutions run fastest on NHWC tensors (the backbone is most of the FLOPs).
        policy.to(memory_format=torch.channels_last)
    if dist_info.enabled:
        trainer = torch.nn.parallel.DistributedDataParallel(
            policy, device_ids=[device.index] if device.type == "cuda" else None)
    if t.compile:
        trainer = torch.compile(trainer)
    optimizer = build_optimizer(policy, t, fused=device.type == "cuda")
    params = [p for p in policy.parameters() if p.requires_grad]
    scheduler = build_scheduler(optimizer, cfg.scheduler, t.lr, t.num_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=t.precision == "fp16")
    best_val, best_step = float("inf"), None
    if saved:
        policy.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        restore_scheduler(scheduler, saved["scheduler"], cfg.scheduler, t.lr, t.num_steps)
        scaler.load_state_dict(saved["scaler"])
        best_val, best_step = saved["best_val_loss"], saved["best_val_step"]
        restore_rng_state(saved["rng"])
        log.info("resumed from %s at step %d", resume_path, start_step)

    def checkpoint(step_next: int) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "step": step_next, "model": policy.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "rng": rng_state(), "norm_stats": norm_stats,
            "best_val_loss": best_val, "best_val_step": best_step, "config": resolved_config,
            "wandb_run_id": tracker.wandb_run_id,
        }

    # --- loop -------------------------------------------------------------------------------
    ckpt_dir = run_dir / "checkpoints"
    for stale in ckpt_dir.glob(".*.tmp-*"):  # left by a run killed while saving
        stale.unlink(missing_ok=True)

    def save(name: str, step_next: int) -> None:
        if not dist_info.is_main:  # one writer; every rank holds the same weights
            return
        try:
            save_atomic(checkpoint(step_next), ckpt_dir / name)
        except (OSError, RuntimeError) as err:  # torch.save reports a failed write as either
            reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
            raise RunIOError(
                f"could not write {ckpt_dir / name} ({reason}); the previous "
                f"checkpoint there is intact. Fix: free disk space or pass hydra.run.dir=<a "
                "folder with room>, then run the same command again to resume.") from err

    # Rows at or after start_step are dropped (a killed run may have logged past its last
    # checkpoint; a fresh start in a used folder drops them all) so each step appears once.
    tracker = Tracker(run_dir, cfg.logger, resolved_config, resume_step=start_step,
                      enabled=dist_info.is_main,
                      wandb_run_id=saved.get("wandb_run_id") if saved else None)
    # Losses stay on the device between log steps: reading them every step would force a host
    # synchronisation. A non-finite loss is remembered on the device and checked at log,
    # eval and save steps, before anything is written.
    first_bad_step = torch.tensor(-1, device=device)
    status, step = "completed", start_step
    progress = None
    if t.progress_bar and sys.stderr.isatty():
        from tqdm import tqdm
        progress = tqdm(total=t.num_steps, initial=start_step, desc="train", dynamic_ncols=True)

    def raise_if_diverged():
        bad = int(first_bad_step)
        if bad >= 0:
            raise Diverged(bad)

    policy.train()
    batches = iter(loader)
    window_start, window_steps = time.perf_counter(), 0  # throughput between log rows
    try:
        with StopSignal() as stop:
            for step in range(start_step, t.num_steps):
                try:
                    batch = to_device(next(batches), device)
                except OSError as err:
                    raise RunIOError(
                        f"could not read the dataset mid-run ({err}); checkpoints and metrics "
                        "written so far are intact. Fix: restore the episode files in "
                        "data.dataset_dir and run the same command again to resume.") from err
                lrs = [g["lr"] for g in optimizer.param_groups]  # the rates of this update
                last = step == t.num_steps - 1
                log_step = step % t.log_every == 0 or last
                parts, grad_norm, first_bad_step = train_step(
                    trainer, params, optimizer, scheduler, scaler, batch, t, device, step,
                    first_bad_step, want_grad_norm=log_step)
                window_steps += 1
                if log_step:
                    raise_if_diverged()
                    elapsed = time.perf_counter() - window_start
                    row = {"step": step, **{f"train/{k}": float(v) for k, v in parts.items()},
                           "lr": lrs[0], "lr_backbone": lrs[1], "grad_norm": float(grad_norm),
                           "samples_per_s": window_steps * t.batch_size / max(elapsed, 1e-9)}
                    window_start, window_steps = time.perf_counter(), 0
                    tracker.log(row)
                    log.info("step %d  loss %.4f  l1 %.4f  kl %.4f  lr %.3g", step,
                             row["train/loss"], row["train/l1"], row["train/kl"], lrs[0])
                # Validation and rollouts run on rank 0 only; the others wait at the next
                # gradient all-reduce.
                if dist_info.is_main and ((step + 1) % t.eval_every == 0 or last):
                    raise_if_diverged()
                    val = evaluate(policy, val_batches, device, t.kl_weight, t.precision,
                                   cfg.data.split_seed)
                    tracker.log({"step": step, **val})
                    log.info("step %d  val/loss %.4f", step, val["val/loss"])
                    if val["val/loss"] < best_val:
                        best_val, best_step = val["val/loss"], step
                        save("best.pt", step + 1)
                if (dist_info.is_main and t.eval_rollouts_every
                        and ((step + 1) % t.eval_rollouts_every == 0 or last)):
                    raise_if_diverged()
                    rollouts = evaluate_policy(policy, cfg.data.synthetic,
                                               t.eval_rollouts_episodes, device)
                    tracker.log({"step": step, **{f"eval/{k}": v for k, v in
                                                  rollouts.summary().items()}})
                    log.info("step %d  eval/success_rate %.3f", step, rollouts.success_rate)
                stopping = any_rank(stop.requested, dist_info, device)
                if (step + 1) % t.save_every == 0 or last or stopping:
                    raise_if_diverged()
                    save("last.pt", step + 1)
                if progress is not None:
                    progress.update(1)
                if stopping and not last:
                    raise Preempted(f"SIGTERM received: checkpoint saved at step {step + 1}")
            step = t.num_steps
    except Diverged as err:
        status, step = "diverged", err.step
        raise
    except (Preempted, KeyboardInterrupt):
        status, step = "interrupted", step + 1
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        if progress is not None:
            progress.close()
        summary = {"status": status, "steps_done": step, "num_steps": t.num_steps,
                   "best_val_loss": best_val if best_step is not None else None,
                   "best_val_step": best_step, "wall_time_s": round(time.time() - t0, 3)}
        if status == "diverged":
            summary["diverged_at_step"] = step
        if dist_info.is_main:
            write_summary(run_dir, summary)
            log.info("summary: %s", json.dumps(summary))
        exit_code = {"completed": 0, "diverged": EXIT_DIVERGED,
                     "interrupted": EXIT_PREEMPTED}.get(status, 1)
        tracker.finish(summary, [ckpt_dir / "best.pt", ckpt_dir / "last.pt"], exit_code)
        cleanup(dist_info)
    return summary


# ----------------------------------------------------------------------------- CLI

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
def hold_free_gpu(sweep_dir: Path, job_num: int, n_gpus: int):
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
    held = None
    for index in [(job_num + k) % n_gpus for k in range(n_gpus)]:
        handle = open(slots / f"cuda{index}.lock", "a")  # noqa: SIM115 (held past the loop)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        held = (index, handle)
        break
    if held is None:
        yield job_num % n_gpus
        return
    try:
        yield held[0]
    finally:
        held[1].close()  # closing the file releases the lock


def record_sweep_job_failure(run_dir: Path, err: BaseException) -> None:
    """In a sweep a failed job leaves a summary that says why, for the sweep summary table."""
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {"status": "failed"}
    summary["error"] = f"{type(err).__name__}: {err}"
    write_summary(run_dir, summary)


EXIT_CODES = {ConfigError: EXIT_BAD_INPUT, DatasetError: EXIT_BAD_INPUT,
              Diverged: EXIT_DIVERGED, RunIOError: EXIT_IO_ERROR, Preempted: EXIT_PREEMPTED}


def exit_code_for(err: BaseException) -> int:
    return next(code for kind, code in EXIT_CODES.items() if isinstance(err, kind))


def execute(dcfg: DictConfig, job: JobContext) -> tuple[int, dict[str, Any] | None]:
    """Run one job; return (exit code, summary). Errors the user can act on become exit codes
    with a logged message; anything else propagates (with its traceback)."""
    try:
        missing = sorted(OmegaConf.missing_keys(dcfg))
        if missing:
            raise ConfigError(" ".join(
                f"{key} is required but not set. Fix: pass {key}=<value> on the command line."
                for key in missing))
        resolved = OmegaConf.to_container(dcfg, resolve=True)
        cfg: TrainConfig = OmegaConf.to_object(dcfg)
        return 0, train(cfg, job, resolved)
    except tuple(EXIT_CODES) as err:
        code = exit_code_for(err)
        (log.warning if code == EXIT_PREEMPTED else log.error)("%s (exit code %d)", err, code)
        if job.job_num is not None:
            record_sweep_job_failure(job.run_dir, err)
        return code, None


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(dcfg: DictConfig) -> float | None:
    job = job_context()
    if int(os.environ.get("RANK", "0")) != 0:  # DDP: rank 0 speaks for the run
        logging.getLogger("act_hydra").setLevel(logging.WARNING)
    if job.job_num is None:
        code, summary = execute(dcfg, job)
        if code:
            sys.exit(code)
    else:
        # joblib's loky workers make "loky" the default start method, with which a DataLoader
        # cannot start its workers (data.num_workers > 0 fails with AttributeError: 'Process'
        # object has no attribute 'env'; pytorch#44687): use the platform's usual method.
        import multiprocessing

        if multiprocessing.get_start_method(allow_none=True) == "loky":
            multiprocessing.set_start_method(
                "fork" if sys.platform.startswith("linux") else "spawn", force=True)
        # In a local sweep the job must not exit its (reused) worker process, and one failure
        # must not stop the others: record why it failed for the sweep summary and go on.
        try:
            with ExitStack() as stack:
                n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
                if dcfg.training.device == "auto" and n_gpus > 1 and job.n_parallel_jobs > 1:
                    index = stack.enter_context(hold_free_gpu(
                        Path(HydraConfig.get().sweep.dir), job.job_num, n_gpus))
                    with read_write(dcfg):
                        dcfg.training.device = f"cuda:{index}"
                    torch.cuda.set_device(index)  # pinned memory, streams: not on GPU 0
                code, summary = execute(dcfg, job)
        except Exception as err:
            log.exception("job %d failed", job.job_num)  # Hydra 1.3 logs no traceback
            record_sweep_job_failure(job.run_dir, err)
            return None
        finally:
            # The worker runs the next job next: free this one's memory (and DataLoader
            # workers) now rather than whenever the garbage collector gets to it.
            import gc

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    # The value a sweeper would minimise.
    return summary["best_val_loss"] if summary else None


if __name__ == "__main__":
    # Call main through the importable module, not __main__: joblib's worker processes must
    # be able to pickle the task function by reference (`act_hydra.train.main`).
    from act_hydra.train import main as importable_main

    importable_main()
