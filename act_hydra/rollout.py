"""Closed-loop evaluation: let a policy drive the synthetic task and count successes.

Used by `python -m act_hydra.eval` and, every `training.eval_rollouts_every` steps, by training.
All episodes run in lockstep so each policy query is one batch.

Two ways to execute the predicted chunks (the ACT paper, section IV):
- open loop: query every `chunk_size` steps and play the chunk;
- temporal ensembling: query every step; the action at time t averages every chunk that covers t
  with weights exp(-m * i), i = 0 for the *oldest* prediction, normalised to sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from act_hydra.config import SyntheticTaskConfig
from act_hydra.model import ACTPolicy
from act_hydra.sim import SyntheticEnv

# Evaluation seeds are plain integers from 1000 on (as the original's set_seed(1000)); the
# training episodes use (task_seed, stream, i) tuples, so no evaluation cube is a training cube.
EVAL_SEED_BASE = 1000


@dataclass
class RolloutResult:
    success: list[bool]
    max_reward: list[int]
    episode_return: list[float]
    frames: list[np.ndarray] = field(default_factory=list)  # (T, H, W, 3) per recorded episode

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success))

    def summary(self) -> dict:
        return {"success_rate": self.success_rate, "num_episodes": len(self.success),
                "mean_max_reward": float(np.mean(self.max_reward)),
                "mean_return": float(np.mean(self.episode_return))}


def ensemble_weights(n: int, m: float = 0.01) -> np.ndarray:
    """Weights of n overlapping predictions, oldest first (w_0 is the largest)."""
    w = np.exp(-m * np.arange(n))
    return w / w.sum()


@torch.no_grad()
def evaluate_policy(policy: ACTPolicy, task: SyntheticTaskConfig, num_episodes: int,
                    device: torch.device, temporal_ensemble: bool = False,
                    ensemble_coeff: float = 0.01, seed_base: int = EVAL_SEED_BASE,
                    record_episodes: int = 0) -> RolloutResult:
    envs = [SyntheticEnv.from_config(task) for _ in range(num_episodes)]
    obs = [env.reset(seed_base + i) for i, env in enumerate(envs)]
    horizon, chunk = task.episode_len, policy.model.chunk_size
    action_dim = envs[0].action_dim
    # all_actions[e, t_query, t] = action predicted at query time t_query for time t.
    all_actions = np.full((num_episodes, horizon, horizon + chunk, action_dim), np.nan,
                          np.float32) if temporal_ensemble else None
    current_chunk = None
    returns = np.zeros(num_episodes)
    best = np.zeros(num_episodes, dtype=np.int64)
    frames = [[] for _ in range(min(record_episodes, num_episodes))]
    was_training = policy.training
    policy.eval()
    try:
        for t in range(horizon):
            for e in range(len(frames)):
                frames[e].append(obs[e]["images"]["top"])
            if temporal_ensemble or t % chunk == 0:
                state = torch.from_numpy(np.stack([o["qpos"] for o in obs])).to(device)
                images = torch.from_numpy(np.stack(
                    [np.stack([o["images"][c] for c in envs[0].camera_names]) for o in obs]))
                images = images.permute(0, 1, 4, 2, 3).contiguous().to(device)
                predicted = policy.predict_chunk(state, images).float().cpu().numpy()
                if temporal_ensemble:
                    all_actions[:, t, t:t + chunk] = predicted
                else:
                    current_chunk, chunk_start = predicted, t
            if temporal_ensemble:
                column = all_actions[:, : t + 1, t]  # every prediction made for time t
                valid = ~np.isnan(column[0, :, 0])
                preds = column[:, valid]  # oldest query first
                actions = np.einsum("q,eqa->ea", ensemble_weights(preds.shape[1],
                                                                  ensemble_coeff), preds)
            else:
                actions = current_chunk[:, t - chunk_start]
            for e, env in enumerate(envs):
                obs[e], reward, _ = env.step(actions[e])
                returns[e] += reward
                best[e] = max(best[e], reward)
    finally:
        policy.train(was_training)
    return RolloutResult(success=[bool(env.success) for env in envs],
                         max_reward=[int(b) for b in best],
                         episode_return=[float(r) for r in returns],
                         frames=[np.stack(f) for f in frames])
