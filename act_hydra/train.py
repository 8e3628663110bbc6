"""Train an ACT policy from a composed Hydra config.

    python -m act_hydra.train                     # quickstart: synthetic task, small ACT
    python -m act_hydra.train experiment=aloha_sim_transfer_cube data.dataset_dir=/data/cube
    python -m act_hydra.train scheduler=cosine logger=wandb
    python -m act_hydra.train --multirun training.lr=1e-5,5e-5,1e-4

`train()` reads top-down: fail fast -> device and data -> TrainState -> loop, inside a
RunRecord that turns the outcome into summary.json and the exit code. The run directory's
files are described in the README ("The run directory").
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from act_hydra import run_dir as run_folder
from act_hydra.checkpoint import (
    Checkpointer,
    norm_stats_to_tensors,
    restore_rng_state,
    rng_state_for_rank,
)
from act_hydra.compose import CONF_DIR
from act_hydra.config import LoggerBackend, Precision, TrainConfig
from act_hydra.data import (
    DatasetInfo,
    EpisodeDataset,
    StepBatchSampler,
    check_matches_simulator,
    compute_norm_stats,
    resolve_dataset_dir,
    scan_dataset,
    split_episodes,
)
from act_hydra.distributed import (
    DistInfo,
    any_rank,
    cleanup,
    init_distributed,
    rank_seed,
    shared_run_dir,
)
from act_hydra.envs import EnvSpec
from act_hydra.errors import (
    EXIT_INTERRUPTED,
    EXIT_UNEXPECTED,
    ActHydraError,
    ConfigError,
    Preempted,
    RunIOError,
)
from act_hydra.hydra_app import run_hydra_app
from act_hydra.model import ACTPolicy, count_trainable_parameters
from act_hydra.resume import AlreadyComplete, load_resume_checkpoint
from act_hydra.rollout import evaluate_policy
from act_hydra.run_record import RunRecord, StopSignal
from act_hydra.sweep_job import JobContext, job_context, record_failure, run_sweep_job
from act_hydra.tracking import Tracker
from act_hydra.train_state import TrainState, autocast_context, build_train_loader
from act_hydra.validate import check_known_keys, validate_config

log = logging.getLogger("act_hydra.train")


def train(
    cfg: TrainConfig,
    job: JobContext,
    resolved_config: dict[str, Any],
    task_config: DictConfig | None = None,
) -> dict[str, Any]:
    """Train one run; return its summary. Raises an ActHydraError the CLI maps to its exit
    code (bad input before anything is written; divergence, I/O or preemption later).
    ``task_config`` (the unresolved config) is recorded in .hydra/ once the checks pass.
    AlreadyComplete: the run directory's checkpoint has done every update asked for."""
    t = cfg.training
    # --- fail fast: everything checkable before a side effect -----------------------------
    validate_config(cfg)
    dist_info = init_distributed()
    run_dir = shared_run_dir(job.run_dir, dist_info)
    run_folder.check_writable(run_dir)
    saved = load_resume_checkpoint(t.resume, run_dir, resolved_config)  # or AlreadyComplete
    check_external_ready(cfg)

    # --- device and data ------------------------------------------------------------------
    device = setup_device(cfg, dist_info, job)
    seed_everything(rank_seed(t.seed, dist_info.rank))
    data = load_data(cfg, saved)
    if task_config is not None and dist_info.is_main:  # every check passed: record the config
        run_folder.write_hydra_files(run_dir, task_config)
    start_step = saved["step"] if saved else 0
    loader = build_train_loader(
        data.train_set,
        t,
        cfg.data.num_workers,
        device,
        start_step,
        dist_info.rank,
        dist_info.world_size,
    )

    # --- the state a step updates ---------------------------------------------------------
    policy = ACTPolicy(cfg.model, data.info.state_dim, data.info.action_dim, data.norm_stats)
    log.info("trainable parameters: %d", count_trainable_parameters(policy))
    state = TrainState.build(cfg, policy, device, distributed=dist_info.enabled)
    log.info("%s", state.fast.describe())
    if saved:
        state.load_state_dict(saved, cfg)
        rng = rng_state_for_rank(saved["rng"], dist_info.rank, dist_info.world_size)
        if rng is not None:
            restore_rng_state(rng)
        log.info("resumed from %s at step %d", saved["path"], start_step)

    # --- the loop ---------------------------------------------------------------------------
    # Rows at or after start_step are dropped (a killed run may have logged past its last
    # checkpoint; a fresh start in a used folder drops them all) so each step appears once.
    tracker = Tracker(
        run_dir,
        cfg.logger,
        resolved_config,
        resume_step=start_step,
        enabled=dist_info.is_main,
        wandb_run_id=saved.get("wandb_run_id") if saved else None,
    )
    checkpointer = Checkpointer(
        run_dir,
        dist_info,
        start_step,
        norm_stats=norm_stats_to_tensors(data.norm_stats),
        config=resolved_config,
        wandb_run_id=tracker.wandb_run_id,
    )
    record = RunRecord(
        run_dir,
        t.num_steps,
        state,
        checkpointer,
        write=dist_info.is_main,
        details={"fast_path": state.fast.as_dict()},
    )
    record.on_close(partial(tracker.finish, checkpoints=checkpointer.paths()))
    batches, throughput = iter(loader), Throughput(t.batch_size)
    env_spec = EnvSpec.from_data_config(resolved_config["data"]) if t.eval_rollouts_every else None
    with record, StopSignal() as stop, progress_bar(t, start_step) as progress:
        policy.train()
        for step in range(start_step, t.num_steps):
            batch = next_batch(batches, device)
            due = Due.at(step, t, dist_info.is_main)
            lrs = state.learning_rates()  # the rates of this update
            parts, grad_norm = state.train_step(batch, want_grad_norm=due.log)
            throughput.tick()
            if due.log:
                state.raise_if_diverged()
                row = {
                    "step": step,
                    **{f"train/{k}": float(v) for k, v in parts.items()},
                    "lr": lrs[0],
                    "lr_backbone": lrs[1],
                    "grad_norm": float(grad_norm),
                    "samples_per_s": throughput.rate(),
                }
                tracker.log(row)
                log.info(
                    "step %d  loss %.4f  l1 %.4f  kl %.4f  lr %.3g",
                    step,
                    row["train/loss"],
                    row["train/l1"],
                    row["train/kl"],
                    lrs[0],
                )
            # Validation and rollouts run on rank 0 only; the others wait at the next
            # collective. Every rank joins a checkpoint save (it gathers their RNG states).
            improved = False
            if due.val:
                state.raise_if_diverged()
                val = validation_losses(
                    policy,
                    data.val_batches,
                    t.kl_weight,
                    state.fast.precision,
                    cfg.data.split_seed,
                    device,
                )
                tracker.log({"step": step, **val})
                log.info("step %d  val/loss %.4f", step, val["val/loss"])
                if val["val/loss"] < state.best_val_loss:
                    state.best_val_loss, state.best_val_step = val["val/loss"], step
                    improved = True
            if due.val_round and any_rank(improved, dist_info, device):
                checkpointer.save("best.pt", state.state_dict())
            if due.rollout:
                state.raise_if_diverged()
                rollouts = evaluate_policy(policy, env_spec, t.eval_rollouts_episodes, device)
                tracker.log(
                    {"step": step, **{f"eval/{k}": v for k, v in rollouts.summary().items()}}
                )
                log.info("step %d  eval/success_rate %.3f", step, rollouts.success_rate)
            stopping = any_rank(stop.requested, dist_info, device)
            if due.save or stopping:
                state.raise_if_diverged()
                checkpointer.save("last.pt", state.state_dict())
            progress.update(1)
            if stopping and not due.last:
                raise stop.error(step + 1)
    return {
        "best_val_loss": state.best_val_loss if state.best_val_step is not None else None,
        "best_val_step": state.best_val_step,
    }


