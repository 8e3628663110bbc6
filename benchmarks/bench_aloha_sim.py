"""Benchmark of the ALOHA simulation: scripted success rates and dataset generation time.

    .venv/bin/python benchmarks/bench_aloha_sim.py                 # 50 episodes per task
    .venv/bin/python benchmarks/bench_aloha_sim.py --episodes 10 --render-episodes 2

1. Scripted success, physics only (no rendering: rendering does not change the physics): for
   seeds 0..N-1 of each task, the scripted end-effector run and the joint-space replay of its
   trajectory (replayed even when the first phase failed, like the original recorder), with the
   paper's stages reached by the replay.
2. Generation time at 480x640 in both looks (``paper`` and ``fast``): ``generate_dataset`` of a
   few transfer-cube episodes, reporting the time per episode of one worker (scripted run,
   replay, rendering, HDF5 write), the wall time per episode with the parallel workers, and the
   file size.

Numbers depend on the machine's load: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from act_hydra.aloha_sim import runtime  # noqa: E402

runtime.choose_gl_backend()


def _scripted(task: str, seed: int) -> dict:
    from act_hydra.aloha_sim.record import replay, run_scripted

    start = time.perf_counter()
    run = run_scripted(task, seed)
    rep = replay(run, render=False)
    return {
        "seed": seed,
        "ee": run.max_reward,
        "replay": rep.replay_max_reward,
        "seconds": time.perf_counter() - start,
    }


def bench_scripted(tasks, episodes: int, workers: int) -> None:
    from act_hydra.aloha_sim.tasks import get_task

    print(f"\n## Scripted success, physics only (seeds 0..{episodes - 1}, {workers} processes)")
    print("| task | end-effector run | joint replay | both | replay stages | s/episode (1 core) |")
    print("| --- | --- | --- | --- | --- | --- |")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        for task in tasks:
            results = list(pool.map(_scripted, [task] * episodes, range(episodes)))
            ee = sum(r["ee"] == 4 for r in results)
            rep = sum(r["replay"] == 4 for r in results)
            both = sum(r["ee"] == 4 and r["replay"] == 4 for r in results)
            spec = get_task(task)
            stages = ", ".join(
                f"{name} {sum(r['replay'] >= level for r in results)}"
                for name, level in spec.stages
            )
            failed = [
                (r["seed"], r["ee"], r["replay"]) for r in results if r["ee"] < 4 or r["replay"] < 4
            ]
            secs = statistics.mean(r["seconds"] for r in results)
            print(
                f"| {task} | {ee}/{episodes} | {rep}/{episodes} | {both}/{episodes} | "
                f"{stages} | {secs:.2f} |"
            )
            if failed:
                print(f"  failed (seed, ee max reward, replay max reward): {failed}")


def bench_generation(styles, episodes: int, workers: int, height: int, width: int) -> None:
    from act_hydra.aloha_sim import generate_dataset

    print(
        f"\n## Generation of transfer_cube at {height}x{width} ({episodes} episodes, "
        f"{workers} workers)"
    )
    print(
        "| look | s/episode per worker (ee + replay + render + write) | render s | write s "
        "| wall s/episode | MB/episode |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for style in styles:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"bench_{style}"
            start = time.perf_counter()
            generate_dataset(
                out,
                "transfer_cube",
                num_episodes=episodes,
                height=height,
                width=width,
                render_style=style,
                num_workers=workers,
                progress=False,
            )
            wall = time.perf_counter() - start
            manifest = json.loads((out / "generation.json").read_text())
            seconds = {
                key: statistics.mean(e["seconds"][key] for e in manifest["episodes"])
                for key in ("total", "ee", "replay", "render", "write")
            }
            size = statistics.mean(p.stat().st_size for p in out.glob("episode_*.hdf5")) / 1e6
            s = seconds
            print(
                f"| {style} | {s['total']:.1f} ({s['ee']:.2f} + {s['replay']:.2f} + "
                f"{s['render']:.1f} + {s['write']:.1f}) | {s['render']:.1f} | "
                f"{s['write']:.1f} | {wall / episodes:.1f} | {size:.1f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=50, help="scripted episodes per task")
    parser.add_argument("--tasks", nargs="+", default=["transfer_cube", "insertion"])
    parser.add_argument(
        "--render-episodes",
        type=int,
        default=2,
        help="episodes generated per look (0: skip the generation benchmark)",
    )
    parser.add_argument("--styles", nargs="+", default=["paper", "fast"])
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    mj = runtime.import_mujoco()
    print(
        f"mujoco {mj.__version__}, MUJOCO_GL={os.environ.get('MUJOCO_GL')}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()}"
    )
    if args.episodes > 0:
        bench_scripted(args.tasks, args.episodes, args.workers)
    if args.render_episodes > 0:
        bench_generation(args.styles, args.render_episodes, args.workers, args.height, args.width)
    print(f"\nload average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
