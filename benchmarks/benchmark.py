"""Benchmark of the data path and the training step, from the training config.

    python benchmarks/benchmark.py model=act_small data.synthetic.num_episodes=6 \
        training.batch_size=4 --steps 5
    python benchmarks/benchmark.py experiment=aloha_sim_transfer_cube data.dataset_dir=DIR \
        --steps 200
    python benchmarks/benchmark.py --make-episodes /tmp/eps --episodes 4 --length 50 \
        data.num_workers=2 --only data
    python benchmarks/benchmark.py --make-episodes /tmp/eps240 --image-size 240 320 \
        --episodes 2 --length 100 model=act model.pretrained_backbone=false \
        training.batch_size=4 --only step --steps 8     # the paper's model, quick on a CPU

``run_benchmark(overrides, options)`` measures, in one process and on one device:

1. data loader samples/s: a naive reader that reopens the HDF5 file for every sample with one
   worker (what the original ACT does) against the project's ``EpisodeDataset`` loader (preload
   or per-worker open handles, ``data.num_workers`` workers, pinned memory on CUDA, persistent
   workers, prefetch), over the same indices;
2. training step ms and samples/s: the plain fp32 eager step (default AdamW, NCHW, no compile,
   losses read with ``.item()`` every step) against the fast path as training resolves it for
   the device (``act_hydra.fast_path``; ``--fast-precision`` overrides the precision, and a
   GPU with bf16 shows bf16; ``--compile``), built by training's own ``TrainState``, both on
   the same batches already on the device. The timed steps of the two paths alternate in
   ``--rounds`` blocks, so a shared, noisy machine slows both alike: quote their ratio, and the
   spread of the per-round ratios. Then the fast step fed by the loader, with the time spent
   waiting for it;
3. memory of each path, measured during its own build and warm-up: the peak (CUDA max
   allocated; on CPU the process's peak RSS) and its growth over what was in use before;
4. FLOPs of one step (forward + backward, ``torch.utils.flop_counter.FlopCounterMode``), FLOP/s
   and MFU against the device's dense peak (H100/H200/A100 by name, or ``--peak-tflops``);
5. the loss of every step of both paths, from the same initial weights, RNG seed and batches,
   and their relative difference.

The result is a JSON-able dict; ``format_table`` prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import os
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torch.utils.flop_counter import FlopCounterMode

from act_hydra.backbone import BackboneWeightsError
from act_hydra.cli_args import positive_int
from act_hydra.compose import compose_train_config, to_train_config
from act_hydra.config import Precision, TrainConfig
from act_hydra.data import (
    EpisodeDataset,
    StepBatchSampler,
    compute_norm_stats,
    resolve_dataset_dir,
    scan_dataset,
    split_episodes,
    write_episode,
)
from act_hydra.errors import ActHydraError, ConfigError
from act_hydra.fast_path import resolve_fast_path
from act_hydra.model import ACTPolicy, count_trainable_parameters
from act_hydra.schedule import build_scheduler
from act_hydra.train import pick_device, seed_everything, to_device
from act_hydra.train_state import TrainState, build_optimizer, build_train_loader
from act_hydra.validate import validate_config

MIB = 1024**2

# Dense peak TFLOP/s by device-name substring (first match wins), from NVIDIA's data sheets.
PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    ("H200", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0}),
    ("H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.0, "fp16": 835.0}),
    ("H100", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),  # SXM
    ("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
]

# Relative loss difference accepted between the plain fp32 path and the fast path, by the fast
# path's precision. Informative only: the benchmark reports, it does not fail.
LOSS_TOLERANCE = {"fp32": 1e-3, "tf32": 1e-2, "bf16": 5e-2, "fp16": 5e-2}


@dataclass
class BenchOptions:
    steps: int = 20  # timed training steps per path
    warmup: int | None = None  # untimed steps before them (compilation happens here);
    # None: 2 on CPU, 10 on a GPU
    fast_precision: str | None = None  # None: training.precision, or bf16 on CUDA if that is fp32
    compile: bool = False  # torch.compile the fast path (also on with training.compile=true)
    peak_tflops: float | None = None  # the device's peak, for MFU where it is not known by name
    data_batches: int = 20  # timed loader batches per reader
    staged_batches: int = 16  # distinct device-resident batches the step loops cycle through
    only: str | None = None  # "data" or "step": run one half
    threads: int | None = None  # torch.set_num_threads for this process (None: leave it)
    rounds: int = 4  # the timed steps run in this many alternating plain/fast blocks per path


# ----------------------------------------------------------------------------- episodes


def make_episodes(
    out_dir: str | Path,
    num_episodes: int,
    length: int,
    height: int = 480,
    width: int = 640,
    camera_names: tuple[str, ...] = ("top",),
    state_dim: int = 14,
    seed: int = 0,
) -> Path:
    """Write ``num_episodes`` episodes of random images in the original recorder's layout
    (``episode_<i>.hdf5``, (T, H, W, 3) uint8 frames chunked one per frame), so the data
    benchmark can be reproduced anywhere. Existing episodes of that shape are reused."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(num_episodes):
        path = out / f"episode_{i}.hdf5"
        if path.exists() and _episode_matches(path, length, height, width, camera_names):
            continue
        rng = np.random.default_rng([seed, i])
        t = np.linspace(0.0, 1.0, length, dtype=np.float32)[:, None]
        qpos = np.sin(2 * np.pi * t + rng.uniform(0, 1, state_dim)).astype(np.float32)
        action = np.roll(qpos, -1, axis=0)
        images = {
            c: rng.integers(0, 256, (length, height, width, 3), dtype=np.uint8)
            for c in camera_names
        }
        write_episode(path, qpos, None, action, images, sim=True)
    return out


