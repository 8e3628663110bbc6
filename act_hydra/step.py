"""The pieces of one training update, shared by act_hydra.train and the benchmark so that the
benchmark measures exactly the step that training runs."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch.utils.data import DataLoader, Dataset

from act_hydra.config import TrainingConfig
from act_hydra.data import StepBatchSampler


def autocast_context(precision: str, device: torch.device):
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)
    return nullcontext()


def build_optimizer(policy: torch.nn.Module, t: TrainingConfig,
                    fused: bool) -> torch.optim.AdamW:
    """AdamW with the original's two groups: parameters named *backbone* at lr_backbone."""
    backbone = [p for n, p in policy.named_parameters() if "backbone" in n and p.requires_grad]
    rest = [p for n, p in policy.named_parameters() if "backbone" not in n and p.requires_grad]
    return torch.optim.AdamW(
        [{"params": rest, "lr": t.lr}, {"params": backbone, "lr": t.lr_backbone}],
        lr=t.lr, weight_decay=t.weight_decay,
        # One fused kernel for the whole update instead of several per parameter (CUDA only).
        fused=fused or None)


def build_train_loader(dataset: Dataset, t: TrainingConfig, num_workers: int,
                       device: torch.device, start_step: int = 0, rank: int = 0,
                       world_size: int = 1) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=StepBatchSampler(len(dataset), t.batch_size, t.seed, start_step, rank,
                                       world_size),
        num_workers=num_workers, pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None,
        # Its own generator: creating the iterator must not consume the global RNG that
        # dropout and the CVAE sampling use, or a resumed run would drift from the original.
        generator=torch.Generator().manual_seed(t.seed))


def train_step(trainer, params, optimizer, scheduler, scaler, batch, t: TrainingConfig,
               device: torch.device, step: int, first_bad_step: torch.Tensor,
               want_grad_norm: bool):
    """One optimizer update that reads nothing back to the host.

    Returns (loss parts, grad norm or None, first_bad_step), all on the device. A non-finite
    loss is remembered in `first_bad_step` (masked_fill with a Python scalar launches a kernel;
    building a device tensor from `step` would be a blocking copy every step).
    """
    with autocast_context(t.precision, device):
        loss, parts = trainer(batch, t.kl_weight)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    grad_norm = None
    if t.grad_clip_norm > 0 or want_grad_norm:
        scaler.unscale_(optimizer)
        max_norm = t.grad_clip_norm if t.grad_clip_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    bad_now = ~torch.isfinite(loss.detach())
    first_bad_step = first_bad_step.masked_fill(bad_now & (first_bad_step < 0), step)
    return parts, grad_norm, first_bad_step
