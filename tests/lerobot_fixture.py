"""A tiny LeRobot dataset written the way LeRobot lays it out (act_hydra/data/lerobot_format.py
describes the layout): parquet through pyarrow, AV1 video through PyAV (libsvtav1, yuv420p,
a key frame every 2 frames, as LeRobot encodes by default). The slow interop test checks once
that this layout matches what LeRobot's own writer produces.

Frame ``t`` of episode ``e`` is a flat colour ``frame_value(e, t)``, so a test can tell which
frame landed in which row after lossy encoding; state and action are ``e + t / 100`` offsets.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np

FPS = 10


def frame_value(episode: int, t: int) -> int:
    return (40 * episode + 9 * t) % 200 + 20


def episode_frames(episode: int, length: int, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    values = np.array([frame_value(episode, t) for t in range(length)], np.uint8)
    frames = np.broadcast_to(values[:, None, None, None], (length, h, w, 3)).copy()
    frames[..., 1] //= 2  # not grey: catches swapped colour channels
    return frames


def state_action(episode: int, length: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(length, dtype=np.float32)[:, None]
    state = episode + t / 100 + np.arange(dim, dtype=np.float32)
    return state.astype(np.float32), (state + 0.5).astype(np.float32)


def encode_video(path: Path, frames: np.ndarray, fps: int = FPS, codec: str = "libsvtav1"):
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if codec == "libsvtav1":
            stream.options = {"g": "2", "crf": "30", "preset": "12"}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _rows_table(episodes, lengths, dim, image_cams, size, first_index: int):
    import pyarrow as pa

    cols: dict[str, list] = {k: [] for k in ("state", "action", "ts", "fi", "ei", "idx")}
    images: dict[str, list] = {c: [] for c in image_cams}
    index = first_index
    for e in episodes:
        state, action = state_action(e, lengths[e], dim)
        cols["state"] += list(state)
        cols["action"] += list(action)
        for t in range(lengths[e]):
            cols["ts"].append(t / FPS)
            cols["fi"].append(t)
            cols["ei"].append(e)
            cols["idx"].append(index)
            index += 1
        for cam in image_cams:
            for frame in episode_frames(e, lengths[e], size):
                images[cam].append({"bytes": _png(frame), "path": None})
    vec = pa.list_(pa.float32(), dim)
    n = len(cols["fi"])
    table = {
        "observation.state": pa.array([list(map(float, s)) for s in cols["state"]], vec),
        "action": pa.array([list(map(float, a)) for a in cols["action"]], vec),
        "timestamp": pa.array(cols["ts"], pa.float32()),
        "frame_index": pa.array(cols["fi"], pa.int64()),
        "episode_index": pa.array(cols["ei"], pa.int64()),
        "index": pa.array(cols["idx"], pa.int64()),
        "task_index": pa.array([0] * n, pa.int64()),
    }
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for cam in image_cams:
        table[f"observation.images.{cam}"] = pa.array(images[cam], struct)
    return pa.table(table)


def _features(dim, video_cams, image_cams, size):
    h, w = size
    spec = {
        "observation.state": {"dtype": "float32", "shape": [dim], "names": None},
        "action": {"dtype": "float32", "shape": [dim], "names": None},
    }
    for cam in video_cams:
        spec[f"observation.images.{cam}"] = {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
            "info": {"video.height": h, "video.width": w, "video.codec": "av1", "video.fps": FPS},
        }
    for cam in image_cams:
        spec[f"observation.images.{cam}"] = {
            "dtype": "image",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
        }
    for key, dtype in (("timestamp", "float32"), *((k, "int64") for k in _INDEX_KEYS)):
        spec[key] = {"dtype": dtype, "shape": [1], "names": None}
    return spec


_INDEX_KEYS = ("frame_index", "episode_index", "index", "task_index")


def write_lerobot_dataset(
    root: str | Path,
    version: str = "v3.0",
    lengths: tuple[int, ...] = (12, 10, 8),
    dim: int = 3,
    video_cams: tuple[str, ...] = ("top",),
    image_cams: tuple[str, ...] = (),
    size: tuple[int, int] = (64, 64),
    video_lengths: dict[int, int] | None = None,
    frames=episode_frames,
) -> Path:
    """Write the dataset; ``video_lengths[e]`` encodes another number of frames for episode
    ``e`` (a video that disagrees with its parquet rows); ``frames(e, n, (h, w))`` makes the
    video frames (default: flat colours, ``episode_frames``)."""
    import pyarrow.parquet as pq

    root = Path(root)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    episodes = range(len(lengths))
    video_lengths = {e: lengths[e] for e in episodes} | (video_lengths or {})
    info = {
        "codebase_version": version,
        "robot_type": "tiny",
        "total_episodes": len(lengths),
        "total_frames": sum(lengths),
        "total_tasks": 1,
        "chunks_size": 1000,
        "fps": FPS,
        "splits": {"train": f"0:{len(lengths)}"},
        "features": _features(dim, video_cams, image_cams, size),
    }
    starts = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    if version == "v3.0":
        info |= {
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200,
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
            if video_cams
            else None,
        }
        (root / "data/chunk-000").mkdir(parents=True)
        table = _rows_table(episodes, lengths, dim, image_cams, size, 0)
        pq.write_table(table, root / "data/chunk-000/file-000.parquet")
        for cam in video_cams:
            video = np.concatenate([frames(e, video_lengths[e], size) for e in episodes])
            path = root / f"videos/observation.images.{cam}/chunk-000/file-000.mp4"
            encode_video(path, video)
        vstarts = np.concatenate([[0], np.cumsum([video_lengths[e] for e in episodes])])
        meta: dict[str, list] = {
            "episode_index": list(episodes),
            "tasks": [["do it"]] * len(lengths),
            "length": list(lengths),
            "data/chunk_index": [0] * len(lengths),
            "data/file_index": [0] * len(lengths),
            "dataset_from_index": starts[:-1],
            "dataset_to_index": starts[1:],
        }
        for cam in video_cams:
            key = f"videos/observation.images.{cam}"
            meta[f"{key}/chunk_index"] = [0] * len(lengths)
            meta[f"{key}/file_index"] = [0] * len(lengths)
            meta[f"{key}/from_timestamp"] = [float(v) / FPS for v in vstarts[:-1]]
            meta[f"{key}/to_timestamp"] = [float(v) / FPS for v in vstarts[1:]]
        meta["meta/episodes/chunk_index"] = [0] * len(lengths)
        meta["meta/episodes/file_index"] = [0] * len(lengths)
        import pyarrow as pa

        (root / "meta/episodes/chunk-000").mkdir(parents=True)
        pq.write_table(pa.table(meta), root / "meta/episodes/chunk-000/file-000.parquet")
    else:
        info |= {
            "total_chunks": 1,
            "total_videos": len(lengths) * len(video_cams),
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/"
            "episode_{episode_index:06d}.mp4",
        }
        (root / "data/chunk-000").mkdir(parents=True)
        lines = []
        for e in episodes:
            table = _rows_table([e], lengths, dim, image_cams, size, starts[e])
            pq.write_table(table, root / f"data/chunk-000/episode_{e:06d}.parquet")
            for cam in video_cams:
                path = root / f"videos/chunk-000/observation.images.{cam}/episode_{e:06d}.mp4"
                encode_video(path, frames(e, video_lengths[e], size))
            lines.append(json.dumps({"episode_index": e, "tasks": ["do it"], "length": lengths[e]}))
        (root / "meta/episodes.jsonl").write_text("\n".join(lines) + "\n")
        (root / "meta/tasks.jsonl").write_text('{"task_index": 0, "task": "do it"}\n')
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    return root
