"""Typed schema of every config group, registered in Hydra's ConfigStore.

The YAML files in ``conf/`` only set values; the keys and their types live here, so a typo
(``training.lrr=1``) or a wrong type (``training.lr=abc``) fails with Hydra's own message
before anything runs. Range rules that types cannot express live in ``act_hydra.validate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class ModelConfig:
    """ACT architecture. Names follow LeRobot's ACTConfig where one exists."""

    name: str = "act"
    chunk_size: int = 100  # actions predicted per query (the paper's k)
    dim_model: int = 512
    n_heads: int = 8
    dim_feedforward: int = 3200
    feedforward_activation: str = "relu"
    n_encoder_layers: int = 4
    # The paper uses 7 decoder layers; the original code only ever used the first one (the
    # `[0]` bug). We always use the output of the last layer, so 7 means 7.
    n_decoder_layers: int = 7
    n_vae_encoder_layers: int = 4
    latent_dim: int = 32
    use_vae: bool = True
    dropout: float = 0.1
    pre_norm: bool = False  # the original transformer is post-norm
    vision_backbone: str = "resnet18"
    # ImageNet weights from torchvision's cache (TORCH_HOME); fails clearly when offline.
    pretrained_backbone: bool = True


@dataclass
class SyntheticTaskConfig:
    """The built-in task: episodes rendered by act_hydra.sim, written as ALOHA HDF5."""

    num_episodes: int = 50
    episode_len: int = 60
    image_size: int = 64  # square camera images (pixels)
    seed: int = 0


@dataclass
class DataConfig:
    name: str = "synthetic"
    # Folder of episode_*.hdf5 files. For the synthetic task it may stay null: the episodes are
    # generated once into a cache folder keyed by the task settings.
    dataset_dir: Optional[str] = None
    camera_names: List[str] = field(default_factory=lambda: ["top"])
    train_ratio: float = 0.8
    split_seed: int = 1  # the original fixes the train/val split with seed 1, whatever the run seed
    num_workers: int = 0
    # Keep all episodes in RAM when they fit under this many MiB (0: always read from disk).
    preload_max_mib: int = 1024
    synthetic: Optional[SyntheticTaskConfig] = None


@dataclass
class SchedulerConfig:
    name: str = "none"  # none: constant LR (the original); cosine: linear warmup + cosine decay
    warmup_steps: int = 0
    min_lr: float = 0.0


@dataclass
class LoggerConfig:
    backend: str = "none"  # none | wandb
    project: str = "act-hydra"
    entity: Optional[str] = None
    group: Optional[str] = None
    name: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    notes: Optional[str] = None
    job_type: str = "train"
    mode: str = "online"  # online | offline | disabled
    log_model: bool = False


@dataclass
class TrainingConfig:
    lr: float = 1e-4
    lr_backbone: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 8
    num_steps: int = 1000
    kl_weight: float = 10.0  # the original parses it as int; fractional weights are allowed here
    grad_clip_norm: float = 0.0  # 0 disables clipping (the original has none)
    seed: int = 0
    log_every: int = 50
    eval_every: int = 200
    val_batches: int = 8  # batches drawn from the validation episodes at each evaluation
    save_every: int = 500
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "fp32"  # fp32 | tf32 | bf16 (autocast) | fp16 (autocast + grad scaler)
    compile: bool = False  # torch.compile the training step's model (pays off on long GPU runs)
    resume: str = "auto"  # auto | never | path to a checkpoint
    # Closed-loop success rate on the synthetic task every N steps (0: off) over this many
    # seeded episodes, logged as eval/success_rate.
    eval_rollouts_every: int = 0
    eval_rollouts_episodes: int = 20
    progress_bar: bool = True  # shown only on a terminal


@dataclass
class OsmoConfig:
    """Cluster settings of scripts/generate_osmo_sweep.py (``osmo.*``); training ignores them.

    They are generator settings, not job overrides: ``osmo.image=...`` changes the workflow file,
    never the tasks' arguments, and they cannot be swept.
    """

    workflow_name: str = "act-hydra-sweep"  # OSMO workflow name; the workflow id is <name>-<N>
    image: str = "nvcr.io/your-org/act-hydra:latest"  # built from osmo/Dockerfile
    platform: Optional[str] = None  # resource platform; null: the pool's default platform
    cpu: int = 8  # per task (one task per node of a run)
    gpu: Optional[int] = None  # per task; null: osmo.gpus_per_task
    memory: str = "64Gi"  # binary units (Gi, Mi, ...); "GB" is rejected by OSMO
    storage: str = "100Gi"  # ephemeral storage per task
    gpus_per_task: int = 1  # > 1: torchrun --nproc_per_node=N
    nodes_per_run: int = 1  # > 1: one task group per run, torchrun rank 0 is the lead
    master_port: int = 29500  # torchrun rendezvous port of a multi-node run
    wandb_credential: str = "wandb"  # osmo credential set <name> --type GENERIC ...
    wandb_payload_key: str = "wandb_api_key"  # ... --payload <key>=<W&B API key>
    output_url: Optional[str] = None  # each task uploads to <output_url>/{{workflow_id}}/<task>/
    dataset_url: Optional[str] = None  # downloaded to {{input:0}}; sets data.dataset_dir
    exec_timeout: str = "24h"  # per run: <int><d|h|m|s>
    queue_timeout: str = "24h"
    max_tasks_per_workflow: int = 20  # the server's max_num_tasks (admin setting, default 20)
    split_large_sweeps: bool = True  # more tasks: numbered files ...-part-1-of-N.yaml
    # Environment of every task, so nothing is downloaded at run time: the image holds the
    # ResNet weights under torch_home (osmo/Dockerfile); generated datasets go to cache_dir.
    torch_home: str = "/opt/act-hydra/cache/torch"
    hf_home: str = "/opt/act-hydra/cache/huggingface"
    cache_dir: str = "/tmp/act-hydra-cache"


@dataclass
class EvalSettings:
    num_episodes: int = 50
    temporal_ensemble: bool = False  # query every step and average overlapping chunks
    ensemble_coeff: float = 0.01  # m in exp(-m * i), i = 0 for the oldest prediction
    seed_base: int = 1000  # episode i resets with seed seed_base + i
    num_videos: int = 3  # rollouts saved as GIFs next to the results
    device: str = "auto"


@dataclass
class EvalConfig:
    """`python -m act_hydra.eval checkpoint=RUN_DIR_OR_CKPT`."""

    checkpoint: Optional[str] = None  # a run directory (uses checkpoints/best.pt) or a .pt file
    eval: EvalSettings = field(default_factory=EvalSettings)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    osmo: OsmoConfig = field(default_factory=OsmoConfig)


def register_configs() -> None:
    """Store the schema; conf/train.yaml lists `train_schema` first in its defaults."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    ConfigStore.instance().store(name="eval_schema", node=EvalConfig)


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
