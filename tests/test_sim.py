"""The built-in synthetic task: determinism, the expert, and that vision is required."""

from __future__ import annotations

import numpy as np
import pytest

from act_hydra import sim
from act_hydra.config import SyntheticTaskConfig
from act_hydra.sim import SyntheticEnv, expert_action, expert_episode, rollout


@pytest.fixture
def env():
    return SyntheticEnv(episode_len=60, image_size=32)


def test_observation_format(env):
    obs = env.reset(seed=0)
    assert obs["qpos"].shape == (14,) and obs["qpos"].dtype == np.float32
    assert set(obs["images"]) == {"top"}
    img = obs["images"]["top"]
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    obs, reward, done = env.step(expert_action(env))
    assert obs["qpos"].shape == (14,) and reward in range(env.max_reward + 1) and not done
    assert SyntheticEnv.from_config(SyntheticTaskConfig()).render().shape == (64, 64, 3)


def test_deterministic_from_seed(env):
    a = expert_episode(env, seed=5)
    b = expert_episode(SyntheticEnv(episode_len=60, image_size=32), seed=5)
    np.testing.assert_array_equal(a.images["top"], b.images["top"])
    np.testing.assert_array_equal(a.qpos, b.qpos)
    np.testing.assert_array_equal(a.action, b.action)
    c = expert_episode(env, seed=6)
    assert not np.array_equal(a.action, c.action)


def test_target_is_hidden_from_qpos_but_visible_in_image(env):
    obs = [env.reset(seed=s) for s in range(5)]
    cubes = []
    for s in range(5):
        env.reset(seed=s)
        cubes.append(env.cube_pos.copy())
    assert len({tuple(c) for c in cubes}) == 5
    for o in obs[1:]:  # same start pose for every cube position
        np.testing.assert_array_equal(o["qpos"], obs[0]["qpos"])
        assert np.abs(o["images"]["top"].astype(int) - obs[0]["images"]["top"]).sum() > 1000
    # The cube is the red blob: its pixel centroid tracks the hidden position.
    for s in range(5):
        img = env.reset(seed=s)["images"]["top"].astype(int)
        red = (img[..., 0] > 150) & (img[..., 1] < 80) & (img[..., 2] < 80)
        rows, cols = np.nonzero(red)
        x = (cols.mean() + 0.5) / 32 * 2 - 1
        y = 1 - (rows.mean() + 0.5) / 32 * 2
        assert np.hypot(x - env.cube_pos[0], y - env.cube_pos[1]) < 0.08


def test_expert_succeeds(env):
    for seed in range(20):
        ep = expert_episode(env, seed=1000 + seed)
        assert ep.success and ep.max_reward == env.max_reward == 3
        assert ep.rewards[-1] == 3
        assert ep.action.shape == ep.qpos.shape == (60, 14)
        assert ep.images["top"].shape == (60, 32, 32, 3)


def test_blind_policy_fails(env):
    """Replaying the mean expert trajectory (no vision) rarely grasps the cube."""
    mean_actions = np.mean([expert_episode(env, seed=s).action for s in range(10)], axis=0)
    results = [
        rollout(env, lambda obs: mean_actions[env.t], seed=100 + s, record=False) for s in range(30)
    ]
    assert np.mean([r.success for r in results]) <= 0.05


def test_untrained_like_policy_fails(env):
    """Actions that ignore the image (mean action + noise, as from an untrained net) fail."""
    mean = np.mean([expert_episode(env, seed=s).action for s in range(5)], axis=(0, 1))
    rng = np.random.default_rng(0)
    successes = [
        rollout(env, lambda obs: mean + rng.normal(0, 0.3, 14), seed=200 + s, record=False).success
        for s in range(20)
    ]
    assert np.mean(successes) <= 0.1


