"""Closed-loop evaluation of a trained policy in the simulator it was trained for.

    python -m act_hydra.eval checkpoint=outputs/2026-11-26/10-00-00
    python -m act_hydra.eval checkpoint=outputs/.../checkpoints/last.pt eval.temporal_ensemble=true

The simulator comes from the checkpoint's data config: the built-in task, or an ALOHA MuJoCo
task with the image size and look the policy was trained on (act_hydra.envs). Prints
`success_rate: X` (a fraction) and the stage rates (like the ACT paper's Table I), writes
`eval_results.json` and a few rollouts as videos, and adds the results to the run's W&B run
when it used logger=wandb. Normalisation stats and image preprocessing come from the
checkpoint; nothing is recomputed.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from act_hydra import atomic
from act_hydra.checkpoint import load_checkpoint
from act_hydra.compose import CONF_DIR
from act_hydra.config import EvalConfig, LoggerConfig, ModelConfig
from act_hydra.envs import EnvSpec
from act_hydra.errors import ActHydraError, ConfigError
from act_hydra.model import ACTPolicy
from act_hydra.rollout import evaluate_policy

log = logging.getLogger("act_hydra.eval")
FPS = {"synthetic": 10, "aloha_sim": 50}  # control rate of each simulator


def resolve_checkpoint(checkpoint: str | None) -> Path:
    if not checkpoint:
        raise ConfigError(
            "checkpoint is required but not set. Fix: pass checkpoint=<run dir> "
            "or checkpoint=<run dir>/checkpoints/best.pt."
        )
    path = Path(checkpoint)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
    elif path.is_file():
        return path
    raise ConfigError(
        f"checkpoint={checkpoint!r} is invalid: it is neither a checkpoint file nor "
        "a run directory with checkpoints/best.pt or last.pt. Fix: pass "
        "checkpoint=<the hydra.run.dir of a training run>."
    )


def load_policy(path: Path, device: torch.device) -> tuple[ACTPolicy, dict[str, Any], dict]:
    """The trained policy, its checkpoint's resolved config and the checkpoint itself."""
    saved = load_checkpoint(path)
    config = saved["config"]
    model_cfg = ModelConfig(**{**config["model"], "pretrained_backbone": False})
    stats = saved["norm_stats"]
    policy = ACTPolicy(model_cfg, len(stats["state_mean"]), len(stats["action_mean"]), stats)
    policy.load_state_dict(saved["model"])
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


def run_eval(cfg: EvalConfig, out_dir: Path) -> dict:
    e = cfg.eval
    device = torch.device(
        e.device if e.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    )
    if e.num_episodes < 1:
        raise ConfigError(
            f"eval.num_episodes={e.num_episodes} is invalid: it must be >= 1."
            " Fix: pass eval.num_episodes=50."
        )
    path = resolve_checkpoint(cfg.checkpoint)
    policy, config, saved = load_policy(path, device)
    spec = EnvSpec.from_data_config(config["data"])  # refuses recorded data: no simulator
    started = time.perf_counter()
    result = evaluate_policy(
        policy,
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
    out_dir.mkdir(parents=True, exist_ok=True)
    videos = []
    for i, frames in enumerate(result.frames):
        name = f"rollout_{i:02d}_seed{result.seeds[i]}_" + (
            "success" if result.success[i] else "failure"
        )
        videos.append(write_video(frames, out_dir / name, fps=FPS[spec.kind]).name)
    results = {
        **result.summary(),
        "checkpoint": str(path),
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
    atomic.write_json(out_dir / "eval_results.json", results)
    if e.log_to_wandb:
        log_to_wandb(config, saved, run_dir_of(path), results)
    return results


def run_dir_of(checkpoint: Path) -> Path:
    return (
        checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    )


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(dcfg: DictConfig) -> float:
    cfg: EvalConfig = OmegaConf.to_object(dcfg)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        results = run_eval(cfg, out_dir)
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


if __name__ == "__main__":
    from act_hydra.eval import main as importable_main

    importable_main()
