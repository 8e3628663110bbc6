"""Compose the training config outside a Hydra run (for scripts that take training overrides)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import act_hydra.config  # noqa: F401  (registers the schema and resolvers)
from act_hydra.config import TrainConfig

CONF_DIR = Path(__file__).resolve().parent / "conf"  # package data: a plain install works


def compose_train_config(overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """The same config `python -m act_hydra.train <overrides>` would run with."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=return_hydra_config)


def to_train_config(cfg: DictConfig) -> TrainConfig:
    return OmegaConf.to_object(cfg)
