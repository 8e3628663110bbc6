"""Episode files, validation, datasets, samplers and the dataset cache (see each module)."""

from act_hydra.data.cache import cache_key, cached_dataset, default_cache_root
from act_hydra.data.dataset import (
    EpisodeDataset,
    StepBatchSampler,
    compute_norm_stats,
    split_episodes,
)
from act_hydra.data.episodes import DatasetInfo, scan_dataset, write_episode
from act_hydra.data.sources import check_matches_simulator, resolve_dataset_dir
from act_hydra.data.synthetic import ensure_synthetic_dataset, generate_synthetic_dataset
from act_hydra.errors import DatasetError

__all__ = [
    "DatasetError",
    "DatasetInfo",
    "EpisodeDataset",
    "StepBatchSampler",
    "cache_key",
    "check_matches_simulator",
    "cached_dataset",
    "compute_norm_stats",
    "default_cache_root",
    "ensure_synthetic_dataset",
    "generate_synthetic_dataset",
    "resolve_dataset_dir",
    "scan_dataset",
    "split_episodes",
    "write_episode",
]
