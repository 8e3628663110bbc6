"""One table for a sweep: which job ran what, how it ended, and which configuration won.

    act-sweep-summary multirun/2024-05-01/12-00-00     # a local --multirun
    act-sweep-summary ~/osmo-downloads/act-hydra-sweep-3  # downloaded OSMO tasks

A run directory is any folder below DIR holding ``.hydra/overrides.yaml`` or ``summary.json``
(the run directory described in the README), so the job folders of a local multirun (``0/``,
``1/``, ...) and the downloaded outputs of an OSMO sweep (``<workflow id>/run-002/run-002/``)
are both found. Each job gives one row:

    job | overrides | status | best val loss | best step | steps | wall time | error

``job`` is Hydra's job number (``hydra.job.num`` of a multirun, or the ``run-NNN`` index of
an OSMO task); ``overrides`` are the ones that differ between jobs (the CSV also has all of
them); ``status`` is the one in ``summary.json`` (``completed``, ``failed``, ``diverged``,
``interrupted``), or ``missing`` when there is none: the job never started, was killed, or its
folder is absent from a numbered sequence. When a job logged ``eval/success_rate`` rows the last
one is shown too, and ``rank_by="success_rate"`` picks the winner by it; by default the winner
is the completed job with the lowest best validation loss.

Files written into DIR: ``sweep_summary.csv``, ``sweep_summary.md`` and ``sweep_val_loss.png``
(every job's validation-loss curve from its ``metrics.jsonl``).

``act_hydra.sweep_callback.SweepSummaryCallback`` (registered under ``hydra.callbacks`` in
conf/train.yaml) builds the summary at the end of every ``--multirun``, prints it, and then
makes the sweep's exit status non-zero when a job did not complete: a sweep job records its
failure and returns, so without this the sweep would exit 0.

``act-sweep-summary DIR`` (``python -m act_hydra.sweep_summary_cli DIR``) rebuilds it later,
also from downloaded OSMO outputs: ``--rank-by``, ``--expected-jobs N`` (jobs 0..N-1 without a
run dir are listed as missing), ``--out``, ``--no-plot``, ``--strict`` (exit 1 when a job did
not complete). Exit status 2: DIR is not a folder or holds no run directory, or --out is not a
usable folder (nothing is written); 4: writing a summary file failed (each file is whole or
absent).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from act_hydra import atomic
from act_hydra.errors import BadInputError, RunIOError
from act_hydra.tracking import read_metrics

log = logging.getLogger(__name__)

CSV_NAME = "sweep_summary.csv"
MD_NAME = "sweep_summary.md"
PNG_NAME = "sweep_val_loss.png"
SUMMARY_FILES = (CSV_NAME, MD_NAME, PNG_NAME)

COMPLETED = "completed"
MISSING = "missing"
RANK_BY = ("val_loss", "val_l1", "success_rate")
RANK_METRIC = {
    "val_loss": "lowest best validation loss",
    "val_l1": "lowest validation l1",
    "success_rate": "highest last eval/success_rate",
}
SUCCESS_KEY = "eval/success_rate"
ERROR_WIDTH = 160  # characters of an error message in the Markdown/printed table

JSON_TYPES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}
SWEEP_DIR_FIX = (
    "Fix: pass the sweep folder (hydra.sweep.dir of a --multirun, or the downloaded outputs "
    "of an OSMO sweep)"
)

# run-NNN (OSMO task names) or NNN (Hydra's default hydra.sweep.subdir)
_JOB_DIR_NAME = re.compile(r"^(?:run[-_])?(\d+)$")


@dataclass
class JobRow:
    """One job of a sweep, as its run directory tells it."""

    job: int | None
    run_dir: Path
    overrides: list[str] | None = None  # None: no .hydra/overrides.yaml
    status: str = MISSING
    best_val_loss: float | None = None
    best_val_step: int | None = None
    steps_done: int | None = None
    num_steps: int | None = None
    wall_time_s: float | None = None
    error: str | None = None
    best_val_l1: float | None = None  # lowest val/l1 logged (comparable across kl_weight)
    success_rate: float | None = None
    val_curve: list[tuple[int, float]] = field(default_factory=list)
    varying: list[str] = field(default_factory=list)  # overrides that differ between jobs
    winner: bool = False

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED


@dataclass
class SweepSummary:
    root: Path
    rows: list[JobRow]
    rank_by: str = "val_loss"
    files: list[Path] = field(default_factory=list)

    @property
    def winner(self) -> JobRow | None:
        return next((r for r in self.rows if r.winner), None)

    @property
    def not_completed(self) -> list[JobRow]:
        return [r for r in self.rows if not r.ok]

    @property
    def has_success_rate(self) -> bool:
        return any(r.success_rate is not None for r in self.rows)

    def headline(self) -> str:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        states = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        text = f"sweep summary of {self.root}: {len(self.rows)} jobs ({states})"
        winner = self.winner
        if winner is None:
            return f"{text}; no winner (no completed job has a {RANK_METRIC[self.rank_by]})"
        what = {
            "success_rate": f"success rate {_fmt(winner.success_rate)}",
            "val_l1": f"best val l1 {_fmt(winner.best_val_l1)}",
        }.get(
            self.rank_by,
            f"best val loss {_fmt(winner.best_val_loss)} at step {_fmt(winner.best_val_step)}",
        )
        return f"{text}; winner: {job_label(winner)} ({overrides_text(winner)}), {what}"

    def markdown(self) -> str:
        return render_markdown(self)


# ----------------------------------------------------------------------------- collecting


def find_run_dirs(root: Path) -> list[Path]:
    """Folders below ``root`` (``root`` included) that hold a run: ``.hydra/overrides.yaml``
    or ``summary.json``. A run directory's own subfolders are not searched."""
    found = []
    for current, dirs, files in os.walk(root):
        here = Path(current)
        if "summary.json" in files or (here / ".hydra" / "overrides.yaml").is_file():
            found.append(here)
            dirs[:] = []
            continue
        # Hidden folders (.hydra, .submitit, .git, ...) and W&B's folder hold no run dirs.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "wandb")
    return found


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def job_number(run_dir: Path) -> int | None:
    """``hydra.job.num`` of a multirun job, else the index in the folder name (``run-002``)."""
    hydra_cfg = _read_yaml(run_dir / ".hydra" / "hydra.yaml")
    if isinstance(hydra_cfg, dict):
        hydra_node = hydra_cfg.get("hydra") or {}
        num = (hydra_node.get("job") or {}).get("num")
        if hydra_node.get("mode") == "MULTIRUN" and isinstance(num, int):
            return num
    match = _JOB_DIR_NAME.match(run_dir.name)
    return int(match.group(1)) if match else None


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def read_job(run_dir: Path) -> JobRow:
    row = JobRow(job=job_number(run_dir), run_dir=run_dir)
    overrides = _read_yaml(run_dir / ".hydra" / "overrides.yaml")
    if isinstance(overrides, list):
        row.overrides = [str(o) for o in overrides]

    summary_path = run_dir / "summary.json"
    summary: dict[str, Any] = {}
    if summary_path.is_file():
        summary, row.error = read_summary_json(summary_path)
    if summary:
        row.status = str(summary.get("status") or MISSING)
        row.best_val_loss = _finite(summary.get("best_val_loss"))
        row.best_val_step = summary.get("best_val_step")
        row.steps_done = summary.get("steps_done")
        row.num_steps = summary.get("num_steps")
        row.wall_time_s = _finite(summary.get("wall_time_s"))
        row.error = summary.get("error") or row.error
        if row.error is None and row.status == "diverged":
            row.error = f"diverged at step {summary.get('diverged_at_step')}"

    metrics = read_metrics(run_dir / "metrics.jsonl")
    for m in metrics:
        if "val/loss" in m and "step" in m:
            loss = _finite(m["val/loss"])
            row.val_curve.append((int(m["step"]), loss if loss is not None else math.nan))
            l1 = _finite(m.get("val/l1"))
            if l1 is not None and (row.best_val_l1 is None or l1 < row.best_val_l1):
                row.best_val_l1 = l1
        if SUCCESS_KEY in m:
            row.success_rate = _finite(m[SUCCESS_KEY])
    if not summary:
        # Killed or still running: say what the metrics show so far.
        finite = [(loss, step) for step, loss in row.val_curve if math.isfinite(loss)]
        if finite:
            row.best_val_loss, row.best_val_step = min(finite)
        steps = [m["step"] for m in metrics if isinstance(m.get("step"), int)]
        row.steps_done = max(steps) + 1 if steps else None
    return row


