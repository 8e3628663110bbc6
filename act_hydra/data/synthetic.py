"""Demonstrations of the built-in task (act_hydra.sim), written as original-layout HDF5 episodes.

``ensure_synthetic_dataset(cfg)`` returns a cache folder keyed by the task settings
(``$ACT_HYDRA_CACHE/synthetic/<hash>``, default root ``~/.cache/act_hydra``) and generates it on
first use. Generation goes to a temporary sibling folder that is renamed into place in one
step, so parallel sweep jobs that race to create the same dataset are safe: one rename wins,
the others discard their copy and use the winner's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from act_hydra import sim
from act_hydra.data.episodes import write_episode

CACHE_ENV = "ACT_HYDRA_CACHE"
MANIFEST = "task.json"


def _settings(cfg) -> dict:
    return {
        "num_episodes": int(cfg.num_episodes),
        "episode_len": int(cfg.episode_len),
        "image_size": int(cfg.image_size),
        "seed": int(cfg.seed),
    }


def _validate(cfg) -> None:
    s = _settings(cfg)
    for key, low, example in (("num_episodes", 1, 50), ("episode_len", 1, 60),
                              ("image_size", 8, 64)):
        if s[key] < low:
            raise ValueError(f"data.synthetic.{key}={s[key]} must be >= {low}. Fix: e.g. "
                             f"`data.synthetic.{key}={example}`.")
    if s["seed"] < 0:
        raise ValueError(f"data.synthetic.seed={s['seed']} must be >= 0. Fix: "
                         f"`data.synthetic.seed=0`.")


def cache_key(cfg) -> str:
    """Short hash of the task settings and the simulator version."""
    payload = json.dumps({**_settings(cfg), "sim_version": sim.SIM_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def default_cache_root() -> Path:
    """``$ACT_HYDRA_CACHE``, else ``$XDG_CACHE_HOME/act_hydra``, else ``~/.cache/act_hydra``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "act_hydra"


def generate_synthetic_dataset(cfg, out_dir: str | Path) -> Path:
    """Roll out the scripted expert ``cfg.num_episodes`` times into ``out_dir/episode_<i>.hdf5``.

    Episode ``i`` is ``env.reset(seed=(cfg.seed, sim.TRAIN_STREAM, i))``, so the dataset is a
    pure function of the settings. Also writes ``task.json`` (settings, sim version, success
    rate), last, as the marker of a complete dataset.
    """
    _validate(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = sim.SyntheticEnv.from_config(cfg)
    successes = 0
    for i in range(cfg.num_episodes):
        ep = sim.expert_episode(env, seed=(int(cfg.seed), sim.TRAIN_STREAM, i))
        successes += ep.success
        write_episode(out / f"episode_{i}.hdf5", ep.qpos, ep.qvel, ep.action, ep.images, sim=True)
    manifest = {**_settings(cfg), "sim_version": sim.SIM_VERSION, "camera_names": ["top"],
                "expert_success_rate": successes / cfg.num_episodes}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def ensure_synthetic_dataset(cfg, cache_root: str | Path | None = None) -> Path:
    """The folder of the dataset for ``cfg`` (a SyntheticTaskConfig), generated on first use.

    ``cache_root`` replaces the cache root (default: ``default_cache_root()``); the dataset
    lives in ``<root>/synthetic/<cache_key(cfg)>``.
    """
    _validate(cfg)
    root = Path(cache_root).expanduser() if cache_root is not None else default_cache_root()
    parent = root / "synthetic"
    final = parent / cache_key(cfg)
    if (final / MANIFEST).is_file():
        return final
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=parent))
    try:
        generate_synthetic_dataset(cfg, tmp)
        try:
            os.rename(tmp, final)  # atomic; fails if another job got there first
        except OSError as e:
            if not (final / MANIFEST).is_file():
                raise RuntimeError(
                    f"{final} exists but holds no complete synthetic dataset (no {MANIFEST}); "
                    f"delete that folder and run again.") from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def describe(cfg) -> dict:
    """The settings that key the cache (for logging)."""
    return {**_settings(cfg), "sim_version": sim.SIM_VERSION, "key": cache_key(cfg)}


