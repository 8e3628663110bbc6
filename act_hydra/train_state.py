"""Everything a training run updates, in one object that saves and restores itself.

``TrainState.build`` sets up the module the step calls (the device's fast path from
``act_hydra.fast_path``: precision, channels-last, torch.compile; DDP across ranks), AdamW with
the original's two parameter groups, the LR schedule and the gradient scaler. Training and the
benchmark both build their fast path here, so the benchmark measures exactly what training runs.
"""

from __future__ import annotations

import math
import signal
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from act_hydra.config import Precision, TrainConfig, TrainingConfig
from act_hydra.data import EpisodeDataset, StepBatchSampler
from act_hydra.errors import Diverged
from act_hydra.fast_path import FastPath, resolve_fast_path
from act_hydra.model import ACTPolicy
from act_hydra.schedule import build_scheduler, restore_scheduler


def autocast_context(precision: Precision, device: torch.device):
    if precision in (Precision.bf16, Precision.fp16):
        dtype = torch.bfloat16 if precision == Precision.bf16 else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)
    return nullcontext()


def build_optimizer(policy: nn.Module, t: TrainingConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with the original's two groups: parameters named *backbone* at lr_backbone."""
    backbone = [p for n, p in policy.named_parameters() if "backbone" in n and p.requires_grad]
    rest = [p for n, p in policy.named_parameters() if "backbone" not in n and p.requires_grad]
    return torch.optim.AdamW(
        [{"params": rest, "lr": t.lr}, {"params": backbone, "lr": t.lr_backbone}],
        lr=t.lr,
        weight_decay=t.weight_decay,
        # One fused kernel for the whole update instead of several per parameter (CUDA only).
        fused=fused or None,
    )


def ignore_sigint(worker_id: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build_train_loader(
    dataset: EpisodeDataset,
    t: TrainingConfig,
    num_workers: int,
    device: torch.device,
    start_step: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=StepBatchSampler(
            len(dataset), t.batch_size, t.seed, start_step, rank, world_size
        ),
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        # Ctrl-C reaches the whole process group; the main process saves and stops, so the
        # workers must not die under it mid-batch.
        worker_init_fn=ignore_sigint if num_workers > 0 else None,
        # Its own generator: creating the iterator must not consume the global RNG that
        # dropout and the CVAE sampling use, or a resumed run would drift from the original.
        generator=torch.Generator().manual_seed(t.seed),
    )


@dataclass
class TrainState:
    """The policy, what the step calls, the optimizer, schedule, scaler, and the counters."""

    policy: ACTPolicy  # the plain module: evaluation, checkpoints, rollouts
    trainer: nn.Module  # what the step calls: policy, DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    training: TrainingConfig
    device: torch.device
    fast: FastPath  # the resolved precision, memory format and compile flag
    step: int = 0  # index of the next optimizer update
    best_val_loss: float = math.inf
    best_val_step: int | None = None
    # Step of the first non-finite loss (-1: none), kept on the device: reading the loss every
    # step would force a host synchronisation. Checked before anything is logged or saved.
    first_bad_step: torch.Tensor = field(default_factory=lambda: torch.tensor(-1))

    @classmethod
    def build(
        cls, cfg: TrainConfig, policy: ACTPolicy, device: torch.device, distributed: bool = False
    ) -> TrainState:
        t = cfg.training
        fast = resolve_fast_path(t, device)
        policy = policy.to(device)
        trainer: nn.Module = policy
        if fast.channels_last:
            # cuDNN convolutions run fastest on NHWC tensors (the backbone is most of the FLOPs).
            policy.to(memory_format=torch.channels_last)
        if distributed:  # DDP averages gradients across ranks
            trainer = nn.parallel.DistributedDataParallel(
                policy, device_ids=[device.index] if device.type == "cuda" else None
            )
        if fast.compile:
            trainer = torch.compile(trainer)  # type: ignore[assignment]
        optimizer = build_optimizer(policy, t, fused=fast.fused_adamw)
        return cls(
            policy=policy,
            trainer=trainer,
            optimizer=optimizer,
            scheduler=build_scheduler(optimizer, cfg.scheduler, t.lr, t.num_steps),
            scaler=torch.amp.GradScaler(device.type, enabled=fast.precision == Precision.fp16),
            training=t,
            device=device,
            fast=fast,
            first_bad_step=torch.tensor(-1, device=device),
        )

    @property
    def features(self) -> dict[str, bool]:
        """Which parts of the fast path are on."""
        return {
            "fused_adamw": bool(self.optimizer.defaults.get("fused")),
            "channels_last": self.fast.channels_last,
            "compiled": self.trainer is not self.policy
            and not isinstance(self.trainer, nn.parallel.DistributedDataParallel),
        }

    def learning_rates(self) -> list[float]:
        """The rates of the next update: [main group, backbone group]."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def train_step(
        self,
        batch: dict[str, torch.Tensor],
        want_grad_norm: bool = False,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """One optimizer update that reads nothing back to the host.

        Returns (loss parts, grad norm or None), on the device. A non-finite loss is
        remembered in `first_bad_step` (masked_fill with a Python scalar launches a kernel;
        building a device tensor from the step would be a blocking copy every step).
        """
        t = self.training
        with autocast_context(self.fast.precision, self.device):
            loss, parts = self.trainer(batch, t.kl_weight)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        grad_norm = None
        if t.grad_clip_norm > 0 or want_grad_norm:
            self.scaler.unscale_(self.optimizer)
            max_norm = t.grad_clip_norm if t.grad_clip_norm > 0 else math.inf
            params = [p for p in self.policy.parameters() if p.requires_grad]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        bad_now = ~torch.isfinite(loss.detach())
        self.first_bad_step = self.first_bad_step.masked_fill(
            bad_now & (self.first_bad_step < 0), self.step
        )
        self.step += 1
        return parts, grad_norm

    def raise_if_diverged(self) -> None:
        """Raise Diverged if any loss so far was non-finite (one host synchronisation)."""
        bad = int(self.first_bad_step)
        if bad >= 0:
            raise Diverged(bad)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_val_loss": self.best_val_loss,
            "best_val_step": self.best_val_step,
        }

    def load_state_dict(self, saved: dict[str, Any], cfg: TrainConfig) -> None:
        """Continue a checkpoint; the schedule's length follows the current num_steps."""
        t = cfg.training
        self.policy.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        restore_scheduler(self.scheduler, saved["scheduler"], cfg.scheduler, t.lr, t.num_steps)
        self.scaler.load_state_dict(saved["scaler"])
        self.step = saved["step"]
        self.best_val_loss, self.best_val_step = saved["best_val_loss"], saved["best_val_step"]
