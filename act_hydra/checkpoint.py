"""Checkpoints: what they hold, how they are written, and which one a run resumes from.

A checkpoint is a dict of tensors and plain containers (numbers, strings, lists, dicts) only,
so it loads with ``torch.load(weights_only=True)``, which refuses to run code from the file:

    format, step, model, optimizer, scheduler, scaler, best_val_loss, best_val_step,
    rng (a list indexed by DDP rank, each python, numpy, torch, cuda), norm_stats (float32
    tensors), config (the resolved training config), wandb_run_id

It is written atomically (act_hydra.atomic): a reader sees the previous complete file or the
new complete file, never half of one. The data-sampling state needs no saving: the batch of
step i is a function of (seed, i) (act_hydra.data.dataset.StepBatchSampler).

Checkpoints of format 1 (the previous release: numpy RNG state and enum objects, pickled) are
refused like any file that would import code; convert one once, without running anything
from it, with

    python -m act_hydra.checkpoint convert OLD.pt NEW.pt     # NEW may be OLD: in place
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from act_hydra.atomic import atomic_file, remove_stale
from act_hydra.errors import CheckpointError, ConfigError, RunIOError

CHECKPOINT_FORMAT = 2
# Keys that may differ between a checkpoint and the run resuming it: they change how data is
# read, not what is learned.
RESUMABLE_DATA_CHANGES = ("num_workers", "preload_max_mib")


def rng_state() -> dict[str, Any]:
    """Every RNG a training step draws from, as tensors and plain lists."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [version, list(mt_state), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_state_for_rank(saved_rng: list[dict[str, Any]] | dict[str, Any], rank: int,
                       world_size: int) -> dict[str, Any] | None:
    """The RNG state rank ``rank`` continues from (None: keep its freshly seeded state).

    A checkpoint holds one state per rank of the run that wrote it. Resumed on as many ranks,
    each rank restores its own and the run is bit-identical to an uninterrupted one. On a
    different number of ranks the run continues but is not that run any more (its global batch
    is training.batch_size x the new world size, too): ranks the checkpoint knows restore their
    own state, the others keep the independent seed every rank starts from
    (act_hydra.distributed.rank_seed), and rank 0 logs a warning.
    """
    states = saved_rng if isinstance(saved_rng, list) else [saved_rng]
    if len(states) != world_size and rank == 0:
        log.warning(
            "the checkpoint holds the RNG states of %d rank(s) and this run has %d: ranks 0-%d "
            "continue their own RNG streams, %s; the run continues, but not bit-identically "
            "to one resumed on %d rank(s), and its global batch is now training.batch_size x %d",
            len(states), world_size, min(len(states), world_size) - 1,
            "the others start from their own seeds" if world_size > len(states)
            else "the others' states are dropped", len(states), world_size)
    return states[rank] if rank < len(states) else None


def norm_stats_to_tensors(stats: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in stats.items()}


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    with atomic_file(path) as f:
        torch.save(payload, f)


def unpickling_detail(err: Exception) -> str:
    """The line of torch's weights-only error that says what was refused."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    specific = [line for line in lines if "GLOBAL" in line or "Unsupported" in line
                or "load key" in line]
    return (specific or lines or [type(err).__name__])[0][:200]


def _unreadable(path: Path, detail: str) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a readable act-hydra checkpoint ({detail}). Fix: point at a "
        "checkpoints/last.pt or best.pt written by act-hydra.")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without running anything from it (weights_only=True)."""
    path = Path(path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = unpickling_detail(err)
        if "GLOBAL" in detail or "global" in detail:  # it names code to import and run
            raise CheckpointError(
                f"{path} was refused: loading it would import and run Python code ({detail}). "
                "act-hydra checkpoints hold only tensors and plain containers, so this file "
                "was not written by act-hydra or was tampered with; nothing from it was run. "
                "Fix: use a checkpoint written by act-hydra, from a source you trust.") from err
        raise _unreadable(path, detail) from err
    except Exception as err:  # truncated, empty, not a torch file at all
        raise _unreadable(path, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
                          if str(err) else type(err).__name__) from err
    if not (isinstance(saved, dict) and saved.get("format") == CHECKPOINT_FORMAT):
        found = saved.get("format") if isinstance(saved, dict) else None
        raise CheckpointError(
            f"{path} is not an act-hydra checkpoint of format {CHECKPOINT_FORMAT} (format "
            f"entry: {found!r}). Fix: point at a checkpoints/last.pt or best.pt written by this "
            "version of act-hydra.")
    return saved


def find_resume_checkpoint(resume: str, run_dir: Path) -> Path | None:
    """The checkpoint training.resume asks for: None to start fresh."""
    last = run_dir / "checkpoints" / "last.pt"
    if resume == "never":
        if last.exists():
            raise ConfigError(
                f"training.resume=never is invalid here: {run_dir} already holds a run "
                "(checkpoints/last.pt) that starting over would overwrite. Fix: pass "
                "hydra.run.dir=<a new folder>, or training.resume=auto to continue it.")
        return None
    if resume == "auto":
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
               if key not in RESUMABLE_DATA_CHANGES and saved[group].get(key) != value]
    if changed:
        raise ConfigError(
            "cannot resume: the checkpoint was trained with a different model or dataset ("
            + "; ".join(changed) + "). Fix: restore those values, or start fresh with "
            "training.resume=never in a new run directory (hydra.run.dir=...). Changing "
            "training.num_steps to train longer is allowed.")


def load_resume_checkpoint(resume: str, run_dir: Path,
                           resolved_config: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint this run continues (checked against the current config), or None."""
    path = find_resume_checkpoint(resume, run_dir)
    if path is None:
        return None
    try:
        saved = load_checkpoint(path)
    except CheckpointError as err:
        raise CheckpointError(f"training.resume={resume!r}: {err}") from err
    check_resume_compatible(saved["config"], resolved_config)
    saved["path"] = str(path)
    return saved


class Checkpointer:
    """Writes checkpoints/last.pt and best.pt of one run (rank 0 only: every rank holds the
    same weights), and turns a failed write into a RunIOError that says what is intact."""

    def __init__(self, run_dir: Path, enabled: bool, **static: Any):
        self.dir = run_dir / "checkpoints"
        self.enabled = enabled
        self.static = static  # saved in every checkpoint: norm_stats, config, wandb_run_id
        if enabled:
            remove_stale(self.dir)  # temporary files of a run killed while saving

    def paths(self) -> list[Path]:
        return [self.dir / "best.pt", self.dir / "last.pt"]

    def save(self, name: str, training_state: dict[str, Any]) -> None:
        if not self.enabled:
            return
        payload = {"format": CHECKPOINT_FORMAT, **training_state, "rng": rng_state(),
                   **self.static}
        try:
            save_checkpoint(payload, self.dir / name)
        except (OSError, RuntimeError) as err:  # torch.save reports a failed write as either
            reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
            raise RunIOError(
                f"could not write {self.dir / name} ({reason}); the previous "
                f"checkpoint there is intact. Fix: free disk space or pass hydra.run.dir=<a "
                "folder with room>, then run the same command again to resume.") from err