def _episode_matches(path: Path, length: int, height: int, width: int, cameras) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return all(
                f[f"observations/images/{c}"].shape == (length, height, width, 3) for c in cameras
            )
    except (OSError, KeyError):
        return False


# ----------------------------------------------------------------------------- data


class NaiveEpisodeReader(Dataset):
    """The original ACT's reader (act:utils.py ``EpisodicDataset.__getitem__``), over the same
    (episode, start_ts) index space as ``EpisodeDataset``: every sample opens its HDF5 file,
    reads qpos, qvel, the images and every action from start_ts on, zero-pads the actions to
    the episode length, and returns float images scaled to [0, 1] and normalised qpos/action."""

    def __init__(self, paths: list[str], lengths: np.ndarray, camera_names, norm_stats):
        self.paths = list(paths)
        self.starts = np.concatenate([[0], np.cumsum(lengths)])
        self.camera_names = list(camera_names)
        self.stats = {k: torch.from_numpy(np.asarray(v)) for k, v in norm_stats.items()}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index: int):
        ep = int(np.searchsorted(self.starts, index, side="right") - 1)
        start_ts = int(index - self.starts[ep])
        with h5py.File(self.paths[ep], "r") as root:
            is_sim = bool(root.attrs.get("sim", True))
            original_action_shape = root["/action"].shape
            episode_len = original_action_shape[0]
            qpos = root["/observations/qpos"][start_ts]
            _qvel = root["/observations/qvel"][start_ts]
            image_dict = {c: root[f"/observations/images/{c}"][start_ts] for c in self.camera_names}
            first = start_ts if is_sim else max(0, start_ts - 1)
            action = root["/action"][first:]
            action_len = episode_len - first
        padded_action = np.zeros(original_action_shape, dtype=np.float32)
        padded_action[:action_len] = action
        is_pad = np.zeros(episode_len)
        is_pad[action_len:] = 1
        all_cam_images = np.stack([image_dict[c] for c in self.camera_names], axis=0)
        image_data = torch.einsum("k h w c -> k c h w", torch.from_numpy(all_cam_images))
        image_data = image_data / 255.0
        qpos_data = torch.from_numpy(qpos).float()
        action_data = torch.from_numpy(padded_action).float()
        action_data = (action_data - self.stats["action_mean"]) / self.stats["action_std"]
        qpos_data = (qpos_data - self.stats["state_mean"]) / self.stats["state_std"]
        return image_data, qpos_data, action_data, torch.from_numpy(is_pad).bool()


def naive_loader(
    dataset: NaiveEpisodeReader, batch_size: int, seed: int, device: torch.device
) -> DataLoader:
    """The original's DataLoader settings: one worker, prefetch_factor=1, pinned memory."""
    return DataLoader(
        dataset,
        batch_sampler=StepBatchSampler(len(dataset), batch_size, seed),
        num_workers=1,
        prefetch_factor=1,
        pin_memory=device.type == "cuda",
    )


def loader_throughput(
    loader: DataLoader,
    batch_size: int,
    batches: int,
    warmup: int,
) -> dict[str, float]:
    """Samples/s over ``batches`` batches after ``warmup`` (which absorb worker start-up; at
    least one per worker, so no backlog of finished batches inflates the timed window)."""
    it = iter(loader)
    t0 = time.perf_counter()
    for _ in range(warmup):
        next(it)
    t1 = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - t1
    del it
    return {
        "samples_per_s": batches * batch_size / elapsed,
        "ms_per_batch": 1e3 * elapsed / batches,
        "warmup_s": t1 - t0,
        "timed_batches": batches,
        "warmup_batches": warmup,
    }


