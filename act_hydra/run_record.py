"""How a run ended: summary.json's status and the exit code, decided in one place.

    with RunRecord(run_dir, num_steps, state, checkpointer, write=is_main) as record:
        record.on_close(tracker.finish)
        ... the loop updates `state` (its step and best validation loss) ...

| how the block ends            | status        | exit code |
| ----------------------------- | ------------- | --------- |
| normally                      | `completed`   | 0         |
| Diverged                      | `diverged`    | 3         |
| Preempted (SIGTERM)           | `interrupted` | 75        |
| Interrupted (SIGINT), Ctrl-C  | `interrupted` | 130       |
| RunIOError                    | `failed`      | 4         |
| anything else                 | `failed`      | 1         |

The exception propagates unchanged; the CLI turns it into the message and the exit code.
A run that did not complete reports, as steps_done, the step its last checkpoint holds: the
step the same command resumes from.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from act_hydra import atomic
from act_hydra.errors import EXIT_INTERRUPTED, Diverged, Interrupted, Preempted, exit_code_for

log = logging.getLogger(__name__)


def outcome(exc: BaseException | None) -> tuple[str, int]:
    """(summary status, exit code) of a run that ended with ``exc`` (None: normally)."""
    if exc is None:
        return "completed", 0
    if isinstance(exc, Diverged):
        return "diverged", exc.exit_code
    if isinstance(exc, Preempted):
        return "interrupted", exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    return "failed", exit_code_for(exc)


class Progress(Protocol):
    """What the summary reports (a TrainState): updates done and the best validation loss."""

    step: int
    best_val_loss: float
    best_val_step: int | None


class Checkpoints(Protocol):
    """Where a rerun resumes (a Checkpointer): the step of the newest last.pt."""

    saved_step: int


class RunRecord:
    """Writes summary.json when the block ends, then calls the close callbacks with
    (summary, exit code)."""

    def __init__(
        self,
        run_dir: Path,
        num_steps: int,
        progress: Progress,
        checkpoints: Checkpoints,
        write: bool = True,
        details: dict[str, Any] | None = None,
    ):
        self.run_dir = run_dir
        self.num_steps = num_steps
        self.progress = progress
        self.checkpoints = checkpoints
        self.write = write
        self.details = details or {}  # what the run ran with (the resolved fast path)
        self._started = time.time()
        self._callbacks: list[Callable[[dict[str, Any], int], None]] = []

    def on_close(self, callback: Callable[[dict[str, Any], int], None]) -> None:
        self._callbacks.append(callback)

    def __enter__(self) -> RunRecord:
        return self

    def __exit__(self, exc_type, exc: BaseException | None, tb) -> None:
        status, exit_code = outcome(exc)
        if status == "completed":
            steps_done = self.progress.step
        elif isinstance(exc, Diverged):
            steps_done = exc.step
        else:  # what a rerun resumes from, never a step past the last checkpoint
            steps_done = self.checkpoints.saved_step
        best_step = self.progress.best_val_step
        summary: dict[str, Any] = {
            "status": status,
            "steps_done": steps_done,
            "num_steps": self.num_steps,
            "best_val_loss": self.progress.best_val_loss if best_step is not None else None,
            "best_val_step": best_step,
            "wall_time_s": round(time.time() - self._started, 3),
            **self.details,
        }
        if isinstance(exc, Diverged):
            summary["diverged_at_step"] = exc.step
        if self.write:
            atomic.write_json(self.run_dir / "summary.json", summary)
            log.info("summary: %s", json.dumps(summary))
        for callback in self._callbacks:
            callback(summary, exit_code)


class StopSignal:
    """SIGTERM (how schedulers preempt) and SIGINT (Ctrl-C) ask the loop to checkpoint and
    stop after the current update. A second Ctrl-C stops at once, as Python would."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.received is not None

    def error(self, saved_step: int) -> Preempted:
        """What the loop raises once the checkpoint is saved."""
        if self.received == signal.SIGINT:
            return Interrupted(
                f"Ctrl-C: checkpoint saved at step {saved_step}; the same command resumes"
            )
        return Preempted(f"SIGTERM received: checkpoint saved at step {saved_step}")

    def __enter__(self) -> StopSignal:
        # Signal handlers can only be installed from the main thread.
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        if signum == signal.SIGINT:
            log.warning("Ctrl-C: saving a checkpoint after this update (again to stop now)")

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
