"""A local LeRobot dataset, converted once into the dataset cache as episode_*.hdf5 files.

``ensure_lerobot_dataset(data)`` checks the dataset and the ``data.lerobot`` options (keys,
cameras, episodes) before any work, then returns ``<cache root>/lerobot/<hash>``, converting
on first use: every selected episode becomes ``episode_<i>.hdf5`` in the layout of
act_hydra/data/episodes.py (``observation.state`` -> ``/observations/qpos``, ``action`` ->
``/action``, ``observation.images.<cam>`` -> ``/observations/images/<cam>``), with the
dataset's fps and the LeRobot episode index as attributes. Training, normalisation statistics,
sweeps and evaluation then read it like any recording.

Why convert rather than decode in the DataLoader workers: training draws random frames, and a
random AV1 frame costs a seek plus up to two decodes per camera; a 480x640 frame from the
converted file is a plain read (benchmarks/bench_lerobot_data.py measures both).

The key is a fingerprint of the dataset's content (info.json, the episode index and data
files, the size and the first and last MiB of each video used) plus the conversion options, so
a copy of the same dataset elsewhere (an OSMO download) reuses the cache and an edited one is
converted again. The conversion is atomic (act_hydra/data/cache.py).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from act_hydra.config import DataConfig, LeRobotConfig
from act_hydra.data.cache import cached_dataset
from act_hydra.data.lerobot_format import EpisodeRef, LeRobotDataset, camera_name, open_dataset
from act_hydra.errors import ConfigError, DatasetError

log = logging.getLogger("act_hydra.data")
CONVERTER_VERSION = 1  # bump when the converted files change for the same input
_MIB = 1024**2


def require_extra() -> None:
    """PyAV and pyarrow come with the `lerobot` extra; say so before anything else."""
    missing = []
    for module in ("av", "pyarrow"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(
            f"data=lerobot needs {', '.join(missing)}, which is not installed. Rule: LeRobot "
            "datasets are read with PyAV and pyarrow (the `lerobot` extra). Fix: "
            "`pip install -e '.[lerobot]'` (make does it)."
        )


def lerobot_root(data: DataConfig) -> str:
    if not data.dataset_dir:
        raise ConfigError(
            "data.dataset_dir is not set. Rule: data=lerobot reads a local LeRobot dataset "
            "folder. Fix: pass data.dataset_dir=/path/to/dataset (the folder that holds "
            "meta/info.json)."
        )
    return str(data.dataset_dir)


def _numeric_keys(ds: LeRobotDataset) -> list[str]:
    return [
        k
        for k, f in ds.features.items()
        if f.get("dtype") not in ("video", "image", "string", "language")
        and k not in ("timestamp", "frame_index", "episode_index", "index", "task_index")
    ]


def select(
    ds: LeRobotDataset, cfg: LeRobotConfig, camera_names: list[str]
) -> tuple[list[str], list[EpisodeRef]]:
    """The camera keys and episodes to convert; checks every option against the dataset."""
    info = ds.root / "meta/info.json"
    for option, key in (("state_key", cfg.state_key), ("action_key", cfg.action_key)):
        spec = ds.features.get(key)
        numeric = _numeric_keys(ds)
        if spec is None or key not in numeric or len(spec.get("shape", [])) != 1:
            raise DatasetError(
                f"{info}: data.lerobot.{option}={key!r} is not a 1-D numeric feature of the "
                f"dataset (numeric features: {', '.join(numeric) or 'none'}). Rule: the state "
                "and the action are vectors stored in the parquet rows. Fix: "
                f"data.lerobot.{option}=<one of those>."
            )
    available = list(ds.camera_keys)
    keys = list(cfg.camera_keys) if cfg.camera_keys is not None else available
    unknown = [k for k in keys if k not in available]
    if unknown or not keys:
        raise DatasetError(
            f"{info}: data.lerobot.camera_keys={keys} names {unknown or 'no camera'}, but the "
            f"dataset's image and video features are: {', '.join(available) or 'none'}. Rule: "
            "ACT needs at least one camera, and each key must be an image or video feature. "
            f"Fix: data.lerobot.camera_keys=[{','.join(available) or '<key>'}] (or a subset)."
        )
    names = [camera_name(k) for k in keys]
    if len(set(names)) != len(names):
        raise DatasetError(
            f"data.lerobot.camera_keys={keys} give the camera names {names} twice. Rule: each "
            "camera is stored under the part of its key after `observation.images.`. Fix: "
            "select keys with distinct names."
        )
    absent = [c for c in camera_names if c not in names]
    if absent:
        raise DatasetError(
            f"data.camera_names=[{','.join(camera_names)}]: {absent} are not among the converted "
            f"cameras {names} (keys {keys} of {ds.root}). Rule: the policy's cameras are named "
            "by the part of the LeRobot key after `observation.images.`. Fix: "
            f"data.camera_names=[{','.join(names)}] (or a subset)."
        )
    sizes = {c: ds.image_hw(k) for c, k in zip(names, keys) if c in camera_names}
    if len(set(sizes.values())) > 1:
        raise DatasetError(
            f"data.camera_names={list(camera_names)} have different image sizes {sizes} in "
            f"{info}. Rule: the cameras are stacked into one tensor, so they share H and W. Fix: "
            "select cameras of one size with data.camera_names."
        )
    episodes = list(ds.episodes)
    if cfg.episodes is not None:
        by_index = {e.index: e for e in ds.episodes}
        wanted = [int(i) for i in cfg.episodes]
        missing = [i for i in wanted if i not in by_index]
        if missing or len(set(wanted)) != len(wanted):
            raise DatasetError(
                f"data.lerobot.episodes={wanted}: {missing or 'an index is repeated'}. Rule: "
                f"each must be an episode_index of the dataset ({len(by_index)} episodes, "
                f"{min(by_index)}..{max(by_index)}), once. Fix: pass existing indices, or "
                "data.lerobot.episodes=null for all."
            )
        episodes = [by_index[i] for i in wanted]
    return keys, episodes


def _digest_file(h: Any, path: Path, partial: bool) -> None:
    size = path.stat().st_size
    h.update(f"{path.name}:{size}\n".encode())
    with open(path, "rb") as f:
        if not partial or size <= 2 * _MIB:
            for block in iter(lambda: f.read(_MIB), b""):
                h.update(block)
        else:
            h.update(f.read(_MIB))
            f.seek(size - _MIB)
            h.update(f.read(_MIB))


def fingerprint(ds: LeRobotDataset, keys: list[str], episodes: list[EpisodeRef]) -> str:
    """A hash of the content the conversion reads (videos: size and first and last MiB)."""
    h = hashlib.sha256()
    meta = sorted(p for p in (ds.root / "meta").rglob("*") if p.is_file())
    data = sorted({e.data_file for e in episodes})
    videos = sorted({e.videos[k].path for e in episodes for k in keys if k in e.videos})
    for path, partial in [*((p, False) for p in meta + data), *((p, True) for p in videos)]:
        h.update(str(path.relative_to(ds.root)).encode())
        if path.is_file():  # a missing file is reported when the conversion reads it
            _digest_file(h, path, partial)
    return h.hexdigest()[:16]


def settings(ds: LeRobotDataset, cfg: LeRobotConfig, keys: list[str], episodes) -> dict:
    """Everything that changes the converted files: the cache key."""
    return {
        "content": fingerprint(ds, keys, episodes),
        "camera_keys": keys,
        "state_key": cfg.state_key,
        "action_key": cfg.action_key,
        "episodes": [e.index for e in episodes],
        "converter_version": CONVERTER_VERSION,
    }


def convert(
    ds: LeRobotDataset, cfg: LeRobotConfig, keys: list[str], episodes: list[EpisodeRef], out: Path
) -> dict[str, Any]:
    """Write ``out/episode_<i>.hdf5`` for the i-th selected episode; return manifest facts."""
    from tqdm import tqdm

    from act_hydra.data.lerobot_video import decode_image_column, decode_video_span

    total = sum(e.length for e in episodes)
    log.info(
        "converting %d episodes (%d frames, cameras %s) of the LeRobot dataset %s into the "
        "dataset cache; later runs reuse it",
        len(episodes),
        total,
        keys,
        ds.root,
    )
    image_keys = [k for k in keys if ds.features[k]["dtype"] == "image"]
    with tqdm(total=total * len(keys), unit="frame", desc="LeRobot -> HDF5", disable=None) as bar:
        for i, ep in enumerate(episodes):
            rows = read_rows(ds, cfg, ep, image_keys)
            with h5py.File(out / f"episode_{i}.hdf5", "w", rdcc_nbytes=2 * _MIB) as f:
                # LeRobot pairs frame t with the action chunk starting at t (no real-robot lead).
                f.attrs["sim"] = True
                f.attrs["fps"] = ds.fps
                f.attrs["lerobot_episode_index"] = ep.index
                obs = f.create_group("observations")
                obs.create_dataset("qpos", data=rows[cfg.state_key])
                obs.create_dataset("qvel", data=np.zeros_like(rows[cfg.state_key]))
                f.create_dataset("action", data=rows[cfg.action_key])
                images = obs.create_group("images")
                for key in keys:
                    h, w = ds.image_hw(key)
                    where = f"episode {ep.index}, {key}"
                    frames = (
                        decode_image_column(rows[key], (h, w), f"{ep.data_file} ({where})")
                        if key in image_keys
                        else decode_video_span(
                            ep.videos[key], rows["timestamp"], ds.fps, (h, w), where
                        )
                    )
                    target = images.create_dataset(
                        camera_name(key), (ep.length, h, w, 3), "uint8", chunks=(1, h, w, 3)
                    )
                    for r, frame in enumerate(frames):
                        target[r] = frame
                        bar.update(1)
    return {
        "source": str(ds.root),
        "codebase_version": ds.version,
        "fps": ds.fps,
        "robot_type": ds.robot_type,
        "camera_names": [camera_name(k) for k in keys],
        "num_frames": total,
    }


def read_rows(ds: LeRobotDataset, cfg: LeRobotConfig, ep: EpisodeRef, image_keys: list[str]):
    from act_hydra.data.lerobot_format import read_episode

    return read_episode(ds, ep, [cfg.state_key, cfg.action_key, *image_keys])


def ensure_lerobot_dataset(data: DataConfig, cache_root: str | Path | None = None) -> Path:
    """The converted episodes of ``data.lerobot``; everything is checked before converting."""
    require_extra()
    cfg = data.lerobot if data.lerobot is not None else LeRobotConfig()
    ds = open_dataset(lerobot_root(data))
    keys, episodes = select(ds, cfg, list(data.camera_names))
    return cached_dataset(
        "lerobot",
        settings(ds, cfg, keys, episodes),
        lambda folder: convert(ds, cfg, keys, episodes, folder),
        cache_root,
    )