def benchmark_data(
    cfg: TrainConfig, info, train_ids: list[int], norm_stats, device, opts: BenchOptions
) -> dict[str, Any]:
    t, d = cfg.training, cfg.data
    cams = list(d.camera_names)
    readers: dict[str, dict[str, Any]] = {}

    paths = [str(info.episode_paths[e]) for e in train_ids]
    lengths = np.array([info.episode_lengths[e] for e in train_ids], np.int64)
    naive = NaiveEpisodeReader(paths, lengths, cams, norm_stats)
    readers["naive"] = {
        "label": "naive: reopen HDF5 per sample, 1 worker",
        "num_workers": 1,
        "pin_memory": device.type == "cuda",
        "setup_s": 0.0,
        **loader_throughput(
            naive_loader(naive, t.batch_size, t.seed, device),
            t.batch_size,
            opts.data_batches,
            warmup=1,
        ),
    }

    variants = [("project", d.preload_max_mib)]
    t0 = time.perf_counter()
    dataset = EpisodeDataset(info, train_ids, cfg.model.chunk_size, cams, d.preload_max_mib)
    setup = time.perf_counter() - t0
    if dataset.preloaded:  # also show the path that larger datasets take
        variants.append(("project_handles", 0))
    for name, preload_mib in variants:
        if name != "project":
            t0 = time.perf_counter()
            dataset = EpisodeDataset(info, train_ids, cfg.model.chunk_size, cams, preload_mib)
            setup = time.perf_counter() - t0
        how = "preload in RAM" if dataset.preloaded else "open handles per worker"
        loader = build_train_loader(dataset, cfg.training, cfg.data.num_workers, device)
        readers[name] = {
            "label": f"EpisodeDataset, {how}, {d.num_workers} workers",
            "preloaded": dataset.preloaded,
            "num_workers": d.num_workers,
            "pin_memory": loader.pin_memory,
            "persistent_workers": loader.persistent_workers,
            "prefetch_factor": loader.prefetch_factor,
            "setup_s": setup,
            **loader_throughput(
                loader, t.batch_size, opts.data_batches, warmup=max(1, d.num_workers)
            ),
        }
        del loader
        dataset.close()
    base = readers["naive"]["samples_per_s"]
    for r in readers.values():
        r["speedup_vs_naive"] = r["samples_per_s"] / base
    h, w = info.image_shapes[cams[0]][:2]
    return {
        "batch_size": t.batch_size,
        "image_shape": [len(cams), 3, h, w],
        "train_episodes": len(train_ids),
        "train_samples": int(lengths.sum()),
        "readers": readers,
    }


