"""How a run ended: summary.json's status and the exit code, decided in one place.

    with RunRecord(run_dir, state, write=is_main) as record:
        record.on_close(tracker.finish)
        ... the loop updates `state` (its step and best validation loss) ...

| how the block ends            | status        | exit code |
| ----------------------------- | ------------- | --------- |
| normally                      | `completed`   | 0         |
| Diverged                      | `diverged`    | 3         |
| Preempted, KeyboardInterrupt  | `interrupted` | 75        |
| RunIOError                    | `failed`      | 4         |
| anything else                 | `failed`      | 1         |

The exception propagates unchanged; the CLI turns it into the message and the exit code.
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
from act_hydra.errors import EXIT_PREEMPTED, Diverged, Preempted, exit_code_for

log = logging.getLogger(__name__)


def outcome(exc: BaseException | None) -> tuple[str, int]:
    """(summary status, exit code) of a run that ended with ``exc`` (None: normally)."""
    if exc is None:
        return "completed", 0
    if isinstance(exc, Diverged):
        return "diverged", exc.exit_code
    if isinstance(exc, (Preempted, KeyboardInterrupt)):
        return "interrupted", EXIT_PREEMPTED
    return "failed", exit_code_for(exc)


class Progress(Protocol):
    """What the summary reports (a TrainState): updates done and the best validation loss."""

    step: int
    best_val_loss: float
    best_val_step: int | None


class RunRecord:
    """Writes summary.json when the block ends, then calls the close callbacks with
    (summary, exit code)."""

    def __init__(self, run_dir: Path, num_steps: int, progress: Progress, write: bool = True):
        self.run_dir = run_dir
        self.num_steps = num_steps
        self.progress = progress
        self.write = write
        self._started = time.time()
        self._callbacks: list[Callable[[dict[str, Any], int], None]] = []

    def on_close(self, callback: Callable[[dict[str, Any], int], None]) -> None:
        self._callbacks.append(callback)

    def __enter__(self) -> RunRecord:
        return self

    def __exit__(self, exc_type, exc: BaseException | None, tb) -> None:
        status, exit_code = outcome(exc)
        steps_done = self.progress.step
        if status == "completed":
            steps_done = self.num_steps  # also for a rerun of a run that had trained longer
        elif isinstance(exc, Diverged):
            steps_done = exc.step
        best_step = self.progress.best_val_step
        summary: dict[str, Any] = {
            "status": status,
            "steps_done": steps_done,
            "num_steps": self.num_steps,
            "best_val_loss": self.progress.best_val_loss if best_step is not None else None,
            "best_val_step": best_step,
            "wall_time_s": round(time.time() - self._started, 3),
        }
        if isinstance(exc, Diverged):
            summary["diverged_at_step"] = exc.step
        if self.write:
            atomic.write_json(self.run_dir / "summary.json", summary)
            log.info("summary: %s", json.dumps(summary))
        for callback in self._callbacks:
            callback(summary, exit_code)


class StopSignal:
    """SIGTERM (how schedulers preempt) asks the loop to checkpoint and stop."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopSignal:
        # Signal handlers can only be installed from the main thread.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
