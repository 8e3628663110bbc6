"""One run on two processes with torchrun (CPU, gloo): gradients synchronised, rank 0 writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.helpers import ROOT, TINY, read_jsonl

# Deterministic model (no dropout, no CVAE sampling) so two ranks x batch B must match one
# process x batch 2B: the sampler gives rank r the slice r of the same global batch.
DETERMINISTIC = [
    "model.dropout=0",
    "model.use_vae=false",
    "training.num_steps=3",
    "training.eval_every=3",
    "training.save_every=3",
]
# Both runs compute the same mean gradient, summed in a different order (2 + 2 samples
# averaged across ranks vs 4 samples at once): float32 rounding, a few ulps (1.2e-7 each) per
# element relative to its size.
GRAD_RTOL = 1e-5


def torchrun(run_dir: Path, *overrides: str, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "act_hydra.train",
        *TINY,
        *overrides,
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["model"]


def zero_by_construction(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Mask of the elements whose gradient is zero by construction, so that both runs hold
    float noise there, which Adam's normalised update (g / sqrt(v)) turns into steps of up to
    lr each, in either direction:

    - attention key biases: b_k adds the same q.b_k to every logit of a query, which the
      softmax cancels;
    - the first decoder layer's self-attention input projections: the decoder input is zeros,
      so every value is b_v, the output is b_v whatever the attention weights, and W_q, W_k,
      W_v, b_q and b_k get no gradient.
    test_zero_by_construction_holds checks both claims on a real backward pass.
    """
    mask = torch.zeros_like(tensor, dtype=torch.bool)
    if name.endswith("decoder.layers.0.self_attn.in_proj_weight"):
        mask[:] = True
    elif name.endswith("decoder.layers.0.self_attn.in_proj_bias"):
        mask[: 2 * len(tensor) // 3] = True
    elif name.endswith("in_proj_bias"):
        mask[len(tensor) // 3 : 2 * len(tensor) // 3] = True
    return mask


def test_two_ranks_match_one_process_with_the_global_batch(tmp_path):
    ddp = torchrun(
        tmp_path / "ddp",
        *DETERMINISTIC,
        "training.batch_size=2",
        "logger=wandb",
        "logger.mode=offline",
    )
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "act_hydra.train",
            *TINY,
            *DETERMINISTIC,
            "training.batch_size=4",
            f"hydra.run.dir={tmp_path / 'single'}",
        ],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-4000:]

    # The global gradient of every update: rank 0 clips (and logs the norm of) the gradient
    # DDP has already averaged across ranks.
    rows = {
        name: [r for r in read_jsonl(tmp_path / name / "metrics.jsonl") if "grad_norm" in r]
        for name in ("ddp", "single")
    }
    norms = {
        name: torch.tensor([r["grad_norm"] for r in rows[name]], dtype=torch.float64)
        for name in rows
    }
    torch.testing.assert_close(norms["ddp"], norms["single"], rtol=GRAD_RTOL, atol=0)

    # The weights after 3 AdamW updates (lr 1e-4). Adam moves every element by about lr per
    # update whatever the gradient's size, so a gradient that differed for real (no averaging
    # across ranks) would show as differences of order lr. Rounding noise moves an element by
    # lr * e / (|g| + eps) for a gradient error e: negligible unless |g| is itself near the
    # noise, which by construction holds for the excluded elements, and by chance for a few
    # others (6e-7 = 0.006 lr was the largest seen). ATOL = lr / 10 separates the two.
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    assert a.keys() == b.keys()
    for name in a:
        keep = ~zero_by_construction(name, a[name])
        torch.testing.assert_close(a[name][keep], b[name][keep], rtol=0, atol=1e-5)

    # Rank 0 alone wrote the metrics (each step once) and the one W&B run.
    assert [r["step"] for r in rows["ddp"]] == [0, 1, 2]
    runs = list((tmp_path / "ddp" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs


def test_zero_by_construction_holds(compose_train):
    """The excluded elements' gradients are float noise: under 1e-6 of the largest gradient of
    the same tensor on a real backward pass (the others are not)."""
    from act_hydra.compose import to_train_config
    from act_hydra.model import ACTPolicy

    cfg = to_train_config(compose_train([*TINY, *DETERMINISTIC]))
    torch.manual_seed(0)
    policy = ACTPolicy(
        cfg.model,
        14,
        14,
        {
            k: torch.zeros(14) if "mean" in k else torch.ones(14)
            for k in ("state_mean", "state_std", "action_mean", "action_std")
        },
    )
    k = cfg.model.chunk_size
    batch = {
        "observation.state": torch.randn(4, 14),
        "observation.images": torch.randint(0, 255, (4, 1, 3, 32, 32), dtype=torch.uint8),
        "action": torch.randn(4, k, 14),
        "action_is_pad": torch.zeros(4, k, dtype=torch.bool),
    }
    loss, _ = policy(batch, cfg.training.kl_weight)
    loss.backward()
    largest = max(p.grad.abs().max() for p in policy.parameters() if p.grad is not None)
    for name, param in policy.named_parameters():
        mask = zero_by_construction(name, param)
        if mask.any():
            assert param.grad[mask].abs().max() < 1e-6 * largest, name
