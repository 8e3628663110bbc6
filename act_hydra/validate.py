"""Range and consistency rules that types alone cannot express.

Runs on the composed config before any side effect (no dataset generation, no model, no
checkpoint, no W&B). Every message names the key, the value, the rule and a fix in Hydra
override syntax, and all problems are reported at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import math

from omegaconf import DictConfig, OmegaConf

from act_hydra.config import (
    AlohaSimConfig,
    DataConfig,
    ModelConfig,
    SchedulerConfig,
    SchedulerName,
    SyntheticTaskConfig,
    TrainConfig,
    TrainingConfig,
)
from act_hydra.errors import ConfigError

# Closed sets (precision, scheduler, logger, activation, backbone) are Enums in the schema and
# fail at composition; the device is open-ended (cuda:N), so it is checked here.
DEVICES = ("auto", "cpu", "cuda", "mps")
MIN_IMAGE_SIDE = 32  # ResNet's total stride: smaller images leave no feature map
MAX_SIM_IMAGE_SIDE = 2048
MAX_SEED = 2**32 - 1


def _problem(key: str, value, rule: str, fix: str) -> str:
    return f"{key}={value!r} is invalid: {rule}. Fix: {fix}."


class Problems(list):
    """Broken rules, one message each."""

    def check(self, ok: bool, key: str, value, rule: str, fix: str) -> None:
        if not ok:
            self.append(_problem(key, value, rule, fix))


def collect_problems(cfg: TrainConfig) -> list[str]:
    """Every broken rule of the composed config, in key order."""
    problems = Problems()
    check_training(problems, cfg.training, cfg.data)
    check_model(problems, cfg.model)
    check_data(problems, cfg.data)
    check_scheduler(problems, cfg.scheduler, cfg.training)
    return list(problems)


def check_training(problems: Problems, t: TrainingConfig, d: DataConfig) -> None:
    problems.check(
        math.isfinite(t.lr) and t.lr > 0,
        "training.lr",
        t.lr,
        "the learning rate must be a finite number > 0",
        "pass training.lr=1e-5",
    )
    problems.check(
        math.isfinite(t.lr_backbone) and t.lr_backbone >= 0,
        "training.lr_backbone",
        t.lr_backbone,
        "the backbone learning rate must be a finite number >= 0 (0 freezes the backbone)",
        "pass training.lr_backbone=1e-5",
    )
    problems.check(
        math.isfinite(t.weight_decay) and t.weight_decay >= 0,
        "training.weight_decay",
        t.weight_decay,
        "weight decay must be a finite number >= 0",
        "pass training.weight_decay=1e-4",
    )
    problems.check(
        t.batch_size >= 1,
        "training.batch_size",
        t.batch_size,
        "the batch size must be >= 1",
        "pass training.batch_size=8",
    )
    problems.check(
        t.num_steps >= 1,
        "training.num_steps",
        t.num_steps,
        "the number of optimizer updates must be >= 1",
        "pass training.num_steps=1000",
    )
    check_seed(problems, "training.seed", t.seed)
    problems.check(
        math.isfinite(t.kl_weight) and t.kl_weight >= 0,
        "training.kl_weight",
        t.kl_weight,
        "the KL weight must be a finite number >= 0",
        "pass training.kl_weight=10",
    )
    problems.check(
        math.isfinite(t.grad_clip_norm) and t.grad_clip_norm >= 0,
        "training.grad_clip_norm",
        t.grad_clip_norm,
        "the clipping norm must be a finite number >= 0 (0 disables clipping)",
        "pass training.grad_clip_norm=10",
    )
    for key in ("log_every", "eval_every", "save_every", "val_batches"):
        value = getattr(t, key)
        problems.check(
            value >= 1, f"training.{key}", value, "it must be >= 1", f"pass training.{key}=100"
        )
    check_device(problems, "training.device", t.device)
    problems.check(
        t.num_threads >= 0,
        "training.num_threads",
        t.num_threads,
        "it must be >= 0 (0: torch's default, one thread per core)",
        "pass training.num_threads=1",
    )
    problems.check(
        t.resume.strip() != "",
        "training.resume",
        t.resume,
        "it must be auto, never or the path of a checkpoint",
        "pass training.resume=auto",
    )

    problems.check(
        t.eval_rollouts_every >= 0,
        "training.eval_rollouts_every",
        t.eval_rollouts_every,
        "it must be >= 0 (0 turns closed-loop evaluation off)",
        "pass training.eval_rollouts_every=500",
    )
    problems.check(
        t.eval_rollouts_episodes >= 1,
        "training.eval_rollouts_episodes",
        t.eval_rollouts_episodes,
        "it must be >= 1",
        "pass training.eval_rollouts_episodes=20",
    )
    problems.check(
        t.eval_rollouts_every == 0 or d.synthetic is not None or d.sim is not None,
        "training.eval_rollouts_every",
        t.eval_rollouts_every,
        "closed-loop evaluation needs "
        "a simulator (data=synthetic or data=aloha_sim); recorded robot data has none",
        "pass training.eval_rollouts_every=0 for recorded data",
    )


def check_model(problems: Problems, m: ModelConfig) -> None:
    problems.check(
        m.chunk_size >= 1,
        "model.chunk_size",
        m.chunk_size,
        "the action chunk must hold at least one action",
        "pass model.chunk_size=100",
    )
    problems.check(
        m.dim_model >= 4
        and m.n_heads >= 1
        and m.dim_model % max(m.n_heads, 1) == 0
        and m.dim_model % 4 == 0,
        "model.dim_model",
        m.dim_model,
        f"it must be a positive multiple of model.n_heads={m.n_heads} and of 4 (the 2D sine "
        "position embedding splits it into x/y sine/cosine quarters)",
        "pass model.dim_model=512 model.n_heads=8",
    )
    problems.check(
        m.dim_feedforward >= 1,
        "model.dim_feedforward",
        m.dim_feedforward,
        "it must be >= 1",
        "pass model.dim_feedforward=3200",
    )
    for key in ("n_encoder_layers", "n_decoder_layers", "n_vae_encoder_layers", "latent_dim"):
        value = getattr(m, key)
        problems.check(value >= 1, f"model.{key}", value, "it must be >= 1", f"pass model.{key}=4")
    problems.check(
        0 <= m.dropout < 1,
        "model.dropout",
        m.dropout,
        "it must be in [0, 1)",
        "pass model.dropout=0.1",
    )


def check_data(problems: Problems, d: DataConfig) -> None:
    problems.check(
        0 < d.train_ratio < 1,
        "data.train_ratio",
        d.train_ratio,
        "it must be in (0, 1) so both the train and the validation split get episodes",
        "pass data.train_ratio=0.8",
    )
    problems.check(
        len(d.camera_names) >= 1,
        "data.camera_names",
        list(d.camera_names),
        "at least one camera is needed (ACT is a vision policy)",
        "pass data.camera_names=[top]",
    )
    check_seed(problems, "data.split_seed", d.split_seed)
    problems.check(
        d.num_workers >= 0,
        "data.num_workers",
        d.num_workers,
        "it must be >= 0",
        "pass data.num_workers=2",
    )
    problems.check(
        d.preload_max_mib >= 0,
        "data.preload_max_mib",
        d.preload_max_mib,
        "it must be >= 0 (0 always reads from disk)",
        "pass data.preload_max_mib=1024",
    )
    problems.check(
        d.synthetic is None or d.sim is None,
        "data.sim",
        "set",
        "a run trains on one generated task: data.synthetic and data.sim are both set",
        "pick one with data=synthetic or data=aloha_sim",
    )
    problems.check(
        d.lerobot is None or d.synthetic is None,
        "data.lerobot",
        "set",
        "a run trains on one dataset: data.lerobot and data.synthetic are both set",
        "pick one with data=lerobot or data=synthetic",
    )
    if d.lerobot is not None:
        problems.check(
            bool(d.dataset_dir),
            "data.dataset_dir",
            d.dataset_dir,
            "data=lerobot reads a local LeRobot dataset folder (the one holding meta/info.json)",
            "pass data.dataset_dir=/path/to/dataset",
        )
    if d.synthetic is None and d.sim is None and d.lerobot is None:
        problems.check(
            bool(d.dataset_dir),
            "data.dataset_dir",
            d.dataset_dir,
            "a folder of episode_*.hdf5 files is required for recorded data",
            "pass data.dataset_dir=/path/to/episodes (or data=synthetic for the built-in task)",
        )
    if d.synthetic is not None:
        check_synthetic(problems, d.synthetic)
    if d.sim is not None:
        check_sim(problems, d.sim, list(d.camera_names))


def check_synthetic(problems: Problems, syn: SyntheticTaskConfig) -> None:
    problems.check(
        syn.num_episodes >= 2,
        "data.synthetic.num_episodes",
        syn.num_episodes,
        "the train/val split needs at least 2 episodes",
        "pass data.synthetic.num_episodes=50",
    )
    problems.check(
        syn.episode_len >= 2,
        "data.synthetic.episode_len",
        syn.episode_len,
        "an episode needs at least 2 steps",
        "pass data.synthetic.episode_len=60",
    )
    problems.check(
        syn.image_size >= MIN_IMAGE_SIDE,
        "data.synthetic.image_size",
        syn.image_size,
        f"ResNet downsamples by 32, so images need at least {MIN_IMAGE_SIDE} pixels per side",
        "pass data.synthetic.image_size=64",
    )
    check_seed(problems, "data.synthetic.seed", syn.seed)


def check_sim(problems: Problems, sim: AlohaSimConfig, camera_names: list[str]) -> None:
    problems.check(
        sim.num_episodes >= 2,
        "data.sim.num_episodes",
        sim.num_episodes,
        "the train/val split needs at least 2 episodes",
        "pass data.sim.num_episodes=50",
    )
    problems.check(
        sim.episode_len >= 2,
        "data.sim.episode_len",
        sim.episode_len,
        "an episode needs at least 2 steps (the paper uses 400)",
        "pass data.sim.episode_len=400",
    )
    for key in ("image_height", "image_width"):
        value = getattr(sim, key)
        problems.check(
            MIN_IMAGE_SIDE <= value <= MAX_SIM_IMAGE_SIDE,
            f"data.sim.{key}",
            value,
            f"it must be in [{MIN_IMAGE_SIDE}, {MAX_SIM_IMAGE_SIDE}] pixels (ResNet "
            "downsamples by 32; larger offscreen buffers are not worth their memory)",
            f"pass data.sim.{key}={480 if key == 'image_height' else 640}",
        )
    problems.check(
        sim.num_workers >= 0,
        "data.sim.num_workers",
        sim.num_workers,
        "it must be >= 0 (0: generate in the training process)",
        "pass data.sim.num_workers=2",
    )
    problems.check(
        camera_names == ["top"],
        "data.camera_names",
        camera_names,
        "the ALOHA tasks render the `top` camera only",
        "pass data.camera_names=[top]",
    )


def check_scheduler(problems: Problems, s: SchedulerConfig, t: TrainingConfig) -> None:
    if s.name == SchedulerName.cosine:
        problems.check(
            s.warmup_steps >= 0,
            "scheduler.warmup_steps",
            s.warmup_steps,
            "the warmup length must be >= 0",
            "pass scheduler.warmup_steps=500",
        )
        problems.check(
            s.warmup_steps < t.num_steps,
            "scheduler.warmup_steps",
            s.warmup_steps,
            f"the warmup must end before training.num_steps={t.num_steps}",
            f"pass scheduler.warmup_steps={t.num_steps // 10} or raise training.num_steps",
        )
        problems.check(
            math.isfinite(s.min_lr) and s.min_lr >= 0,
            "scheduler.min_lr",
            s.min_lr,
            "the LR floor must be a finite number >= 0",
            "pass scheduler.min_lr=1e-7",
        )
        problems.check(
            s.min_lr <= t.lr,
            "scheduler.min_lr",
            s.min_lr,
            f"the LR floor must not exceed training.lr={t.lr}",
            f"pass scheduler.min_lr={t.lr / 100:g}",
        )


def check_seed(problems: Problems, key: str, seed: int) -> None:
    """NumPy's and MuJoCo's seeds are unsigned 32-bit: anything else fails deep in a library."""
    problems.check(
        0 <= seed <= MAX_SEED,
        key,
        seed,
        f"a seed must be in [0, {MAX_SEED}] (NumPy seeds are unsigned 32-bit)",
        f"pass {key}=0",
    )


def check_device(problems: Problems, key: str, device: str) -> None:
    """A device this machine has: the syntax first, then whether it is present."""
    problem = device_problem(device)
    if problem:
        rule, fix = problem
        problems.check(False, key, device, rule, f"pass {key}={fix}")


def device_problem(device: str) -> tuple[str, str] | None:
    """(rule, fixed value) when ``device`` is malformed or absent here, else None."""
    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        return f"it must be one of {', '.join(DEVICES)} or cuda:N (N = 0, 1, ...)", "auto"
    import torch

    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return "no CUDA GPU is visible to this process", "cpu"
        if index and int(index) >= count:
            return f"this machine has {count} CUDA GPU(s): cuda:0..cuda:{count - 1}", "cuda:0"
    if kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return "Apple's MPS backend is not available on this machine", "cpu"
    return None


def unknown_keys(node: DictConfig, prefix: str = "") -> list[tuple[str, list[str]]]:
    """(key, the schema's keys beside it) for every key no schema dataclass declares.

    Hydra's ``+key=value`` adds a key to any node, typed or not; the schema would silently
    ignore it, so a typo such as ``+training.lrr=1e-3`` trained at the default learning rate.
    """
    schema = OmegaConf.get_type(node)
    known = (
        {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    )
    found: list[tuple[str, list[str]]] = []
    for key in node:
        path = f"{prefix}{key}"
        if path == "hydra":  # Hydra's own node, present when composed with return_hydra_config
            continue
        if known is not None and key not in known:
            found.append((path, sorted(known)))
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not (child._is_none() or child._is_missing()):
            found += unknown_keys(child, f"{path}.")
    return found


def check_known_keys(dcfg: DictConfig) -> None:
    """Refuse keys the schema (act_hydra/config.py) does not declare."""
    problems = []
    for path, known in unknown_keys(dcfg):
        parent, _, name = path.rpartition(".")
        close = difflib.get_close_matches(name, known, n=1)
        fix = (
            f"pass {parent + '.' if parent else ''}{close[0]}=<value> (no + prefix) instead"
            if close
            else f"drop +{path}=...; `act-train --cfg job` lists every setting"
        )
        problems.append(
            f"{path} is not a setting of act-train: the schema (act_hydra/config.py) has no such "
            f"key, so the value would be stored and ignored. Fix: {fix}."
        )
    if problems:
        raise ConfigError("\n".join(problems))


def validate_config(cfg: TrainConfig) -> None:
    """Raise ConfigError listing every broken rule."""
    problems = collect_problems(cfg)
    if problems:
        raise ConfigError("\n".join(problems))