def read_summary_json(path: Path) -> tuple[dict[str, Any], str | None]:
    """(the job's summary.json object, None) or ({}, why it cannot be used)."""
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return {}, f"{path} is unreadable ({err})"
    if not isinstance(summary, dict):
        found = JSON_TYPES.get(type(summary), "null")
        return {}, f"{path} holds {found}, not a JSON object: act-hydra did not write it"
    return summary, None


def collect_rows(root: Path, expected_jobs: int | None = None) -> list[JobRow]:
    """One row per run directory under ``root``, sorted by job number; numbered jobs absent
    from ``0 .. max(found, expected_jobs - 1)`` get a ``missing`` row. BadInputError when
    ``root`` holds no run directory at all."""
    root = Path(root)
    run_dirs = find_run_dirs(root)
    if not run_dirs:
        raise BadInputError(
            f"no run directory under {root} (a folder holding .hydra/overrides.yaml or "
            "summary.json): the sweep ran no job, or this is not a sweep folder; nothing was "
            f"written. {SWEEP_DIR_FIX}, or overrides that give at least one job."
        )
    rows = [read_job(d) for d in run_dirs]
    numbers = {r.job for r in rows if r.job is not None}
    last = max([*numbers, (expected_jobs or 0) - 1], default=-1)
    for num in range(last + 1):
        if num not in numbers:
            rows.append(
                JobRow(
                    job=num,
                    run_dir=root / str(num),
                    error="no run directory: the job never started",
                )
            )
    rows.sort(key=lambda r: (r.job is None, r.job if r.job is not None else 0, str(r.run_dir)))

    # Show the overrides that tell the jobs apart; the common ones are the sweep's fixed args.
    known = [r for r in rows if r.overrides is not None]
    common = set.intersection(*(set(r.overrides) for r in known)) if len(known) > 1 else set()
    for r in known:
        r.varying = [o for o in r.overrides if o not in common]
    return rows


