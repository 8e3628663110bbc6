"""Typed schema of every config group, registered in Hydra's ConfigStore.

The single source of truth for keys, types and defaults: the YAML files in ``conf/`` only set
the values an option changes. A typo (``training.lrr=1``), a wrong type (``training.lr=abc``) or
a value outside a closed set (``training.precision=fp8``) fails with Hydra's own message, which
lists the legal values, before anything runs. Range rules that types cannot express live in
``act_hydra.validate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional

from hydra.core.config_store import ConfigStore


class Choice(str, Enum):
    """A closed set of string values: compares equal to its value and prints as it."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Precision(Choice):
    auto = "auto"  # per device (act_hydra/fast_path.py): bf16 on CPUs that have it natively
    fp32 = "fp32"
    tf32 = "tf32"  # fp32 storage, TF32 matmuls and convolutions on CUDA
    bf16 = "bf16"  # autocast to bfloat16
    fp16 = "fp16"  # autocast to float16 with a gradient scaler


class SchedulerName(Choice):
    none = "none"  # constant LR, as the original
    cosine = "cosine"  # linear warmup, then cosine decay


class LoggerBackend(Choice):
    none = "none"
    wandb = "wandb"


class LoggerMode(Choice):
    online = "online"
    offline = "offline"
    disabled = "disabled"


class Activation(Choice):
    relu = "relu"
    gelu = "gelu"


class Backbone(Choice):
    """torchvision ResNets (layer4 feature map, frozen batch norm)."""

    resnet18 = "resnet18"
    resnet34 = "resnet34"
    resnet50 = "resnet50"
    resnet101 = "resnet101"
    resnet152 = "resnet152"


class SimTask(Choice):
    """The ALOHA MuJoCo tasks of the ACT paper."""

    transfer_cube = "transfer_cube"
    insertion = "insertion"


class RenderStyle(Choice):
    paper = "paper"  # shadows and anti-aliasing as the scene files define them
    fast = "fast"  # neither: about 8x cheaper to render on a CPU


@dataclass
class ModelConfig:
    """ACT architecture; the defaults are the paper's (Table III). Key names follow LeRobot's
    ACTConfig where one exists."""

    name: str = "act"  # the conf/model option that composed this node (a label only)
    chunk_size: int = 100  # actions predicted per query (the paper's k), in control steps
    dim_model: int = 512  # transformer width; a multiple of n_heads and of 4
    n_heads: int = 8  # attention heads per layer
    dim_feedforward: int = 3200  # hidden units of each transformer feed-forward block
    feedforward_activation: Activation = Activation.relu
    n_encoder_layers: int = 4  # transformer encoder layers over image and state tokens
    # The paper uses 7 decoder layers; the original code reads the first layer's output (its
    # `[0]`), so n_decoder_layers=1 is the network it effectively trained. We use the last.
    n_decoder_layers: int = 7
    n_vae_encoder_layers: int = 4  # layers of the CVAE encoder (training only)
    latent_dim: int = 32  # size of the CVAE latent z
    use_vae: bool = True  # false: no CVAE encoder, z = 0 and no KL term
    dropout: float = 0.1  # transformer dropout probability, in [0, 1)
    pre_norm: bool = False  # false: post-norm, as the original transformer
    vision_backbone: Backbone = Backbone.resnet18
    # true: start from torchvision's ImageNet weights (from TORCH_HOME; no download unless
    # ACT_HYDRA_ALLOW_DOWNLOAD=1); false: train the ResNet from scratch.
    pretrained_backbone: bool = True


@dataclass
class SyntheticTaskConfig:
    """The built-in task (act_hydra/sim.py), generated once into the dataset cache."""

    num_episodes: int = 50  # scripted demonstrations (train + validation)
    episode_len: int = 60  # control steps per episode
    image_size: int = 64  # side of the square `top` camera image, in pixels
    seed: int = 0  # task seed: the same seed gives the same episodes


@dataclass
class AlohaSimConfig:
    """The ALOHA MuJoCo tasks (act_hydra/aloha_sim): scripted demonstrations generated once
    into the dataset cache, and the simulator closed-loop evaluation runs in."""

    task: SimTask = SimTask.transfer_cube
    num_episodes: int = 50  # scripted demonstrations (train + validation)
    episode_len: int = 400  # control steps per episode (50 Hz)
    image_height: int = 480  # `top` camera image, pixels
    image_width: int = 640
    render_style: RenderStyle = RenderStyle.paper
    num_workers: int = 2  # processes that generate episodes (does not change the data)


