"""Closed-loop evaluation of a trained policy in the simulator it was trained for.

    python -m act_hydra.eval checkpoint=outputs/2026-11-26/10-00-00
    python -m act_hydra.eval checkpoint=outputs/.../checkpoints/last.pt eval.temporal_ensemble=true

The simulator comes from the checkpoint's data config: the built-in task, or an ALOHA MuJoCo
task with the image size and look the policy was trained on (act_hydra.envs). Prints
`success_rate: X` (a fraction) and the stage rates (like the ACT paper's Table I), writes
`eval_results.json` and a few rollouts as videos, and adds the results to the run's W&B run
when it used logger=wandb. Normalisation stats and image preprocessing come from the
checkpoint; nothing is recomputed.

Every setting, the checkpoint (loaded once, without running code from it) and the output
folder are checked before Hydra creates anything (EvalPreflight, a Hydra callback listed in
conf/eval.yaml): a mistake leaves nothing on disk. A run directory whose checkpoints/best.pt is
damaged is evaluated from checkpoints/last.pt, with a warning naming both.

Exit status: 0 evaluated; 2 bad input (an override, a setting, the checkpoint, an unwritable
output folder), nothing written; 4 writing the results failed; 1 an unexpected error (the
traceback is in the log).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from act_hydra import atomic
from act_hydra.checkpoint import load_checkpoint
from act_hydra.compose import CONF_DIR
from act_hydra.config import EvalConfig, EvalSettings, LoggerConfig, ModelConfig
from act_hydra.envs import EnvSpec
from act_hydra.errors import (
    ActHydraError,
    CheckpointError,
    ConfigError,
    RunIOError,
)
from act_hydra.hydra_app import mark_composed, run_hydra_app
from act_hydra.model import ACTPolicy
from act_hydra.rollout import RolloutResult, evaluate_policy
from act_hydra.run_dir import check_writable
from act_hydra.validate import MAX_SEED, Problems, check_device, check_seed

log = logging.getLogger("act_hydra.eval")
FPS = {"synthetic": 10, "aloha_sim": 50}  # control rate of each simulator


def check_settings(e: EvalSettings) -> None:
    """Every broken rule of eval.*, checked before anything is loaded."""
    problems = Problems()
    problems.check(
        e.num_episodes >= 1,
        "eval.num_episodes",
        e.num_episodes,
        "at least one episode is needed",
        "pass eval.num_episodes=50",
    )
    problems.check(
        e.num_videos >= 0,
        "eval.num_videos",
        e.num_videos,
        "it must be >= 0 (0: no videos)",
        "pass eval.num_videos=3",
    )
    problems.check(
        e.num_workers >= 0,
        "eval.num_workers",
        e.num_workers,
        "it must be >= 0 (0: the simulator runs in this process)",
        "pass eval.num_workers=2",
    )
    if e.seed_base is not None:
        check_seed(problems, "eval.seed_base", e.seed_base)
        last = e.seed_base + max(e.num_episodes, 1) - 1
        problems.check(
            e.seed_base > MAX_SEED or last <= MAX_SEED,  # else already reported
            "eval.seed_base",
            e.seed_base,
            f"episode i uses seed eval.seed_base + i, and the last one ({last}) must be "
            f"<= {MAX_SEED}",
            "pass eval.seed_base=null (the simulator's evaluation seeds)",
        )
    check_device(problems, "eval.device", e.device)
    if problems:
        raise ConfigError("\n".join(problems))


def checkpoint_candidates(checkpoint: str | None) -> list[Path]:
    """The checkpoint file, or a run directory's best.pt then last.pt (those that exist)."""
    if not checkpoint:
        raise ConfigError(
            "checkpoint is required but not set. Fix: pass checkpoint=<run dir> "
            "or checkpoint=<run dir>/checkpoints/best.pt."
        )
    path = Path(checkpoint)
    if path.is_file():
        return [path]
    found = [path / "checkpoints" / name for name in ("best.pt", "last.pt")]
    found = [p for p in found if p.is_file()] if path.is_dir() else []
    if not found:
        raise ConfigError(
            f"checkpoint={checkpoint!r} is invalid: it is neither a checkpoint file nor "
            "a run directory with checkpoints/best.pt or last.pt. Fix: pass "
            "checkpoint=<the hydra.run.dir of a training run>."
        )
    return found