def _rank_key(rank_by: str):
    """Sort key (smaller is better) of a candidate row, or None when it lacks the metric."""

    def key(r: JobRow):
        loss = r.best_val_loss if r.best_val_loss is not None else math.inf
        if rank_by == "success_rate":
            return None if r.success_rate is None else (-r.success_rate, loss, r.job or 0)
        if rank_by == "val_l1":
            return None if r.best_val_l1 is None else (r.best_val_l1, r.job or 0)
        return None if r.best_val_loss is None else (r.best_val_loss, r.job or 0)

    return key


def pick_winner(rows: Sequence[JobRow], rank_by: str = "val_loss") -> JobRow | None:
    """The completed job with the lowest best validation loss (``val_l1``: the lowest val/l1,
    which unlike val/loss does not scale with training.kl_weight; ``success_rate``: the highest
    last eval/success_rate)."""
    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by={rank_by!r} is invalid: it must be one of {list(RANK_BY)}.")
    for r in rows:
        r.winner = False
    key = _rank_key(rank_by)
    candidates = [r for r in rows if r.ok and key(r) is not None]
    if not candidates:
        return None
    best = min(candidates, key=key)
    best.winner = True
    return best


# ----------------------------------------------------------------------------- rendering


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


def job_label(row: JobRow) -> str:
    return f"job {row.job}" if row.job is not None else f"run {row.run_dir.name}"


def overrides_text(row: JobRow) -> str:
    if row.overrides is None:
        return "-"
    return " ".join(row.varying) or ("(no overrides)" if not row.overrides else "(common only)")


def _relative(path: Path, root: Path) -> str:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return str(path)
    return str(rel) if str(rel) != "." else "."


def _show_run_dirs(rows: Sequence[JobRow]) -> bool:
    """The run folder is worth a column only when job numbers do not identify the rows."""
    numbers = [r.job for r in rows]
    return None in numbers or len(set(numbers)) != len(numbers)


def _columns(summary: SweepSummary) -> list[tuple[str, Any]]:
    """(header, row -> cell text) of the Markdown/printed table."""
    cols: list[tuple[str, Any]] = [("job", lambda r: _fmt(r.job))]
    if _show_run_dirs(summary.rows):
        cols.append(("run dir", lambda r: _relative(r.run_dir, summary.root)))
    cols += [
        ("winner", lambda r: "*" if r.winner else ""),
        ("overrides", overrides_text),
        ("status", lambda r: r.status),
        ("best val loss", lambda r: _fmt(r.best_val_loss)),
        ("best step", lambda r: _fmt(r.best_val_step)),
        (
            "steps",
            lambda r: (
                _fmt(r.steps_done) if r.num_steps is None else f"{_fmt(r.steps_done)}/{r.num_steps}"
            ),
        ),
        ("wall time (s)", lambda r: "-" if r.wall_time_s is None else f"{r.wall_time_s:.1f}"),
    ]
    if summary.rank_by == "val_l1":
        cols.append(("best val l1", lambda r: _fmt(r.best_val_l1)))
    if summary.has_success_rate:
        cols.append(("success rate", lambda r: _fmt(r.success_rate, 3)))
    cols.append(("error", lambda r: _short_error(r.error)))
    return cols


def _short_error(error: str | None) -> str:
    if not error:
        return ""
    text = " ".join(error.split())
    return text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 3] + "..."


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(summary: SweepSummary) -> str:
    cols = _columns(summary)
    lines = [f"# Sweep summary: {summary.root}", "", summary.headline(), ""]
    lines.append("| " + " | ".join(h for h, _ in cols) + " |")
    lines.append("|" + "|".join(" --- " for _ in cols) + "|")
    for row in summary.rows:
        lines.append("| " + " | ".join(_md_cell(fn(row)) for _, fn in cols) + " |")
    lines += [
        "",
        f"`*` marks the winner: the completed job with the {RANK_METRIC[summary.rank_by]}.",
        "",
    ]
    return "\n".join(lines)


