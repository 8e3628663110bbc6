"""The end of a local ``--multirun``: the sweep summary (act_hydra/sweep_summary.py) written and
printed, and the sweep's exit status non-zero when a job did not complete."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from act_hydra.errors import EXIT_UNEXPECTED, ActHydraError
from act_hydra.sweep_summary import (
    MD_NAME,
    RANK_BY,
    JobRow,
    SweepSummary,
    job_label,
    overrides_text,
    render_markdown,
    summarize_sweep,
)

log = logging.getLogger(__name__)


def failure_message(summary: SweepSummary) -> str:
    bad = summary.not_completed
    lines = [
        f"{len(bad)} of {len(summary.rows)} sweep jobs did not complete "
        f"(table: {summary.root / MD_NAME}):"
    ]
    for r in bad:
        reason = f": {' '.join(r.error.split())}" if r.error else ""
        lines.append(
            f"  {job_label(r)} [{overrides_text(r)}] {r.status}{reason} (run dir {r.run_dir})"
        )
    return "\n".join(lines)


class SweepFailed(SystemExit):
    """Ends a multirun with exit status 1 after its summary is written (``code`` 2: the sweep
    ran no job; 4: the summary could not be written).

    A SystemExit on purpose: Hydra 1.3 turns an ``Exception`` raised by a callback into a
    warning (``hydra._internal.callbacks.Callbacks._notify``), which would let the sweep exit 0.
    """

    def __init__(self, message: str, failed: Sequence[JobRow] = (), code: int = EXIT_UNEXPECTED):
        super().__init__(code)
        self.message = message
        self.failed = list(failed)

    def __str__(self) -> str:
        return self.message


class SweepSummaryCallback(Callback):
    """``hydra.callbacks.sweep_summary`` in conf/train.yaml: at the end of a --multirun, write
    and print the summary of ``hydra.sweep.dir``; exit with status 1 if a job did not
    complete (``fail_on_error``)."""

    def __init__(
        self, rank_by: str = "val_loss", fail_on_error: bool = True, plot: bool = True
    ) -> None:
        if rank_by not in RANK_BY:
            raise ValueError(
                f"hydra.callbacks.sweep_summary.rank_by={rank_by!r} is invalid: "
                f"it must be one of {list(RANK_BY)}. Fix: pass "
                "hydra.callbacks.sweep_summary.rank_by=val_loss."
            )
        self.rank_by = rank_by
        self.fail_on_error = fail_on_error
        self.plot = plot

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            summary = summarize_sweep(sweep_dir, rank_by=self.rank_by, plot=self.plot)
        except ActHydraError as err:  # no job ran, or the files could not be written
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SweepFailed(str(err), code=err.exit_code) from err
        except Exception as err:
            # Without a summary we cannot say whether the jobs completed: fail loudly.
            message = (
                f"could not build the sweep summary of {sweep_dir} "
                f"({type(err).__name__}: {err}). Rebuild it with: "
                f"act-sweep-summary {sweep_dir}"
            )
            log.exception("sweep summary failed")
            print(message, file=sys.stderr, flush=True)
            raise SweepFailed(message) from err
        print("\n" + render_markdown(summary), flush=True)
        print("written: " + ", ".join(str(p) for p in summary.files), flush=True)
        if self.fail_on_error and summary.not_completed:
            message = failure_message(summary)
            log.error("%s", message)
            # Also on stderr: Hydra's own logging may not be configured to show it.
            print(message, file=sys.stderr, flush=True)
            raise SweepFailed(message, summary.not_completed)
