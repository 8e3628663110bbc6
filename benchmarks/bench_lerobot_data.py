"""Data-loader samples/s for a LeRobot dataset: decoding video on the fly vs the converted cache.

    python benchmarks/bench_lerobot_data.py                          # 480x640 AV1, 4 x 100 frames
    python benchmarks/bench_lerobot_data.py --episodes 2 --length 20 --height 96 --width 128

Writes a LeRobot v3.0 dataset (tests/lerobot_fixture.py: parquet rows, AV1 video encoded as
LeRobot does, textured frames that move, so the decoder has real work), then measures, with
training's own DataLoader settings (act_hydra.train_state.build_train_loader) and the same
random indices:

  on-the-fly   every sample decodes its frame in the DataLoader workers: a seek to the key
               frame at or before it (LeRobot's files have one every 2 frames) and a decode,
               with one open container per file per worker, as LeRobot's own reader does;
  cache/disk   the episode_*.hdf5 files data=lerobot converts to once, read through open
               handles per worker (what datasets larger than data.preload_max_mib take);
  cache/RAM    the same files preloaded (what smaller datasets take);

and the one-off conversion time. The on-the-fly reader lives only here: training uses the
cache (act_hydra/data/lerobot.py says why).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from act_hydra.compose import compose_train_config, to_train_config  # noqa: E402
from act_hydra.data import EpisodeDataset, scan_dataset  # noqa: E402
from act_hydra.data.lerobot import ensure_lerobot_dataset  # noqa: E402
from act_hydra.data.lerobot_format import open_dataset, read_episode  # noqa: E402
from act_hydra.train_state import build_train_loader  # noqa: E402
from benchmarks.benchmark import loader_throughput  # noqa: E402
from tests.lerobot_fixture import write_lerobot_dataset  # noqa: E402


def textured_frames(episode: int, length: int, size: tuple[int, int]) -> np.ndarray:
    """A blocky random texture that pans 4 px per frame, over a colour gradient."""
    h, w = size
    rng = np.random.default_rng(episode)
    texture = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), np.uint8)
    texture = texture.repeat(8, axis=0).repeat(8, axis=1)[:h, :w]
    ramp = np.linspace(0, 80, w, dtype=np.float32)[None, :, None]
    return np.stack(
        [(np.roll(texture, 4 * t, axis=1) * 0.7 + ramp).astype(np.uint8) for t in range(length)]
    )


class OnTheFlyDataset(Dataset):
    """EpisodeDataset's items, with each frame decoded from the LeRobot videos when asked."""

    def __init__(self, root: Path, chunk_size: int, camera_keys: list[str]):
        self.ds = open_dataset(root)
        self.episodes = list(self.ds.episodes)
        self.keys, self.chunk = camera_keys, chunk_size
        rows = [read_episode(self.ds, e, ["observation.state", "action"]) for e in self.episodes]
        self.state = [r["observation.state"] for r in rows]
        self.action = [r["action"] for r in rows]
        self.time = [r["timestamp"] for r in rows]
        self.starts = np.cumsum([0] + [e.length for e in self.episodes])
        self._open: dict[int, dict] = {}  # pid -> {path: container}: never shared across forks

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _frame(self, path: Path, t: float) -> np.ndarray:
        import av

        containers = self._open.setdefault(os.getpid(), {})
        if path not in containers:
            containers[path] = av.open(str(path))
            containers[path].streams.video[0].thread_type = "AUTO"
        container = containers[path]
        stream = container.streams.video[0]
        container.seek(int(t / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is not None and float(frame.pts * stream.time_base) >= t - 1e-4:
                return frame.to_ndarray(format="rgb24")
        raise IndexError(f"no frame at {t} s in {path}")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ep = int(np.searchsorted(self.starts, index, side="right") - 1)
        ts = index - int(self.starts[ep])
        spans = self.episodes[ep].videos
        images = np.stack(
            [self._frame(spans[k].path, spans[k].from_s + self.time[ep][ts]) for k in self.keys]
        ).transpose(0, 3, 1, 2)
        actions = self.action[ep][ts : ts + self.chunk]
        action = np.zeros((self.chunk, actions.shape[1]), np.float32)
        action[: len(actions)] = actions
        is_pad = np.arange(self.chunk) >= len(actions)
        return {
            "observation.state": torch.from_numpy(self.state[ep][ts].copy()),
            "observation.images": torch.from_numpy(np.ascontiguousarray(images)),
            "action": torch.from_numpy(action),
            "action_is_pad": torch.from_numpy(is_pad),
        }

    def __getstate__(self):
        return {**self.__dict__, "_open": {}}


def run(args: argparse.Namespace, work: Path) -> dict:
    t0 = time.perf_counter()
    root = write_lerobot_dataset(
        work / "dataset",
        lengths=(args.length,) * args.episodes,
        dim=14,
        size=(args.height, args.width),
        frames=textured_frames,
    )
    write_s = time.perf_counter() - t0
    video_mib = sum(p.stat().st_size for p in root.rglob("*.mp4")) / 2**20
    overrides = [
        "data=lerobot",
        f"data.dataset_dir={root}",
        f"data.num_workers={args.workers}",
        f"training.batch_size={args.batch_size}",
        "training.device=cpu",
        *args.overrides,
    ]
    cfg = to_train_config(compose_train_config(overrides))
    os.environ["ACT_HYDRA_CACHE"] = str(work / "cache")
    t0 = time.perf_counter()
    converted = ensure_lerobot_dataset(cfg.data)
    convert_s = time.perf_counter() - t0
    frames = args.episodes * args.length
    info = scan_dataset(converted, list(cfg.data.camera_names))
    ids, chunk = list(range(info.num_episodes)), cfg.model.chunk_size
    readers = {
        "on_the_fly": OnTheFlyDataset(root, chunk, ["observation.images.top"]),
        "cache_disk": EpisodeDataset(info, ids, chunk, ["top"], preload_max_mib=0),
        "cache_ram": EpisodeDataset(info, ids, chunk, ["top"], preload_max_mib=1 << 20),
    }
    results = {}
    for name, dataset in readers.items():
        loader = build_train_loader(dataset, cfg.training, args.workers, torch.device("cpu"))
        results[name] = loader_throughput(
            loader, args.batch_size, args.batches, warmup=max(1, args.workers)
        )
        del loader
    return {
        "image": [args.height, args.width],
        "episodes": args.episodes,
        "frames": frames,
        "codec": "av1 (libsvtav1, g=2, crf=30, preset 12: LeRobot's defaults)",
        "video_mib": round(video_mib, 2),
        "cache_mib": round(sum(p.stat().st_size for p in converted.glob("*.hdf5")) / 2**20, 1),
        "write_dataset_s": round(write_s, 2),
        "convert_s": round(convert_s, 2),
        "convert_frames_per_s": round(frames / convert_s, 1),
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "readers": results,
    }


def format_table(r: dict) -> str:
    lines = [
        f"LeRobot dataset {r['episodes']} x {r['frames'] // r['episodes']} frames, "
        f"{r['image'][0]}x{r['image'][1]} {r['codec']}: {r['video_mib']} MiB of video, "
        f"{r['cache_mib']} MiB converted",
        f"one-off conversion: {r['convert_s']} s ({r['convert_frames_per_s']} frames/s)",
        f"batch {r['batch_size']}, {r['num_workers']} DataLoader workers:",
    ]
    base = r["readers"]["on_the_fly"]["samples_per_s"]
    for name, m in r["readers"].items():
        lines.append(
            f"  {name:<12} {m['samples_per_s']:>9.1f} samples/s  {m['ms_per_batch']:>8.1f} "
            f"ms/batch  {m['samples_per_s'] / base:>6.1f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per reader")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("overrides", nargs="*", help="training config overrides")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args, Path(tmp))
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
