"""The run directory: one run holds it at a time, and its .hydra/ files describe its checkpoints.

- ``RunDirGuard`` (a Hydra callback, listed in conf/train.yaml) runs after composition and before
  Hydra creates anything in the folder: it refuses an empty or unwritable ``hydra.run.dir`` and
  takes an exclusive lock on ``<run dir>/.run.lock``. A second run started into the same folder
  exits 2 naming the holder. The OS releases the lock when the holder dies, so a run killed with
  SIGKILL is resumed by the same command. A ``--multirun`` locks its sweep folder the same way.
- Hydra's own ``.hydra/`` writing is off (``hydra.output_subdir: null``): ``write_hydra_files``
  writes config.yaml, hydra.yaml and overrides.yaml once the run has passed its checks, so a
  refused or already complete rerun never rewrites the config of the checkpoints in the folder.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from act_hydra import atomic
from act_hydra.errors import EXIT_BAD_INPUT, ConfigError
from act_hydra.hydra_app import mark_composed

LOCK_NAME = ".run.lock"
_held: list[Any] = []  # open lock files: the lock lasts as long as this process


def check_writable(run_dir: Path, key: str = "hydra.run.dir") -> None:
    problem = atomic.writable_problem(run_dir)
    if problem:
        raise ConfigError(
            f"{key}={str(run_dir)!r} is invalid: the run directory must be writable "
            f"({problem}). Fix: pass {key}=<a writable folder>."
        )


def configured_dir(value: Any, key: str) -> Path:
    """The folder a ``hydra.*.dir`` setting names; an empty one would write into the cwd."""
    text = "" if value is None else str(value).strip()
    if not text:
        raise ConfigError(
            f"{key}={text!r} is invalid: the run would write its files into the current "
            f"folder. Fix: pass {key}=outputs/<name>, or leave {key} out for the default."
        )
    return Path(text)


def hold(run_dir: Path, key: str = "hydra.run.dir") -> None:
    """Take the folder's lock for the rest of this process, or refuse naming the holder."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): no protection, as before
        return
    check_writable(run_dir, key)
    handle = open(run_dir / LOCK_NAME, "a+")  # noqa: SIM115  (held until the process ends)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(
            f"{key}={str(run_dir)!r} is in use by a run that is still going ({holder}). Rule: "
            "one run at a time per run directory, or their files would mix. Fix: wait for it "
            f"to end (the same command then resumes or finds it complete), or pass {key}=<a "
            "new folder>."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(
        f"pid {os.getpid()} on {socket.gethostname()}, since "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)}\n"
    )
    handle.flush()
    _held.append(handle)


class RunDirGuard(Callback):
    """Checks and locks the run (or sweep) folder before Hydra writes into it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._guard(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs")
        if n_jobs == 0:
            self._refuse(
                ConfigError(
                    "hydra.launcher.n_jobs=0 is invalid: a sweep needs at least one worker. "
                    "Fix: pass hydra.launcher.n_jobs=1 (or leave it out: one per GPU, else a "
                    "few on a CPU)."
                )
            )
        self._guard(config.hydra.sweep.dir, "hydra.sweep.dir")

    def _guard(self, value: Any, key: str) -> None:
        mark_composed()
        if int(os.environ.get("RANK", "0")) != 0:
            return  # DDP: rank 0 holds the folder for every rank
        try:
            hold(configured_dir(value, key), key)
        except ConfigError as err:
            self._refuse(err)

    @staticmethod
    def _refuse(err: ConfigError) -> None:
        # Logging is not set up yet (Hydra does it next, inside the folder): plain stderr.
        print(f"act-train: {err} (exit code {EXIT_BAD_INPUT})", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def write_hydra_files(
    run_dir: Path, task_config: DictConfig, only_if_missing: bool = False
) -> None:
    """Hydra's three record files (unresolved config, Hydra's config, the overrides)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return  # called outside a Hydra run (tests, scripts): nothing to record
    folder = run_dir / ".hydra"
    if only_if_missing and (folder / "overrides.yaml").exists():
        return
    hydra_cfg = HydraConfig.get()
    files = {
        "config.yaml": task_config,
        "hydra.yaml": OmegaConf.create({"hydra": hydra_cfg}),
        "overrides.yaml": OmegaConf.create(list(hydra_cfg.overrides.task)),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, cfg in files.items():
        atomic.write_text(folder / name, OmegaConf.to_yaml(cfg))