# ----------------------------------------------------------------------------- the steps above


def already_complete(saved: dict[str, Any]) -> dict[str, Any]:
    """A rerun of a finished run: say so, change nothing, report the saved result."""
    log.info(
        "nothing to do: %s has already done all %d updates (no file changed). To train "
        "longer, pass a larger training.num_steps.",
        saved["path"],
        saved["step"],
    )
    found = saved.get("best_val_step") is not None
    return {
        "best_val_loss": saved["best_val_loss"] if found else None,
        "best_val_step": saved.get("best_val_step"),
    }


def check_external_ready(cfg: TrainConfig) -> None:
    """W&B credentials and the backbone's ImageNet weights, before any dataset work."""
    if cfg.logger.backend == LoggerBackend.wandb:
        from act_hydra.wandb_logger import check_wandb_ready

        check_wandb_ready(cfg.logger)
    if cfg.model.pretrained_backbone:
        from act_hydra.backbone import check_imagenet_weights_available

        check_imagenet_weights_available(cfg.model.vision_backbone)


def pick_device(requested: str, job_num: int | None) -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        # Round-robin the jobs of a local sweep over the visible GPUs.
        return torch.device("cuda", (job_num or 0) % torch.cuda.device_count())
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def setup_device(cfg: TrainConfig, dist_info: DistInfo, job: JobContext) -> torch.device:
    """The device of this process, its CPU thread share in a local sweep, and TF32."""
    if dist_info.enabled and torch.cuda.is_available():
        device = torch.device("cuda", dist_info.local_rank)
    else:
        device = pick_device(cfg.training.device, job.job_num)
    if device.type == "cpu" and cfg.training.num_threads > 0:
        torch.set_num_threads(cfg.training.num_threads)  # explicit: wins over a sweep's share
    elif job.in_sweep and device.type == "cpu":
        # Parallel sweep jobs share the CPU: give each a fair share of threads.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // job.n_parallel_jobs))
    if cfg.training.precision == Precision.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainData:
    info: DatasetInfo
    train_set: EpisodeDataset
    val_batches: list[dict[str, torch.Tensor]]  # fixed: comparable across evaluations
    norm_stats: dict[str, Any]