def resolve_checkpoint(checkpoint: str | None) -> Path:
    """The checkpoint file ``checkpoint`` names (a run directory: its best.pt, else last.pt)."""
    return checkpoint_candidates(checkpoint)[0]


@dataclass
class Loaded:
    """A checked checkpoint, ready to evaluate: its policy (on the CPU), its resolved config,
    the checkpoint itself, the file and the simulator it was trained for."""

    policy: ACTPolicy
    config: dict[str, Any]
    saved: dict
    path: Path
    spec: EnvSpec
    warning: str | None = None  # the fallback to last.pt, logged once logging is set up


def prepare(cfg: EvalConfig) -> Loaded:
    """Check the settings, then load the policy ``checkpoint`` names and check that it has a
    simulator. A run directory whose best.pt is damaged falls back to its last.pt (both hold
    the same run)."""
    check_settings(cfg.eval)
    first, *fallback = checkpoint_candidates(cfg.checkpoint)
    cpu = torch.device("cpu")
    path, warning = first, None
    try:
        policy, config, saved = load_policy(path, cpu)
    except CheckpointError as err:
        if not fallback:
            raise
        path, warning = fallback[0], f"{first} is unusable, so {fallback[0]} is evaluated: {err}"
        policy, config, saved = load_policy(path, cpu)
    spec = EnvSpec.from_data_config(config["data"])  # refuses recorded data: no simulator
    return Loaded(policy, config, saved, path, spec, warning)