# ----------------------------------------------------------------------------- memory, FLOPs


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {
            "peak_memory_mib": torch.cuda.max_memory_allocated(device) / MIB,
            "memory_kind": "cuda max allocated",
        }
    with contextlib.suppress(OSError, ValueError, StopIteration):
        line = next(
            x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:")
        )
        return {"peak_memory_mib": int(line.split()[1]) / 1024, "memory_kind": "CPU peak RSS"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return {
        "peak_memory_mib": rss / (MIB if sys.platform == "darwin" else 1024),
        "memory_kind": "CPU peak RSS (process lifetime)",
    }


def current_memory_mib(device: torch.device) -> float:
    """Memory in use now: CUDA allocated, or the process's resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / MIB
    with contextlib.suppress(OSError, ValueError, StopIteration):
        line = next(
            x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:")
        )
        return int(line.split()[1]) / 1024
    return 0.0


def count_step_flops(policy: ACTPolicy, batch: dict[str, torch.Tensor], kl_weight: float) -> int:
    """FLOPs of one forward + backward on ``batch`` (a throw-away copy of the weights)."""
    model = copy.deepcopy(policy).to(batch["action"].device).train()
    with FlopCounterMode(display=False) as counter:
        loss, _ = model(batch, kl_weight)
        loss.backward()
    return int(counter.get_total_flops())


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError, StopIteration):
        line = next(
            x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model name")
        )
        return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or device.type


def peak_tflops(device: torch.device, precision: str, override: float | None) -> float | None:
    if override:
        return float(override)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_TFLOPS:
        if key in name:
            return peaks[precision]
    return None


# ----------------------------------------------------------------------------- steps


@contextlib.contextmanager
def tf32_flags(precision: str):
    """TF32 on for training.precision=tf32 (as train.py sets it), restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if precision == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def plain_step(
    policy,
    optimizer,
    scheduler,
    batch,
    kl_weight: float,
    grad_clip_norm: float,
) -> dict[str, float]:
    """The original ACT's step: fp32 eager, losses read back (a host sync) every step."""
    loss, parts = policy(batch, kl_weight)
    loss.backward()
    if grad_clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return {k: v.item() for k, v in parts.items()}


def _timing(elapsed: float, steps: int, batch_size: int) -> dict[str, float]:
    return {
        "ms_per_step": 1e3 * elapsed / steps,
        "samples_per_s": steps * batch_size / elapsed,
        "timed_steps": steps,
    }


class PlainPath:
    """The original's step on its own copy of the weights: default AdamW, NCHW, eager."""

    precision = "fp32"

    def __init__(self, policy0: ACTPolicy, cfg: TrainConfig, device):
        self.t = cfg.training
        self.policy = copy.deepcopy(policy0).to(device).train()
        self.optimizer = build_optimizer(self.policy, self.t, fused=False)
        self.scheduler = build_scheduler(self.optimizer, cfg.scheduler, self.t.lr, self.t.num_steps)

    def __call__(self, batch) -> float:
        return plain_step(
            self.policy,
            self.optimizer,
            self.scheduler,
            batch,
            self.t.kl_weight,
            self.t.grad_clip_norm,
        )["loss"]

    def describe(self) -> dict[str, Any]:
        return {
            "label": "plain fp32 eager, .item() every step",
            "precision": "fp32",
            "fused_adamw": False,
            "channels_last": False,
            "compiled": False,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32
            if self.policy.state_mean.is_cuda
            else False,
        }


class FastPath:
    """Training's own TrainState (one process) with this path's precision and compile flag."""

    def __init__(
        self, policy0: ACTPolicy, cfg: TrainConfig, device, precision: str, compile_: bool
    ):
        self.precision = precision
        fast_cfg = copy.deepcopy(cfg)
        fast_cfg.training.precision = Precision(precision)
        fast_cfg.training.compile = compile_
        self.state = TrainState.build(fast_cfg, copy.deepcopy(policy0), device)
        self.state.policy.train()

    @property
    def first_bad_step(self) -> torch.Tensor:
        return self.state.first_bad_step

    def __call__(self, batch) -> torch.Tensor:
        parts, _ = self.state.train_step(batch)
        return parts["loss"]

    def describe(self) -> dict[str, Any]:
        on = self.state.features
        features = (
            [self.precision]
            + [
                name
                for name, key in (
                    ("fused AdamW", "fused_adamw"),
                    ("channels-last", "channels_last"),
                    ("compiled", "compiled"),
                )
                if on[key]
            ]
            + ["no host sync"]
        )
        return {"label": "fast: " + ", ".join(features), "precision": self.precision, **on}


@dataclass
class _Run:
    """One path's progress through the benchmark: its RNG stream, losses and timed seconds."""

    path: Any
    rng: tuple
    losses: list = dataclasses.field(default_factory=list)
    elapsed: float = 0.0
    block_s: list = dataclasses.field(default_factory=list)


def _rng_state(device) -> tuple:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple, device) -> None:
    torch.set_rng_state(state[0])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state[1], device)


def build_and_warm_up(make, staged: list, device, opts: BenchOptions, seed: int, flops=None):
    """Build a path and run its untimed warm-up steps (compilation happens here), alone, so its
    memory is its own: the peak during build and warm-up, and the growth over the memory in use
    before it was built (weights, gradients, optimizer state, activations). The first warm-up
    step also counts the FLOPs of a step when ``flops`` is a list to append them to."""
    _sync(device)
    before = current_memory_mib(device)
    reset_peak_memory(device)
    w0 = time.perf_counter()
    path = make()
    torch.manual_seed(seed)  # every path draws dropout and the CVAE's z from the same stream
    losses = []
    for step in range(opts.warmup):
        counting = step == 0 and flops is not None
        counter = FlopCounterMode(display=False) if counting else contextlib.nullcontext()
        with counter as fc, tf32_flags(path.precision):
            losses.append(path(staged[step % len(staged)]))
        if counting:
            flops.append(int(fc.get_total_flops()))
    _sync(device)
    memory = peak_memory(device)
    memory["memory_growth_mib"] = max(0.0, memory["peak_memory_mib"] - before)
    return _Run(path, _rng_state(device), losses), {
        "warmup_s": time.perf_counter() - w0,
        **memory,
    }