def test_dynamics_speed_limit_and_grasp_rules(env):
    env.reset(seed=3)
    q0 = env.qpos.copy()
    target = q0 + 1.0
    env.step(target)
    moved = env.qpos - q0
    assert np.all(np.abs(moved[[0, 2]]) <= sim.JOINT_SPEED + 1e-9)
    assert moved[sim.LEFT_GRIPPER] == 0  # already fully open; clipped to [0, 1]
    # Closing the gripper away from the cube does not grasp it, nor does tracking it closed.
    env.reset(seed=3)
    closed = sim.HOME_QPOS.copy()
    closed[sim.LEFT_GRIPPER] = 0.0
    for _ in range(12):
        env.step(closed)
    assert not env.grasped and env.reward == 0
    for _ in range(30):
        track = closed.copy()
        track[0], track[2] = sim.inverse_kinematics(sim.spin(env.cube_pos))
        env.step(track)
    assert env.ee_to_cube < 1e-6 and not env.grasped and env.reward == 2


def test_cube_turns_until_grasped_then_follows_the_gripper():
    env = SyntheticEnv(episode_len=60, image_size=16)
    env.reset(seed=1)
    radius = np.linalg.norm(env.cube_pos - sim.TURNTABLE_CENTER)
    path = []
    for _ in range(5):
        env.step(sim.HOME_QPOS)
        path.append(env.cube_pos.copy())
    np.testing.assert_allclose(
        np.linalg.norm(np.array(path) - sim.TURNTABLE_CENTER, axis=1), radius
    )
    np.testing.assert_allclose(path[1], sim.spin(path[0]))
    assert np.linalg.norm(path[-1] - path[0]) > 0.03
    env.reset(seed=1)
    while not env.grasped:
        env.step(expert_action(env))
    for _ in range(5):
        env.step(expert_action(env))
        np.testing.assert_allclose(env.cube_pos, env.ee_pos)
    opened = env.qpos.copy()
    opened[sim.LEFT_GRIPPER] = 1.0
    for _ in range(10):
        env.step(opened)
    assert not env.grasped and env.reward < env.max_reward


def test_one_grasp_attempt_per_closing():
    env = SyntheticEnv(episode_len=80, image_size=16)
    env.reset(seed=4)

    def act(gripper):
        a = sim.HOME_QPOS.copy()
        a[0], a[2] = sim.inverse_kinematics(sim.spin(env.cube_pos))
        a[sim.LEFT_GRIPPER] = gripper
        return a

    close_at_home = sim.HOME_QPOS.copy()
    close_at_home[sim.LEFT_GRIPPER] = 0.0
    for _ in range(3):
        env.step(close_at_home)  # far from the cube
    assert not env.armed and not env.grasped  # the attempt was spent on nothing
    for _ in range(20):
        env.step(act(0.7))  # on the cube, gripper half open: not re-armed
    assert env.ee_to_cube < 1e-6 and not env.armed
    for _ in range(5):
        env.step(act(0.0))
    assert not env.grasped
    for _ in range(6):
        env.step(act(1.0))  # open fully: the next closing is an attempt again
    assert env.armed
    for _ in range(5):
        env.step(act(0.0))
    assert env.grasped and env.reward == env.max_reward


def test_kinematics_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(*sim.CUBE_RADII)
        p = sim.TURNTABLE_CENTER + radius * np.array([np.cos(angle), np.sin(angle)])
        np.testing.assert_allclose(sim.forward_kinematics(*sim.inverse_kinematics(p)), p, atol=1e-9)


def test_step_errors(env):
    with pytest.raises(RuntimeError, match="reset"):
        SyntheticEnv().step(np.zeros(14))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="14 finite"):
        env.step(np.zeros(7))
    short = SyntheticEnv(episode_len=2, image_size=16)
    short.reset(seed=0)
    short.step(sim.HOME_QPOS)
    _, _, done = short.step(sim.HOME_QPOS)
    assert done
    with pytest.raises(RuntimeError, match="episode is over"):
        short.step(sim.HOME_QPOS)