def load_data(cfg: TrainConfig, saved: dict[str, Any] | None) -> TrainData:
    d, chunk = cfg.data, cfg.model.chunk_size
    dataset_dir = resolve_dataset_dir(cfg.data)
    info = scan_dataset(dataset_dir, list(d.camera_names))
    check_matches_simulator(d, info)
    train_ids, val_ids = split_episodes(info.num_episodes, d.train_ratio, d.split_seed)
    if chunk > max(info.episode_lengths):
        log.warning(
            "model.chunk_size=%d is longer than every episode (at most %d steps): the "
            "end of each chunk is padding and masked out of the loss.",
            chunk,
            max(info.episode_lengths),
        )
    # Normalisation stats come from the training episodes, once; then they travel with the
    # checkpoint (a resumed run or an evaluation never recomputes them).
    norm_stats = saved["norm_stats"] if saved else compute_norm_stats(info, train_ids)
    train_set = EpisodeDataset(info, train_ids, chunk, list(d.camera_names), d.preload_max_mib)
    val_set = EpisodeDataset(info, val_ids, chunk, list(d.camera_names), d.preload_max_mib)
    val_sampler = iter(StepBatchSampler(len(val_set), cfg.training.batch_size, d.split_seed))
    val_batches = [
        torch.utils.data.default_collate([val_set[i] for i in next(val_sampler)])
        for _ in range(cfg.training.val_batches)
    ]
    log.info(
        "dataset %s: %d episodes (%d train, %d val), cameras %s",
        dataset_dir,
        info.num_episodes,
        len(train_ids),
        len(val_ids),
        list(d.camera_names),
    )
    return TrainData(info, train_set, val_batches, norm_stats)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def next_batch(batches, device: torch.device) -> dict[str, torch.Tensor]:
    try:
        return to_device(next(batches), device)
    except OSError as err:
        raise RunIOError(
            f"could not read the dataset mid-run ({err}); checkpoints and metrics written so "
            "far are intact. Fix: restore the episode files in data.dataset_dir and run the "
            "same command again to resume."
        ) from err


