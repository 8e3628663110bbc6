"""The joint-space ALOHA environment for closed-loop evaluation (same interface as SyntheticEnv).

``reset(seed) -> obs``; ``step(action) -> (obs, reward, done)``;
``obs = {"qpos": (14,) float32, "qvel": (14,) float32, "images": {"top": (H, W, 3) uint8}}``.
Actions are 14 absolute joint targets (per arm: 6 joints, 1 gripper with 0 closed .. 1 open),
the convention of the recorded datasets. ``reward`` is the task's stage (0..4) after the step;
``success`` is whether the episode's highest reward reached ``max_reward``.

Seeds: ``reset(seed)`` draws the object pose from ``np.random.RandomState(seed)``. Generated
training data uses seeds below ``TRAIN_SEED_LIMIT`` (0, 1, 2, ... plus replacements for failed
demonstrations); evaluate with ``eval_seed(i) = EVAL_SEED_BASE + i`` so that no evaluation
pose was seen in training.
"""

from __future__ import annotations

import numpy as np

from act_hydra.aloha_sim import constants as C
from act_hydra.aloha_sim.physics import Scene
from act_hydra.aloha_sim.render import CameraRenderer, check_render_args
from act_hydra.aloha_sim.tasks import TaskSpec, get_task


def eval_seed(i: int) -> int:
    """The seed of evaluation episode ``i`` (never used for training data)."""
    return C.EVAL_SEED_BASE + int(i)


class AlohaSimEnv:
    """One ALOHA task in its joint-space scene, rendering the ``top`` camera each step."""

    camera_names = list(C.CAMERA_NAMES)
    state_dim = C.STATE_DIM
    action_dim = C.ACTION_DIM
    max_reward = C.MAX_REWARD

    def __init__(
        self,
        task: str | TaskSpec = "transfer_cube",
        episode_len: int | None = None,
        height: int = 480,
        width: int = 640,
        render_style: str = "paper",
        render: bool = True,
    ):
        self.task = get_task(task)
        self.episode_len = int(episode_len if episode_len is not None else self.task.episode_len)
        if self.episode_len < 1:
            raise ValueError(f"episode_len={self.episode_len} must be >= 1")
        check_render_args(height, width, render_style)
        self.height, self.width, self.render_style = height, width, render_style
        self.scene = Scene(self.task, "joint")
        # render=False gives physics-only episodes (obs["images"] is empty), for fast checks.
        self._renderer = (
            CameraRenderer(self.scene.model, height, width, render_style) if render else None
        )
        self.t = 0
        self.max_reward_seen = 0
        self.rewards: list[int] = []
        self.seed: int | None = None
        self._reset_called = False

    # -- episode -----------------------------------------------------------------------------
    def reset(self, seed: int, object_pose: np.ndarray | None = None) -> dict:
        """Start pose, objects drawn from ``seed`` (or placed at ``object_pose``)."""
        self.seed = int(seed)
        pose = self.task.sample_pose(self.seed) if object_pose is None else object_pose
        self.scene.reset(pose)
        self.t = 0
        self.max_reward_seen = 0
        self.rewards = []
        self._reset_called = True
        return self.observation()

    def step(self, action, render: bool = True) -> tuple[dict, int, bool]:
        """Apply ``action`` for one control step (0.02 s).

        ``render=False`` skips the camera for this step (obs["images"] is empty): the
        recorder uses it for a step whose frame is never saved.
        """
        if not self._reset_called:
            raise RuntimeError("call reset(seed) before step(action)")
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (self.action_dim,) or not np.all(np.isfinite(action)):
            raise ValueError(
                f"action must be {self.action_dim} finite numbers, got shape {action.shape}"
            )
        self.scene.set_joint_command(action)
        self.scene.step()
        self.t += 1
        reward = self.scene.reward()
        self.rewards.append(reward)
        self.max_reward_seen = max(self.max_reward_seen, reward)
        return self.observation(render=render), reward, self.done

    def observation(self, render: bool = True) -> dict:
        images = {}
        if render and self._renderer is not None:
            images["top"] = self._renderer.render(self.scene.data)
        return {
            "qpos": self.scene.qpos14().astype(np.float32),
            "qvel": self.scene.qvel14().astype(np.float32),
            "images": images,
        }

    @property
    def done(self) -> bool:
        return self.t >= self.episode_len

    @property
    def success(self) -> bool:
        """Whether the highest reward so far reached ``max_reward``; read it after the last step."""
        return self.max_reward_seen >= self.max_reward

    def stages_reached(self) -> dict[str, bool]:
        return self.task.stages_reached(self.max_reward_seen)

    # -- resources ---------------------------------------------------------------------------
    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> AlohaSimEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
