"""Training samples, normalisation statistics, the train/val split and a resumable sampler.

- ``EpisodeDataset`` is map-style over every (episode, start_ts) pair, so sampling is uniform over
  timesteps (act++), not one random timestep per episode (the original). Items hold raw values;
  the policy normalises on the device.
- ``StepBatchSampler`` derives the batch of optimizer step ``i`` from ``(seed, i)`` alone, so a
  run resumed at step ``s`` sees exactly the batches of an uninterrupted run, with no sampler
  state in the checkpoint, and DDP ranks read disjoint slices of one global batch.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from act_hydra.data.episodes import H5_READ_ERRORS, DatasetError, DatasetInfo, damaged

MIB = 1024**2


class EpisodeDataset(Dataset):
    """Map-style dataset over every (episode, start_ts) of the episodes ``episode_ids``.

    Item ``i`` is a dict:
      - ``observation.state``  (S,) float32, qpos at start_ts
      - ``observation.images`` (N_cam, 3, H, W) uint8, in ``camera_names`` order
      - ``action``             (chunk_size, A) float32, actions a0 .. a0+chunk_size-1, zero past
        the end of the episode, where a0 = start_ts for simulated episodes and
        max(start_ts - 1, 0) for real-robot ones (``root.attrs['sim']`` false), as the original
        does (act:utils.py: "hack, to make timesteps more aligned"). Episodes without the
        attribute count as simulated.
      - ``action_is_pad``      (chunk_size,) bool, True where zero-padded

    qpos and actions always live in RAM (they are small). Images are preloaded too when all of
    them fit under ``preload_max_mib``; otherwise they are read from the HDF5 files through one
    handle per file per process, opened on first use (each DataLoader worker opens its own) and
    kept open; beyond ``max_open_files`` files the least recently used handle is closed.
    """

    def __init__(
        self,
        info: DatasetInfo,
        episode_ids: Sequence[int],
        chunk_size: int,
        camera_names: Sequence[str] | None = None,
        preload_max_mib: float = 1024,
        max_open_files: int = 256,
    ):
        if chunk_size < 1:
            raise ValueError(f"chunk_size={chunk_size} must be >= 1")
        self.info = info
        self.episode_ids = [int(e) for e in episode_ids]
        if not self.episode_ids:
            raise DatasetError("EpisodeDataset got no episodes (episode_ids is empty).")
        bad = [e for e in self.episode_ids if not 0 <= e < info.num_episodes]
        if bad:
            raise DatasetError(
                f"episode ids {bad} are out of range: the dataset in "
                f"{info.dataset_dir} has {info.num_episodes} episodes."
            )
        self.chunk_size = int(chunk_size)
        self.camera_names = tuple(info.camera_names if camera_names is None else camera_names)
        missing = [c for c in self.camera_names if c not in info.image_shapes]
        if missing:
            raise DatasetError(
                f"cameras {missing} were not checked by scan_dataset (it checked "
                f"{list(info.camera_names)}). Call scan_dataset with data.camera_names."
            )
        self.paths = [str(info.episode_paths[e]) for e in self.episode_ids]
        self.lengths = np.array([info.episode_lengths[e] for e in self.episode_ids], np.int64)
        sim_flags = info.episode_sim or (info.sim,) * info.num_episodes
        # How many steps before start_ts the action chunk starts: 1 for real-robot episodes.
        self.action_lead = [1 if sim_flags[e] is False else 0 for e in self.episode_ids]
        self._starts = np.concatenate([[0], np.cumsum(self.lengths)])
        h, w, _ = info.image_shapes[self.camera_names[0]]
        self.image_shape = (len(self.camera_names), 3, h, w)

        self.qpos: list[np.ndarray] = []
        self.action: list[np.ndarray] = []
        for path in self.paths:
            with h5py.File(path, "r") as f:
                self.qpos.append(np.asarray(f["observations/qpos"][()], np.float32))
                self.action.append(np.asarray(f["action"][()], np.float32))

        image_bytes = int(self.lengths.sum()) * int(np.prod(self.image_shape))
        self.preloaded = image_bytes <= preload_max_mib * MIB
        self.images: list[np.ndarray] | None = None
        if self.preloaded:
            self.images = [self._read_episode_images(p) for p in self.paths]
        self.max_open_files = max(1, int(max_open_files))
        self._handles: dict[int, OrderedDict[int, h5py.File]] = {}  # pid -> {episode: file}
        self.open_count = 0  # files opened by this process (for tests and debugging)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """Dataset index -> (position in episode_ids, start_ts)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        ep = int(np.searchsorted(self._starts, index, side="right") - 1)
        return ep, int(index - self._starts[ep])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ep, ts = self.locate(int(index))
        first = max(ts - self.action_lead[ep], 0)
        actions = self.action[ep][first : first + self.chunk_size]
        n = actions.shape[0]
        action = np.zeros((self.chunk_size, actions.shape[1]), np.float32)
        action[:n] = actions
        is_pad = np.ones(self.chunk_size, bool)
        is_pad[:n] = False
        # A copy: never hand out a view of the preloaded frames.
        images = self._read_frame(ep, ts) if self.images is None else self.images[ep][ts].copy()
        return {
            "observation.state": torch.from_numpy(self.qpos[ep][ts].copy()),
            "observation.images": torch.from_numpy(np.ascontiguousarray(images)),
            "action": torch.from_numpy(action),
            "action_is_pad": torch.from_numpy(is_pad),
        }

    # -- HDF5 access ---------------------------------------------------------------------------
    def _read_episode_images(self, path: str) -> np.ndarray:
        """(T, N_cam, 3, H, W) uint8."""
        try:
            with h5py.File(path, "r") as f:
                frames = [f[f"observations/images/{c}"][()] for c in self.camera_names]
        except H5_READ_ERRORS as err:
            raise damaged(path, err) from err
        return np.ascontiguousarray(np.stack(frames, axis=1).transpose(0, 1, 4, 2, 3))

    def _read_frame(self, ep: int, ts: int) -> np.ndarray:
        """(N_cam, 3, H, W) uint8 of one timestep."""
        try:
            f = self._file(ep)
            images = np.stack([f[f"observations/images/{c}"][ts] for c in self.camera_names])
        except H5_READ_ERRORS as err:
            raise damaged(self.paths[ep], err) from err
        return images.transpose(0, 3, 1, 2)

    def _file(self, ep: int) -> h5py.File:
        # Handles are keyed by pid: a forked DataLoader worker must not use its parent's handles
        # (HDF5 file state is not fork-safe), so it opens its own on first use and keeps them.
        handles = self._handles.setdefault(os.getpid(), OrderedDict())
        f = handles.get(ep)
        if f is None:
            if len(handles) >= self.max_open_files:
                handles.popitem(last=False)[1].close()
            f = handles[ep] = h5py.File(self.paths[ep], "r")
            self.open_count += 1
        else:
            handles.move_to_end(ep)
        return f

    def close(self) -> None:
        """Close this process's handles (handles inherited from a parent are left alone)."""
        for f in self._handles.pop(os.getpid(), {}).values():
            f.close()

    def __getstate__(self):
        # Spawned workers (and pickling in general) start without handles.
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state


