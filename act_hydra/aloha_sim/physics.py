"""One task scene in MuJoCo: loading (with the MuJoCo 3 fixes), reset, control, readout.

Two scenes exist per task:

- ``"ee"`` (end effector): two mocap bodies are welded to the grippers, so a scripted policy
  moves each gripper by moving its mocap body; only the four finger slides are actuated.
- ``"joint"``: all 16 joints (6 arm joints + 2 finger slides per arm) have position actuators;
  actions are joint targets. Demonstrations are replayed, and policies evaluated, here.

The MJCF files were written for MuJoCo 2.3; two model edits keep the scripted demonstrations
working on MuJoCo 3 (without them most scripted episodes fail):

1. MuJoCo 3 approximates weld constraints differently, and the mocap welds no longer turn the
   grippers firmly enough. Raising the welds' ``torquescale`` to 10 restores the grip
   orientation tracking (end-effector scene only).
2. The fingers and objects declare contact impedance ``solimp="2 1 ..."``; ``dmin = 2`` is
   outside MuJoCo's valid range (0, 1), which MuJoCo 3 handles differently. Clamping
   ``solimp[0:2]`` to 0.9999 (both scenes) gives the stiff contacts the scenes were tuned with.

Qpos layout: ``[left arm 6, left fingers 2, right arm 6, right fingers 2, objects...]`` where each
object is a free joint (x, y, z, qw, qx, qy, qz). The 14-dim robot state used everywhere else
replaces each finger pair by the left finger's normalised position (0 closed .. 1 open).
"""

from __future__ import annotations

import numpy as np

from act_hydra.aloha_sim import constants as C
from act_hydra.aloha_sim.runtime import asset_dir, import_mujoco
from act_hydra.aloha_sim.tasks import Contacts, TaskSpec, get_task

SCENE_KINDS = ("ee", "joint")
WELD_TORQUESCALE = 10.0
SOLIMP_MAX = 0.9999
_TORQUESCALE_INDEX = 10  # weld eq_data: anchor (3), relative pose (3 + 4), torquescale
_ARM = C.ARM_JOINTS  # 8 qpos entries per arm


def apply_compat_fixes(model, kind: str) -> None:
    """Edit ``model`` in place so the MuJoCo 2.3-era scenes behave on MuJoCo 3 (see above)."""
    mj = import_mujoco()
    np.minimum(model.geom_solimp[:, :2], SOLIMP_MAX, out=model.geom_solimp[:, :2])
    if kind == "ee":
        welds = model.eq_type == mj.mjtEq.mjEQ_WELD
        model.eq_data[welds, _TORQUESCALE_INDEX] = WELD_TORQUESCALE


def load_model(task: str | TaskSpec, kind: str):
    """The fixed ``MjModel`` of ``task``'s ``kind`` scene ("ee" or "joint")."""
    task = get_task(task)
    if kind not in SCENE_KINDS:
        raise ValueError(f"scene kind must be one of {SCENE_KINDS}, got {kind!r}")
    mj = import_mujoco()
    path = asset_dir() / (task.ee_scene if kind == "ee" else task.joint_scene)
    model = mj.MjModel.from_xml_path(str(path))
    apply_compat_fixes(model, kind)
    expected_nq = 2 * _ARM + task.object_pose_dim
    if model.nq != expected_nq or abs(model.opt.timestep - C.PHYSICS_TIMESTEP) > 1e-12:
        raise RuntimeError(
            f"{path} has nq={model.nq}, timestep={model.opt.timestep}; expected "
            f"nq={expected_nq}, timestep={C.PHYSICS_TIMESTEP}"
        )
    return model


