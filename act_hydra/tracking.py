"""Where metrics go: metrics.jsonl in the run directory, and W&B when logger=wandb.

metrics.jsonl has one JSON object per line, each with the 0-based optimizer `step`. On resume,
rows at or after the resumed step are dropped first (a killed run may have logged a few steps
past its last checkpoint), so every step appears exactly once.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from act_hydra import atomic

log = logging.getLogger(__name__)


def _json_value(value: Any) -> Any:
    # JSON has no NaN/inf: a diverged loss is written as a string so the file stays parseable.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl file; a torn last line (killed mid-write) is skipped."""
    rows = []
    if not Path(path).exists():
        return rows
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class MetricsFile:
    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is not None:
            kept = [r for r in read_metrics(self.path) if r.get("step", -1) < resume_step]
            atomic.write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 (open for the run)

    def write(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps({k: _json_value(v) for k, v in row.items()}) + "\n")

    def close(self) -> None:
        self._file.close()


class Tracker:
    """metrics.jsonl always; W&B as well when logger=wandb (imported only then)."""

    def __init__(
        self,
        run_dir: Path,
        logger_cfg,
        resolved_config: dict[str, Any],
        resume_step: int | None = None,
        wandb_run_id: str | None = None,
        enabled: bool = True,
    ):
        # enabled=False (DDP ranks other than 0) records nothing and never imports wandb.
        self.metrics = MetricsFile(run_dir / "metrics.jsonl", resume_step) if enabled else None
        self.wandb = None
        if enabled and logger_cfg.backend == "wandb":
            from act_hydra.wandb_logger import WandbLogger

            self.wandb = WandbLogger(logger_cfg, run_dir, resolved_config, run_id=wandb_run_id)

    @property
    def wandb_run_id(self) -> str | None:
        return self.wandb.id if self.wandb is not None else None

    def log(self, row: dict[str, Any]) -> None:
        if self.metrics is None:
            return
        self.metrics.write(row)
        if self.wandb is not None:
            self.wandb.log(row)

    def finish(
        self, summary: dict[str, Any], exit_code: int, checkpoints: Sequence[Path] = ()
    ) -> None:
        if self.metrics is not None:
            self.metrics.close()
        if self.wandb is not None:
            self.wandb.set_summary(summary)
            self.wandb.log_checkpoints([p for p in checkpoints if p.exists()])
            self.wandb.finish(exit_code)