def compute_norm_stats(info: DatasetInfo, episode_ids: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-dimension mean and std of qpos and action over every timestep of ``episode_ids``.

    Training passes the training episodes only, deliberately: the original (act:utils.py
    ``get_norm_stats``) uses every episode, validation ones included, which lets the held-out
    episodes shape the inputs the validation loss is measured on. The estimate is the
    original's: std is torch's default unbiased estimate, clipped to >= 1e-2 so constant
    dimensions do not blow up. Episodes may differ in length (concatenated, as act++ does).
    Returns float32 arrays ``state_mean``, ``state_std``, ``action_mean``, ``action_std``.
    """
    episode_ids = [int(e) for e in episode_ids]
    if not episode_ids:
        raise DatasetError("compute_norm_stats got no episodes (episode_ids is empty).")
    qpos, action = [], []
    for e in episode_ids:
        with h5py.File(info.episode_paths[e], "r") as f:
            qpos.append(np.asarray(f["observations/qpos"][()], np.float64))
            action.append(np.asarray(f["action"][()], np.float64))
    stats = {}
    for name, arrays in (("state", qpos), ("action", action)):
        data = np.concatenate(arrays)
        std = data.std(axis=0, ddof=1) if len(data) > 1 else np.zeros(data.shape[1])
        stats[f"{name}_mean"] = data.mean(axis=0).astype(np.float32)
        stats[f"{name}_std"] = np.clip(std, 1e-2, None).astype(np.float32)
    return stats


def split_episodes(
    num_episodes: int,
    train_ratio: float,
    split_seed: int,
) -> tuple[list[int], list[int]]:
    """Seeded train/val split of episode indices, at least one episode on each side.

    Same permutation as the original (``np.random.seed(split_seed); np.random.permutation(n)``),
    so ``split_seed=1`` and ``train_ratio=0.8`` give the original's split. Returned sorted.
    """
    if num_episodes < 2:
        raise DatasetError(
            f"the dataset has {num_episodes} episode(s). Rule: training needs at least 2, one "
            f"for training and one for validation (data.train_ratio splits them). Fix: record "
            f"more episodes into data.dataset_dir, or for the built-in task set "
            f"`data.synthetic.num_episodes=50`."
        )
    if not 0.0 < train_ratio < 1.0:
        raise DatasetError(
            f"data.train_ratio={train_ratio} must be strictly between 0 and 1 (the rest of the "
            f"episodes are held out for validation). Fix: e.g. `data.train_ratio=0.8`."
        )
    perm = np.random.RandomState(split_seed).permutation(num_episodes)
    n_train = min(max(int(train_ratio * num_episodes), 1), num_episodes - 1)
    return sorted(int(i) for i in perm[:n_train]), sorted(int(i) for i in perm[n_train:])


class StepBatchSampler(Sampler[list[int]]):
    """Infinite batch sampler: the batch of optimizer step ``i`` depends only on (seed, i).

    Step ``i`` draws one global batch of ``batch_size * world_size`` indices, with replacement,
    from ``np.random.default_rng([seed, i])``; rank ``r`` takes the slice
    ``[r * batch_size, (r + 1) * batch_size)``. Iteration starts at ``start_step`` and never
    ends, so a resumed run passes ``start_step=<its step>`` and gets the batches an
    uninterrupted run would have seen. Use it as ``DataLoader(ds, batch_sampler=sampler)``.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if num_samples < 1:
            raise ValueError(f"num_samples={num_samples} must be >= 1")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        if seed < 0 or start_step < 0:
            raise ValueError(f"seed={seed} and start_step={start_step} must be >= 0")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.start_step = int(start_step)
        self.rank = int(rank)
        self.world_size = int(world_size)

    def global_batch(self, step: int) -> np.ndarray:
        """All ranks' indices for optimizer step ``step``: (batch_size * world_size,) int64."""
        rng = np.random.default_rng([self.seed, int(step)])
        return rng.integers(0, self.num_samples, size=self.batch_size * self.world_size)

    def batch(self, step: int) -> list[int]:
        """This rank's indices for optimizer step ``step``."""
        lo = self.rank * self.batch_size
        return [int(i) for i in self.global_batch(step)[lo : lo + self.batch_size]]

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1
