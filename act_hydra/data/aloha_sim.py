"""Scripted demonstrations of an ALOHA MuJoCo task (act_hydra.aloha_sim) in the dataset cache.

``ensure_aloha_sim_dataset(cfg)`` returns ``<cache root>/aloha_sim/<hash>`` and generates the
episodes on first use, with the original's two-phase procedure (scripted end-effector run, then
joint replay rendering the `top` camera), in ``cfg.num_workers`` processes. The key holds every
setting that changes the data and the MuJoCo version (another version moves contacts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from act_hydra.config import AlohaSimConfig
from act_hydra.data.cache import cached_dataset


def settings(cfg: AlohaSimConfig) -> dict[str, Any]:
    """Everything that changes the episodes: the cache key."""
    from act_hydra.aloha_sim.runtime import import_mujoco

    return {
        "task": str(cfg.task),
        "num_episodes": int(cfg.num_episodes),
        "episode_len": int(cfg.episode_len),
        "image_height": int(cfg.image_height),
        "image_width": int(cfg.image_width),
        "render_style": str(cfg.render_style),
        "mujoco_version": import_mujoco().__version__,
    }


def generate(cfg: AlohaSimConfig, folder: Path) -> dict[str, Any]:
    """Write the episodes into ``folder``; return the facts the cache manifest keeps."""
    from act_hydra.aloha_sim.generate import write_dataset

    manifest = write_dataset(
        folder,
        str(cfg.task),
        cfg.num_episodes,
        cfg.episode_len,
        cfg.image_height,
        cfg.image_width,
        str(cfg.render_style),
        cfg.num_workers,
    )
    return {
        "scripted_success_rate": manifest["success_rate"],
        "attempts": manifest["attempts"],
        "failures": manifest["failures"],
        "camera_names": ["top"],
    }


def ensure_aloha_sim_dataset(cfg: AlohaSimConfig, cache_root: str | Path | None = None) -> Path:
    return cached_dataset(
        "aloha_sim", settings(cfg), lambda folder: generate(cfg, folder), cache_root
    )
