"""Scripted end-effector policies: timed waypoints for both grippers, linearly interpolated.

A waypoint fixes, at step ``t``, a mocap target position (x, y, z), orientation (quaternion
w, x, y, z) and gripper opening (0 closed .. 1 open). Between two waypoints every component is
interpolated linearly, quaternion components included (MuJoCo normalises mocap quaternions),
exactly like the ACT paper's scripted demonstrations; after the last waypoint the target holds.

The waypoint tables are functions of the scene's initial mocap poses and the sampled object
pose, so every seed gets its own demonstration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Waypoint:
    t: int
    xyz: np.ndarray
    quat: np.ndarray
    gripper: float


def axis_angle_quat(axis, degrees: float) -> np.ndarray:
    """Quaternion (w, x, y, z) of a rotation by ``degrees`` about the unit ``axis``."""
    half = np.deg2rad(degrees) / 2.0
    return np.concatenate([[np.cos(half)], np.sin(half) * np.asarray(axis, dtype=np.float64)])


def quat_mul(a, b) -> np.ndarray:
    """Hamilton product ``a * b`` (apply ``b`` in the frame of ``a``)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def interpolate(waypoints: list[Waypoint], t: int) -> np.ndarray:
    """(8,) target at step ``t``: xyz (3), quat (4), gripper (1)."""
    if t <= waypoints[0].t:
        w = waypoints[0]
        return np.concatenate([w.xyz, w.quat, [w.gripper]])
    for a, b in zip(waypoints[:-1], waypoints[1:]):
        if a.t <= t < b.t:
            frac = (t - a.t) / (b.t - a.t)
            start = np.concatenate([a.xyz, a.quat, [a.gripper]])
            end = np.concatenate([b.xyz, b.quat, [b.gripper]])
            return start + frac * (end - start)
    w = waypoints[-1]
    return np.concatenate([w.xyz, w.quat, [w.gripper]])


class ScriptedPolicy:
    """Maps a step index to the (16,) end-effector command: left (8) then right (8)."""

    def __init__(self, left: list[Waypoint], right: list[Waypoint]):
        for name, wps in (("left", left), ("right", right)):
            times = [w.t for w in wps]
            if not wps or times != sorted(set(times)):
                raise ValueError(f"{name} waypoints must have strictly increasing times: {times}")
        self.left, self.right = left, right

    def __call__(self, t: int) -> np.ndarray:
        return np.concatenate([interpolate(self.left, t), interpolate(self.right, t)])


def transfer_cube_waypoints(object_pose, mocap_left, mocap_right) -> ScriptedPolicy:
    """The right arm picks the cube up and hands it to the left arm above the table centre."""
    box = np.asarray(object_pose[:3], dtype=np.float64)
    l0_xyz, l0_quat = np.asarray(mocap_left[:3]), np.asarray(mocap_left[3:7])
    r0_xyz, r0_quat = np.asarray(mocap_right[:3]), np.asarray(mocap_right[3:7])
    meet = np.array([0.0, 0.5, 0.25])
    meet_q = axis_angle_quat([1, 0, 0], 90)
    pick = quat_mul(r0_quat, axis_angle_quat([0, 1, 0], -60))
    ident = np.array([1.0, 0.0, 0.0, 0.0])
    d = np.array
    left = [
        Waypoint(0, l0_xyz, l0_quat, 0),
        Waypoint(100, meet + d([-0.1, 0, -0.02]), meet_q, 1),  # approach the meeting point
        Waypoint(260, meet + d([0.02, 0, -0.02]), meet_q, 1),  # move to the cube
        Waypoint(310, meet + d([0.02, 0, -0.02]), meet_q, 0),  # close the gripper
        Waypoint(360, meet + d([-0.1, 0, -0.02]), ident, 0),  # pull the cube away
        Waypoint(400, meet + d([-0.1, 0, -0.02]), ident, 0),  # stay
    ]
    right = [
        Waypoint(0, r0_xyz, r0_quat, 0),
        Waypoint(90, box + d([0, 0, 0.08]), pick, 1),  # above the cube
        Waypoint(130, box + d([0, 0, -0.015]), pick, 1),  # down onto it
        Waypoint(170, box + d([0, 0, -0.015]), pick, 0),  # close the gripper
        Waypoint(200, meet + d([0.05, 0, 0]), pick, 0),  # towards the meeting point
        Waypoint(220, meet, pick, 0),  # at the meeting point
        Waypoint(310, meet, pick, 1),  # open the gripper
        Waypoint(360, meet + d([0.1, 0, 0]), pick, 1),  # move away
        Waypoint(400, meet + d([0.1, 0, 0]), pick, 1),  # stay
    ]
    return ScriptedPolicy(left, right)


def insertion_waypoints(object_pose, mocap_left, mocap_right) -> ScriptedPolicy:
    """Each arm picks up one part; they meet in mid-air and the peg goes into the socket."""
    peg = np.asarray(object_pose[:3], dtype=np.float64)
    socket = np.asarray(object_pose[7:10], dtype=np.float64)
    l0_xyz, l0_quat = np.asarray(mocap_left[:3]), np.asarray(mocap_left[3:7])
    r0_xyz, r0_quat = np.asarray(mocap_right[:3]), np.asarray(mocap_right[3:7])
    meet = np.array([0.0, 0.5, 0.15])
    lift = 0.00715  # the peg is held a little higher so it lines up with the socket's hole
    # Both grasp orientations derive from the right arm's start orientation, as in the original.
    pick_left = quat_mul(r0_quat, axis_angle_quat([0, 1, 0], 60))
    pick_right = quat_mul(r0_quat, axis_angle_quat([0, 1, 0], -60))
    d = np.array
    left = [
        Waypoint(0, l0_xyz, l0_quat, 0),
        Waypoint(120, socket + d([0, 0, 0.08]), pick_left, 1),  # above the socket
        Waypoint(170, socket + d([0, 0, -0.03]), pick_left, 1),  # down onto it
        Waypoint(220, socket + d([0, 0, -0.03]), pick_left, 0),  # close the gripper
        Waypoint(285, meet + d([-0.1, 0, 0]), pick_left, 0),  # to the meeting point
        Waypoint(340, meet + d([-0.05, 0, 0]), pick_left, 0),  # push towards the peg
        Waypoint(400, meet + d([-0.05, 0, 0]), pick_left, 0),  # stay
    ]
    right = [
        Waypoint(0, r0_xyz, r0_quat, 0),
        Waypoint(120, peg + d([0, 0, 0.08]), pick_right, 1),  # above the peg
        Waypoint(170, peg + d([0, 0, -0.03]), pick_right, 1),  # down onto it
        Waypoint(220, peg + d([0, 0, -0.03]), pick_right, 0),  # close the gripper
        Waypoint(285, meet + d([0.1, 0, lift]), pick_right, 0),  # to the meeting point
        Waypoint(340, meet + d([0.05, 0, lift]), pick_right, 0),  # insert
        Waypoint(400, meet + d([0.05, 0, lift]), pick_right, 0),  # stay
    ]
    return ScriptedPolicy(left, right)
