"""The ALOHA tasks: one registry entry per task (scenes, object poses, reward, stages, script).

Adding a task means adding one ``TaskSpec`` to ``TASKS``: the environment, the recorder and the
dataset generator look everything up here.

Rewards are staged (0..4) and computed from the geom pairs in contact after a step. A pair is
unordered: MuJoCo does not promise which geom of a contact is ``geom1``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from act_hydra.aloha_sim import scripted
from act_hydra.errors import ConfigError

Contacts = frozenset  # of frozenset({geom_name_a, geom_name_b})

LEFT_FINGER = "vx300s_left/10_left_gripper_finger"
RIGHT_FINGER = "vx300s_right/10_right_gripper_finger"
SOCKET_GEOMS = ("socket-1", "socket-2", "socket-3", "socket-4")


def touching(contacts: Contacts, a: str, b: str) -> bool:
    return frozenset((a, b)) in contacts


def touching_any(contacts: Contacts, a: str, others) -> bool:
    return any(frozenset((a, b)) in contacts for b in others)


# -- object poses (free joints: x, y, z, qw, qx, qy, qz) -------------------------------------
_IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


def _uniform_pose(rng: np.random.RandomState, low, high) -> np.ndarray:
    return np.concatenate([rng.uniform(low, high), _IDENTITY])


def sample_cube_pose(seed: int) -> np.ndarray:
    """(7,) cube pose: x in [0, 0.2], y in [0.4, 0.6], z = 0.05, upright."""
    rng = np.random.RandomState(seed)
    return _uniform_pose(rng, [0.0, 0.4, 0.05], [0.2, 0.6, 0.05])


def sample_insertion_pose(seed: int) -> np.ndarray:
    """(14,) peg pose then socket pose; the peg is drawn first from the same generator."""
    rng = np.random.RandomState(seed)
    peg = _uniform_pose(rng, [0.1, 0.4, 0.05], [0.2, 0.6, 0.05])
    socket = _uniform_pose(rng, [-0.2, 0.4, 0.05], [-0.1, 0.6, 0.05])
    return np.concatenate([peg, socket])


# -- rewards -----------------------------------------------------------------------------------
def transfer_cube_reward(contacts: Contacts) -> int:
    right = touching(contacts, "red_box", RIGHT_FINGER)
    left = touching(contacts, "red_box", LEFT_FINGER)
    on_table = touching(contacts, "red_box", "table")
    reward = 0
    if right:
        reward = 1  # touched
    if right and not on_table:
        reward = 2  # lifted
    if left:
        reward = 3  # the left gripper took hold (transfer attempted)
    if left and not on_table:
        reward = 4  # transferred
    return reward


def insertion_reward(contacts: Contacts) -> int:
    left = touching_any(contacts, LEFT_FINGER, SOCKET_GEOMS)
    right = touching(contacts, "red_peg", RIGHT_FINGER)
    peg_on_table = touching(contacts, "red_peg", "table")
    socket_on_table = touching_any(contacts, "table", SOCKET_GEOMS)
    lifted = not peg_on_table and not socket_on_table
    reward = 0
    if left and right:
        reward = 1  # both parts touched
    if left and right and lifted:
        reward = 2  # both grasped and lifted
    if touching_any(contacts, "red_peg", SOCKET_GEOMS) and lifted:
        reward = 3  # peg touches the socket in the air
    if touching(contacts, "red_peg", "pin"):
        reward = 4  # inserted
    return reward


# -- registry ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskSpec:
    name: str
    joint_scene: str  # MJCF file (position-controlled arms) for replay and evaluation
    ee_scene: str  # MJCF file with mocap bodies welded to the grippers, for the scripted run
    object_pose_dim: int  # qpos entries after the 16 arm joints (7 per free body)
    sample_pose: Callable[[int], np.ndarray]  # seed -> object pose
    reward: Callable[[Contacts], int]  # contacts -> 0..4
    # The stages reported like the ACT paper's Table I: (name, minimum max-reward of the episode).
    stages: tuple[tuple[str, int], ...]
    scripted_policy: Callable[..., scripted.ScriptedPolicy]  # (pose, mocap_l, mocap_r)
    episode_len: int = 400

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.stages)

    def stages_reached(self, max_reward: int) -> dict[str, bool]:
        """{stage name: reached} for an episode whose highest reward was ``max_reward``."""
        return {name: int(max_reward) >= level for name, level in self.stages}


TASKS: dict[str, TaskSpec] = {
    "transfer_cube": TaskSpec(
        name="transfer_cube",
        joint_scene="bimanual_viperx_transfer_cube.xml",
        ee_scene="bimanual_viperx_end_effector_transfer_cube.xml",
        object_pose_dim=7,
        sample_pose=sample_cube_pose,
        reward=transfer_cube_reward,
        stages=(("touched", 1), ("lifted", 2), ("transferred", 4)),
        scripted_policy=scripted.transfer_cube_waypoints,
    ),
    "insertion": TaskSpec(
        name="insertion",
        joint_scene="bimanual_viperx_insertion.xml",
        ee_scene="bimanual_viperx_end_effector_insertion.xml",
        object_pose_dim=14,
        sample_pose=sample_insertion_pose,
        reward=insertion_reward,
        stages=(("grasped", 2), ("contact", 3), ("inserted", 4)),
        scripted_policy=scripted.insertion_waypoints,
    ),
}


def get_task(name: str) -> TaskSpec:
    """The registered task ``name``; a ``ConfigError`` listing the legal names otherwise."""
    if isinstance(name, TaskSpec):
        return name
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown ALOHA sim task {name!r}. Rule: the task must be one of "
            f"{sorted(TASKS)}. Fix: e.g. `task=transfer_cube`."
        ) from None