CSV_FIELDS = [
    "job",
    "run_dir",
    "winner",
    "overrides",
    "status",
    "best_val_loss",
    "best_val_step",
    "best_val_l1",
    "steps_done",
    "num_steps",
    "wall_time_s",
    "success_rate",
    "error",
    "all_overrides",
]


def render_csv(summary: SweepSummary) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in summary.rows:
        writer.writerow(
            {
                "job": "" if r.job is None else r.job,
                "run_dir": _relative(r.run_dir, summary.root),
                "winner": int(r.winner),
                "overrides": " ".join(r.varying),
                "status": r.status,
                "best_val_loss": "" if r.best_val_loss is None else repr(r.best_val_loss),
                "best_val_step": "" if r.best_val_step is None else r.best_val_step,
                "best_val_l1": "" if r.best_val_l1 is None else repr(r.best_val_l1),
                "steps_done": "" if r.steps_done is None else r.steps_done,
                "num_steps": "" if r.num_steps is None else r.num_steps,
                "wall_time_s": "" if r.wall_time_s is None else r.wall_time_s,
                "success_rate": "" if r.success_rate is None else repr(r.success_rate),
                "error": r.error or "",
                "all_overrides": " ".join(r.overrides or []),
            }
        )
    return out.getvalue()


def plot_val_loss(summary: SweepSummary) -> bytes:
    """Every job's validation-loss curve as a PNG; the winner is drawn thicker."""
    # The object API draws without pyplot's global state or a display backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    curves = [r for r in summary.rows if r.val_curve]
    finite_values = []
    for r in curves:
        steps = [s for s, _ in r.val_curve]
        losses = [v for _, v in r.val_curve]
        finite_values += [v for v in losses if math.isfinite(v)]
        label = f"{job_label(r)}: {overrides_text(r)}"
        if not r.ok:
            label += f" [{r.status}]"
        ax.plot(
            steps,
            losses,
            marker="o" if len(steps) < 30 else None,
            markersize=3,
            linewidth=2.8 if r.winner else 1.2,
            linestyle="-" if r.ok else "--",
            label=("* " if r.winner else "") + label,
        )
    if finite_values and min(finite_values) > 0:
        ax.set_yscale("log")
    if curves:
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(
            0.5,
            0.5,
            "no validation rows in any metrics.jsonl",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.set_xlabel("step")
    ax.set_ylabel("val/loss")
    ax.set_title(f"validation loss, {len(curves)} of {len(summary.rows)} jobs", fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=110)
    return image.getvalue()


# ----------------------------------------------------------------------------- entry points


def summarize_sweep(
    root: Path | str,
    out_dir: Path | str | None = None,
    rank_by: str = "val_loss",
    expected_jobs: int | None = None,
    plot: bool = True,
) -> SweepSummary:
    """Collect the rows under ``root`` and write the CSV, the Markdown table and the plot into
    ``out_dir`` (default ``root``; created if its parent exists). Everything is rendered before
    anything is written. A plot that cannot be drawn is logged, never fatal. BadInputError
    when ``root`` is no sweep folder, RunIOError when a file cannot be written."""
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"{root} is not a folder. {SWEEP_DIR_FIX}.")
    rows = collect_rows(root, expected_jobs)
    summary = SweepSummary(root=root, rows=rows, rank_by=rank_by)
    pick_winner(rows, rank_by)
    out = Path(out_dir) if out_dir is not None else root
    files = {CSV_NAME: render_csv(summary).encode(), MD_NAME: render_markdown(summary).encode()}
    if plot:
        try:
            files[PNG_NAME] = plot_val_loss(summary)
        except Exception as err:  # a plotting problem must not hide the table
            log.warning("could not draw %s: %s: %s", out / PNG_NAME, type(err).__name__, err)
    write_files(out, files, root)
    summary.files = [out / name for name in files]
    return summary


def write_files(out: Path, files: dict[str, bytes], root: Path) -> None:
    """Each file replaced whole (act_hydra.atomic); a failure says which and what is intact."""
    try:
        out.mkdir(exist_ok=True)
        for name, data in files.items():
            with atomic.atomic_file(out / name) as f:
                f.write(data)
    except OSError as err:
        raise RunIOError(
            f"could not write the sweep summary into {out} ({err.strerror or err}); the run "
            "directories are intact and each summary file is whole or absent. Fix: free disk "
            f"space, or write it elsewhere: act-sweep-summary {root} --out <a writable folder>."
        ) from err
