"""Numbers shared by both ALOHA tasks: timing, the robot's start pose, gripper units, seeds.

All values are those of the ACT paper's simulation (bimanual ViperX arms, 50 Hz control).
"""

from __future__ import annotations

import numpy as np

# Control runs at 50 Hz; MuJoCo integrates at 2 ms, so each control step is 10 substeps.
DT = 0.02
PHYSICS_TIMESTEP = 0.002
SUBSTEPS = 10
EPISODE_LEN = 400  # steps, both tasks

STATE_DIM = 14  # per arm: 6 arm joints + 1 normalised gripper; left arm first
ACTION_DIM = 14
CAMERA_NAMES = ("top",)
MAX_REWARD = 4

# Per arm, the 8 joint values of the start pose (6 arm joints, then the two finger slides).
ARM_START_POSE = np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0, 0.02239, -0.02239])
START_POSE = np.concatenate([ARM_START_POSE, ARM_START_POSE])  # (16,) both arms
ARM_JOINTS = 8  # qpos entries per arm (the two fingers are separate slide joints)

# Gripper finger positions (m, one finger; the other mirrors it with the opposite sign).
GRIPPER_OPEN = 0.05800
GRIPPER_CLOSED = 0.01844

# Mocap (end-effector target) start poses: position (x, y, z) and quaternion (w, x, y, z).
MOCAP_START_LEFT = np.array([-0.31718881, 0.5, 0.29525084, 1.0, 0.0, 0.0, 0.0])
MOCAP_START_RIGHT = np.array([0.31718881, 0.49999888, 0.29525084, 1.0, 0.0, 0.0, 0.0])

# Seeds. Training episodes draw their object poses from seeds 0, 1, 2, ... (an episode whose
# scripted demonstration fails is replaced by the next unused seed), always below
# TRAIN_SEED_LIMIT; evaluation uses EVAL_SEED_BASE + i. The two ranges never overlap, so no
# evaluation object pose is a training pose.
TRAIN_SEED_LIMIT = 100_000
EVAL_SEED_BASE = 100_000


def normalize_gripper(position):
    """Finger position (m) -> 0 (closed) .. 1 (open)."""
    return (position - GRIPPER_CLOSED) / (GRIPPER_OPEN - GRIPPER_CLOSED)


def unnormalize_gripper(value):
    """0 (closed) .. 1 (open) -> finger position (m)."""
    return value * (GRIPPER_OPEN - GRIPPER_CLOSED) + GRIPPER_CLOSED


def normalize_gripper_velocity(velocity):
    return velocity / (GRIPPER_OPEN - GRIPPER_CLOSED)
