"""Recording one scripted demonstration, the ACT paper's way (two phases).

1. End-effector phase (no rendering): the task's scripted waypoint policy drives the mocap
   bodies of the end-effector scene for ``episode_len`` steps. At each of the ``episode_len + 1``
   states (reset included) we record the robot's 14-dim joint state, with the two gripper
   entries replaced by the *commanded* gripper opening: the fingers stop on the object, but the
   command says what the demonstration meant, and it is what a joint-space replay must ask for.
2. Joint phase: the joint-space scene starts from the same object pose and replays that joint
   trajectory as position targets (``episode_len + 1`` steps). The saved episode is the replay:
   observation ``t`` is the state before action ``t``, for ``t < episode_len``; the last
   replay step only counts towards the reward.

The replay's physics runs first; the ``top`` camera is then rendered from the saved states
(rendering reads positions only, so the frames are the ones an in-loop renderer would make).
This way a replay that fails can be dropped without paying for its frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from act_hydra.aloha_sim import constants as C
from act_hydra.aloha_sim.env import AlohaSimEnv
from act_hydra.aloha_sim.physics import Scene
from act_hydra.aloha_sim.render import CameraRenderer, check_render_args
from act_hydra.aloha_sim.tasks import TaskSpec, get_task


@dataclass
class ScriptedRun:
    """The end-effector phase of one seed."""

    task: str
    seed: int
    object_pose: np.ndarray
    joint_traj: np.ndarray  # (T + 1, 14): joint state with commanded grippers, reset included
    rewards: np.ndarray  # (T,) reward after each step
    seconds: float

    @property
    def max_reward(self) -> int:
        return int(self.rewards.max(initial=0))

    @property
    def success(self) -> bool:
        return self.max_reward >= C.MAX_REWARD


@dataclass
class RecordedEpisode:
    """A recorded demonstration: the replay's arrays and both phases' outcomes."""

    task: str
    seed: int
    qpos: np.ndarray | None  # (T, 14) float32
    qvel: np.ndarray | None  # (T, 14) float32
    action: np.ndarray | None  # (T, 14) float32
    images: np.ndarray | None  # (T, H, W, 3) uint8, the top camera
    ee_success: bool
    replay_success: bool
    ee_max_reward: int
    replay_max_reward: int
    replay_rewards: np.ndarray | None = None  # (T + 1,) reward after each replay step
    seconds: dict = field(default_factory=dict)  # ee / replay / render

    @property
    def success(self) -> bool:
        return self.ee_success and self.replay_success


def run_scripted(task: str | TaskSpec, seed: int, episode_len: int | None = None) -> ScriptedRun:
    """Phase 1: the scripted policy in the end-effector scene (physics only)."""
    task = get_task(task)
    episode_len = task.episode_len if episode_len is None else int(episode_len)
    start = time.perf_counter()
    scene = Scene(task, "ee")
    pose = task.sample_pose(int(seed))
    scene.reset(pose)
    mocap_left, mocap_right = scene.mocap_poses()
    policy = task.scripted_policy(pose, mocap_left, mocap_right)

    def joint_state() -> np.ndarray:
        q = scene.qpos14()
        q[6], q[13] = scene.commanded_grippers()
        return q

    traj = np.empty((episode_len + 1, C.STATE_DIM))
    rewards = np.zeros(episode_len, dtype=np.int64)
    traj[0] = joint_state()
    for t in range(episode_len):
        scene.set_ee_command(policy(t))
        scene.step()
        rewards[t] = scene.reward()
        traj[t + 1] = joint_state()
    return ScriptedRun(task.name, int(seed), pose, traj, rewards, time.perf_counter() - start)


def replay(
    run: ScriptedRun,
    height: int = 480,
    width: int = 640,
    render_style: str = "paper",
    render: bool | str = True,
) -> RecordedEpisode:
    """Phase 2: replay ``run``'s joint trajectory in the joint scene, then render the frames.

    ``render``: True renders every saved step, False none (``images`` is None), "on_success"
    only when the replay reached the maximum reward.
    """
    task = get_task(run.task)
    check_render_args(height, width, render_style)
    steps = len(run.joint_traj)  # episode_len + 1 actions
    length = steps - 1
    start = time.perf_counter()
    env = AlohaSimEnv(
        task, episode_len=steps, height=height, width=width, render_style=render_style, render=False
    )
    try:
        obs = env.reset(run.seed, object_pose=run.object_pose)
        qpos = np.empty((length, C.STATE_DIM), np.float32)
        qvel = np.empty((length, C.STATE_DIM), np.float32)
        states = np.empty((length, env.scene.model.nq))
        for t in range(steps):
            if t < length:
                qpos[t], qvel[t] = obs["qpos"], obs["qvel"]
                states[t] = env.scene.full_qpos()
            obs, _, _ = env.step(run.joint_traj[t], render=False)
        rewards = np.asarray(env.rewards, dtype=np.int64)
        success = env.success
        replay_seconds = time.perf_counter() - start

        images = None
        start = time.perf_counter()
        if render is True or (render == "on_success" and success):
            images = np.empty((length, height, width, 3), np.uint8)
            with CameraRenderer(env.scene.model, height, width, render_style) as camera:
                for t in range(length):
                    env.scene.set_full_qpos(states[t])
                    images[t] = camera.render(env.scene.data)
        render_seconds = time.perf_counter() - start
    finally:
        env.close()
    return RecordedEpisode(
        task=task.name,
        seed=run.seed,
        qpos=qpos,
        qvel=qvel,
        action=run.joint_traj[:length].astype(np.float32),
        images=images,
        ee_success=run.success,
        replay_success=bool(success),
        ee_max_reward=run.max_reward,
        replay_max_reward=int(rewards.max(initial=0)),
        replay_rewards=rewards,
        seconds={"ee": run.seconds, "replay": replay_seconds, "render": render_seconds},
    )


def record_episode(
    task: str | TaskSpec,
    seed: int,
    episode_len: int | None = None,
    height: int = 480,
    width: int = 640,
    render_style: str = "paper",
    skip_failed: bool = False,
) -> RecordedEpisode:
    """Record seed ``seed`` of ``task`` by both phases.

    ``skip_failed=True`` stops early on a failure: a failed end-effector run is not replayed
    (the arrays are None) and a failed replay is not rendered (``images`` is None).
    """
    run = run_scripted(task, seed, episode_len)
    if skip_failed and not run.success:
        return RecordedEpisode(
            task=run.task,
            seed=run.seed,
            qpos=None,
            qvel=None,
            action=None,
            images=None,
            ee_success=False,
            replay_success=False,
            ee_max_reward=run.max_reward,
            replay_max_reward=0,
            seconds={"ee": run.seconds, "replay": 0.0, "render": 0.0},
        )
    return replay(run, height, width, render_style, render="on_success" if skip_failed else True)