def load_policy(path: Path, device: torch.device) -> tuple[ACTPolicy, dict[str, Any], dict]:
    """The trained policy, its checkpoint's resolved config and the checkpoint itself."""
    saved = load_checkpoint(path)
    config = saved["config"]
    try:
        model_cfg = ModelConfig(**{**config["model"], "pretrained_backbone": False})
        stats = saved["norm_stats"]
        policy = ACTPolicy(model_cfg, len(stats["state_mean"]), len(stats["action_mean"]), stats)
        policy.load_state_dict(saved["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path} does not hold a model this version of act-hydra builds ({reason}). Fix: "
            "evaluate it with the act-hydra version that trained it, or point at another "
            "checkpoint."
        ) from err
    return policy.to(device).eval(), config, saved


def write_video(frames: np.ndarray, path: Path, fps: int) -> Path:
    """MP4 (H.264 through imageio-ffmpeg) when available, else a GIF. Small frames (the
    synthetic task's 64x64) are enlarged so a person can see them."""
    import imageio.v2 as imageio

    scale = max(1, 256 // frames.shape[1])
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    try:
        import imageio_ffmpeg  # noqa: F401

        path = path.with_suffix(".mp4")
        imageio.mimsave(path, list(frames), fps=fps, macro_block_size=1)
    except ImportError:
        path = path.with_suffix(".gif")
        step = max(1, fps // 20)  # GIF players cap the frame rate: keep about 20 frames/s
        imageio.mimsave(path, list(frames[::step]), duration=1000 * step / fps, loop=0)
    return path


def log_to_wandb(config: dict[str, Any], saved: dict, run_dir: Path, results: dict) -> None:
    """Add the evaluation to the training run's W&B run (same id) when it used logger=wandb."""
    if config["logger"]["backend"] != "wandb" or not saved.get("wandb_run_id"):
        return
    from act_hydra.wandb_logger import WandbLogger

    logger_cfg = LoggerConfig(**config["logger"])
    with WandbLogger(logger_cfg, run_dir, config, run_id=saved["wandb_run_id"]) as wandb_run:
        wandb_run.set_summary(
            {f"eval/{k}": v for k, v in results.items() if isinstance(v, (int, float))}
        )


def run_eval(cfg: EvalConfig, out_dir: Path, loaded: Loaded | None = None) -> dict:
    """Evaluate ``loaded`` (default: prepare(cfg)) and write the results into ``out_dir``."""
    e = cfg.eval
    loaded = loaded or prepare(cfg)
    if loaded.warning:
        log.warning("%s", loaded.warning)
    device = torch.device(
        e.device if e.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    )
    spec = loaded.spec
    started = time.perf_counter()
    result = evaluate_policy(
        loaded.policy.to(device),
        spec,
        e.num_episodes,
        device,
        e.temporal_ensemble,
        e.ensemble_coeff,
        e.seed_base,
        e.num_videos,
        e.num_workers,
    )
    seconds = time.perf_counter() - started
    try:
        videos = write_videos(result, out_dir, FPS[spec.kind])
    except OSError as err:
        raise output_failed(out_dir, err) from err
    results = {
        **result.summary(),
        "checkpoint": str(loaded.path),
        "environment": spec.kind,
        **spec.settings,
        "temporal_ensemble": e.temporal_ensemble,
        "seeds": result.seeds,
        "episodes_success": result.success,
        "episodes_max_reward": result.max_reward,
        "videos": videos,
        "seconds": round(seconds, 2),
        "seconds_per_episode": round(seconds / e.num_episodes, 3),
    }
    try:
        atomic.write_json(out_dir / "eval_results.json", results)
    except OSError as err:
        raise output_failed(out_dir, err) from err
    if e.log_to_wandb:
        log_to_wandb(loaded.config, loaded.saved, run_dir_of(loaded.path), results)
    return results


def write_videos(result: RolloutResult, out_dir: Path, fps: int) -> list[str]:
    """The rollouts ``result`` kept frames of, as videos in ``out_dir``; their file names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for i, frames in enumerate(result.frames):
        outcome = "success" if result.success[i] else "failure"
        name = f"rollout_{i:02d}_seed{result.seeds[i]}_{outcome}"
        names.append(write_video(frames, out_dir / name, fps=fps).name)
    return names


def output_failed(out_dir: Path, err: OSError) -> RunIOError:
    return RunIOError(
        f"could not write the evaluation into {out_dir} ({err.strerror or err}); the checkpoint "
        "is untouched. Fix: free disk space, or pass hydra.run.dir=<a folder with room>."
    )


def run_dir_of(checkpoint: Path) -> Path:
    return (
        checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    )


class EvalPreflight(Callback):
    """``hydra.callbacks.preflight`` in conf/eval.yaml: the settings, the checkpoint's path and
    the output folder are checked after composition and before Hydra creates the output folder
    (which is named after the checkpoint): a mistyped path leaves nothing on disk."""

    loaded: Loaded | None = None  # handed to the task function, which runs next

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        mark_composed()
        try:
            settings = OmegaConf.to_object(config.eval)
            EvalPreflight.loaded = prepare(EvalConfig(config.checkpoint, settings))
            check_writable(Path(str(config.hydra.run.dir)))
        except ActHydraError as err:
            # Logging is not set up yet (Hydra does it next, in the output folder): stderr.
            print(f"act-eval: {err} (exit code {err.exit_code})", file=sys.stderr)
            sys.exit(err.exit_code)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        mark_composed()  # each job checks its own settings (run_eval)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def run(dcfg: DictConfig) -> float:
    cfg: EvalConfig = OmegaConf.to_object(dcfg)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        results = run_eval(cfg, out_dir, EvalPreflight.loaded)
    except ActHydraError as err:
        log.error("%s (exit code %d)", err, err.exit_code)
        sys.exit(err.exit_code)
    print(f"success_rate: {results['success_rate']:.3f}")
    for key in (k for k in results if k.startswith("stage/")):
        print(f"{key}: {results[key]:.3f}")
    print(f"mean_max_reward: {results['mean_max_reward']:.3f}")
    print(f"mean_return: {results['mean_return']:.3f}")
    log.info("wrote %s", out_dir / "eval_results.json")
    return results["success_rate"]


def main() -> None:
    """act-eval (Hydra's composition errors exit 2: act_hydra/hydra_app.py)."""
    run_hydra_app(run)


if __name__ == "__main__":
    from act_hydra.eval import main as importable_main

    importable_main()
