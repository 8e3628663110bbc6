"""Closed-loop evaluation of a trained policy on the synthetic task.

    python -m act_hydra.eval checkpoint=outputs/2026-11-26/10-00-00
    python -m act_hydra.eval checkpoint=outputs/.../checkpoints/last.pt eval.temporal_ensemble=true

Prints `success_rate: X` (a fraction) and the mean reward, writes `eval_results.json` and a few
rollouts as GIFs. The policy's normalisation stats, image preprocessing and task settings come
from the checkpoint; nothing is recomputed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from act_hydra import atomic
from act_hydra.checkpoint import load_checkpoint
from act_hydra.compose import CONF_DIR
from act_hydra.config import EvalConfig, ModelConfig, SyntheticTaskConfig
from act_hydra.model import ACTPolicy
from act_hydra.rollout import evaluate_policy
from act_hydra.errors import ActHydraError, ConfigError

log = logging.getLogger("act_hydra.eval")


def resolve_checkpoint(checkpoint: str | None) -> Path:
    if not checkpoint:
        raise ConfigError("checkpoint is required but not set. Fix: pass checkpoint=<run dir> "
                          "or checkpoint=<run dir>/checkpoints/best.pt.")
    path = Path(checkpoint)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
    elif path.is_file():
        return path
    raise ConfigError(f"checkpoint={checkpoint!r} is invalid: it is neither a checkpoint file nor "
                      "a run directory with checkpoints/best.pt or last.pt. Fix: pass "
                      "checkpoint=<the hydra.run.dir of a training run>.")


def load_policy(path: Path, device: torch.device) -> tuple[ACTPolicy, SyntheticTaskConfig]:
    """The trained policy and the synthetic task it was trained on."""
    saved = load_checkpoint(path)
    config = saved["config"]
    synthetic = config["data"].get("synthetic")
    if not synthetic:
        raise ConfigError(
            f"checkpoint={str(path)!r} was trained on recorded data "
            f"(data.dataset_dir={config['data'].get('dataset_dir')!r}); closed-loop evaluation "
            "needs the simulator of the synthetic task. Fix: evaluate a run trained with "
            "data=synthetic.")
    model_cfg = ModelConfig(**{**config["model"], "pretrained_backbone": False})
    stats = saved["norm_stats"]
    policy = ACTPolicy(model_cfg, len(stats["state_mean"]), len(stats["action_mean"]), stats)
    policy.load_state_dict(saved["model"])
    return policy.to(device).eval(), SyntheticTaskConfig(**synthetic)


def write_gif(frames: np.ndarray, path: Path, scale: int = 4) -> None:
    import imageio.v2 as imageio

    big = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    imageio.mimsave(path, list(big), duration=0.05, loop=0)


def run_eval(cfg: EvalConfig, out_dir: Path) -> dict:
    device_name = cfg.eval.device
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.eval.num_episodes < 1:
        raise ConfigError(f"eval.num_episodes={cfg.eval.num_episodes} is invalid: it must be >= 1."
                          " Fix: pass eval.num_episodes=50.")
    path = resolve_checkpoint(cfg.checkpoint)
    policy, task = load_policy(path, torch.device(device_name))
    result = evaluate_policy(policy, task, cfg.eval.num_episodes, torch.device(device_name),
                             cfg.eval.temporal_ensemble, cfg.eval.ensemble_coeff,
                             cfg.eval.seed_base, record_episodes=cfg.eval.num_videos)
    out_dir.mkdir(parents=True, exist_ok=True)
    videos = []
    for i, frames in enumerate(result.frames):
        name = f"rollout_{i:02d}_{'success' if result.success[i] else 'failure'}.gif"
        write_gif(frames, out_dir / name)
        videos.append(name)
    results = {**result.summary(), "checkpoint": str(path),
               "temporal_ensemble": cfg.eval.temporal_ensemble,
               "seed_base": cfg.eval.seed_base, "episodes_success": result.success,
               "episodes_max_reward": result.max_reward, "videos": videos}
    atomic.write_json(out_dir / "eval_results.json", results)
    return results


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
    print(f"mean_max_reward: {results['mean_max_reward']:.3f}")
    print(f"mean_return: {results['mean_return']:.3f}")
    log.info("wrote %s", out_dir / "eval_results.json")
    return results["success_rate"]


if __name__ == "__main__":
    from act_hydra.eval import main as importable_main

    importable_main()
