"""DDP runs stay exact and preemptible: every rank's RNG state is in the checkpoint (a 2-rank
run killed with SIGKILL and resumed is bit-identical to an uninterrupted one), and SIGTERM to
``python -m act_hydra.launch`` (torchrun underneath) ends with exit code 75."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from act_hydra import launch
from act_hydra.checkpoint import rng_state_for_rank
from act_hydra.distributed import rank_seed
from act_hydra.errors import EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_PREEMPTED
from tests.helpers import ROOT, TINY
from tests.test_resume import assert_same_run, logged_steps, wait_for

# Dropout and the CVAE's sampled latent: every update draws from each rank's RNG.
RUN = [
    "model.dropout=0.1",
    "model.use_vae=true",
    "training.num_steps=8",
    "training.save_every=2",
    "training.eval_every=3",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def torchrun_cmd(run_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "act_hydra.train",
        *TINY,
        *RUN,
        *overrides,
        f"hydra.run.dir={run_dir}",
    ]


def torchrun(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        torchrun_cmd(run_dir, *overrides),
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its workers in sessions of their own, so
    killing torchrun's process group leaves them running)."""
    parent_of = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        parent_of[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parent_of.items() if parent in frontier]
        found += children
        frontier = children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie is dead, just not yet reaped


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


# Three 2-rank runs: 30-38 s on a 2-core CPU (under the ~40 s bar of the default lane).
def test_two_ranks_killed_and_resumed_are_bit_identical(tmp_path):
    reference = tmp_path / "uninterrupted"
    proc = torchrun(reference)
    assert proc.returncode == 0, proc.stderr[-4000:]
    final = checkpoint(reference)
    assert len(final["rng"]) == 2
    # The ranks draw different noise, so rank 0's state restored everywhere would not do.
    assert not torch.equal(final["rng"][0]["torch"], final["rng"][1]["torch"])

    # SIGKILL to torchrun and both workers (a lost node) right after the first checkpoint.
    run_dir = tmp_path / "killed"
    killed = subprocess.Popen(
        torchrun_cmd(run_dir),
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    reached = wait_for(lambda: (run_dir / "checkpoints" / "last.pt").exists(), killed)
    workers = descendants(killed.pid)
    for pid in [*workers, killed.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    killed.wait()
    assert reached, "the run ended before its first checkpoint"
    deadline = time.time() + 30
    while any(alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.01)
    assert checkpoint(run_dir)["step"] < 8, "killed too late: nothing left to resume"

    proc = torchrun(run_dir)  # the same command again: training.resume=auto
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "resumed from" in (run_dir / "train.log").read_text()
    assert_same_run(run_dir, reference)  # weights and every logged loss
    resumed = checkpoint(run_dir)
    for rank in range(2):
        for key in ("torch", "numpy", "python"):
            assert repr(resumed["rng"][rank][key]) == repr(final["rng"][rank][key])


def test_sigterm_to_the_launcher_exits_75_with_a_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "act_hydra.launch",
        "--standalone",
        "--nproc_per_node=2",
        "--",
        *TINY,
        "training.num_steps=1000",
        "training.save_every=1000",
        "training.eval_every=1000",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert wait_for(lambda: max(logged_steps(run_dir), default=-1) >= 2, proc)
    proc.send_signal(signal.SIGTERM)  # to the launcher only, as a scheduler does
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_PREEMPTED, stderr[-4000:]
    assert "summary.json says 'interrupted': exit 75" in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    saved = checkpoint(run_dir)
    assert saved["step"] == summary["steps_done"] >= 3 and len(saved["rng"]) == 2


# -- the pieces, without processes ------------------------------------------------------------


def test_launcher_exit_code():
    interrupted, diverged = {"status": "interrupted"}, {"status": "diverged"}
    assert launch.task_exit_code(0, None, got_sigterm=True) == 0
    assert launch.task_exit_code(1, interrupted, got_sigterm=False) == EXIT_PREEMPTED
    assert launch.task_exit_code(1, diverged, got_sigterm=True) == EXIT_DIVERGED
    assert launch.task_exit_code(1, {"status": "failed"}, got_sigterm=True) == 1
    # No summary of this launch here (rank 0 on another node, or it never started training).
    assert launch.task_exit_code(1, None, got_sigterm=True) == EXIT_PREEMPTED
    assert launch.task_exit_code(1, None, got_sigterm=False) == 1


def test_launcher_ignores_a_summary_left_by_an_earlier_attempt(tmp_path):
    path = tmp_path / "summary.json"
    assert launch.read_fresh_summary(path, None) is None  # none written
    path.write_text(json.dumps({"status": "interrupted"}))
    before = launch._stamp(path)
    assert launch.read_fresh_summary(path, before) is None  # the earlier attempt's
    time.sleep(0.01)
    replacement = tmp_path / "new.json"
    replacement.write_text(json.dumps({"status": "failed"}))
    replacement.replace(path)  # how RunRecord writes it (act_hydra.atomic)
    assert launch.read_fresh_summary(path, before) == {"status": "failed"}


def test_launcher_arguments(tmp_path):
    assert launch.split_args(["--nproc_per_node=2", "--", "a=1"]) == (
        ["--nproc_per_node=2"],
        ["a=1"],
    )
    for bad in (
        ["--nproc_per_node=2", "a=1"],
        ["--", "a=1"],
        ["--nproc_per_node=2", "-m", "x", "--", "a=1"],
        ["--nproc_per_node=2", "--", "--multirun", "a=1,2"],
    ):
        with pytest.raises(launch.UsageError):
            launch.split_args(bad)
    given = [f"hydra.run.dir={tmp_path}"]
    assert launch.run_dir_override(given) == (tmp_path, given)
    run_dir, overrides = launch.run_dir_override(["debug=tiny"])  # resolved once, for all ranks
    assert str(run_dir).startswith("outputs/") and overrides == [
        "debug=tiny",
        f"hydra.run.dir={run_dir}",
    ]
    assert launch.main(["--nproc_per_node=2", "debug=tiny"]) == EXIT_BAD_INPUT


def test_rank_seeds():
    assert rank_seed(7, 0) == 7  # rank 0 draws what a single process draws
    seeds = [rank_seed(7, r) for r in range(8)]
    assert len(set(seeds)) == 8 and seeds == [rank_seed(7, r) for r in range(8)]
    assert all(0 <= s < 2**32 for s in seeds)  # numpy's legacy seeding takes 32 bits


def test_rng_state_for_rank(caplog):
    a, b = {"torch": "a"}, {"torch": "b"}
    with caplog.at_level(logging.WARNING, logger="act_hydra.checkpoint"):
        assert rng_state_for_rank([a, b], 1, 2) is b
        assert rng_state_for_rank(a, 0, 1) is a  # a single state (no list) is rank 0's
        assert not caplog.records
        # A different world size: the ranks the checkpoint knows continue, others start fresh.
        assert rng_state_for_rank([a], 1, 2) is None
        assert not caplog.records  # rank 0 speaks for the run
        assert rng_state_for_rank([a, b], 0, 1) is a
    assert "RNG states of 2 rank(s) and this run has 1" in caplog.text
