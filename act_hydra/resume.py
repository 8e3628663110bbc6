"""Which checkpoint a run continues, and whether the current config may continue it.

A resumed run must train exactly as if it had never stopped, so the settings that decide the
trajectory (model, data, loss and optimizer settings, the LR schedule's shape) must match the
checkpoint's. What may change: ``training.num_steps`` (to train longer; a cosine schedule
stretches to the new length), how often to log, validate, evaluate and save, the device,
precision and compile settings, the data-loader workers, and the logger.

A run that is already complete is left alone: rerunning it says so and changes no file (exit 0);
asking for fewer updates than it already trained is refused (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from act_hydra.checkpoint import load_checkpoint
from act_hydra.errors import CheckpointError, ConfigError

# Data settings that change how episodes are read, not which ones.
RESUMABLE_DATA_CHANGES = ("num_workers", "preload_max_mib")
# Training settings that decide the trajectory (the rest of `training` may change on resume).
TRAJECTORY_KEYS = (
    "lr",
    "lr_backbone",
    "weight_decay",
    "kl_weight",
    "batch_size",
    "seed",
    "grad_clip_norm",
)
# The schedule's shape; its length follows training.num_steps.
SCHEDULE_KEYS = ("name", "warmup_steps", "min_lr")


class AlreadyComplete(Exception):
    """The checkpoint has done every update asked for: nothing to train."""

    def __init__(self, saved: dict[str, Any]):
        super().__init__(saved["path"])
        self.saved = saved


def find_resume_checkpoint(resume: str, run_dir: Path) -> Path | None:
    """The checkpoint training.resume asks for: None to start fresh."""
    last = run_dir / "checkpoints" / "last.pt"
    if resume == "never":
        if last.exists():
            raise ConfigError(
                f"training.resume=never is invalid here: {run_dir} already holds a run "
                "(checkpoints/last.pt) that starting over would overwrite. Fix: pass "
                "hydra.run.dir=<a new folder>, or training.resume=auto to continue it."
            )
        return None
    if resume == "auto":
        return last if last.exists() else None
    path = Path(resume)
    if not path.is_file():
        raise ConfigError(
            f"training.resume={resume!r} is invalid: no checkpoint file at that path. Fix: pass "
            "training.resume=auto (continue this run directory), training.resume=never, or the "
            "path of an existing checkpoints/last.pt."
        )
    return path


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: saved -> current`` for every setting a resumed run must keep."""
    keys = [
        *(("model", k) for k in current["model"]),
        *(("data", k) for k in current["data"] if k not in RESUMABLE_DATA_CHANGES),
        *(("training", k) for k in TRAJECTORY_KEYS),
        *(("scheduler", k) for k in SCHEDULE_KEYS),
    ]
    return [
        f"{group}.{key}: {saved[group].get(key)!r} -> {current[group].get(key)!r}"
        for group, key in keys
        if saved.get(group, {}).get(key) != current[group].get(key)
    ]


def check_resume_compatible(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to continue a checkpoint under a config that would change its trajectory."""
    changed = changed_settings(saved, current)
    if changed:
        raise ConfigError(
            "cannot resume: the checkpoint was trained with different settings ("
            + "; ".join(changed)
            + "). Rule: a resumed run continues the same training; only training.num_steps, "
            "the logging/validation/save intervals, the device, precision and the logger may "
            "change. Fix: restore those values, or start fresh in a new run directory "
            "(hydra.run.dir=<new folder>)."
        )


def check_not_past_the_end(saved: dict[str, Any], num_steps: int) -> None:
    """A finished run: the same length is nothing to do; a shorter one cannot be undone."""
    done = int(saved["step"])
    if done > num_steps:
        raise ConfigError(
            f"training.num_steps={num_steps} is invalid here: {saved['path']} has already done "
            f"{done} updates, which a shorter run cannot undo. Fix: pass "
            f"training.num_steps={done} (nothing to do) or more (train longer), or "
            "hydra.run.dir=<new folder> to train a new run."
        )
    if done == num_steps:
        raise AlreadyComplete(saved)


def load_resume_checkpoint(
    resume: str, run_dir: Path, resolved_config: dict[str, Any]
) -> dict[str, Any] | None:
    """The checkpoint this run continues (checked against the current config), or None.

    Raises AlreadyComplete when it has done all ``training.num_steps`` updates.
    """
    path = find_resume_checkpoint(resume, run_dir)
    if path is None:
        return None
    try:
        saved = load_checkpoint(path)
    except CheckpointError as err:
        raise CheckpointError(f"training.resume={resume!r}: {err}") from err
    saved["path"] = str(path)
    check_resume_compatible(saved["config"], resolved_config)
    check_not_past_the_end(saved, int(resolved_config["training"]["num_steps"]))
    return saved
