"""Where metrics go: metrics.jsonl in the run directory, and W&B when logger=wandb.

metrics.jsonl has one JSON object per line, each with the 0-based optimizer `step`. On resume,
rows at or after the resumed step are dropped first (a killed run may have logged a few steps
past its last checkpoint), so every step appears exactly once.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

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
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
            tmp.replace(self.path)
        self._file = open(self.path, "a", buffering=1)

    def write(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps({k: _json_value(v) for k, v in row.items()}) + "\n")

    def close(self) -> None:
        self._file.close()