@dataclass
class LeRobotConfig:
    """A local LeRobot dataset (format v3.0 or v2.1: meta/info.json, parquet, mp4) in
    data.dataset_dir, converted once into the dataset cache in the episode_*.hdf5 layout
    (act_hydra/data/lerobot.py). Nothing is downloaded: fetch a Hub dataset beforehand."""

    # Image or video features to convert, e.g. [observation.images.top]; null: all of them.
    # A camera is named in data.camera_names by the part after `observation.images.`.
    camera_keys: Optional[List[str]] = None
    state_key: str = "observation.state"  # the feature written as /observations/qpos
    action_key: str = "action"  # the feature written as /action
    episodes: Optional[List[int]] = None  # episode_index values to convert; null: all


@dataclass
class DataConfig:
    """Where the demonstrations come from and how they are split and read. The defaults are
    recorded data (conf/data/aloha_hdf5.yaml); conf/data/synthetic.yaml sets `synthetic`."""

    name: str = "aloha_hdf5"  # the conf/data option that composed this node (a label only)
    # A folder of episode_*.hdf5 files (recorded data). data.synthetic: null = the dataset
    # cache ($ACT_HYDRA_CACHE, default ~/.cache/act_hydra), or another cache root. data.sim:
    # null = generate into the cache, or a folder of episodes of that task to read.
    dataset_dir: Optional[str] = None
    camera_names: List[str] = field(default_factory=lambda: ["top"])  # images fed to the policy
    train_ratio: float = 0.8  # fraction of episodes used for training; the rest validate
    split_seed: int = 1  # seed of the train/val split (the original fixes it at 1)
    num_workers: int = 2  # DataLoader worker processes (0: load in the training process)
    # Keep all episodes in RAM when they fit under this many MiB (0: always read from disk).
    preload_max_mib: int = 1024
    synthetic: Optional[SyntheticTaskConfig] = None  # set: train on the built-in task
    # Set: an ALOHA MuJoCo task. Its scripted episodes are generated into the dataset cache,
    # or, with dataset_dir set, read from that folder (recorded in the same simulator).
    sim: Optional[AlohaSimConfig] = None
    # Set: a local LeRobot dataset, converted once into the dataset cache. With data.sim set
    # too, closed-loop evaluation runs in that simulator.
    lerobot: Optional[LeRobotConfig] = None


@dataclass
class SchedulerConfig:
    """LR schedule per optimizer update; both parameter groups scale by the same factor."""

    name: SchedulerName = SchedulerName.none
    warmup_steps: int = 0  # linear warmup from 0 over this many updates (cosine only)
    min_lr: float = 0.0  # LR reached at training.num_steps (cosine only)


@dataclass
class LoggerConfig:
    """Experiment tracking on top of train.log and metrics.jsonl."""

    backend: LoggerBackend = LoggerBackend.none  # none never imports wandb
    project: str = "act-hydra"  # W&B project
    entity: Optional[str] = None  # W&B team or user; null: the credential's default
    group: Optional[str] = None  # null: $WANDB_RUN_GROUP, else the sweep folder in --multirun
    name: Optional[str] = None  # null: the job's overrides in --multirun, else the run dir name
    tags: List[str] = field(default_factory=list)
    notes: Optional[str] = None
    job_type: str = "train"
    mode: LoggerMode = LoggerMode.online  # offline: sync later with `wandb sync`
    log_model: bool = False  # true: upload best.pt and last.pt as an artifact at the end


