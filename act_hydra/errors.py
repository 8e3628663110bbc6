"""Every error a user can act on, each carrying the exit code the CLIs return for it.

The exit codes are a contract (README, "Exit codes"; OSMO's exitActions use EXIT_PREEMPTED):

    0   completed
    1   an unexpected error (a bug: the traceback is in the log)
    2   bad input: a config value, a dataset, a checkpoint or a file broke a rule; nothing ran
    3   diverged: the loss became non-finite; the last good checkpoint is kept
    4   I/O failure: the file system failed the run; earlier results are intact
    75  preempted (EX_TEMPFAIL, "try again later"): a checkpoint was saved; rerun to resume
    130 interrupted by Ctrl-C (SIGINT, 128 + 2 as shells report it): a checkpoint was saved
        where the loop had started; rerun to resume

Messages name the key or file, the value, the rule and a fix (in override syntax).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_IO_ERROR = 4
EXIT_PREEMPTED = 75
EXIT_INTERRUPTED = 130


class ActHydraError(Exception):
    """Base of the errors a CLI turns into a message and an exit code (no traceback)."""

    exit_code = EXIT_UNEXPECTED


class BadInputError(ActHydraError, ValueError):
    """Bad input found before anything ran or was written."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(BadInputError):
    """A config value (or a combination of values) breaks a rule."""


class DatasetError(BadInputError):
    """A dataset file or folder is missing, unreadable or not in the expected layout."""


class CheckpointError(BadInputError):
    """A checkpoint cannot be used: missing, unreadable, foreign or incompatible."""


class Diverged(ActHydraError):
    exit_code = EXIT_DIVERGED

    def __init__(self, step: int):
        super().__init__(
            f"training diverged: the loss became non-finite at step {step}. The last good "
            "checkpoint and metrics are kept. Fix: lower training.lr (or set "
            "training.grad_clip_norm=10) and start a new run directory."
        )
        self.step = step


class RunIOError(ActHydraError):
    """The file system failed the run (not the config): the message says where and what is
    still intact."""

    exit_code = EXIT_IO_ERROR


class Preempted(ActHydraError):
    """SIGTERM: the run saved a checkpoint and stopped; the same command resumes it."""

    exit_code = EXIT_PREEMPTED


class Interrupted(Preempted):
    """Ctrl-C (SIGINT): saved and stopped like a preemption, with the shell's exit code."""

    exit_code = EXIT_INTERRUPTED


def exit_code_for(err: BaseException) -> int:
    """The CLI exit code of an exception (1 for anything that is not an ActHydraError)."""
    return err.exit_code if isinstance(err, ActHydraError) else EXIT_UNEXPECTED
