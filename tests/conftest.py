"""Fixtures shared by the tests (helpers live in tests/helpers.py)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Generated datasets and torch caches go to a per-session folder, never ~/.cache."""
    os.environ.setdefault("ACT_HYDRA_CACHE", str(tmp_path_factory.mktemp("act_hydra_cache")))
    os.environ["WANDB_MODE"] = os.environ.get("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    yield


@pytest.fixture
def compose_train():
    """compose(overrides) -> DictConfig of the primary config, with the real conf/ folder."""
    from act_hydra.compose import compose_train_config

    def _compose(overrides: list[str] | None = None, return_hydra_config: bool = False):
        return compose_train_config(overrides or [], return_hydra_config=return_hydra_config)

    return _compose
