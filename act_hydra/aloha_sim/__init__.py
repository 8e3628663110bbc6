"""The ALOHA MuJoCo benchmark of the ACT paper (``transfer_cube``, ``insertion``) on plain MuJoCo.

Modules, one job each:

- ``runtime``: importing MuJoCo (EGL by default on headless machines), finding the scene files
  of the installed ``gym_aloha`` package, turning install/OpenGL problems into ``ConfigError``.
- ``constants``: timing, start pose, gripper units, the training/evaluation seed ranges.
- ``tasks``: the task registry (scenes, object poses, staged rewards, scripted policy).
- ``scripted``: the waypoint policies.
- ``physics``: one scene (end-effector or joint space) with the MuJoCo 3 model fixes.
- ``render``: offscreen rendering of the ``top`` camera (``paper`` or ``fast`` look).
- ``env``: ``AlohaSimEnv``, the joint-space environment for closed-loop evaluation.
- ``record``: recording one demonstration (scripted end-effector run, then joint replay).
- ``hdf5``: writing an episode in the original ACT layout.
- ``generate``: ``generate_dataset``, parallel and atomic.

Install: ``pip install -e '.[sim]'`` and ``pip install --no-deps gym-aloha==0.1.5`` (scene
files only). Names are imported lazily, so ``import act_hydra.aloha_sim`` works without MuJoCo;
using them raises a ``ConfigError`` that says what to install.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AlohaSimEnv": "env",
    "eval_seed": "env",
    "TASKS": "tasks",
    "TaskSpec": "tasks",
    "get_task": "tasks",
    "record_episode": "record",
    "run_scripted": "record",
    "replay": "record",
    "RecordedEpisode": "record",
    "ScriptedRun": "record",
    "write_sim_episode": "hdf5",
    "generate_dataset": "generate",
    "GenerationError": "generate",
    "RENDER_STYLES": "render",
    "EVAL_SEED_BASE": "constants",
    "TRAIN_SEED_LIMIT": "constants",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
