"""Generating a scripted-demonstration dataset of an ALOHA task (``generate_dataset``).

Episode ``k`` of the dataset is the ``k``-th seed, in the order 0, 1, 2, ..., whose scripted
demonstration succeeds in both phases (see ``record``). A seed whose end-effector run or replay
fails is not saved: the next unused seed replaces it, and the failure is counted in the
manifest. Which seeds end up in the dataset therefore depends only on the physics, never on how
the work was spread over processes. (The ACT paper's recorder kept failed episodes;
``keep_failed=True`` does the same.)

Safety properties:

- Atomic: episodes are written into a temporary sibling folder that is renamed to ``out_dir``
  only when the dataset is complete, so an interrupted or failed generation never leaves a
  partial dataset under ``out_dir``. Temporary folders of killed runs (their process is gone)
  are deleted by the next generation into the same ``out_dir``.
- A broken simulator fails loudly: scripted demonstrations succeed on 92-100% of seeds with
  the supported MuJoCo (insertion is the harder task); once 10 seeds were tried, a success
  rate below ``min_success_rate`` stops the generation with an error naming the MuJoCo version.
- Worker processes are started with ``spawn``: an OpenGL (EGL) context does not survive fork.

The manifest ``generation.json`` records the task, the settings, the seeds used and failed, the
MuJoCo version and the time spent per episode.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import numbers
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from act_hydra.aloha_sim import constants as C
from act_hydra.aloha_sim.hdf5 import write_sim_episode
from act_hydra.aloha_sim.physics import SOLIMP_MAX, WELD_TORQUESCALE
from act_hydra.aloha_sim.record import record_episode
from act_hydra.aloha_sim.render import check_render_args
from act_hydra.aloha_sim.runtime import (
    ASSET_PACKAGE,
    MUJOCO_VERSION,
    asset_dir,
    asset_package_version,
    import_mujoco,
)
from act_hydra.aloha_sim.tasks import TaskSpec, get_task
from act_hydra.atomic import atomic_dir
from act_hydra.errors import ActHydraError, ConfigError

MANIFEST = "generation.json"
MANIFEST_VERSION = 1
MIN_ATTEMPTS_FOR_RATE = 10  # fewer attempts say too little about the success rate


class GenerationError(ActHydraError):
    """Scripted demonstrations fail too often: the simulator does not behave as expected."""


# -- worker side ---------------------------------------------------------------------------------
def _attempt(
    task: TaskSpec,
    seed: int,
    folder: str,
    episode_len: int,
    height: int,
    width: int,
    render_style: str,
    keep_failed: bool,
) -> dict:
    """Record one seed; write it to ``folder/seed_<seed>.hdf5`` when it is to be kept."""
    start = time.perf_counter()
    episode = record_episode(
        task, seed, episode_len, height, width, render_style, skip_failed=not keep_failed
    )
    keep = episode.success or keep_failed
    path = None
    write_seconds = 0.0
    if keep:
        t0 = time.perf_counter()
        path = str(write_sim_episode(Path(folder) / f"seed_{seed}.hdf5", episode))
        write_seconds = time.perf_counter() - t0
    return {
        "seed": int(seed),
        "path": path,
        "success": episode.success,
        "ee_success": episode.ee_success,
        "replay_success": episode.replay_success,
        "ee_max_reward": episode.ee_max_reward,
        "replay_max_reward": episode.replay_max_reward,
        "seconds": {
            **{k: round(v, 3) for k, v in episode.seconds.items()},
            "write": round(write_seconds, 3),
            "total": round(time.perf_counter() - start, 3),
        },
    }


def _init_worker() -> None:
    # Mesa's software rasteriser (llvmpipe) starts one thread per CPU in every process; with
    # several workers that oversubscribes the CPUs, so each worker renders on one thread.
    os.environ.setdefault("LP_NUM_THREADS", "1")


class _InlineExecutor:
    """``num_workers <= 1``: run each job in this process when it is submitted."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - re-raised by future.result()
            future.set_exception(e)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


