"""Closed-loop evaluation: let a policy drive its simulator and count successes and stages.

Used by `python -m act_hydra.eval` and, every `training.eval_rollouts_every` steps, by training.
Episodes run in rounds of `num_envs` environments stepped together, so each policy query is one
batch (all episodes at once for the synthetic task; one per simulator process for ALOHA).

Two ways to execute the predicted chunks (the ACT paper, section IV):
- open loop: query every `chunk_size` steps and play the chunk;
- temporal ensembling: query every step; the action at time t averages every chunk that covers t
  with weights exp(-m * i), i = 0 for the *oldest* prediction, normalised to sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from act_hydra.envs import EnvSpec, VectorEnv, make_vector_env
from act_hydra.model import ACTPolicy


@dataclass
class RolloutResult:
    seeds: list[int]
    success: list[bool]
    max_reward: list[int]
    episode_return: list[float]
    stages: tuple[tuple[str, int], ...]  # (name, minimum max reward), like the paper's Table I
    frames: list[np.ndarray] = field(default_factory=list)  # (T, H, W, 3) per recorded episode

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success))

    def stage_rates(self) -> dict[str, float]:
        """Fraction of episodes that reached each stage (max reward >= its level)."""
        rewards = np.asarray(self.max_reward)
        return {name: float(np.mean(rewards >= level)) for name, level in self.stages}

    def summary(self) -> dict:
        return {
            "success_rate": self.success_rate,
            "num_episodes": len(self.success),
            **{f"stage/{k}": v for k, v in self.stage_rates().items()},
            "mean_max_reward": float(np.mean(self.max_reward)),
            "mean_return": float(np.mean(self.episode_return)),
        }


def ensemble_weights(n: int, m: float = 0.01) -> np.ndarray:
    """Weights of n overlapping predictions, oldest first (w_0 is the largest)."""
    w = np.exp(-m * np.arange(n))
    return w / w.sum()


@torch.no_grad()
def evaluate_policy(
    policy: ACTPolicy,
    spec: EnvSpec,
    num_episodes: int,
    device: torch.device,
    temporal_ensemble: bool = False,
    ensemble_coeff: float = 0.01,
    seed_base: int | None = None,
    record_episodes: int = 0,
    num_workers: int = 2,
) -> RolloutResult:
    """Roll out episodes with seeds seed_base + i (default: the simulator's evaluation seeds,
    disjoint from its training episodes)."""
    seed_base = spec.default_seed_base if seed_base is None else seed_base
    spec.check_seed_base(seed_base)
    seeds = [seed_base + i for i in range(num_episodes)]
    per_round = min(num_episodes, num_workers) if spec.kind == "aloha_sim" else num_episodes
    envs = make_vector_env(spec, max(per_round, 1), num_workers)
    result = RolloutResult(seeds, [], [], [], spec.stages)
    was_training = policy.training
    policy.eval()
    try:
        for start in range(0, num_episodes, envs.num_envs):
            round_seeds = seeds[start : start + envs.num_envs]
            record = max(0, min(record_episodes - start, len(round_seeds)))
            run_round(
                policy,
                envs,
                spec.episode_len,
                round_seeds,
                device,
                temporal_ensemble,
                ensemble_coeff,
                record,
                result,
            )
    finally:
        envs.close()
        policy.train(was_training)
    return result


def run_round(
    policy: ACTPolicy,
    envs: VectorEnv,
    horizon: int,
    seeds: list[int],
    device: torch.device,
    temporal_ensemble: bool,
    ensemble_coeff: float,
    record: int,
    result: RolloutResult,
) -> None:
    """One round of len(seeds) episodes (the first `record` keep their frames); appends to
    `result`. A round smaller than the vector env leaves the extra environments idle."""
    n, chunk = len(seeds), policy.model.chunk_size
    obs = envs.reset(seeds + seeds[-1:] * (envs.num_envs - n))
    action_dim = policy.action_mean.shape[0]
    # all_actions[e, t_query, t] = action predicted at query time t_query for time t.
    all_actions = (
        np.full((envs.num_envs, horizon, horizon + chunk, action_dim), np.nan, np.float32)
        if temporal_ensemble
        else None
    )
    current_chunk, chunk_start = None, 0
    returns = np.zeros(envs.num_envs)
    best = np.zeros(envs.num_envs, dtype=np.int64)
    frames: list[list[np.ndarray]] = [[] for _ in range(record)]
    camera_names = list(obs[0]["images"])
    for t in range(horizon):
        for e in range(record):
            frames[e].append(obs[e]["images"]["top"])
        if temporal_ensemble or t % chunk == 0:
            state = torch.from_numpy(np.stack([o["qpos"] for o in obs])).to(device)
            images = torch.from_numpy(
                np.stack([np.stack([o["images"][c] for c in camera_names]) for o in obs])
            )
            images = images.permute(0, 1, 4, 2, 3).contiguous().to(device)
            predicted = policy.predict_chunk(state, images).float().cpu().numpy()
            if temporal_ensemble:
                all_actions[:, t, t : t + chunk] = predicted
            else:
                current_chunk, chunk_start = predicted, t
        if temporal_ensemble:
            column = all_actions[:, : t + 1, t]  # every prediction made for time t
            valid = ~np.isnan(column[0, :, 0])
            preds = column[:, valid]  # oldest query first
            actions = np.einsum(
                "q,eqa->ea", ensemble_weights(preds.shape[1], ensemble_coeff), preds
            )
        else:
            actions = current_chunk[:, t - chunk_start]
        obs, rewards = envs.step(actions)
        returns += rewards
        best = np.maximum(best, rewards)
    result.success.extend(envs.successes()[:n])
    result.max_reward.extend(int(b) for b in best[:n])
    result.episode_return.extend(float(r) for r in returns[:n])
    result.frames.extend(np.stack(f) for f in frames)
