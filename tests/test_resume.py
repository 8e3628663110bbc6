"""Exact resume after SIGKILL, checkpoint-and-exit on SIGTERM, and divergence handling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from act_hydra.errors import EXIT_DIVERGED, EXIT_PREEMPTED
from act_hydra.tracking import read_metrics
from tests.helpers import ROOT, TINY, read_jsonl, run_train

# Long enough to be killed at different points, short enough for CPU.
RUN = ["training.num_steps=8", "training.save_every=2", "training.eval_every=3"]


def start_train(run_dir: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "act_hydra.train",
            *TINY,
            *RUN,
            *overrides,
            f"hydra.run.dir={run_dir}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    """Poll every millisecond until predicate() holds; False if the process ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.001)
    raise TimeoutError("condition not reached")


def logged_steps(run_dir: Path) -> list[int]:
    """Training steps in metrics.jsonl so far (a line being written is skipped)."""
    return [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if "train/loss" in r]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    proc = run_train(run_dir, *RUN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def assert_same_run(run_dir: Path, reference: Path) -> None:
    ours, theirs = final_weights(run_dir), final_weights(reference)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), f"{name} differs after resume"
    rows = read_jsonl(run_dir / "metrics.jsonl")
    ref_rows = read_jsonl(reference / "metrics.jsonl")
    # Every step exactly once, with the same losses as the uninterrupted run.
    key = lambda r: (r["step"], "val/loss" in r)  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, ref_rows))
    strip = lambda r: {k: v for k, v in r.items() if k != "samples_per_s"}  # noqa: E731
    assert sorted(map(strip, rows), key=key) == sorted(map(strip, ref_rows), key=key)


def kill_then_resume(run_dir: Path, when) -> None:
    proc = start_train(run_dir)
    reached = wait_for(lambda: when(run_dir), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reached, "the run finished before the kill point"
    again = run_train(run_dir, *RUN)
    assert again.returncode == 0, again.stderr[-3000:]


def test_sigkill_mid_training_then_rerun_is_bit_identical(tmp_path, uninterrupted):
    kill_then_resume(tmp_path / "run", lambda d: max(logged_steps(d), default=-1) >= 4)
    assert_same_run(tmp_path / "run", uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("kill_point", ["first_step", "during_checkpoint_write", "step_6"])
def test_sigkill_at_other_points_then_rerun_is_bit_identical(tmp_path, uninterrupted, kill_point):
    conditions = {
        "first_step": lambda d: logged_steps(d) != [],
        # The temporary file exists only while torch.save writes and fsyncs a checkpoint.
        "during_checkpoint_write": lambda d: any((d / "checkpoints").glob(".last.pt.tmp-*")),
        "step_6": lambda d: max(logged_steps(d), default=-1) >= 6,
    }
    kill_then_resume(tmp_path / "run", conditions[kill_point])
    assert_same_run(tmp_path / "run", uninterrupted)


def test_sigterm_saves_a_checkpoint_and_exits_75(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    proc = start_train(run_dir)
    assert wait_for(lambda: max(logged_steps(run_dir), default=-1) >= 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, stderr[-3000:]
    assert "SIGTERM received: checkpoint saved at step" in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert saved["step"] == summary["steps_done"] >= 3
    # Rescheduled with the same command, it finishes as if never interrupted.
    again = run_train(run_dir, *RUN)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_run(run_dir, uninterrupted)


def test_divergence_stops_with_exit_3_and_keeps_the_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train(
        run_dir,
        "training.lr=1e12",
        "training.lr_backbone=1e12",
        "training.num_steps=30",
        "training.save_every=1",
        "training.eval_every=50",
    )
    assert proc.returncode == EXIT_DIVERGED, proc.stderr[-3000:]
    assert "training diverged: the loss became non-finite at step" in proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged"
    bad_step = summary["diverged_at_step"]
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    # The checkpoint predates the first non-finite loss and holds finite weights.
    assert saved["step"] <= bad_step
    assert all(torch.isfinite(t).all() for t in saved["model"].values() if t.is_floating_point())
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert all(r["step"] < bad_step for r in rows)


def test_resume_can_extend_num_steps(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    assert run_train(run_dir, *RUN[1:], "training.num_steps=4").returncode == 0
    proc = run_train(run_dir, *RUN)  # the same run, now 8 steps long
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in (run_dir / "train.log").read_text()
    assert logged_steps(run_dir) == list(range(8))


def _limit_file_size(max_bytes: int):
    """preexec_fn: files may not grow past max_bytes (writes fail with EFBIG, like a full disk)."""
    import resource

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    from act_hydra.errors import EXIT_IO_ERROR

    run_dir = tmp_path / "run"
    assert run_train(run_dir, *RUN[1:], "training.num_steps=4").returncode == 0
    before = (run_dir / "checkpoints" / "last.pt").read_bytes()
    # Continue to 8 steps, but no file may now exceed 1 MiB: the checkpoint at step 6 fails.
    proc = subprocess.run(
        [sys.executable, "-m", "act_hydra.train", *TINY, *RUN, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_file_size(1 << 20),
    )
    assert proc.returncode == EXIT_IO_ERROR, proc.stderr[-3000:]
    assert (
        "could not write" in proc.stderr
        and "the previous checkpoint there is intact" in proc.stderr
    )
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == before
    assert not list((run_dir / "checkpoints").glob(".*.tmp-*"))
    assert logged_steps(run_dir) == list(range(6))  # the metrics up to the failure survive