@dataclass(frozen=True)
class Due:
    """What happens after update `step` (0-based); computed once per step."""

    last: bool
    log: bool
    val_round: bool  # every rank: rank 0 validates, all join the best.pt save
    val: bool  # rank 0 only
    rollout: bool  # rank 0 only
    save: bool

    @classmethod
    def at(cls, step: int, t, is_main: bool) -> Due:
        last = step == t.num_steps - 1
        val_round = cls.every(t.eval_every, step, last)
        return cls(
            last=last,
            log=step % t.log_every == 0 or last,
            val_round=val_round,
            val=is_main and val_round,
            rollout=is_main and cls.every(t.eval_rollouts_every, step, last),
            save=cls.every(t.save_every, step, last),
        )

    @staticmethod
    def every(n: int, step: int, last: bool) -> bool:
        """Every n updates and after the last one (n = 0: never)."""
        return n > 0 and ((step + 1) % n == 0 or last)


class Throughput:
    """Samples per second between two log rows."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.start, self.steps = time.perf_counter(), 0

    def tick(self) -> None:
        self.steps += 1

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        rate = self.steps * self.batch_size / max(elapsed, 1e-9)
        self.start, self.steps = time.perf_counter(), 0
        return rate


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, n: int) -> None:
        pass


def progress_bar(t, start_step: int):
    """A tqdm bar on a terminal; nothing in logs, sweeps and tests."""
    if not (t.progress_bar and sys.stderr is not None and sys.stderr.isatty()):
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=t.num_steps, initial=start_step, desc="train", dynamic_ncols=True)


@torch.no_grad()
def validation_losses(
    policy: ACTPolicy,
    batches: list[dict[str, torch.Tensor]],
    kl_weight: float,
    precision: Precision,
    seed: int,
    device: torch.device,
) -> dict[str, float]:
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


# ----------------------------------------------------------------------------- CLI


def execute(dcfg: DictConfig, job: JobContext) -> dict[str, Any]:
    """Check that every key is known and every required key set, then train."""
    check_known_keys(dcfg)
    missing = sorted(OmegaConf.missing_keys(dcfg))
    if missing:
        raise ConfigError(
            " ".join(
                f"{key} is required but not set. Fix: pass {key}=<value> on the command line."
                for key in missing
            )
        )
    # Enums as their names: the resolved config goes into checkpoints, which hold only plain
    # containers, and into W&B.
    resolved = OmegaConf.to_container(dcfg, resolve=True, enum_to_str=True)
    cfg: TrainConfig = OmegaConf.to_object(dcfg)  # type: ignore[assignment]
    try:
        return train(cfg, job, resolved, task_config=dcfg)  # type: ignore[arg-type]
    except AlreadyComplete as done:
        return already_complete(done.saved)
    finally:
        cleanup()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(dcfg: DictConfig) -> float | None:
    job = job_context()
    if int(os.environ.get("RANK", "0")) != 0:  # DDP: rank 0 speaks for the run
        logging.getLogger("act_hydra").setLevel(logging.WARNING)
    if job.in_sweep:
        summary = run_sweep_job(dcfg, job, execute)
    else:
        try:
            summary = execute(dcfg, job)
        except ActHydraError as err:
            (log.warning if isinstance(err, Preempted) else log.error)(
                "%s (exit code %d)", err, err.exit_code
            )
            sys.exit(err.exit_code)
        except KeyboardInterrupt:  # Ctrl-C before the loop (which saves and exits itself)
            log.warning("interrupted (Ctrl-C) before training started (exit code 130)")
            sys.exit(EXIT_INTERRUPTED)
        except Exception as err:  # a bug: its traceback goes to train.log, not only stderr
            log.exception("unexpected error (exit code %d)", EXIT_UNEXPECTED)
            record_failure(job.run_dir, err, dcfg)
            sys.exit(EXIT_UNEXPECTED)
    # The value a sweeper would minimise.
    return summary["best_val_loss"] if summary else None


def cli() -> None:
    """act-train (Hydra's composition errors exit 2: act_hydra/hydra_app.py)."""
    run_hydra_app(main)


if __name__ == "__main__":
    # Call main through the importable module, not __main__: joblib's worker processes must
    # be able to pickle the task function by reference (`act_hydra.train.main`).
    from act_hydra.train import cli as importable_cli

    importable_cli()