class Scene:
    """A task scene's model and state, stepped at the 50 Hz control rate."""

    def __init__(self, task: str | TaskSpec, kind: str):
        self.task = get_task(task)
        self.kind = kind
        self.mj = import_mujoco()
        self.model = load_model(self.task, kind)
        self.data = self.mj.MjData(self.model)
        self._geom_names = [self.model.geom(i).name for i in range(self.model.ngeom)]
        if kind == "ee":
            self._mocap = (
                int(self.model.body("mocap_left").mocapid[0]),
                int(self.model.body("mocap_right").mocapid[0]),
            )
            if self.model.nu != 4:
                raise RuntimeError(f"end-effector scene has {self.model.nu} actuators, expected 4")
        elif self.model.nu != 2 * _ARM:
            raise RuntimeError(f"joint scene has {self.model.nu} actuators, expected {2 * _ARM}")

    # -- state -------------------------------------------------------------------------------
    def reset(self, object_pose: np.ndarray) -> None:
        """Robot at the start pose, objects at ``object_pose``, controls holding that pose."""
        mj, m, d = self.mj, self.model, self.data
        object_pose = np.asarray(object_pose, dtype=np.float64)
        if object_pose.shape != (self.task.object_pose_dim,):
            raise ValueError(
                f"object pose must have shape ({self.task.object_pose_dim},), got "
                f"{object_pose.shape}"
            )
        mj.mj_resetData(m, d)
        d.qpos[: 2 * _ARM] = C.START_POSE
        d.qpos[2 * _ARM :] = object_pose
        if self.kind == "ee":
            left, right = self._mocap
            d.mocap_pos[left], d.mocap_quat[left] = C.MOCAP_START_LEFT[:3], C.MOCAP_START_LEFT[3:]
            d.mocap_pos[right], d.mocap_quat[right] = (
                C.MOCAP_START_RIGHT[:3],
                C.MOCAP_START_RIGHT[3:],
            )
            closed = C.unnormalize_gripper(0.0)
            d.ctrl[:] = [closed, -closed, closed, -closed]
        else:
            d.ctrl[:] = C.START_POSE
        mj.mj_forward(m, d)

    def step(self) -> None:
        """Advance one control step (10 substeps of 2 ms).

        ``mj_step`` leaves positions, cameras and contacts as they were *before* its last
        integration; ``mj_step1`` recomputes them for the new state (it does not change the
        state or the next step), so rewards and images describe where things are now.
        """
        self.mj.mj_step(self.model, self.data, nstep=C.SUBSTEPS)
        self.mj.mj_step1(self.model, self.data)

    def qpos14(self) -> np.ndarray:
        q = self.data.qpos
        return np.concatenate(
            [
                q[0:6],
                [C.normalize_gripper(q[6])],
                q[_ARM : _ARM + 6],
                [C.normalize_gripper(q[_ARM + 6])],
            ]
        )

    def qvel14(self) -> np.ndarray:
        v = self.data.qvel
        return np.concatenate(
            [
                v[0:6],
                [C.normalize_gripper_velocity(v[6])],
                v[_ARM : _ARM + 6],
                [C.normalize_gripper_velocity(v[_ARM + 6])],
            ]
        )

    def object_pose(self) -> np.ndarray:
        return self.data.qpos[2 * _ARM :].copy()

    def full_qpos(self) -> np.ndarray:
        return self.data.qpos.copy()

    def set_full_qpos(self, qpos: np.ndarray) -> None:
        """Put the scene in a saved configuration (for rendering it again; velocities zeroed)."""
        self.data.qpos[:] = qpos
        self.data.qvel[:] = 0
        self.mj.mj_forward(self.model, self.data)

    def contacts(self) -> Contacts:
        """The unordered geom-name pairs in contact now."""
        n = self.data.ncon
        g1, g2 = self.data.contact.geom1[:n], self.data.contact.geom2[:n]
        names = self._geom_names
        return frozenset(frozenset((names[a], names[b])) for a, b in zip(g1, g2))

    def reward(self) -> int:
        return int(self.task.reward(self.contacts()))

    # -- control -----------------------------------------------------------------------------
    def mocap_poses(self) -> tuple[np.ndarray, np.ndarray]:
        """(7,) left and right mocap poses (xyz, wxyz) — end-effector scene only."""
        d = self.data
        left, right = self._mocap
        return (
            np.concatenate([d.mocap_pos[left], d.mocap_quat[left]]),
            np.concatenate([d.mocap_pos[right], d.mocap_quat[right]]),
        )

    def set_ee_command(self, command: np.ndarray) -> None:
        """(16,) per arm: mocap xyz (3), quat (4), normalised gripper (1); left first."""
        d = self.data
        left, right = self._mocap
        d.mocap_pos[left], d.mocap_quat[left] = command[0:3], command[3:7]
        d.mocap_pos[right], d.mocap_quat[right] = command[8:11], command[11:15]
        g_left, g_right = C.unnormalize_gripper(command[7]), C.unnormalize_gripper(command[15])
        d.ctrl[:] = [g_left, -g_left, g_right, -g_right]

    def commanded_grippers(self) -> tuple[float, float]:
        """The normalised gripper targets now in ``ctrl`` (end-effector scene)."""
        return (
            float(C.normalize_gripper(self.data.ctrl[0])),
            float(C.normalize_gripper(self.data.ctrl[2])),
        )

    def set_joint_command(self, action: np.ndarray) -> None:
        """(14,) joint-space action: per arm 6 joint targets and a normalised gripper."""
        ctrl = self.data.ctrl
        for arm in range(2):
            a = action[7 * arm : 7 * arm + 7]
            g = C.unnormalize_gripper(a[6])
            ctrl[_ARM * arm : _ARM * arm + 6] = a[:6]
            ctrl[_ARM * arm + 6], ctrl[_ARM * arm + 7] = g, -g
