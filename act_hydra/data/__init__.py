"""Episode files, validation, datasets and samplers (see each module's docstring)."""

from act_hydra.data.dataset import (
    EpisodeDataset,
    StepBatchSampler,
    compute_norm_stats,
    split_episodes,
)
from act_hydra.data.episodes import (
    DatasetError,
    DatasetInfo,
    load_episode,
    scan_dataset,
    write_episode,
)
from act_hydra.data.synthetic import (
    cache_key,
    default_cache_root,
    ensure_synthetic_dataset,
    generate_synthetic_dataset,
)

__all__ = [
    "DatasetError",
    "DatasetInfo",
    "EpisodeDataset",
    "StepBatchSampler",
    "cache_key",
    "compute_norm_stats",
    "default_cache_root",
    "ensure_synthetic_dataset",
    "generate_synthetic_dataset",
    "load_episode",
    "scan_dataset",
    "split_episodes",
    "write_episode",
]
