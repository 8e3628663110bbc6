"""Shared fixtures: run the real CLI on tiny configs, compose configs in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# A model and task small enough for a CLI run in a few seconds on a 2-core CPU.
TINY = [
    "model.dim_model=32", "model.n_heads=2", "model.dim_feedforward=64",
    "model.n_encoder_layers=1", "model.n_decoder_layers=1", "model.n_vae_encoder_layers=1",
    "model.chunk_size=5", "data.synthetic.num_episodes=4", "data.synthetic.episode_len=12",
    "data.synthetic.image_size=32", "training.batch_size=2", "training.num_steps=4",
    "training.log_every=1", "training.eval_every=2", "training.save_every=2",
    "training.val_batches=1", "training.device=cpu",
]


def tiny(overrides) -> list[str]:
    """TINY, less the synthetic-task keys when the overrides pick recorded data."""
    recorded = any(o.startswith(("data=aloha_hdf5", "experiment=")) for o in overrides)
    return [o for o in TINY if not (recorded and o.startswith("data.synthetic."))]


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Generated datasets and torch caches go to a per-session folder, never ~/.cache."""
    os.environ.setdefault("ACT_HYDRA_CACHE", str(tmp_path_factory.mktemp("act_hydra_cache")))
    os.environ["WANDB_MODE"] = os.environ.get("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    yield


def run_cli(module: str, args: list[str], cwd: Path | None = None, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_train(run_dir: Path, *overrides: str, tiny: bool = True, env: dict | None = None,
              ) -> subprocess.CompletedProcess:
    args = [*(globals()["tiny"](overrides) if tiny else []), *overrides,
            f"hydra.run.dir={run_dir}"]
    return run_cli("act_hydra.train", args, env=env)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture
def compose_train():
    """compose(overrides) -> DictConfig of the primary config, with the real conf/ folder."""
    from act_hydra.compose import compose_train_config

    def _compose(overrides: list[str] | None = None, return_hydra_config: bool = False):
        return compose_train_config(overrides or [], return_hydra_config=return_hydra_config)

    return _compose
