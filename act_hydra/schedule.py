"""Learning-rate schedules: a pure function of the step, wrapped in LambdaLR.

The cosine formula (the README, "LR schedule"): for update index i (0-based), total updates T,
warmup W and floor ratio r = min_lr / lr,

    f(i) = i / W                                              for i < W
    f(i) = r + (1 - r) * 0.5 * (1 + cos(pi * (i - W) / (T - W)))   for i >= W

Every param group's LR is its base LR times f(i), so the backbone group keeps its ratio to the
main group and ends at lr_backbone * min_lr / lr.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from act_hydra.config import SchedulerConfig


def cosine_with_warmup_factor(
    step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float
) -> float:
    """LR multiplier used for optimizer update `step`."""
    if step < warmup_steps:
        return step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def constant_factor(step: int) -> float:
    return 1.0


def lr_factor_fn(cfg: SchedulerConfig, lr: float, num_steps: int):
    """The schedule as a function step -> multiplier (validated config assumed)."""
    if cfg.name == "none":
        return constant_factor
    if cfg.name == "cosine":
        return partial(
            cosine_with_warmup_factor,
            warmup_steps=cfg.warmup_steps,
            total_steps=num_steps,
            min_lr_ratio=cfg.min_lr / lr,
        )
    raise ValueError(f"unknown scheduler {cfg.name!r}")


def restore_scheduler(
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    state: dict,
    cfg: SchedulerConfig,
    lr: float,
    num_steps: int,
) -> None:
    """Load a checkpointed schedule; its length follows the *current* num_steps (so a resumed
    run can train longer). Only the factor function is replaced: building a new LambdaLR
    would reset the optimizer's LR to f(0) for the first resumed update."""
    scheduler.load_state_dict(state)
    scheduler.lr_lambdas = [lr_factor_fn(cfg, lr, num_steps)] * len(scheduler.lr_lambdas)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, lr: float, num_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR stepped once per optimizer update; the factor applies to every param group."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(cfg, lr, num_steps))
