"""Demonstrations of the built-in task (act_hydra.sim), written as original-layout HDF5 episodes.

``ensure_synthetic_dataset(cfg)`` returns the cache folder of the task settings
(``<cache root>/synthetic/<hash>``, act_hydra.data.cache) and generates it on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from act_hydra import sim
from act_hydra.config import SyntheticTaskConfig
from act_hydra.data.cache import cached_dataset
from act_hydra.data.episodes import write_episode


def settings(cfg: SyntheticTaskConfig) -> dict[str, Any]:
    """Everything that changes the episodes: the cache key."""
    return {
        "num_episodes": int(cfg.num_episodes),
        "episode_len": int(cfg.episode_len),
        "image_size": int(cfg.image_size),
        "seed": int(cfg.seed),
        "sim_version": sim.SIM_VERSION,
    }


def generate_synthetic_dataset(cfg: SyntheticTaskConfig, out_dir: str | Path) -> dict[str, Any]:
    """Roll out the scripted expert ``cfg.num_episodes`` times into ``out_dir/episode_<i>.hdf5``.

    Episode ``i`` is ``env.reset(seed=(cfg.seed, sim.TRAIN_STREAM, i))``, so the dataset is a
    pure function of the settings. Returns the expert's success rate.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = sim.SyntheticEnv.from_config(cfg)
    successes = 0
    for i in range(cfg.num_episodes):
        ep = sim.expert_episode(env, seed=(int(cfg.seed), sim.TRAIN_STREAM, i))
        successes += ep.success
        write_episode(out / f"episode_{i}.hdf5", ep.qpos, ep.qvel, ep.action, ep.images, sim=True)
    return {"camera_names": ["top"], "expert_success_rate": successes / cfg.num_episodes}


def ensure_synthetic_dataset(
    cfg: SyntheticTaskConfig, cache_root: str | Path | None = None
) -> Path:
    """The folder of the dataset for ``cfg``, generated on first use; ``cache_root`` replaces
    the default cache root."""
    return cached_dataset(
        "synthetic",
        settings(cfg),
        lambda folder: generate_synthetic_dataset(cfg, folder),
        cache_root,
    )
