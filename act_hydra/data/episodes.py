"""Episode files in the original ACT recorder's HDF5 layout, and their validation.

One file per episode, ``episode_<i>.hdf5`` (act:record_sim_episodes.py)::

    root.attrs['sim']               bool (False: a real robot; its action chunks start one
                                    step earlier, as in the original)
    /observations/qpos              (T, S) float
    /observations/qvel              (T, S) float   (read by nobody: ACT never sees qvel)
    /observations/images/<camera>   (T, H, W, 3) uint8, chunks=(1, H, W, 3)
    /action                         (T, A) float

``scan_dataset`` checks a folder of such files *before* anything is trained and raises
``DatasetError`` with the key or file at fault, the value found, the rule, and a fix written as a
Hydra override. It reads shapes only (no image data), so it is fast on large datasets.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from act_hydra.errors import DatasetError

EPISODE_GLOB = "episode_*.hdf5"
H5_READ_ERRORS = (OSError, RuntimeError, KeyError)  # how h5py reports damaged metadata or data
_INDEX = re.compile(r"^episode_(\d+)\.hdf5$")


@dataclass(frozen=True)
class DatasetInfo:
    """What ``scan_dataset`` found. Episode ``i`` of the dataset is ``episode_paths[i]``."""

    dataset_dir: Path
    episode_paths: tuple[Path, ...]  # sorted by the number in episode_<n>.hdf5
    episode_lengths: tuple[int, ...]
    state_dim: int
    action_dim: int
    camera_names: tuple[str, ...]  # the cameras that were checked (data.camera_names)
    image_shapes: dict[str, tuple[int, int, int]]  # camera -> (H, W, 3)
    sim: bool | None  # root.attrs['sim'] of the first episode (None when absent)
    # root.attrs['sim'] of every episode (None when absent): False marks a real-robot
    # recording, whose action chunks start one step earlier (act_hydra.data.EpisodeDataset).
    episode_sim: tuple[bool | None, ...] = ()

    @property
    def num_episodes(self) -> int:
        return len(self.episode_paths)

    @property
    def num_frames(self) -> int:
        return sum(self.episode_lengths)


def write_episode(
    path: str | Path,
    qpos: np.ndarray,
    qvel: np.ndarray | None,
    action: np.ndarray,
    images: dict[str, np.ndarray],
    sim: bool = True,
) -> Path:
    """Write one episode in the original layout. ``qvel=None`` writes zeros like ``qpos``."""
    path = Path(path)
    qpos = np.asarray(qpos)
    action = np.asarray(action)
    qvel = np.zeros_like(qpos) if qvel is None else np.asarray(qvel)
    # The original recorder opens the file with a 2 MiB chunk cache.
    with h5py.File(path, "w", rdcc_nbytes=2 * 1024**2) as root:
        root.attrs["sim"] = bool(sim)
        obs = root.create_group("observations")
        image_group = obs.create_group("images")
        for cam, frames in images.items():
            frames = np.asarray(frames)
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise ValueError(
                    f"images[{cam!r}] must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}"
                )
            image_group.create_dataset(
                cam, data=frames, dtype="uint8", chunks=(1, *frames.shape[1:])
            )
        obs.create_dataset("qpos", data=qpos)
        obs.create_dataset("qvel", data=qvel)
        root.create_dataset("action", data=action)
    return path


def _sort_key(path: Path) -> tuple[int, int, str]:
    m = _INDEX.match(path.name)
    return (0, int(m.group(1)), path.name) if m else (1, 0, path.name)


def _fix_dir(dataset_dir) -> str:
    return (
        f"pass an existing folder of episode_*.hdf5 files, e.g. "
        f"`data.dataset_dir=/abs/path/to/{Path(str(dataset_dir)).name or 'episodes'}`"
    )


def scan_dataset(dataset_dir: str | Path | None, camera_names) -> DatasetInfo:
    """Validate ``dataset_dir`` and describe it; raises ``DatasetError`` on anything unusable.

    Checks: the folder exists and holds ``episode_*.hdf5`` files; each is HDF5 with
    ``/observations/qpos``, ``/action`` and every camera of ``camera_names`` (uncompressed
    (T, H, W, 3) uint8); qpos, action and images agree on T within an episode; state/action
    dims and image shapes agree across episodes (lengths may differ).
    """
    camera_names = tuple(camera_names)
    if not camera_names:
        raise DatasetError(
            "data.camera_names=[] is empty. Rule: ACT needs at least one camera, and each name "
            "must be a dataset under /observations/images in every episode. Fix: e.g. "
            "`data.camera_names=[top]`."
        )
    if len(set(camera_names)) != len(camera_names):
        raise DatasetError(
            f"data.camera_names={list(camera_names)} lists a camera twice. Rule: names must be "
            f"unique. Fix: `data.camera_names=[{','.join(dict.fromkeys(camera_names))}]`."
        )
    if dataset_dir is None or str(dataset_dir).strip() == "":
        raise DatasetError(
            "data.dataset_dir is not set. Rule: it must be a folder of episode_*.hdf5 files in "
            f"the original ACT recorder's layout. Fix: {_fix_dir('episodes')}."
        )
    root = Path(str(dataset_dir)).expanduser()
    if not root.exists():
        raise DatasetError(
            f"data.dataset_dir={dataset_dir} does not exist (resolved to {root.absolute()}). Rule: "
            f"it must be a folder of episode_*.hdf5 files; relative paths are resolved from the "
            f"current working directory. Fix: {_fix_dir(dataset_dir)}."
        )
    if not root.is_dir():
        raise DatasetError(
            f"data.dataset_dir={dataset_dir} is a file, not a folder. Rule: it must be the folder "
            f"that holds the episode_*.hdf5 files. Fix: "
            f"`data.dataset_dir={root.absolute().parent}` if the episodes sit next to it."
        )
    check_no_dangling_links(root, dataset_dir)
    paths = sorted((p for p in root.glob(EPISODE_GLOB) if p.is_file()), key=_sort_key)
    if not paths:
        others = sorted(p.name for p in root.iterdir())
        shown = ", ".join(others[:8]) + (", ..." if len(others) > 8 else "")
        raise DatasetError(
            f"data.dataset_dir={dataset_dir} contains no episode_*.hdf5 files (it holds: "
            f"{shown or 'nothing'}). Rule: one file per episode named episode_<n>.hdf5, as the "
            f"original ACT recorder writes them. Fix: point at the folder that holds them, "
            f"{_fix_dir(dataset_dir)}."
        )

    lengths: list[int] = []
    state_dim = action_dim = None
    image_shapes: dict[str, tuple[int, int, int]] = {}
    first_of: dict[str, str] = {}
    sim = None
    episode_sim: list[bool | None] = []
    for i, path in enumerate(paths):
        info = _scan_episode(path, camera_names, dataset_dir)
        episode_sim.append(info["sim"])
        if i == 0:
            sim = info["sim"]
            state_dim, action_dim = info["state_dim"], info["action_dim"]
            image_shapes = info["image_shapes"]
            first_of = {"state": path.name, "action": path.name}
        for what, dim, ref in (
            ("state", info["state_dim"], state_dim),
            ("action", info["action_dim"], action_dim),
        ):
            if dim != ref:
                key = "/observations/qpos" if what == "state" else "/action"
                raise DatasetError(
                    f"{path.name} in data.dataset_dir={dataset_dir} has {what}_dim {dim} ({key} "
                    f"is {info[what + '_shape']}) but {first_of[what]} has {ref}. Rule: every "
                    f"episode of a dataset must share state and action dims (lengths may "
                    f"differ). Fix: move the episodes of the other robot to their own folder and "
                    f"pass `data.dataset_dir=<that folder>`."
                )
        for cam in camera_names:
            if info["image_shapes"][cam] != image_shapes[cam]:
                others = [c for c in camera_names if c != cam]
                drop = f", or drop the camera with `data.camera_names=[{','.join(others)}]`"
                raise DatasetError(
                    f"{path.name}: /observations/images/{cam} frames are "
                    f"{info['image_shapes'][cam]} but {paths[0].name} has {image_shapes[cam]}. "
                    f"Rule: a camera's image size must be the same in every episode. Fix: "
                    f"resize the recordings offline, move the episodes of the other size to "
                    f"their own folder{drop if others else ''}."
                )
        lengths.append(info["length"])
    shapes = {image_shapes[c][:2] for c in camera_names}
    if len(shapes) > 1:
        listed = ", ".join(f"{c}: {image_shapes[c][0]}x{image_shapes[c][1]}" for c in camera_names)
        raise DatasetError(
            f"data.camera_names={list(camera_names)} have different image sizes ({listed}). "
            f"Rule: the cameras are stacked into one (N_cam, 3, H, W) tensor, so they must share "
            f"H and W. Fix: resize the recordings offline, or select cameras of one size, e.g. "
            f"`data.camera_names=[{camera_names[0]}]`."
        )
    return DatasetInfo(
        root,
        tuple(paths),
        tuple(lengths),
        int(state_dim),
        int(action_dim),
        camera_names,
        {c: image_shapes[c] for c in camera_names},
        sim,
        tuple(episode_sim),
    )


def check_no_dangling_links(root: Path, dataset_dir) -> None:
    """A link whose target is gone (an unmounted drive) would otherwise drop its episode."""
    for path in sorted(root.glob(EPISODE_GLOB), key=_sort_key):
        if path.is_symlink() and not path.exists():
            raise DatasetError(
                f"{path.name} in data.dataset_dir={dataset_dir} is a link to {os.readlink(path)}, "
                "which does not exist. Rule: every episode_*.hdf5 in the folder is part of the "
                "dataset, so a missing one is not skipped silently. Fix: restore the target (is "
                "a drive unmounted?) or delete the link."
            )


def _scan_episode(path: Path, camera_names: tuple[str, ...], dataset_dir) -> dict:
    where = f"{path.name} in data.dataset_dir={dataset_dir}"
    if not h5py.is_hdf5(path):
        size = path.stat().st_size
        raise DatasetError(
            f"{where} is not an HDF5 file ({size} bytes; h5py cannot open it). Rule: every "
            f"episode_*.hdf5 file must be an episode in the original recorder's HDF5 layout. "
            f"Fix: delete or re-record {path} (a partial download or copy?), or move it out of "
            f"the folder."
        )
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(
            f"{where} could not be opened as HDF5 ({e}). Rule: every episode_*.hdf5 file must "
            f"be a readable HDF5 file. Fix: re-record or re-copy {path}, or move it out of the "
            f"folder."
        ) from e
    try:
        with f:
            return _read_layout(f, where, camera_names)
    except H5_READ_ERRORS as e:
        raise damaged(path, e, where) from e


def damaged(path: Path | str, err: BaseException, where: str | None = None) -> DatasetError:
    """The error for an episode file h5py fails to read."""
    return DatasetError(
        f"{where or path} is damaged: h5py failed reading it ({err}). Rule: every episode_*.hdf5 "
        f"file must be a readable HDF5 file. Fix: re-record or re-copy {path} (a partial "
        "copy?), or move it out of the folder."
    )


def _read_layout(f: h5py.File, where: str, camera_names: tuple[str, ...]) -> dict:
    """The shapes and attributes of one open episode, checked against the layout."""
    for key in ("observations/qpos", "action"):
        if not isinstance(f.get(key), h5py.Dataset):
            raise DatasetError(
                f"{where} has no /{key} dataset (it has: {_listing(f)}). Rule: episodes "
                f"follow the original ACT layout (/observations/qpos, /observations/qvel, "
                f"/observations/images/<cam>, /action). Fix: convert the recording to that "
                f"layout (act_hydra.data.write_episode does it), or move the file out of "
                f"the folder."
            )
    qpos, action = f["observations/qpos"], f["action"]
    for key, ds in (("observations/qpos", qpos), ("action", action)):
        if ds.ndim != 2 or ds.shape[0] == 0:
            raise DatasetError(
                f"{where}: /{key} has shape {ds.shape}. Rule: it must be (T, dim) with "
                f"T >= 1. Fix: re-record the episode or move it out of the folder."
            )
        check_finite_numbers(ds, f"{where}: /{key}")
    group = f.get("observations/images")
    cams_here = sorted(group.keys()) if isinstance(group, h5py.Group) else []
    image_shapes = {}
    for cam in camera_names:
        if cam not in cams_here:
            raise DatasetError(
                f"{where} has no camera '{cam}' under /observations/images (it has: "
                f"{', '.join(cams_here) or 'none'}). Rule: every name in data.camera_names="
                f"{list(camera_names)} must be recorded in every episode. Fix: "
                f"`data.camera_names=[{','.join(cams_here) or '<camera>'}]` (or a subset)."
            )
        ds = group[cam]
        if ds.attrs.get("compress", False) or f.attrs.get("compress", False) or ds.ndim == 2:
            raise DatasetError(
                f"{where}: /observations/images/{cam} is JPEG-compressed (shape {ds.shape}, "
                f"attrs['compress'] set, as Mobile ALOHA records it). Rule: act_hydra reads "
                f"uncompressed (T, H, W, 3) uint8 frames only. Fix: decode each row with "
                f"cv2.imdecode and rewrite the episode with act_hydra.data.write_episode, "
                f"then pass `data.dataset_dir=<the new folder>`."
            )
        if ds.ndim != 4 or ds.shape[-1] != 3 or ds.dtype != np.uint8:
            raise DatasetError(
                f"{where}: /observations/images/{cam} is {ds.shape} {ds.dtype}. Rule: frames "
                f"are (T, H, W, 3) uint8 RGB. Fix: rewrite the episode with "
                f"act_hydra.data.write_episode, or drop the camera from data.camera_names."
            )
        image_shapes[cam] = tuple(int(s) for s in ds.shape[1:])
    lengths = {
        "/observations/qpos": qpos.shape[0],
        "/action": action.shape[0],
        **{f"/observations/images/{c}": group[c].shape[0] for c in camera_names},
    }
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise DatasetError(
            f"{where} has datasets of different lengths ({listed}). Rule: within an episode, "
            f"qpos, action and every camera have one entry per timestep (the same T). Fix: "
            f"re-record or trim the episode, or move it out of the folder."
        )
    sim = f.attrs.get("sim")
    return {
        "length": int(qpos.shape[0]),
        "state_dim": int(qpos.shape[1]),
        "state_shape": qpos.shape,
        "action_dim": int(action.shape[1]),
        "action_shape": action.shape,
        "image_shapes": image_shapes,
        "sim": None if sim is None else bool(sim),
    }


def check_finite_numbers(ds: h5py.Dataset, where: str) -> None:
    """Joint values must be finite numbers: a NaN would surface much later as a "diverged"
    loss or a NaN validation loss. qpos and action are small, so reading them is cheap."""
    if not (np.issubdtype(ds.dtype, np.floating) or np.issubdtype(ds.dtype, np.integer)):
        raise DatasetError(
            f"{where} has dtype {ds.dtype}. Rule: joint positions and actions are numbers "
            "(float32 or float64). Fix: rewrite the episode with act_hydra.data.write_episode "
            "from float arrays, or move it out of the folder."
        )
    values = ds[()]
    bad = ~np.isfinite(values)
    if bad.any():
        t, j = (int(i) for i in np.argwhere(bad)[0])
        raise DatasetError(
            f"{where} holds {int(bad.sum())} non-finite value(s) (the first, {values[t, j]}, at "
            f"timestep {t}, dimension {j}). Rule: every joint value must be finite; a NaN or inf "
            "would turn the loss and the normalisation stats into NaN. Fix: repair or re-record "
            "the episode, or move it out of the folder."
        )


def _listing(f: h5py.File) -> str:
    names: list[str] = []
    f.visit(lambda name: names.append("/" + name) if len(names) < 12 else None)
    return ", ".join(names) or "nothing"
