"""The simulator a policy is evaluated in, chosen from the data config it was trained on.

``EnvSpec.from_data_config(data)`` reads the resolved ``data`` node (of a run, or of a
checkpoint): the built-in task (``data.synthetic``) or an ALOHA MuJoCo task (``data.sim``), with
the episode length, image size and look the policy was trained on. Recorded robot data has no
simulator: that is a ConfigError.

Environments step as a batch (``VectorEnv``): the synthetic task in this process, the ALOHA
tasks one per worker process (started with spawn: an OpenGL context does not survive fork), so
rendering, which is nearly all of a closed-loop episode on a CPU, runs in parallel.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

import numpy as np

from act_hydra.errors import ConfigError

# Stages of the synthetic task (act_hydra/sim.py): (name, the episode's minimum max reward).
SYNTHETIC_STAGES = (("touched", 1), ("reached", 2), ("grasped", 3))
SYNTHETIC_SEED_BASE = 1000  # training episodes use (seed, stream, i) tuples: never plain ints


@dataclass(frozen=True)
class EnvSpec:
    """How to build one environment, picklable for worker processes."""

    kind: str  # "synthetic" or "aloha_sim"
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_data_config(cls, data: dict[str, Any]) -> EnvSpec:
        if data.get("synthetic"):
            syn = data["synthetic"]
            return cls(
                "synthetic",
                {"episode_len": int(syn["episode_len"]), "image_size": int(syn["image_size"])},
            )
        if data.get("sim"):
            sim = data["sim"]
            return cls(
                "aloha_sim",
                {
                    "task": str(sim["task"]),
                    "episode_len": int(sim["episode_len"]),
                    "height": int(sim["image_height"]),
                    "width": int(sim["image_width"]),
                    "render_style": str(sim["render_style"]),
                },
            )
        raise ConfigError(
            f"closed-loop evaluation needs a simulator, but this policy was trained on recorded "
            f"data (data.dataset_dir={data.get('dataset_dir')!r}) and no simulator exists for "
            "it. Fix: evaluate a policy trained with data=synthetic or data=aloha_sim, or judge "
            "this one by its validation loss (metrics.jsonl)."
        )

    @property
    def episode_len(self) -> int:
        return int(self.settings["episode_len"])

    @property
    def stages(self) -> tuple[tuple[str, int], ...]:
        if self.kind == "synthetic":
            return SYNTHETIC_STAGES
        from act_hydra.aloha_sim.tasks import get_task

        return get_task(self.settings["task"]).stages

    @property
    def default_seed_base(self) -> int:
        """The first evaluation seed: never the seed of a training episode."""
        if self.kind == "synthetic":
            return SYNTHETIC_SEED_BASE
        from act_hydra.aloha_sim.constants import EVAL_SEED_BASE

        return EVAL_SEED_BASE

    def check_seed_base(self, seed_base: int) -> None:
        if self.kind == "aloha_sim" and seed_base < self.default_seed_base:
            raise ConfigError(
                f"eval.seed_base={seed_base} is invalid for an ALOHA task: seeds below "
                f"{self.default_seed_base} draw the object poses of training episodes. Fix: "
                f"pass eval.seed_base={self.default_seed_base} (or leave it null)."
            )

    def make(self):
        if self.kind == "synthetic":
            from act_hydra.sim import SyntheticEnv

            return SyntheticEnv(**self.settings)
        from act_hydra.aloha_sim.env import AlohaSimEnv

        return AlohaSimEnv(**self.settings)


class VectorEnv(Protocol):
    num_envs: int

    def reset(self, seeds: list[int]) -> list[dict]: ...
    def step(self, actions: np.ndarray) -> tuple[list[dict], np.ndarray]: ...
    def successes(self) -> list[bool]: ...
    def close(self) -> None: ...


class InlineEnvs:
    """``num_envs`` environments in this process (the cheap synthetic task)."""

    def __init__(self, spec: EnvSpec, num_envs: int):
        self.num_envs = num_envs
        self.envs = [spec.make() for _ in range(num_envs)]

    def reset(self, seeds: list[int]) -> list[dict]:
        return [env.reset(seed) for env, seed in zip(self.envs, seeds)]

    def step(self, actions: np.ndarray) -> tuple[list[dict], np.ndarray]:
        results = [env.step(a) for env, a in zip(self.envs, actions)]
        return [r[0] for r in results], np.array([r[1] for r in results])

    def successes(self) -> list[bool]:
        return [bool(env.success) for env in self.envs]

    def close(self) -> None:
        for env in self.envs:
            getattr(env, "close", lambda: None)()


def _serve(conn: Connection, spec: EnvSpec) -> None:
    """Worker process: one environment, driven by (command, argument) messages. Each answer is
    ("ok", result) or ("error", exception), so the parent raises the worker's own error (a
    ConfigError about OpenGL keeps its message and exit code)."""
    # Ctrl-C reaches the whole process group: the parent decides when to stop and closes us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    env = None
    try:
        env = spec.make()
        error = None
    except Exception as err:  # noqa: BLE001 - sent to the parent, raised there
        error = err
    try:
        while True:
            command, arg = conn.recv()
            if command == "close":
                break
            if error is not None:
                conn.send(("error", error))
                continue
            try:
                conn.send(("ok", _run(env, command, arg)))
            except Exception as err:  # noqa: BLE001
                conn.send(("error", err))
    except (EOFError, KeyboardInterrupt):  # the parent went away
        pass
    finally:
        if env is not None:
            env.close()
        conn.close()


def _run(env, command: str, arg: Any) -> Any:
    if command == "reset":
        return env.reset(arg)
    if command == "step":
        obs, reward, _done = env.step(arg)
        return obs, reward
    if command == "success":
        return bool(env.success)
    raise ValueError(f"unknown command {command!r}")


class SubprocessEnvs:
    """One environment per worker process; every command goes to all workers before any
    answer is read, so the workers render concurrently."""

    def __init__(self, spec: EnvSpec, num_envs: int):
        self.num_envs = num_envs
        context = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs = []
        for _ in range(num_envs):
            parent, child = context.Pipe()
            proc = context.Process(target=_serve, args=(child, spec), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def _all(self, command: str, args: list[Any]) -> list[Any]:
        for conn, arg in zip(self.conns, args):
            conn.send((command, arg))
        try:
            answers = [conn.recv() for conn in self.conns]
        except EOFError as err:
            codes = [p.exitcode for p in self.procs]
            raise RuntimeError(
                f"a simulator worker died (exit codes {codes}); its error is above in the log"
            ) from err
        for status, value in answers:
            if status == "error":
                raise value
        return [value for _, value in answers]

    def reset(self, seeds: list[int]) -> list[dict]:
        return self._all("reset", list(seeds))

    def step(self, actions: np.ndarray) -> tuple[list[dict], np.ndarray]:
        results = self._all("step", list(actions))
        return [r[0] for r in results], np.array([r[1] for r in results])

    def successes(self) -> list[bool]:
        return self._all("success", [None] * self.num_envs)

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):  # the worker is already gone
                conn.send(("close", None))
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def make_vector_env(spec: EnvSpec, num_envs: int, num_workers: int) -> VectorEnv:
    """Subprocess environments for the ALOHA tasks when ``num_workers`` > 0, else inline."""
    if spec.kind == "aloha_sim" and num_workers > 0:
        return SubprocessEnvs(spec, num_envs)
    return InlineEnvs(spec, num_envs)