@dataclass
class TrainingConfig:
    """The optimisation loop. Step counts are optimizer updates."""

    lr: float = 1e-4  # AdamW learning rate of everything but the backbone
    lr_backbone: float = 1e-4  # learning rate of the ResNet (0 freezes it)
    weight_decay: float = 1e-4  # AdamW decoupled weight decay, both groups
    batch_size: int = 8  # samples per update (per process under DDP)
    num_steps: int = 1500  # optimizer updates in the whole run
    kl_weight: float = 10.0  # weight of the CVAE KL term (the original parses it as an int)
    grad_clip_norm: float = 0.0  # max global gradient norm (0: no clipping, as the original)
    seed: int = 0  # seeds Python, NumPy, torch and the batch order
    log_every: int = 50  # a training row in metrics.jsonl every N updates (and the last)
    eval_every: int = 250  # validation loss every N updates (and after the last)
    val_batches: int = 8  # fixed batches from the validation episodes per evaluation
    save_every: int = 500  # checkpoints/last.pt every N updates (and at the end)
    device: str = "auto"  # auto (cuda, else mps, else cpu) | cpu | cuda | cuda:N | mps
    precision: Precision = Precision.auto
    # Backbone convolutions in NHWC (channels-last); null: per device (on for CUDA, off on CPU).
    channels_last: Optional[bool] = None
    compile: bool = False  # torch.compile the model the step calls (pays off on long GPU runs)
    # torch intra-op threads on the CPU (0: torch's default, one per core; a sweep job's share).
    num_threads: int = 0
    resume: str = "auto"  # auto: continue this run dir | never: refuse a used one | a .pt path
    # Closed-loop success rate in the simulator every N updates (0: off), over this many
    # seeded episodes, logged as eval/success_rate.
    eval_rollouts_every: int = 0
    eval_rollouts_episodes: int = 20
    progress_bar: bool = True  # a tqdm bar, shown only when stderr is a terminal


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)


@dataclass
class EvalSettings:
    num_episodes: int = 50  # seeded rollouts
    temporal_ensemble: bool = False  # query every step and average overlapping chunks
    ensemble_coeff: float = 0.01  # m in exp(-m * i), i = 0 for the oldest prediction
    # Episode i resets with seed seed_base + i; null: the simulator's own evaluation seeds,
    # never used for training data (synthetic task: 1000 + i; ALOHA: 100000 + i).
    seed_base: Optional[int] = None
    num_videos: int = 3  # rollouts saved as videos (MP4, else GIF) next to the results
    num_workers: int = 2  # simulator processes for ALOHA tasks (the synthetic task runs inline)
    device: str = "auto"  # as training.device
    log_to_wandb: bool = True  # add the results to the run's W&B run, if it used logger=wandb


@dataclass
class EvalConfig:
    """`python -m act_hydra.eval checkpoint=RUN_DIR_OR_CKPT`."""

    checkpoint: Optional[str] = None  # a run directory (uses checkpoints/best.pt) or a .pt file
    eval: EvalSettings = field(default_factory=EvalSettings)


@dataclass
class ExportConfig:
    """`python -m act_hydra.export checkpoint=RUN_DIR out=DIR`: a policy LeRobot loads."""

    checkpoint: Optional[str] = None  # a run directory (uses checkpoints/best.pt) or a .pt file
    out: Optional[str] = None  # the folder to write (created; its export files are replaced)
    # [H, W] of the camera images; null: from the checkpoint's data config (the simulator's
    # size, or the dataset's, when its folder is still there).
    image_size: Optional[List[int]] = None


def register_configs() -> None:
    """Store the schema; conf/train.yaml and conf/eval.yaml list it first in their defaults."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    ConfigStore.instance().store(name="eval_schema", node=EvalConfig)
    ConfigStore.instance().store(name="export_schema", node=ExportConfig)


register_configs()


def default_n_jobs() -> int:
    """Parallel jobs of a local sweep: one per visible GPU, else a few CPU jobs."""
    import os

    import torch

    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return min(4, max(2, (os.cpu_count() or 2) // 2))


def eval_output_root(checkpoint: Optional[str]) -> str:
    """Evaluations are written beside the run they evaluate: RUN_DIR/eval/<time>/."""
    from pathlib import Path

    if not checkpoint:
        return "outputs"
    path = Path(checkpoint)
    if path.suffix == ".pt":
        path = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return str(path)


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("act_hydra_default_n_jobs"):
        OmegaConf.register_new_resolver("act_hydra_default_n_jobs", default_n_jobs)
    if not OmegaConf.has_resolver("act_hydra_eval_dir"):
        OmegaConf.register_new_resolver("act_hydra_eval_dir", eval_output_root)


register_resolvers()
