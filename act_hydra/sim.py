r"""The built-in synthetic task: grasp a cube on a turntable that only the camera can see.

A tiny deterministic simulator (numpy only) shaped like ALOHA, so that its episodes go through
exactly the same HDF5 files, data loader and policy as real recordings, and trained policies can
be scored closed-loop (success rate) without MuJoCo.

Scene: the ``top`` camera looks straight down on a 2 x 2 table (coordinates in [-1, 1]^2, +y up
in the image)::

     +-------------------------------+
     |          .-''-.         |   [#]  the red cube, on the turntable
     |  ------.'    [#]     '.       |   ( )  the left gripper: a green ring when open, a
     |         \              \      |        smaller yellow ring when closed
    o|----------\---  +        |     |   ---  grey arm links
     |          ( )            |     |    o   left arm base, just off the left edge
     |          '.            .'     |    +   turntable centre (the disc is drawn lighter)
     | ( )        '-........-'     ( |   bottom corners: home pose of the left gripper and
     +-------------------------------+   the parked right arm

- **Robot.** Two arms x (6 joints + 1 gripper) = 14-dim ``qpos`` and ``action``, ordered like
  ALOHA: ``[left waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate, left gripper,
  right ...]``. Actions are absolute joint targets; the robot is position controlled: each step
  every joint moves toward its target by at most ``JOINT_SPEED`` rad (gripper: ``GRIPPER_SPEED``
  per step, 1 = open, 0 = closed). Only the left arm does the task; seen from above it is a
  two-link planar arm whose waist (joint 0) and elbow (joint 2) rotate in the table plane
  (links ``LINK_LENGTHS``, base ``LEFT_BASE`` just off the left edge). Its end effector (the
  gripper ring) is the forward kinematics of those two joints; the other joints and the right
  arm stay at their home values.
- **Hidden target.** ``reset(seed)`` puts the cube at a random angle and a random distance
  (``CUBE_RADII``, uniform over the ring's area) from the centre of a turntable that spins
  counter-clockwise by ``SPIN`` rad per step, so a loose cube moves on a circle. The robot always
  starts from the same home pose, so ``qpos`` tells nothing about the cube at t=0: a policy has
  to find the cube in the ``top`` image (a high-contrast red square, 0.3 units wide: about
  10 x 10 pixels at 64 x 64). Because the cube keeps moving until it is grasped, the arm trails
  it and must keep looking, and every demonstration shows the cube at many positions (more
  varied training images than a static cube would give).
- **Grasp.** Closing the gripper is one grasp attempt: when the gripper position crosses
  ``GRASP_THRESHOLD`` (half closed) on the way down, the cube is grasped if the end effector is
  within ``SUCCESS_TOLERANCE`` (0.25) of the cube centre, and missed otherwise; the next attempt
  needs the gripper opened to ``REARM_OPENING`` first. A grasped cube leaves the turntable and
  follows the gripper until the gripper opens again (then it drops where it is). So closing
  early, or chattering the gripper while passing over the cube, does not grasp it.
- **Reward** (per step, the current stage, like ALOHA's staged rewards): 0 nothing, 1 the end
  effector is within 2 x ``SUCCESS_TOLERANCE`` of the cube (touch), 2 within
  ``SUCCESS_TOLERANCE`` (reach), 3 the cube is grasped (``max_reward``).
- **Success** = the cube is grasped at the end of the episode (reward == ``max_reward`` at the
  last step; ``env.success``).
- **Expert** (``expert_action``): a fixed timeline, like ALOHA's scripted policies. Over the
  first ``EXPERT_REACH_STEPS`` (20) steps its waist/elbow targets move linearly from home onto
  the inverse kinematics of where the cube will be next (so the arm's progress along its path
  tells the time); then it tracks the cube, closes the gripper at step ``EXPERT_CLOSE_STEP``
  (22; the grasp happens 3 steps later) and holds still. It succeeds on every seed when
  ``episode_len`` >= 26 (default 60).
- **Why a policy must look.** The cubes lie on a ring around the turntable centre, so averaging
  targets lands in the middle, away from every cube: replaying the mean expert trajectory
  succeeds on about 3% of seeds, a constant mean action (roughly what an untrained policy
  outputs) on about 1%, the mean action plus per-step noise on none. Even the best single fixed
  grasp point, chosen with hindsight, gets under 20%.
- **Learnable.** The cube turns slowly (``SPIN``, at most 0.14 units per 10 steps), so chunks
  played open loop still end up on it, and each demonstration shows the cube at ~25 positions,
  which helps a CNN trained from scratch interpolate between training episodes. Measured with
  the quickstart (``model=act_small``, 1500 steps, batch 8, ResNet18 from scratch, ~4 min on
  2 CPU cores): 80-100% success over 50 evaluation seeds; untrained: 0-2%.

Episode seeds: ``generate_synthetic_dataset`` resets episode ``i`` with ``seed=(task_seed,
TRAIN_STREAM, i)``; evaluation should use plain integer seeds (e.g. ``1000 + i``), which draw
from other random streams, so evaluation cubes are never the training cubes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Bump when the dynamics, rendering or expert change: it is part of the dataset cache key.
SIM_VERSION = 2

STATE_DIM = 14
ACTION_DIM = 14
CAMERA_NAMES = ("top",)
DT = 0.02  # seconds per step (50 Hz, like ALOHA); only used for qvel

JOINT_SPEED = 0.1  # rad per step, per joint
GRIPPER_SPEED = 0.2  # normalised gripper units per step (1 = open, 0 = closed)
GRASP_THRESHOLD = 0.5  # the gripper holds the cube once it is half closed (or more)
REARM_OPENING = 0.9  # after a closing, the gripper must open this far before it can grasp again
LEFT_GRIPPER = 6
RIGHT_GRIPPER = 13

LINK_LENGTHS = (1.2, 1.2)
LEFT_BASE = np.array([-1.2, 0.0])
RIGHT_BASE = np.array([1.2, 0.0])
# The cube sits on a turntable that spins counter-clockwise; it starts at a random angle and at a
# random distance from the turntable's centre.
TURNTABLE_CENTER = np.array([0.1, 0.0])
TURNTABLE_RADIUS = 0.85
CUBE_RADII = (0.35, 0.7)  # range of the cube centre's distance from TURNTABLE_CENTER
SPIN = 0.02  # rad per step
CUBE_HALF = 0.15  # half the side of the cube
SUCCESS_TOLERANCE = 0.25  # end effector to cube centre, table units
EXPERT_CLOSE_RADIUS = 0.25 * SUCCESS_TOLERANCE
# Like ALOHA's scripted policies, the expert follows a fixed timeline: it moves its joint targets
# linearly from home onto the (moving) cube over EXPERT_REACH_STEPS steps, then closes the
# gripper at EXPERT_CLOSE_STEP, so the arm's progress along its path tells the time.
EXPERT_REACH_STEPS = 20
EXPERT_CLOSE_STEP = 22

TRAIN_STREAM = 0x5EED  # second word of training-episode seeds, see the module docstring


def forward_kinematics(waist: float, elbow: float, base: np.ndarray = LEFT_BASE) -> np.ndarray:
    """(2,) end-effector position of a planar two-link arm."""
    l1, l2 = LINK_LENGTHS
    return base + np.array(
        [
            l1 * np.cos(waist) + l2 * np.cos(waist + elbow),
            l1 * np.sin(waist) + l2 * np.sin(waist + elbow),
        ]
    )


def inverse_kinematics(target: np.ndarray, base: np.ndarray = LEFT_BASE) -> tuple[float, float]:
    """(waist, elbow) that put the end effector on ``target`` (elbow-right branch, elbow < 0)."""
    l1, l2 = LINK_LENGTHS
    d = np.asarray(target, dtype=np.float64) - base
    r2 = float(d @ d)
    cos_elbow = np.clip((r2 - l1 * l1 - l2 * l2) / (2 * l1 * l2), -1.0, 1.0)
    elbow = -float(np.arccos(cos_elbow))
    waist = float(np.arctan2(d[1], d[0]) - np.arctan2(l2 * np.sin(elbow), l1 + l2 * np.cos(elbow)))
    return waist, elbow


def spin(pos: np.ndarray, steps: int = 1) -> np.ndarray:
    """Where a loose cube at ``pos`` is ``steps`` steps later (it turns with the turntable)."""
    d = np.asarray(pos, dtype=np.float64) - TURNTABLE_CENTER
    if d @ d > TURNTABLE_RADIUS**2:
        return np.array(pos, dtype=np.float64)
    c, s = np.cos(SPIN * steps), np.sin(SPIN * steps)
    return TURNTABLE_CENTER + np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])


def _home_qpos() -> np.ndarray:
    q = np.zeros(STATE_DIM)
    # Non-task joints sit at ALOHA-like rest values; they never move.
    rest = np.array([0.0, -0.96, 0.0, 0.0, -0.3, 0.0])
    q[0:6] = rest
    q[7:13] = rest
    q[0], q[2] = inverse_kinematics(np.array([-0.85, -0.75]), LEFT_BASE)
    # The right arm is parked pointing down, out of the way (mirror of the left branch).
    q[7], q[9] = inverse_kinematics(np.array([1.05, -0.95]), RIGHT_BASE)
    q[LEFT_GRIPPER] = q[RIGHT_GRIPPER] = 1.0
    return q


HOME_QPOS = _home_qpos()

# Colours (RGB uint8).
_TABLE = np.array([38, 38, 46], np.float32)
_TABLE_BORDER = np.array([70, 70, 80], np.float32)
_TURNTABLE = np.array([52, 54, 66], np.float32)
_CUBE = np.array([235, 30, 30], np.float32)
_LINK = np.array([165, 165, 175], np.float32)
_GRIP_OPEN = np.array([40, 225, 60], np.float32)
_GRIP_CLOSED = np.array([245, 215, 40], np.float32)


class SyntheticEnv:
    """Reach-and-grasp task with a hidden cube position. See the module docstring.

    ``reset(seed) -> obs``; ``step(action) -> (obs, reward, done)``;
    obs = ``{"qpos": (14,) float32, "qvel": (14,) float32, "images": {"top": (H, W, 3) uint8}}``.
    """

    camera_names = CAMERA_NAMES
    state_dim = STATE_DIM
    action_dim = ACTION_DIM
    max_reward = 3

    def __init__(self, episode_len: int = 60, image_size: int = 64):
        if episode_len < 1 or image_size < 8:
            raise ValueError(
                f"episode_len={episode_len} must be >= 1 and image_size={image_size} >= 8"
            )
        self.episode_len = int(episode_len)
        self.image_size = int(image_size)
        # Pixel centres in table coordinates; row 0 is the top of the image (y = +1).
        c = (np.arange(self.image_size) + 0.5) / self.image_size * 2.0 - 1.0
        self._px, self._py = np.meshgrid(c, -c)
        self._pixel = 2.0 / self.image_size
        self._background: np.ndarray | None = None
        self.cube_pos = np.zeros(2)
        self.qpos = HOME_QPOS.copy()
        self.qvel = np.zeros(STATE_DIM)
        self.grasped = False
        self.armed = True
        self.t = 0
        self._reset_called = False

    @classmethod
    def from_config(cls, cfg) -> SyntheticEnv:
        """Build from a ``SyntheticTaskConfig`` (uses episode_len and image_size)."""
        return cls(episode_len=cfg.episode_len, image_size=cfg.image_size)

    # -- state ---------------------------------------------------------------------------------
    @property
    def ee_pos(self) -> np.ndarray:
        """(2,) left end-effector position on the table."""
        return forward_kinematics(self.qpos[0], self.qpos[2])

    @property
    def ee_to_cube(self) -> float:
        return float(np.linalg.norm(self.ee_pos - self.cube_pos))

    @property
    def reward(self) -> int:
        if self.grasped:
            return 3
        d = self.ee_to_cube
        return 2 if d <= SUCCESS_TOLERANCE else 1 if d <= 2 * SUCCESS_TOLERANCE else 0

    @property
    def success(self) -> bool:
        """True while the cube is grasped; read it after the last step."""
        return self.grasped

    @property
    def done(self) -> bool:
        return self.t >= self.episode_len

    # -- episode -------------------------------------------------------------------------------
    def reset(self, seed: int | Sequence[int] | None = None) -> dict:
        rng = np.random.default_rng(seed)
        angle = rng.uniform(0.0, 2 * np.pi)
        # Uniform over the ring's area, not over radii.
        r0, r1 = CUBE_RADII
        radius = np.sqrt(rng.uniform(r0 * r0, r1 * r1))
        self.cube_pos = TURNTABLE_CENTER + radius * np.array([np.cos(angle), np.sin(angle)])
        self.qpos = HOME_QPOS.copy()
        self.qvel = np.zeros(STATE_DIM)
        self.grasped = False
        self.armed = True  # the gripper is open: its next closing is a grasp attempt
        self.t = 0
        self._reset_called = True
        return self.observation()

    def step(self, action) -> tuple[dict, int, bool]:
        if not self._reset_called:
            raise RuntimeError("call reset(seed) before step(action)")
        if self.done:
            raise RuntimeError(
                f"the episode is over (episode_len={self.episode_len}); call reset(seed)"
            )
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (ACTION_DIM,) or not np.all(np.isfinite(action)):
            raise ValueError(
                f"action must be {ACTION_DIM} finite numbers, got shape {action.shape}"
            )
        target = action.copy()
        target[[LEFT_GRIPPER, RIGHT_GRIPPER]] = np.clip(target[[LEFT_GRIPPER, RIGHT_GRIPPER]], 0, 1)
        speed = np.full(STATE_DIM, JOINT_SPEED)
        speed[[LEFT_GRIPPER, RIGHT_GRIPPER]] = GRIPPER_SPEED
        prev = self.qpos
        qpos = prev + np.clip(target - prev, -speed, speed)
        self.qpos = qpos
        self.qvel = (qpos - prev) / DT

        g_prev, g_now = prev[LEFT_GRIPPER], qpos[LEFT_GRIPPER]
        if self.grasped and g_now > GRASP_THRESHOLD:  # opened: the cube drops where it is
            self.grasped = False
        self.armed = self.armed or g_now >= REARM_OPENING
        if self.grasped:
            self.cube_pos = self.ee_pos.copy()
        else:
            self.cube_pos = spin(self.cube_pos)
            if self.armed and g_prev > GRASP_THRESHOLD >= g_now:  # one attempt per closing
                self.armed = False
                if self.ee_to_cube <= SUCCESS_TOLERANCE:
                    self.grasped = True
                    self.cube_pos = self.ee_pos.copy()
        self.t += 1
        return self.observation(), self.reward, self.done

    def observation(self) -> dict:
        return {
            "qpos": self.qpos.astype(np.float32),
            "qvel": self.qvel.astype(np.float32),
            "images": {"top": self.render()},
        }

    # -- rendering -----------------------------------------------------------------------------
    def _window(self, lo, hi):
        """Pixel slices (rows, cols) covering the table box [lo, hi] plus one pixel."""
        n, px = self.image_size, self._pixel
        c0 = int(np.clip(np.floor((lo[0] + 1.0) / px) - 1, 0, n))
        c1 = int(np.clip(np.ceil((hi[0] + 1.0) / px) + 1, 0, n))
        r0 = int(np.clip(np.floor((1.0 - hi[1]) / px) - 1, 0, n))
        r1 = int(np.clip(np.ceil((1.0 - lo[1]) / px) + 1, 0, n))
        return slice(r0, r1), slice(c0, c1)

    def _segment(self, img, a, b, half_width, color):
        rows, cols = self._window(np.minimum(a, b) - half_width, np.maximum(a, b) + half_width)
        px, py = self._px[rows, cols], self._py[rows, cols]
        ab = b - a
        t = ((px - a[0]) * ab[0] + (py - a[1]) * ab[1]) / max(float(ab @ ab), 1e-12)
        t = np.clip(t, 0.0, 1.0)
        d = np.hypot(px - a[0] - t * ab[0], py - a[1] - t * ab[1])
        self._paint(img[rows, cols], d - half_width, color)

    def _paint(self, img, signed_dist, color):
        """Blend ``color`` into the view ``img`` where signed_dist < 0, anti-aliased."""
        alpha = np.clip(0.5 - signed_dist / self._pixel, 0.0, 1.0)[..., None]
        img *= 1.0 - alpha
        img += alpha * color

    def _arm(self, img, q_waist, q_elbow, base):
        l1 = LINK_LENGTHS[0]
        elbow = base + l1 * np.array([np.cos(q_waist), np.sin(q_waist)])
        ee = forward_kinematics(q_waist, q_elbow, base)
        self._segment(img, base, elbow, 0.05, _LINK)
        self._segment(img, elbow, ee, 0.04, _LINK)
        return ee

    def render(self) -> np.ndarray:
        """The ``top`` camera: (image_size, image_size, 3) uint8."""
        if self._background is None:
            self._background = np.empty((self.image_size, self.image_size, 3), np.float32)
            self._background[:] = _TABLE
            edge = 1.0 - np.maximum(np.abs(self._px), np.abs(self._py))
            self._paint(self._background, edge - 0.04, _TABLE_BORDER)
            disc = np.hypot(self._px - TURNTABLE_CENTER[0], self._py - TURNTABLE_CENTER[1])
            self._paint(self._background, disc - TURNTABLE_RADIUS, _TURNTABLE)
        img = self._background.copy()
        q = self.qpos
        ee_right = self._arm(img, q[7], q[9], RIGHT_BASE)
        ee = self._arm(img, q[0], q[2], LEFT_BASE)
        # The cube is drawn over the links so it is never hidden; the gripper ring goes on top.
        lo, hi = self.cube_pos - CUBE_HALF, self.cube_pos + CUBE_HALF
        rows, cols = self._window(lo, hi)
        cube = np.maximum(
            np.abs(self._px[rows, cols] - self.cube_pos[0]),
            np.abs(self._py[rows, cols] - self.cube_pos[1]),
        )
        self._paint(img[rows, cols], cube - CUBE_HALF, _CUBE)
        for pos, g in ((ee, q[LEFT_GRIPPER]), (ee_right, q[RIGHT_GRIPPER])):
            radius = 0.08 + 0.08 * g  # 0.16 open, 0.08 closed
            color = _GRIP_OPEN if g > GRASP_THRESHOLD else _GRIP_CLOSED
            rows, cols = self._window(pos - radius - 0.04, pos + radius + 0.04)
            ring = np.abs(
                np.hypot(self._px[rows, cols] - pos[0], self._py[rows, cols] - pos[1]) - radius
            )
            self._paint(img[rows, cols], ring - 0.035, color)
        return (img + 0.5).clip(0, 255).astype(np.uint8)


# -- the scripted expert ------------------------------------------------------------------------
def expert_action(env: SyntheticEnv) -> np.ndarray:
    """The demonstrator: (14,) float32 absolute joint targets, from the privileged cube position.

    Move the arm's joint targets linearly from home to the inverse kinematics of the (moving)
    cube over ``EXPERT_REACH_STEPS`` steps, gripper open; from step ``EXPERT_CLOSE_STEP`` on,
    once the end effector is within ``EXPERT_CLOSE_RADIUS`` of the cube (or holds it), command
    the gripper closed. Episodes shorter than ``EXPERT_CLOSE_STEP + 4`` steps end before the
    grasp.
    """
    action = HOME_QPOS.copy()
    # Aim where the cube will be after this step (it turns while loose; held, it stays put).
    target = env.cube_pos if env.grasped else spin(env.cube_pos)
    goal = np.array(inverse_kinematics(target))
    progress = min(1.0, (env.t + 1) / EXPERT_REACH_STEPS)
    home = HOME_QPOS[[0, 2]]
    action[0], action[2] = home + progress * (goal - home)
    close = env.grasped or (env.t >= EXPERT_CLOSE_STEP and env.ee_to_cube <= EXPERT_CLOSE_RADIUS)
    action[LEFT_GRIPPER] = 0.0 if close else 1.0
    return action.astype(np.float32)


@dataclass
class Episode:
    """One rollout: ``qpos``/``qvel``/``action`` (T, 14) float32, ``images[cam]`` (T, H, W, 3)
    uint8 (the observations *before* each action, as the original recorder stores them),
    ``rewards`` (T,), ``success`` and ``max_reward`` (the highest per-step reward)."""

    qpos: np.ndarray
    qvel: np.ndarray
    action: np.ndarray
    images: dict[str, np.ndarray]
    rewards: np.ndarray
    success: bool
    max_reward: int


def rollout(
    env: SyntheticEnv,
    policy: Callable[[dict], np.ndarray],
    seed: int | Sequence[int] | None,
    record: bool = True,
) -> Episode:
    """Run one episode of ``policy(obs) -> (14,) action`` from ``env.reset(seed)``.

    With ``record=False`` the image arrays are not kept (cheaper for evaluation).
    """
    obs = env.reset(seed)
    qpos, qvel, actions, frames, rewards = [], [], [], [], []
    done = False
    while not done:
        action = np.asarray(policy(obs), dtype=np.float32).reshape(-1)
        qpos.append(obs["qpos"])
        qvel.append(obs["qvel"])
        actions.append(action)
        if record:
            frames.append(obs["images"]["top"])
        obs, reward, done = env.step(action)
        rewards.append(reward)
    images = {"top": np.stack(frames)} if record else {}
    rewards_arr = np.asarray(rewards, dtype=np.int64)
    return Episode(
        np.stack(qpos),
        np.stack(qvel),
        np.stack(actions),
        images,
        rewards_arr,
        bool(env.success),
        int(rewards_arr.max()),
    )


def expert_episode(env: SyntheticEnv, seed: int | Sequence[int] | None) -> Episode:
    """One demonstration by the scripted expert."""
    return rollout(env, lambda obs: expert_action(env), seed)