def time_interleaved(runs: dict[str, _Run], staged: list, device, opts: BenchOptions) -> None:
    """The timed steps of every path in alternating blocks (plain, fast, fast, plain, ...), so
    load from other processes on a shared machine falls on all paths alike. Each block is
    bracketed by a device synchronisation; each path keeps its own RNG stream across blocks."""
    rounds = max(1, min(opts.rounds, opts.steps))
    sizes = [opts.steps // rounds + (r < opts.steps % rounds) for r in range(rounds)]
    names = list(runs)
    for r, size in enumerate(sizes):
        for name in names if r % 2 == 0 else names[::-1]:
            run = runs[name]
            _set_rng_state(run.rng, device)
            with tf32_flags(run.path.precision):
                _sync(device)
                start = time.perf_counter()
                for _ in range(size):
                    index = len(run.losses)
                    run.losses.append(run.path(staged[index % len(staged)]))
                _sync(device)
                block = time.perf_counter() - start
            run.elapsed += block
            run.block_s.append(block)
            run.rng = _rng_state(device)


def _loss_list(losses: list) -> list[float]:
    return [float(v) for v in losses]


def run_fast_loader(
    fast: FastPath, cfg: TrainConfig, loader: DataLoader, device, opts: BenchOptions
) -> dict[str, Any]:
    """The fast step fed by the training loader, as in train.py; time blocked in next()."""
    t = cfg.training
    batches = iter(loader)
    with tf32_flags(fast.precision):
        if cfg.data.num_workers > 0:  # the path is warm: this only starts the workers
            fast(to_device(next(batches), device))
        _sync(device)
        wait = 0.0
        start = time.perf_counter()
        for _ in range(opts.steps):
            w = time.perf_counter()
            host_batch = next(batches)
            wait += time.perf_counter() - w
            fast(to_device(host_batch, device))
        _sync(device)
        elapsed = time.perf_counter() - start
    del batches
    workers = cfg.data.num_workers
    return {
        **fast.describe(),
        "label": f"fast, fed by the loader ({workers} workers)",
        "num_workers": workers,
        "data_wait_ms_per_step": 1e3 * wait / opts.steps,
        **_timing(elapsed, opts.steps, t.batch_size),
    }


def compare_losses(plain: list[float], fast: list[float], precision: str) -> dict[str, Any]:
    """Per-step relative differences, and the verdict on the mean loss of the last fifth of the
    steps: per-step losses also differ by dropout noise wherever the two paths draw different
    random numbers (compiled graphs use Inductor's RNG; on CUDA the attention kernel, hence
    its dropout mask, depends on the dtype), which the mean over a window averages out."""
    a, b = np.asarray(plain, np.float64), np.asarray(fast, np.float64)
    rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-12)
    window = max(1, len(a) // 5)  # the mean of the last fifth: robust to per-step noise
    tail = abs(a[-window:].mean() - b[-window:].mean()) / max(abs(a[-window:].mean()), 1e-12)
    tol = LOSS_TOLERANCE[precision]
    finite = bool(np.isfinite(a).all() and np.isfinite(b).all())
    return {
        "steps": len(a),
        "precision": precision,
        "plain": a.tolist(),
        "fast": b.tolist(),
        "max_rel_diff": float(rel.max()),
        "mean_rel_diff": float(rel.mean()),
        "tail_window": window,
        "tail_mean_rel_diff": float(tail),
        "tolerance": tol,
        "finite": finite,
        "within_tolerance": finite and float(tail) <= tol,
    }


def _flop_rates(result: dict[str, Any], flops: int, device, override) -> None:
    per_s = flops * result["samples_per_s"] / result["batch_size"]
    peak = peak_tflops(device, result["precision"], override)
    result["tflops_per_s"] = per_s / 1e12
    result["peak_tflops"] = peak
    result["mfu"] = per_s / (peak * 1e12) if peak else None


def default_fast_precision(t, device, requested: str | None) -> str:
    """The fast path's precision: --fast-precision, else what training resolves for the device
    (act_hydra.fast_path); a GPU with bf16 shows bf16 where training would keep fp32."""
    if requested:
        return requested
    resolved = resolve_fast_path(t, device, warn=False).precision
    if resolved == "fp32" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return str(resolved)


def benchmark_steps(
    cfg: TrainConfig, info, train_ids, norm_stats, device, opts: BenchOptions
) -> dict[str, Any]:
    t, m = cfg.training, cfg.model
    cams = list(cfg.data.camera_names)
    dataset = EpisodeDataset(info, train_ids, m.chunk_size, cams, cfg.data.preload_max_mib)
    sampler = StepBatchSampler(len(dataset), t.batch_size, t.seed)
    n_staged = max(1, min(opts.warmup + opts.steps, opts.staged_batches))
    staged = [
        to_device(default_collate([dataset[i] for i in sampler.batch(s)]), device)
        for s in range(n_staged)
    ]
    _sync(device)

    staged_mib = sum(v.numel() * v.element_size() for b in staged for v in b.values()) / MIB

    # The initial weights stay on the host; each path trains its own copy on the device.
    seed_everything(t.seed)
    notes = []
    try:
        policy0 = ACTPolicy(m, info.state_dim, info.action_dim, norm_stats)
    except BackboneWeightsError:
        m = copy.deepcopy(m)
        m.pretrained_backbone = False
        seed_everything(t.seed)
        policy0 = ACTPolicy(m, info.state_dim, info.action_dim, norm_stats)
        notes.append(
            "ImageNet weights not cached: the backbone starts from random weights "
            "(step time and FLOPs are the same)"
        )

    precision = default_fast_precision(t, device, opts.fast_precision)
    counted: list[int] = []
    plain_run, plain_warm = build_and_warm_up(
        lambda: PlainPath(policy0, cfg, device), staged, device, opts, t.seed, counted
    )
    if device.type == "cuda":
        torch.cuda.empty_cache()
    fast_run, fast_warm = build_and_warm_up(
        lambda: FastPath(policy0, cfg, device, precision, opts.compile or t.compile),
        staged,
        device,
        opts,
        t.seed,
    )
    flops = counted[0] if counted else count_step_flops(policy0, staged[0], t.kl_weight)
    runs = {"plain": plain_run, "fast": fast_run}
    time_interleaved(runs, staged, device, opts)
    fast = fast_run.path
    bad = int(fast.first_bad_step)
    plain = {
        **plain_run.path.describe(),
        **plain_warm,
        **_timing(plain_run.elapsed, opts.steps, t.batch_size),
    }
    fast_result = {
        **fast.describe(),
        **fast_warm,
        "first_non_finite_step": bad if bad >= 0 else None,
        **_timing(fast_run.elapsed, opts.steps, t.batch_size),
        # Plain over fast time of each alternated block: the spread shows the machine's noise.
        "speedup_per_round": [
            p / f for p, f in zip(plain_run.block_s, fast_run.block_s, strict=True)
        ],
    }
    del plain_run, staged
    loader = build_train_loader(dataset, cfg.training, cfg.data.num_workers, device)
    loader_result = run_fast_loader(fast, cfg, loader, device, opts)
    del loader
    dataset.close()

    results = {"plain": plain, "fast": fast_result, "fast_loader": loader_result}
    for r in results.values():
        r["batch_size"] = t.batch_size
        _flop_rates(r, flops, device, opts.peak_tflops)
    base = plain["samples_per_s"]
    for r in results.values():
        r["speedup_vs_plain"] = r["samples_per_s"] / base
    loss_check = compare_losses(
        _loss_list(runs["plain"].losses), _loss_list(runs["fast"].losses), precision
    )
    if fast.state.features["compiled"]:
        notes.append(
            "the compiled fast path draws dropout and z from Inductor's RNG, not the "
            "eager one: its per-step losses differ from plain by dropout noise; compare "
            "the windowed mean"
        )
    loader_result["waits_on_data"] = (
        loader_result["ms_per_step"] > 1.05 * fast_result["ms_per_step"]
    )
    return {
        "batch_size": t.batch_size,
        "warmup_steps": opts.warmup,
        "timed_steps": opts.steps,
        "rounds": len(fast_result["speedup_per_round"]),
        "staged_batches": n_staged,
        "staged_batches_mib": staged_mib,
        "trainable_parameters": count_trainable_parameters(policy0),
        "pretrained_backbone": m.pretrained_backbone,
        "flops_per_step": flops,
        "flops_per_sample": flops / t.batch_size,
        "flop_counter": "torch.utils.flop_counter.FlopCounterMode, forward + backward",
        "fast_path": resolve_fast_path(t, device, warn=False).as_dict(),
        "paths": results,
        "loss_check": loss_check,
        "notes": notes,
    }


# ----------------------------------------------------------------------------- driver


def run_benchmark(overrides: list[str], opts: BenchOptions | None = None) -> dict[str, Any]:
    """Compose the training config from ``overrides`` and run the benchmark; returns the
    JSON-able result. Raises an ActHydraError (exit code 2) for unusable input."""
    opts = copy.copy(opts or BenchOptions())
    if opts.steps < 1 or (opts.warmup or 0) < 0 or opts.data_batches < 1:
        raise ConfigError("--steps and --data-batches must be >= 1 and --warmup >= 0")
    if opts.only not in (None, "data", "step"):
        raise ConfigError(f"--only={opts.only!r}: expected data or step")
    cfg = to_train_config(compose_train_config(list(overrides)))
    validate_config(cfg)
    t = cfg.training
    device = pick_device(t.device, None)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if opts.warmup is None:
        opts.warmup = 10 if device.type == "cuda" else 2
    seed_everything(t.seed)

    dataset_dir = resolve_dataset_dir(cfg.data)
    info = scan_dataset(dataset_dir, list(cfg.data.camera_names))
    train_ids, _ = split_episodes(
        len(info.episode_paths), cfg.data.train_ratio, cfg.data.split_seed
    )
    norm_stats = compute_norm_stats(info, train_ids)
    h, w = info.image_shapes[cfg.data.camera_names[0]][:2]
    result: dict[str, Any] = {
        "overrides": list(overrides),
        "options": asdict(opts),
        "environment": {
            "device": str(device),
            "device_name": device_name(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "config": {
            "model": cfg.model.name,
            "dim_model": cfg.model.dim_model,
            "chunk_size": cfg.model.chunk_size,
            "batch_size": t.batch_size,
            "cameras": list(cfg.data.camera_names),
            "image_hw": [h, w],
            "dataset_dir": str(dataset_dir),
            "num_workers": cfg.data.num_workers,
            "preload_max_mib": cfg.data.preload_max_mib,
            "precision": t.precision,
            "compile": t.compile,
        },
    }
    if opts.only in (None, "data"):
        result["data"] = benchmark_data(cfg, info, train_ids, norm_stats, device, opts)
    if opts.only in (None, "step"):
        result["step"] = benchmark_steps(cfg, info, train_ids, norm_stats, device, opts)
    return result


def _fmt(value, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def format_table(result: dict[str, Any]) -> str:
    env, c = result["environment"], result["config"]
    lines = [
        f"act-hydra benchmark: {env['device']} ({env['device_name']}), torch "
        f"{env['torch']}, {env['cpu_count']} CPUs, {env['torch_threads']} torch threads",
        f"model {c['model']} (dim {c['dim_model']}, chunk {c['chunk_size']}), batch "
        f"{c['batch_size']}, cameras {c['cameras']} at {c['image_hw'][0]}x"
        f"{c['image_hw'][1]}",
    ]
    if "data" in result:
        d = result["data"]
        first = next(iter(d["readers"].values()))
        lines += [
            "",
            f"data loader: {d['train_samples']} samples in {d['train_episodes']} "
            f"episodes, {first['timed_batches']} timed batches of {d['batch_size']}",
            f"  {'reader':<52} {'samples/s':>10} {'ms/batch':>9} {'vs naive':>9}",
        ]
        for r in d["readers"].values():
            lines.append(
                f"  {r['label']:<52} {r['samples_per_s']:>10.1f} "
                f"{r['ms_per_batch']:>9.1f} {r['speedup_vs_naive']:>8.2f}x"
            )
    if "step" in result:
        s = result["step"]
        labels = {
            key: r["label"]
            if key != "fast_loader"
            else f"{r['label']}: waits {r['data_wait_ms_per_step']:.1f} ms/step"
            for key, r in s["paths"].items()
        }
        width = max(len(x) for x in labels.values())
        lines += [
            "",
            f"training step: {s['timed_steps']} timed steps after {s['warmup_steps']} "
            f"warm-up, batch {s['batch_size']}, {s['trainable_parameters']:,} params, "
            f"{s['flops_per_step'] / 1e9:.2f} GFLOP/step (fwd+bwd, counted); plain and fast "
            f"alternate in {s.get('rounds', 1)} rounds",
            f"  {'path':<{width}} {'ms/step':>8} {'samples/s':>10} {'speedup':>8} "
            f"{'peak MiB':>9} {'+MiB':>7} {'TFLOP/s':>8} {'MFU':>6}",
        ]
        for key, r in s["paths"].items():
            mem = _fmt(r.get("peak_memory_mib"), ".0f", "-")
            growth = _fmt(r.get("memory_growth_mib"), ".0f", "-")
            mfu = _fmt(r["mfu"] and 100 * r["mfu"], ".1f") + ("%" if r["mfu"] else "")
            lines.append(
                f"  {labels[key]:<{width}} {r['ms_per_step']:>8.1f} "
                f"{r['samples_per_s']:>10.1f} {r['speedup_vs_plain']:>7.2f}x {mem:>9} "
                f"{growth:>7} {r['tflops_per_s']:>8.3f} {mfu:>6}"
            )
        rounds = s["paths"]["fast"].get("speedup_per_round") or []
        if rounds:
            lines.append(
                "  fast vs plain per round: "
                + " ".join(f"{x:.2f}x" for x in rounds)
                + f" (min {min(rounds):.2f}x, max {max(rounds):.2f}x)"
            )
        mem_kind = s["paths"]["plain"]["memory_kind"] + (
            f", includes {s['staged_batches_mib']:.0f} MiB of staged batches"
            if s["paths"]["plain"]["memory_kind"].startswith("cuda")
            else ""
        )
        peaks = {
            f"{r['peak_tflops']:g} TFLOP/s ({r['precision']})"
            for r in s["paths"].values()
            if r["peak_tflops"]
        }
        lines.append(
            f"  peak memory: {mem_kind}, during the path's build and warm-up; +MiB: its "
            "growth over the memory in use before; MFU: counted FLOP/s over the dense peak of "
            "each path's precision, "
            + (", ".join(sorted(peaks)) if peaks else "n/a (unknown device peak: --peak-tflops)")
        )
        lc = s["loss_check"]
        verdict = "within" if lc["within_tolerance"] else "OUTSIDE"
        lines += [
            "",
            f"loss check: {lc['steps']} steps from the same init, seed and batches, "
            f"plain fp32 vs fast {lc['precision']}",
            f"  per-step rel diff: max {lc['max_rel_diff']:.2e}, mean "
            f"{lc['mean_rel_diff']:.2e}; mean loss of the last {lc['tail_window']} steps: "
            f"rel diff {lc['tail_mean_rel_diff']:.2e} ({verdict} tolerance "
            f"{lc['tolerance']:g})",
            "  loss plain: "
            + " ".join(f"{v:.4f}" for v in lc["plain"][:8])
            + (" ..." if lc["steps"] > 8 else ""),
            "  loss fast:  "
            + " ".join(f"{v:.4f}" for v in lc["fast"][:8])
            + (" ..." if lc["steps"] > 8 else ""),
        ]
        lines += [f"note: {n}" for n in s["notes"]]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/benchmark.py",
        description="Data-loader and training-step benchmark; takes the training overrides.",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for training")
    parser.add_argument(
        "--steps",
        type=int,
        default=BenchOptions.steps,
        help="timed training steps per path (the loss check covers warm-up plus these)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        help="untimed steps first, compilation included (default: 2 on CPU, 10 on a GPU)",
    )
    parser.add_argument(
        "--data-batches",
        type=int,
        default=BenchOptions.data_batches,
        help="timed batches per data reader",
    )
    parser.add_argument(
        "--fast-precision",
        choices=[p.value for p in Precision],
        help="precision of the fast path (default: training.precision, or bf16 "
        "on CUDA when that is fp32)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast path")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="device peak TFLOP/s for MFU (default: known GPUs by name)",
    )
    parser.add_argument(
        "--staged-batches",
        type=int,
        default=BenchOptions.staged_batches,
        help="distinct batches kept on the device for the step loops",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=BenchOptions.rounds,
        help="alternating plain/fast blocks the timed steps are split into (noise shows as "
        "the spread of the per-round speedups)",
    )
    parser.add_argument("--only", choices=["data", "step"], help="run one half")
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="torch intra-op threads of the main process, >= 1 (default: torch's)",
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument(
        "--make-episodes",
        type=Path,
        metavar="DIR",
        help="first write random episodes to DIR (--image-size) and benchmark them",
    )
    parser.add_argument(
        "--image-size",
        type=positive_int,
        nargs=2,
        default=[480, 640],
        metavar=("H", "W"),
        help="with --make-episodes: the camera's height and width (default 480 640; "
        "240 320 makes CPU runs of the paper's model quick)",
    )
    parser.add_argument("--episodes", type=int, default=4, help="with --make-episodes")
    parser.add_argument("--length", type=int, default=50, help="with --make-episodes")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.make_episodes is not None:
        t0 = time.perf_counter()
        cams = ("top",)
        h, w = args.image_size
        make_episodes(args.make_episodes, args.episodes, args.length, h, w, camera_names=cams)
        print(
            f"episodes: {args.episodes} x {args.length} steps of {h}x{w} in "
            f"{args.make_episodes} ({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
        )
        if not any(o.startswith(("data=", "experiment=", "+experiment=")) for o in overrides):
            overrides.insert(0, "data=aloha_hdf5")
        if not any(o.startswith("data.dataset_dir=") for o in overrides):
            overrides.append(f"data.dataset_dir={args.make_episodes}")
    opts = BenchOptions(
        steps=args.steps,
        warmup=args.warmup,
        fast_precision=args.fast_precision,
        compile=args.compile,
        peak_tflops=args.peak_tflops,
        data_batches=args.data_batches,
        staged_batches=args.staged_batches,
        only=args.only,
        threads=args.threads,
        rounds=args.rounds,
    )
    try:
        result = run_benchmark(overrides, opts)
    except ActHydraError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(format_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    return 0


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
