"""Reading a local LeRobot dataset folder (format v3.0 or v2.1) without LeRobot itself.

The layout, as LeRobot writes it::

    meta/info.json                    codebase_version, fps, features, data_path, video_path
    v3.0  meta/episodes/chunk-*/file-*.parquet   one row per episode: length, which data and
                                                 video files hold it, and for each camera the
                                                 episode's [from_timestamp, to_timestamp) in
                                                 that (multi-episode) mp4
          data/chunk-*/file-*.parquet            frame rows of many episodes
          videos/<key>/chunk-*/file-*.mp4        many episodes per file, back to back
    v2.1  meta/episodes.jsonl                    {"episode_index", "length", ...} per line
          data/chunk-*/episode_*.parquet         one file per episode
          videos/chunk-*/<key>/episode_*.mp4     one file per episode per camera

Frame rows hold ``timestamp`` (seconds since the episode start), ``frame_index``,
``episode_index``, ``index`` and the numeric features; a ``video`` feature's frames are only in
the mp4 files (the frame of a row is at ``from_timestamp + timestamp`` there), an ``image``
feature's PNG bytes are in its parquet column. ``open_dataset`` reads the metadata and checks
it; ``read_episode`` reads one episode's rows. Every problem is a ``DatasetError`` that names
the file, the rule and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from act_hydra.errors import DatasetError

SUPPORTED_VERSIONS = ("v2.1", "v3.0")
CAMERA_PREFIX = "observation.images."
INFO = "meta/info.json"
_VIDEO_COLUMNS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
_REDOWNLOAD = "Rule: LeRobot writes parquet files. Fix: download the dataset again."
_UPGRADE = (
    "LeRobot 0.4+ converts a v2.1 dataset with `python -m lerobot.scripts."
    "convert_dataset_v21_to_v30 --repo-id=<id> --root=<folder> --push-to-hub=false`"
)


def camera_name(key: str) -> str:
    """The camera's name in the episode files: ``observation.images.top`` -> ``top``; a key
    outside that namespace (``observation.image``) loses its ``observation.`` prefix."""
    for prefix in (CAMERA_PREFIX, "observation."):
        if key.startswith(prefix) and len(key) > len(prefix):
            return key[len(prefix) :]
    return key


@dataclass(frozen=True)
class VideoSpan:
    """Where one episode of one camera lies: the file and its time range inside it."""

    path: Path
    from_s: float = 0.0
    to_s: float = float("inf")


@dataclass(frozen=True)
class EpisodeRef:
    index: int  # episode_index
    length: int  # frames, from the episode metadata
    data_file: Path
    videos: dict[str, VideoSpan] = field(default_factory=dict)  # video feature key -> span


@dataclass(frozen=True)
class LeRobotDataset:
    root: Path
    version: str
    fps: float
    features: dict[str, dict[str, Any]]
    episodes: tuple[EpisodeRef, ...]
    robot_type: str | None = None

    @property
    def camera_keys(self) -> tuple[str, ...]:
        """Every image or video feature, in info.json order."""
        return tuple(k for k, f in self.features.items() if f.get("dtype") in ("video", "image"))

    def image_hw(self, key: str) -> tuple[int, int]:
        """(H, W) of a camera from its feature shape, HWC or CHW as its ``names`` say."""
        spec = self.features[key]
        shape = [int(s) for s in spec.get("shape", [])]
        names = spec.get("names") or []
        if len(shape) != 3:
            raise DatasetError(
                f"{self.root / INFO}: features[{key!r}].shape is {shape}. Rule: an image or "
                "video feature has a 3-D shape, [H, W, 3] or [3, H, W]. Fix: correct info.json "
                f"or leave the camera out with data.lerobot.camera_keys."
            )
        channels_first = (
            isinstance(names, list)
            and len(names) == 3
            and names[0]
            in (
                "channel",
                "channels",
            )
        )
        if channels_first or (shape[0] == 3 and shape[2] != 3):
            return shape[1], shape[2]
        return shape[0], shape[1]


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(
            f"{path} could not be read as JSON ({err}). Rule: {what}. Fix: download the "
            "dataset again (a partial copy?)."
        ) from err


def open_dataset(root: str | Path) -> LeRobotDataset:
    """Read and check ``meta/info.json`` and the episode index of the dataset at ``root``."""
    root = Path(str(root)).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"data.dataset_dir={root} is not a folder (resolved to {root.absolute()}). Rule: it "
            "must be a local LeRobot dataset folder (meta/info.json, data/, videos/); nothing is "
            "downloaded at run time. Fix: download it first, e.g. `huggingface-cli download "
            "--repo-type dataset <repo_id> --local-dir DIR`, then pass data.dataset_dir=DIR."
        )
    info_path = root / INFO
    if not info_path.is_file():
        found = ", ".join(sorted(p.name for p in root.iterdir())[:8]) or "nothing"
        raise DatasetError(
            f"{info_path} does not exist: data.dataset_dir={root} is not a LeRobot dataset (it "
            f"holds: {found}). Rule: a LeRobot dataset folder has meta/info.json next to data/ "
            "and videos/. Fix: point data.dataset_dir at the folder that holds meta/, or use "
            "data=aloha_hdf5 for a folder of episode_*.hdf5 files."
        )
    info = _load_json(info_path, "meta/info.json is the dataset's JSON description")
    version = str(info.get("codebase_version", "<missing>"))
    if version not in SUPPORTED_VERSIONS:
        raise DatasetError(
            f"{info_path}: codebase_version is {version!r}. Rule: act_hydra reads LeRobot "
            f"datasets of format {' and '.join(SUPPORTED_VERSIONS)}. Fix: convert the dataset "
            f"with LeRobot ({_UPGRADE}; v2.0 first to v2.1 with LeRobot 0.3.x)."
        )
    fps = info.get("fps")
    features = info.get("features")
    if not isinstance(fps, (int, float)) or fps <= 0 or not isinstance(features, dict):
        raise DatasetError(
            f"{info_path}: fps={fps!r}, features is {type(features).__name__}. Rule: info.json "
            "holds a positive `fps` and a `features` object. Fix: download the dataset again."
        )
    for key in ("data_path",) + (("video_path",) if _has_video(features) else ()):
        if not isinstance(info.get(key), str):
            raise DatasetError(
                f"{info_path} has no {key!r} template. Rule: LeRobot {version} datasets name "
                "their files with it. Fix: download the dataset again."
            )
    episodes = (_episodes_v30 if version == "v3.0" else _episodes_v21)(root, info, features)
    if not episodes:
        raise DatasetError(
            f"{root}: the episode index lists no episodes. Rule: a dataset holds at least one "
            "saved episode. Fix: record and save episodes, or download the dataset again."
        )
    return LeRobotDataset(root, version, float(fps), features, episodes, info.get("robot_type"))


def _has_video(features: dict) -> bool:
    return any(f.get("dtype") == "video" for f in features.values())


def _episodes_v30(root: Path, info: dict, features: dict) -> tuple[EpisodeRef, ...]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(
            f"{root / 'meta/episodes'} holds no chunk-*/file-*.parquet files. Rule: a v3.0 "
            "dataset lists its episodes there. Fix: download the dataset again (all of meta/)."
        )
    video_keys = [k for k, f in features.items() if f.get("dtype") == "video"]
    wanted = ["episode_index", "length", "data/chunk_index", "data/file_index"]
    for k in video_keys:
        wanted += [f"videos/{k}/{c}" for c in _VIDEO_COLUMNS]
    tables = []
    for path in files:
        try:
            names = pq.read_schema(path).names
            missing = [c for c in wanted if c not in names]
            if missing:
                raise DatasetError(
                    f"{path} lacks the columns {missing}. Rule: each episode row of a v3.0 "
                    "dataset says which data and video files hold the episode. Fix: download "
                    "the dataset again, or leave cameras out with data.lerobot.camera_keys."
                )
            tables.append(pq.read_table(path, columns=wanted))
        except (OSError, pa.ArrowException) as err:
            raise DatasetError(
                f"{path} is not a readable parquet file ({err}). {_REDOWNLOAD}"
            ) from err
    cols = pa.concat_tables(tables).to_pydict()
    refs = []
    for row in range(len(cols["episode_index"])):
        videos = {}
        for k in video_keys:
            c = {name: cols[f"videos/{k}/{name}"][row] for name in _VIDEO_COLUMNS}
            path = info["video_path"].format(
                video_key=k, chunk_index=c["chunk_index"], file_index=c["file_index"]
            )
            videos[k] = VideoSpan(root / path, float(c["from_timestamp"]), float(c["to_timestamp"]))
        data = info["data_path"].format(
            chunk_index=cols["data/chunk_index"][row], file_index=cols["data/file_index"][row]
        )
        refs.append(
            EpisodeRef(
                int(cols["episode_index"][row]), int(cols["length"][row]), root / data, videos
            )
        )
    return tuple(sorted(refs, key=lambda r: r.index))


def _episodes_v21(root: Path, info: dict, features: dict) -> tuple[EpisodeRef, ...]:
    path = root / "meta" / "episodes.jsonl"
    if not path.is_file():
        raise DatasetError(
            f"{path} does not exist. Rule: a v2.1 dataset lists its episodes there, one JSON "
            "object per line. Fix: download the dataset again (all of meta/)."
        )
    chunks = int(info.get("chunks_size") or 1000)
    video_keys = [k for k, f in features.items() if f.get("dtype") == "video"]
    refs = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            ep = json.loads(line)
            index, length = int(ep["episode_index"]), int(ep["length"])
        except (ValueError, KeyError, TypeError) as err:
            raise DatasetError(
                f"{path} line {n} is not an episode entry ({err}). Rule: each line is "
                '{"episode_index": i, "length": n, ...}. Fix: download the dataset again.'
            ) from err
        names = {"episode_chunk": index // chunks, "episode_index": index}
        videos = {
            k: VideoSpan(root / info["video_path"].format(video_key=k, **names)) for k in video_keys
        }
        refs.append(EpisodeRef(index, length, root / info["data_path"].format(**names), videos))
    return tuple(sorted(refs, key=lambda r: r.index))


def read_episode(ds: LeRobotDataset, ep: EpisodeRef, keys: list[str]) -> dict[str, np.ndarray]:
    """The rows of episode ``ep`` as arrays, in frame order: ``timestamp`` (T,) float64 and
    each numeric feature of ``keys`` as (T, dim) float32; an image feature as (T,) object
    array of encoded image bytes. Checks the rows against the episode metadata."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not ep.data_file.is_file():
        raise DatasetError(
            f"{ep.data_file} does not exist (episode {ep.index}). Rule: every episode's frame "
            "rows are in the data file its metadata names. Fix: download the dataset again."
        )
    columns = ["episode_index", "frame_index", "timestamp", *keys]
    try:
        schema = pq.read_schema(ep.data_file)
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise DatasetError(
                f"{ep.data_file} has no column {missing} (columns: {', '.join(schema.names)}). "
                "Rule: the frame rows hold every numeric and image feature of meta/info.json. "
                "Fix: download the dataset again."
            )
        table = pq.read_table(ep.data_file, columns=columns)
    except pa.ArrowException as err:
        raise DatasetError(
            f"{ep.data_file} is not a readable parquet file ({err}). {_REDOWNLOAD}"
        ) from err
    table = table.filter(pc.equal(table["episode_index"], ep.index))
    table = table.take(pc.sort_indices(table["frame_index"]))
    frames = table["frame_index"].to_numpy()
    if table.num_rows != ep.length or not np.array_equal(frames, np.arange(ep.length)):
        raise DatasetError(
            f"{ep.data_file}: episode {ep.index} has {table.num_rows} frame rows (frame_index "
            f"{_span(frames)}) but its metadata says length {ep.length}. Rule: an episode's rows "
            "are frame_index 0..length-1, one per frame. Fix: download the dataset again, or "
            "leave the episode out with data.lerobot.episodes."
        )
    out: dict[str, np.ndarray] = {"timestamp": table["timestamp"].to_numpy().astype(np.float64)}
    for key in keys:
        column = table[key].combine_chunks()
        if ds.features[key].get("dtype") == "image":
            out[key] = np.array(column.field("bytes").to_pylist(), dtype=object)
            continue
        values = (
            column.flatten()
            if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type)
            else column
        )
        out[key] = np.asarray(values.to_numpy(zero_copy_only=False), np.float32).reshape(
            ep.length, -1
        )
    return out


def _span(frames: np.ndarray) -> str:
    return f"{frames.min()}..{frames.max()}" if len(frames) else "none"
