"""Time the standard 12-job grid with the joblib launcher (parallel) and Hydra's basic launcher
(sequential), in one invocation, on a tiny config.

    python benchmarks/bench_sweep_launchers.py                 # tiny model, 10 steps a job
    python benchmarks/bench_sweep_launchers.py --steps 50 --out /tmp/bench
    python benchmarks/bench_sweep_launchers.py -- model.pretrained_backbone=false  # extra overrides

Runs, one after the other (basic first, then joblib, unless --order says otherwise):

    python -m act_hydra.train sweep=default <tiny overrides> hydra/launcher=basic
    python -m act_hydra.train sweep=default <tiny overrides>      # joblib, the default launcher

and prints each wall time (process start to exit, so worker start-up is included), the sum of
the jobs' own wall times, the ratio, and the load average before and after (the numbers mean
little on a machine that other work keeps busy). The synthetic dataset is generated before the
first timed run so neither run pays for it. Exit status: 0 when both sweeps completed all jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The tiny model and task of the test suite, minus training.batch_size (sweep=default sweeps it).
TINY = [
    "model.dim_model=32",
    "model.n_heads=2",
    "model.dim_feedforward=64",
    "model.n_encoder_layers=1",
    "model.n_decoder_layers=1",
    "model.n_vae_encoder_layers=1",
    "model.chunk_size=5",
    "data.synthetic.num_episodes=4",
    "data.synthetic.episode_len=12",
    "data.synthetic.image_size=32",
    "training.device=cpu",
    "training.val_batches=1",
]


def tiny_overrides(steps: int) -> list[str]:
    every = max(1, steps // 4)
    return [
        *TINY,
        f"training.num_steps={steps}",
        f"training.log_every={every}",
        f"training.eval_every={every}",
        f"training.save_every={steps}",
    ]


def warm_dataset_cache(overrides: list[str]) -> None:
    """Generate the synthetic episodes once, outside the timed runs."""
    from act_hydra.compose import compose_train_config, to_train_config
    from act_hydra.data import ensure_synthetic_dataset

    cfg = to_train_config(compose_train_config(overrides))
    if cfg.data.synthetic is not None:
        ensure_synthetic_dataset(cfg.data.synthetic, cache_root=cfg.data.dataset_dir)


def job_wall_times(sweep_dir: Path) -> tuple[int, int, float]:
    """(jobs, completed jobs, sum of their wall_time_s) from the job folders' summary.json."""
    jobs = completed = 0
    total = 0.0
    for summary in sorted(sweep_dir.glob("*/summary.json")):
        data = json.loads(summary.read_text())
        jobs += 1
        completed += data.get("status") == "completed"
        total += float(data.get("wall_time_s") or 0.0)
    return jobs, completed, total


def run_sweep(launcher: str, overrides: list[str], sweep_dir: Path) -> dict:
    args = [
        sys.executable,
        "-m",
        "act_hydra.train",
        "sweep=default",
        *overrides,
        f"hydra.sweep.dir={sweep_dir}",
    ]
    if launcher == "basic":
        args.append("hydra/launcher=basic")
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    jobs, completed, job_sum = job_wall_times(sweep_dir)
    return {
        "launcher": launcher,
        "wall_s": wall,
        "returncode": proc.returncode,
        "jobs": jobs,
        "completed": completed,
        "job_wall_sum_s": job_sum,
        "command": args,
        "log_tail": (proc.stdout + proc.stderr)[-3000:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_sweep_launchers.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=10, help="training.num_steps of each job")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the two sweeps (default: a temporary folder)",
    )
    parser.add_argument("--order", choices=["basic-first", "joblib-first"], default="basic-first")
    parser.add_argument("extra", nargs="*", help="more overrides for every job (after --)")
    args = parser.parse_args(argv)

    overrides = [*tiny_overrides(args.steps), *args.extra]
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    out.mkdir(parents=True, exist_ok=True)
    warm_dataset_cache([o for o in overrides if not o.startswith("hydra")])

    cpus = os.cpu_count()
    load_before = os.getloadavg()
    order = ["basic", "joblib"] if args.order == "basic-first" else ["joblib", "basic"]
    results = {}
    for launcher in order:
        results[launcher] = run_sweep(launcher, overrides, out / launcher)
        r = results[launcher]
        print(
            f"{launcher:>6}: {r['wall_s']:7.1f} s wall, exit {r['returncode']}, "
            f"{r['completed']}/{r['jobs']} jobs completed, jobs' own wall times sum to "
            f"{r['job_wall_sum_s']:.1f} s",
            flush=True,
        )
    load_after = os.getloadavg()

    basic, joblib_ = results["basic"], results["joblib"]
    print()
    print(
        f"command: python -m act_hydra.train sweep=default {' '.join(overrides)} "
        "[hydra/launcher=basic]"
    )
    print(
        f"machine: {cpus} CPUs; load average (1/5/15 min) before "
        f"{'/'.join(f'{x:.2f}' for x in load_before)}, after "
        f"{'/'.join(f'{x:.2f}' for x in load_after)}"
    )
    print(f"basic (sequential): {basic['wall_s']:.1f} s")
    print(f"joblib (parallel):  {joblib_['wall_s']:.1f} s")
    print(f"ratio basic/joblib: {basic['wall_s'] / joblib_['wall_s']:.2f}x")
    print(f"sweep folders: {out}/basic, {out}/joblib")
    ok = all(
        r["returncode"] == 0 and r["jobs"] == 12 and r["completed"] == 12 for r in results.values()
    )
    if not ok:
        for r in results.values():
            if r["returncode"] != 0 or r["completed"] != 12:
                print(
                    f"\n{r['launcher']} sweep did not complete all 12 jobs:\n{r['log_tail']}",
                    file=sys.stderr,
                )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