# -- the generator -------------------------------------------------------------------------------
def _check_args(
    task, num_episodes, episode_len, height, width, render_style, num_workers, min_success_rate
) -> TaskSpec:
    task = get_task(task)
    for key, value, low in (
        ("num_episodes", num_episodes, 1),
        ("episode_len", episode_len, 1),
        ("num_workers", num_workers, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ConfigError(f"{key}={value!r} must be an integer >= {low}.")
    check_render_args(height, width, render_style)
    if not 0.0 <= float(min_success_rate) <= 1.0:
        raise ConfigError(f"min_success_rate={min_success_rate} must be in [0, 1].")
    return task


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(
            f"out_dir={out_dir} already exists and is not an empty folder. Rule: a dataset is "
            f"generated into a new folder (it appears there only once complete). Fix: delete "
            f"it, or choose another out_dir."
        )


def generate_dataset(
    out_dir: str | Path,
    task: str = "transfer_cube",
    num_episodes: int = 50,
    episode_len: int = 400,
    height: int = 480,
    width: int = 640,
    render_style: str = "paper",
    num_workers: int = 2,
    progress: bool = True,
    keep_failed: bool = False,
    min_success_rate: float = 0.8,
) -> Path:
    """Write ``episode_0.hdf5 .. episode_{N-1}.hdf5`` and ``generation.json`` into ``out_dir``.

    ``num_workers`` processes record episodes in parallel (0 or 1: in this process). Raises
    ``ConfigError`` for bad arguments or a missing simulator, ``GenerationError`` when the
    scripted success rate drops below ``min_success_rate``. Returns ``out_dir``.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    _check_out_dir(out_dir)
    # write_dataset checks the arguments; on an error the temporary folder is removed.
    with atomic_dir(out_dir) as folder:
        write_dataset(
            folder,
            task,
            num_episodes,
            episode_len,
            height,
            width,
            render_style,
            num_workers,
            progress,
            keep_failed,
            min_success_rate,
        )
    return out_dir


def write_dataset(
    folder: Path,
    task: str | TaskSpec,
    num_episodes: int,
    episode_len: int,
    height: int,
    width: int,
    render_style: str,
    num_workers: int = 2,
    progress: bool = True,
    keep_failed: bool = False,
    min_success_rate: float = 0.8,
) -> dict:
    """Record the episodes and ``generation.json`` into the existing empty ``folder``; return
    the manifest. ``generate_dataset`` and the dataset cache call it inside an atomic folder."""
    task = _check_args(
        task, num_episodes, episode_len, height, width, render_style, num_workers, min_success_rate
    )
    mujoco_version = import_mujoco().__version__  # fail here, not in a worker
    asset_dir()
    manifest = _generate_into(
        folder,
        task,
        num_episodes,
        episode_len,
        height,
        width,
        render_style,
        num_workers,
        progress,
        keep_failed,
        min_success_rate,
        mujoco_version,
    )
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _generate_into(
    folder: Path,
    task: TaskSpec,
    num_episodes: int,
    episode_len: int,
    height: int,
    width: int,
    render_style: str,
    num_workers: int,
    progress: bool,
    keep_failed: bool,
    min_success_rate: float,
    mujoco_version: str,
) -> dict:
    from tqdm import tqdm

    start = time.perf_counter()
    workers = min(num_workers, num_episodes)
    if workers <= 1:
        executor = _InlineExecutor()
    else:
        executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
        )
    seeds = itertools.count(0)
    submitted: list[int] = []  # in seed order; the head is the next result to account for
    pending: dict[Future, int] = {}
    finished: dict[int, dict] = {}
    episodes: list[dict] = []
    failed = {"ee": [], "replay": []}
    attempts = 0
    bar = tqdm(
        total=num_episodes,
        desc=f"aloha {task.name}",
        unit="episode",
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    try:
        while len(episodes) < num_episodes:
            # Keep the workers busy, but never start a seed that could not be needed.
            while True:
                usable = sum(1 for r in finished.values() if r["path"])
                if len(episodes) + usable + len(pending) >= num_episodes:
                    break
                if len(pending) >= max(workers, 1):
                    break
                seed = next(seeds)
                if seed >= C.TRAIN_SEED_LIMIT:
                    raise GenerationError(f"ran out of training seeds (< {C.TRAIN_SEED_LIMIT})")
                submitted.append(seed)
                pending[
                    executor.submit(
                        _attempt,
                        task,
                        seed,
                        str(folder),
                        episode_len,
                        height,
                        width,
                        render_style,
                        keep_failed,
                    )
                ] = seed
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                finished[pending.pop(future)] = future.result()
            while submitted and submitted[0] in finished:
                result = finished.pop(submitted.pop(0))
                attempts += 1
                if not result["ee_success"]:
                    failed["ee"].append(result["seed"])
                elif not result["replay_success"]:
                    failed["replay"].append(result["seed"])
                if result["path"]:
                    index = len(episodes)
                    os.rename(result["path"], folder / f"episode_{index}.hdf5")
                    episodes.append(
                        {"index": index, **{k: v for k, v in result.items() if k != "path"}}
                    )
                    bar.update(1)
                successes = attempts - len(failed["ee"]) - len(failed["replay"])
                bar.set_postfix(failed=attempts - successes, refresh=False)
                if attempts >= MIN_ATTEMPTS_FOR_RATE and successes < min_success_rate * attempts:
                    raise GenerationError(
                        f"scripted {task.name} demonstrations succeeded in only {successes} of "
                        f"{attempts} attempts ({successes / attempts:.0%} < "
                        f"{min_success_rate:.0%}; end-effector runs failed for seeds "
                        f"{failed['ee']}, replays for {failed['replay']}) with MuJoCo "
                        f"{mujoco_version}. Rule: the scripts are validated on MuJoCo "
                        f"{MUJOCO_VERSION} with its model fixes (92-100% success); another "
                        f"MuJoCo version changes contact and weld physics. Fix: `pip install "
                        f"mujoco=={MUJOCO_VERSION}`."
                    )
    finally:
        bar.close()
        # On an error, running jobs finish (at most one episode each) before the temporary
        # folder is deleted, so no worker writes into a folder that is gone.
        executor.shutdown(wait=True, cancel_futures=True)

    successes = attempts - len(failed["ee"]) - len(failed["replay"])
    totals = [e["seconds"]["total"] for e in episodes]
    return {
        "manifest_version": MANIFEST_VERSION,
        "task": task.name,
        "settings": {
            "num_episodes": num_episodes,
            "episode_len": episode_len,
            "height": height,
            "width": width,
            "render_style": render_style,
            "camera_names": list(C.CAMERA_NAMES),
            "keep_failed": keep_failed,
            "min_success_rate": min_success_rate,
            "num_workers": num_workers,
        },
        "seeds": [e["seed"] for e in episodes],
        "attempts": attempts,
        "failures": {"ee": len(failed["ee"]), "replay": len(failed["replay"])},
        "failed_seeds": failed,
        "success_rate": successes / max(attempts, 1),
        "mujoco_version": mujoco_version,
        "assets": f"{ASSET_PACKAGE} {asset_package_version()}",
        "model_fixes": {"weld_torquescale": WELD_TORQUESCALE, "geom_solimp_max": SOLIMP_MAX},
        "seconds_per_episode": sum(totals) / max(len(totals), 1),
        "wall_seconds": time.perf_counter() - start,
        "episodes": episodes,
    }
