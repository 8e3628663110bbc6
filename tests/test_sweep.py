"""Local sweeps: parallel --multirun through joblib, isolated jobs, failures, the sweep summary."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from act_hydra.sweep_callback import SweepFailed, SweepSummaryCallback
from act_hydra.sweep_summary import (
    CSV_NAME,
    MD_NAME,
    PNG_NAME,
    collect_rows,
    find_run_dirs,
    summarize_sweep,
)
from tests.helpers import ROOT, TINY, read_jsonl, run_cli

TINY_NO_BATCH = TINY  # the sweep axis on training.batch_size replaces the preset value


def multirun(sweep_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("act_hydra.train", ["--multirun", *args, f"hydra.sweep.dir={sweep_dir}"])


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def summarize_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "act_hydra.sweep_summary_cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


# ----------------------------------------------------------------------------- real CLI sweeps


@pytest.fixture(scope="module")
def four_jobs(tmp_path_factory):
    """4 tiny jobs through the default (joblib) launcher; two worker processes, so jobs 2 and 3
    run in reused workers. data.num_workers=1 starts DataLoader workers inside loky workers."""
    sweep_dir = tmp_path_factory.mktemp("four") / "sweep"
    proc = multirun(
        sweep_dir,
        *TINY,
        "data.num_workers=1",
        "hydra.launcher.n_jobs=2",
        "training.kl_weight=1,10",
        "training.lr=1e-4,3e-4",
    )
    return sweep_dir, proc


def test_four_job_multirun_runs_every_job_through_joblib(four_jobs):
    sweep_dir, proc = four_jobs
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "Joblib.Parallel(n_jobs=2" in log
    dirs = job_dirs(sweep_dir)
    assert [d.name for d in dirs] == ["0", "1", "2", "3"]
    for d in dirs:
        summary = json.loads((d / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["steps_done"] == 4, summary
        rows = read_jsonl(d / "metrics.jsonl")
        assert [r["step"] for r in rows if "val/loss" in r] == [1, 3]
        assert (d / "checkpoints" / "last.pt").is_file()
        assert "trainable parameters:" in (d / "train.log").read_text()


def test_jobs_are_isolated_in_reused_workers(four_jobs):
    sweep_dir, proc = four_jobs
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    dirs = job_dirs(sweep_dir)
    # Seeds reset per job: the first batch and the initial weights are the same in every job,
    # so the raw losses of step 0 (before any update, whatever lr and kl_weight) are equal.
    firsts = [read_jsonl(d / "metrics.jsonl")[0] for d in dirs]
    for first in firsts[1:]:
        assert first["train/l1"] == pytest.approx(firsts[0]["train/l1"], rel=1e-6)
        assert first["train/kl"] == pytest.approx(firsts[0]["train/kl"], rel=1e-6)
    # Each job's log holds its own lines only (the handlers move to the next job's folder).
    for d in dirs:
        lr = yaml.safe_load((d / ".hydra" / "config.yaml").read_text())["training"]["lr"]
        lines = [ln for ln in (d / "train.log").read_text().splitlines() if "  lr " in ln]
        assert len(lines) == 4 and all(ln.endswith(f"lr {lr:.3g}") for ln in lines), lines


def test_four_job_multirun_writes_and_prints_the_summary(four_jobs):
    sweep_dir, proc = four_jobs
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    for name in (CSV_NAME, MD_NAME, PNG_NAME):
        assert (sweep_dir / name).is_file(), name
    assert (sweep_dir / PNG_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_csv(sweep_dir / CSV_NAME)
    assert [r["job"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["overrides"] for r in rows] == [
        "training.kl_weight=1 training.lr=0.0001",
        "training.kl_weight=1 training.lr=0.0003",
        "training.kl_weight=10 training.lr=0.0001",
        "training.kl_weight=10 training.lr=0.0003",
    ]
    assert {r["status"] for r in rows} == {"completed"}
    assert all(r["steps_done"] == "4" and float(r["wall_time_s"]) > 0 for r in rows)
    losses = [float(r["best_val_loss"]) for r in rows]
    assert [r["winner"] for r in rows].count("1") == 1
    assert rows[losses.index(min(losses))]["winner"] == "1"
    md = (sweep_dir / MD_NAME).read_text()
    assert md.count("| completed |") == 4
    assert md in proc.stdout  # the same table is printed


@pytest.fixture(scope="module")
def one_fails(tmp_path_factory):
    """Job 0 fails, then job 1 runs to the end. n_jobs=1: joblib runs the jobs one after the
    other in the main process (no worker start-up), which shows the sweep going on after a
    failure; the failure path is the same in a loky worker."""
    sweep_dir = tmp_path_factory.mktemp("fail") / "sweep"
    proc = multirun(sweep_dir, *TINY, "training.lr=-1,1e-4", "hydra.launcher.n_jobs=1")
    return sweep_dir, proc


def test_a_failing_job_leaves_the_others_complete_and_fails_the_sweep(one_fails):
    sweep_dir, proc = one_fails
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-4000:]
    bad = json.loads((sweep_dir / "0" / "summary.json").read_text())
    good = json.loads((sweep_dir / "1" / "summary.json").read_text())
    assert good["status"] == "completed" and good["steps_done"] == 4
    assert bad["status"] == "failed" and "training.lr=-1.0 is invalid" in bad["error"]
    # The summary was written before the sweep failed, and the message names the job and why.
    rows = read_csv(sweep_dir / CSV_NAME)
    assert [(r["job"], r["status"], r["winner"]) for r in rows] == [
        ("0", "failed", "0"),
        ("1", "completed", "1"),
    ]
    assert "training.lr=-1.0 is invalid" in rows[0]["error"]
    assert "1 of 2 sweep jobs did not complete" in proc.stderr
    assert "job 0 [training.lr=-1] failed: ConfigError: training.lr=-1.0 is invalid" in proc.stderr


def test_summarize_script_rebuilds_the_same_table(one_fails):
    sweep_dir, proc = one_fails
    assert (sweep_dir / MD_NAME).is_file(), (proc.stdout + proc.stderr)[-4000:]
    md, csv_text = (sweep_dir / MD_NAME).read_text(), (sweep_dir / CSV_NAME).read_text()
    (sweep_dir / MD_NAME).unlink()
    (sweep_dir / PNG_NAME).unlink()
    again = summarize_script(str(sweep_dir))
    assert again.returncode == 0, again.stderr
    assert (sweep_dir / MD_NAME).read_text() == md
    assert (sweep_dir / CSV_NAME).read_text() == csv_text
    assert (sweep_dir / PNG_NAME).is_file()
    assert md in again.stdout
    assert "job 0 [training.lr=-1] failed" in again.stderr
    assert summarize_script(str(sweep_dir), "--strict", "--no-plot").returncode == 1


def test_command_line_value_replaces_the_presets_axis(tmp_path):
    """sweep=default training.lr=1e-4: 2 kl_weight x 2 batch_size = 4 jobs. The jobs stop at
    once (a bad training.resume path), so this checks the job list, not training."""
    sweep_dir = tmp_path / "sweep"
    proc = multirun(
        sweep_dir,
        "sweep=default",
        "training.lr=1e-4",
        "hydra.launcher.n_jobs=1",
        "training.resume=/nonexistent/last.pt",
    )
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-4000:]
    rows = read_csv(sweep_dir / CSV_NAME)
    assert [r["overrides"] for r in rows] == [
        "training.kl_weight=1 training.batch_size=4",
        "training.kl_weight=1 training.batch_size=8",
        "training.kl_weight=10 training.batch_size=4",
        "training.kl_weight=10 training.batch_size=8",
    ]
    assert all(
        [o for o in r["all_overrides"].split() if o.startswith("training.lr=")]
        == ["training.lr=0.0001"]
        for r in rows
    )
    assert {r["status"] for r in rows} == {"failed"}
    assert "4 of 4 sweep jobs did not complete" in proc.stderr


@pytest.mark.slow
def test_default_grid_runs_all_12_jobs(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = multirun(sweep_dir, "sweep=default", *TINY_NO_BATCH)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    rows = read_csv(sweep_dir / CSV_NAME)
    assert len(rows) == 12 and {r["status"] for r in rows} == {"completed"}
    assert len({r["overrides"] for r in rows}) == 12


# ----------------------------------------------------------------------------- summary module


def make_run(
    run_dir: Path,
    overrides: list[str] | None = None,
    summary: dict | None = None,
    metrics: list[dict] | None = None,
    hydra_mode: str | None = None,
    job_num: int = 0,
    torn_tail: bool = False,
) -> Path:
    run_dir.mkdir(parents=True)
    if overrides is not None:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        if hydra_mode:
            (run_dir / ".hydra" / "hydra.yaml").write_text(
                yaml.safe_dump({"hydra": {"mode": hydra_mode, "job": {"num": job_num}}})
            )
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    if metrics is not None:
        text = "".join(json.dumps(m) + "\n" for m in metrics)
        (run_dir / "metrics.jsonl").write_text(text + ('{"step": 9, "val/lo' if torn_tail else ""))
    return run_dir


def done(best: float, step: int = 3, **extra) -> dict:
    return {
        "status": "completed",
        "steps_done": 4,
        "num_steps": 4,
        "best_val_loss": best,
        "best_val_step": step,
        "wall_time_s": 1.5,
        **extra,
    }


def val_rows(*losses: float, l1: float = 0.5) -> list[dict]:
    return [{"step": i, "val/loss": v, "val/l1": l1, "val/kl": 0.1} for i, v in enumerate(losses)]


def test_downloaded_osmo_outputs_are_found_recursively(tmp_path):
    """OSMO tasks upload {{output}} (holding run-NNN/) to <output_url>/<workflow id>/run-NNN/."""
    wf = tmp_path / "act-hydra-sweep-7"
    common = ["logger=wandb", "training.num_steps=4"]
    make_run(
        wf / "run-000" / "run-000",
        [*common, "training.lr=1e-5"],
        done(0.9),
        val_rows(1.2, 0.9),
        hydra_mode="RUN",
    )
    make_run(
        wf / "run-001" / "run-001",
        [*common, "training.lr=5e-5"],
        done(0.4, step=1),
        val_rows(0.6, 0.4),
        hydra_mode="RUN",
    )
    make_run(
        wf / "run-003" / "run-003",
        [*common, "training.lr=-1"],
        {"status": "failed", "error": "ConfigError: training.lr=-1.0 is invalid"},
        hydra_mode="RUN",
    )
    # killed mid-run: no summary.json, a torn last metrics line
    make_run(
        wf / "run-004" / "run-004",
        [*common, "training.lr=1e-3"],
        None,
        [{"step": 0, "train/loss": 2.0}, *val_rows(0.8, 0.7)],
        hydra_mode="RUN",
        torn_tail=True,
    )
    (wf / "run-001" / "run-001" / "wandb" / "offline-run-x").mkdir(parents=True)

    assert len(find_run_dirs(tmp_path)) == 4
    summary = summarize_sweep(tmp_path, expected_jobs=6)
    rows = summary.rows
    assert [(r.job, r.status) for r in rows] == [
        (0, "completed"),
        (1, "completed"),
        (2, "missing"),
        (3, "failed"),
        (4, "missing"),
        (5, "missing"),
    ]
    assert [r.varying for r in rows][:2] == [["training.lr=1e-5"], ["training.lr=5e-5"]]
    assert rows[1].winner and summary.winner is rows[1]
    assert rows[1].best_val_step == 1 and rows[1].steps_done == 4
    killed = rows[4]
    assert (killed.best_val_loss, killed.best_val_step, killed.steps_done) == (0.7, 1, 2)
    assert rows[2].error == "no run directory: the job never started"
    md = (tmp_path / MD_NAME).read_text()
    assert "| 1 | * | training.lr=5e-5 | completed | 0.4 | 1 | 4/4 | 1.5 |" in md
    assert "ConfigError: training.lr=-1.0 is invalid" in md
    assert len(read_csv(tmp_path / CSV_NAME)) == 6
    assert (tmp_path / PNG_NAME).is_file()


def test_success_rate_column_and_ranking(tmp_path):
    make_run(
        tmp_path / "0",
        ["a=1"],
        done(0.5),
        [
            *val_rows(0.5),
            {"step": 0, "eval/success_rate": 0.2},
            {"step": 3, "eval/success_rate": 0.4},
        ],
        hydra_mode="MULTIRUN",
        job_num=0,
    )
    make_run(
        tmp_path / "1",
        ["a=2"],
        done(0.9),
        [*val_rows(0.9), {"step": 3, "eval/success_rate": 0.8}],
        hydra_mode="MULTIRUN",
        job_num=1,
    )
    by_loss = summarize_sweep(tmp_path, plot=False)
    assert by_loss.winner.job == 0
    assert [r.success_rate for r in by_loss.rows] == [0.4, 0.8]  # the last one logged
    assert "| success rate |" in by_loss.markdown()
    assert summarize_sweep(tmp_path, rank_by="success_rate", plot=False).winner.job == 1
    make_run(tmp_path / "other" / "0", ["a=1"], done(0.5), val_rows(0.5))
    assert "success rate" not in summarize_sweep(tmp_path / "other", plot=False).markdown()


def test_val_l1_ranking_ignores_the_kl_weight_scale(tmp_path):
    make_run(tmp_path / "0", ["training.kl_weight=1"], done(1.0), val_rows(1.0, l1=0.6))
    make_run(tmp_path / "1", ["training.kl_weight=10"], done(5.0), val_rows(5.0, l1=0.3))
    assert summarize_sweep(tmp_path, plot=False).winner.job == 0
    assert summarize_sweep(tmp_path, rank_by="val_l1", plot=False).winner.job == 1


def test_no_winner_when_no_job_completed(tmp_path):
    make_run(
        tmp_path / "0",
        ["x=1"],
        {"status": "diverged", "steps_done": 2, "best_val_loss": None, "diverged_at_step": 2},
        [{"step": 0, "val/loss": "nan"}],
    )
    summary = summarize_sweep(tmp_path)
    assert summary.winner is None and summary.rows[0].error == "diverged at step 2"
    assert math.isnan(summary.rows[0].val_curve[0][1])
    assert "no winner" in summary.headline()


def test_callback_fails_the_sweep_after_writing_the_summary(tmp_path):
    make_run(tmp_path / "0", ["x=1"], done(0.5), val_rows(0.5))
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    SweepSummaryCallback(plot=False).on_multirun_end(config=config)  # all completed: no error
    make_run(tmp_path / "1", ["x=2"], {"status": "failed", "error": "RuntimeError: boom"})
    with pytest.raises(SweepFailed) as info:
        SweepSummaryCallback(plot=False).on_multirun_end(config=config)
    # A SystemExit: Hydra 1.3 turns an Exception raised by a callback into a mere warning.
    assert isinstance(info.value, SystemExit) and info.value.code == 1
    assert "1 of 2 sweep jobs did not complete" in str(info.value)
    assert "job 1 [x=2] failed: RuntimeError: boom" in str(info.value)
    assert [r.job for r in info.value.failed] == [1]
    assert len(read_csv(tmp_path / CSV_NAME)) == 2
    assert len(collect_rows(tmp_path)) == 2


def test_parallel_sweep_jobs_hold_different_gpus(tmp_path):
    """hold_free_gpu (act_hydra.train): jobs finishing out of order must not pile onto one GPU
    while another is idle; flock conflicts between open files even within one process."""
    from act_hydra.sweep_job import hold_free_gpu

    with hold_free_gpu(tmp_path, 0, 2) as first:
        assert first == 0
        with hold_free_gpu(tmp_path, 2, 2) as second:  # round-robin would say GPU 0
            assert second == 1
            with hold_free_gpu(tmp_path, 4, 2) as third:  # more jobs than GPUs: share
                assert third == 0
    with hold_free_gpu(tmp_path, 2, 2) as again:  # released when the jobs ended
        assert again == 0
    assert sorted(p.name for p in (tmp_path / ".gpu_slots").iterdir()) == [
        "cuda0.lock",
        "cuda1.lock",
    ]
    assert find_run_dirs(tmp_path) == []
