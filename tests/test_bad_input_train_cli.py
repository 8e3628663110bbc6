"""Bad input through the real `act-train` process: the exit code, the message, and what is (not)
written. The refusals run as concurrent subprocesses (a module fixture), so the table costs about
one CLI start-up per core; runs that share a state (a finished run, a locked folder) follow.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from act_hydra.data.episodes import write_episode
from tests.helpers import ROOT, TINY, run_cli, run_train

EXIT_BAD_INPUT, EXIT_INTERRUPTED = 2, 130
RESULT_FILES = ("metrics.jsonl", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt")


def write_episodes(folder: Path, n: int = 3, qpos_of=None, size: int = 32) -> Path:
    """n valid episodes; ``qpos_of(i)`` may replace episode i's joint positions."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        qpos = rng.normal(size=(8, 14)) if qpos_of is None else qpos_of(i)
        images = {"top": rng.integers(0, 255, (8, size, size, 3), dtype=np.uint8)}
        write_episode(folder / f"episode_{i}.hdf5", qpos, None, rng.normal(size=(8, 14)), images)
    return folder


def _damaged(tmp: Path) -> Path:
    folder = write_episodes(tmp)
    path = folder / "episode_1.hdf5"
    data = path.read_bytes()
    path.write_bytes(data[:200] + b"\xff" * 600 + data[800:])  # the object headers
    return folder


def _dangling(tmp: Path) -> Path:
    folder = write_episodes(tmp)
    (folder / "episode_3.hdf5").symlink_to(tmp / "unmounted" / "episode_3.hdf5")
    return folder


def _nan_in(episode: int):
    def qpos_of(i: int) -> np.ndarray:
        qpos = np.zeros((8, 14))
        if i == episode:
            qpos[5, 3] = np.nan
        return qpos

    return qpos_of


def _text_qpos(tmp: Path) -> Path:
    folder = write_episodes(tmp)
    import h5py

    with h5py.File(folder / "episode_2.hdf5", "a") as f:
        del f["observations/qpos"]
        f["observations/qpos"] = np.full((8, 14), b"x", dtype="S1")
    return folder


def _odd_size(tmp: Path) -> Path:
    folder = write_episodes(tmp)
    write_episodes(tmp / "big", n=1, size=64)
    (tmp / "big" / "episode_0.hdf5").rename(folder / "episode_3.hdf5")
    return folder


def _recorded(make):
    return lambda tmp: ["data=aloha_hdf5", f"data.dataset_dir={make(tmp / 'episodes')}"]


# split_seed=1 with 3 episodes at train_ratio 0.8: episode 2 validates, 0 and 1 train.
CASES = {
    "plus_training_key": (["+training.lrr=1e-3"], ["training.lrr", "training.lr=<value>"]),
    "plus_model_key": (["+model.widht=3"], ["model.widht is not a setting"]),
    "plus_data_key": (["++data.bar=2"], ["data.bar is not a setting"]),
    "plus_top_level_key": (["+bar=2"], ["bar is not a setting"]),
    "wrong_type_float": (["training.lr=abc"], ["training.lr", "abc"]),
    "wrong_type_int": (["training.num_steps=1e3"], ["training.num_steps"]),
    "wrong_type_list": (["data.camera_names=top"], ["data.camera_names"]),
    "unknown_key": (["training.nope=1"], ["nope"]),
    "unknown_option": (["scheduler=linear"], ["scheduler/linear"]),
    "seed_too_large": (["training.seed=4294967296"], ["training.seed=4294967296"]),
    "split_seed_negative": (["data.split_seed=-1"], ["data.split_seed=-1"]),
    "task_seed_too_large": (["data.synthetic.seed=4294967296"], ["data.synthetic.seed"]),
    "device_malformed": (["training.device=cuda:x"], ["training.device='cuda:x'", "cuda:N"]),
    "device_unknown": (["training.device=tpu"], ["training.device='tpu'"]),
    "lr_inf": (["training.lr=inf"], ["training.lr=inf", "finite"]),
    "kl_weight_inf": (["training.kl_weight=inf"], ["training.kl_weight=inf", "finite"]),
    "cache_root_is_a_file": (lambda tmp: [f"data.dataset_dir={_file(tmp)}"], ["Not a directory"]),
    "wandb_project": (
        ["logger=wandb", "logger.mode=offline", "logger.project=team/act"],
        ["logger.project", "cannot contain"],
    ),
    "wandb_tag": (
        ["logger=wandb", "logger.mode=offline", f"logger.tags=[{'t' * 65}]"],
        ["logger.tags", "64 characters"],
    ),
    "damaged_hdf5": (_recorded(_damaged), ["episode_1.hdf5", "damaged"]),
    "dangling_link": (_recorded(_dangling), ["episode_3.hdf5", "does not exist"]),
    "qpos_dtype": (_recorded(_text_qpos), ["episode_2.hdf5", "/observations/qpos", "dtype"]),
    "nan_in_val_episode": (
        _recorded(lambda f: write_episodes(f, qpos_of=_nan_in(2))),
        ["episode_2.hdf5", "non-finite", "timestep 5, dimension 3"],
    ),
    "nan_in_train_episode": (
        _recorded(lambda f: write_episodes(f, qpos_of=_nan_in(0))),
        ["episode_0.hdf5", "non-finite"],
    ),
    "image_size_single_camera": (_recorded(_odd_size), ["episode_3.hdf5", "own folder"]),
    # The weights check comes before any dataset work: the dataset folder does not even exist.
    "imagenet_weights_missing": (
        ["model.pretrained_backbone=true", "data=aloha_hdf5", "data.dataset_dir=/nonexistent"],
        ["hub/checkpoints/resnet18", "model.pretrained_backbone=false", "ACT_HYDRA_ALLOW"],
    ),
}
if not torch.cuda.is_available():
    CASES["device_cuda_absent"] = (["training.device=cuda"], ["no CUDA GPU", "training.device=cpu"])
if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
    CASES["device_mps_absent"] = (["training.device=mps"], ["MPS", "training.device=cpu"])


def _file(tmp: Path) -> Path:
    path = tmp / "a_file"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def refusals(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every case of CASES run once, concurrently: name -> (process, its run dir)."""

    def run(name: str):
        tmp = tmp_path_factory.mktemp(name)
        overrides = CASES[name][0]
        overrides = overrides(tmp) if callable(overrides) else overrides
        env = {"TORCH_HOME": str(tmp / "torch_home"), "ACT_HYDRA_ALLOW_DOWNLOAD": ""}
        return run_train(tmp / "run", *overrides, env=env), tmp / "run"

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(CASES, pool.map(run, CASES)))


@pytest.mark.parametrize("name", list(CASES))
def test_refused_with_exit_2_and_a_message(refusals, name):
    proc, run_dir = refusals[name]
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for fragment in CASES[name][1]:
        assert fragment in proc.stderr, (fragment, proc.stderr[-2000:])
    for result in (*RESULT_FILES, ".hydra/config.yaml"):
        assert not (run_dir / result).exists(), result


def test_an_empty_run_dir_writes_nothing_into_the_current_folder(tmp_path):
    proc = run_cli("act_hydra.train", [*TINY, "hydra.run.dir="], cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT
    assert "hydra.run.dir=''" in proc.stderr and "Fix: pass hydra.run.dir=" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_run_dir_is_refused_before_hydra_logs_there(tmp_path):
    blocker = _file(tmp_path)
    proc = run_train(blocker / "run")
    assert proc.returncode == EXIT_BAD_INPUT
    assert "must be writable" in proc.stderr and "Traceback" not in proc.stderr


def test_a_sweep_of_zero_workers_is_refused(tmp_path):
    args = [*TINY, "--multirun", "training.lr=1e-4,2e-4", "hydra.launcher.n_jobs=0"]
    proc = run_cli("act_hydra.train", [*args, f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert proc.returncode == EXIT_BAD_INPUT
    assert "hydra.launcher.n_jobs=0" in proc.stderr


# ----------------------------------------------------------------------------- a finished run

KEPT = (*RESULT_FILES, ".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    proc = run_train(run_dir, "training.num_steps=2")
    assert proc.returncode == 0, proc.stderr
    return run_dir


def _digest(run_dir: Path) -> dict[str, str]:
    return {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in KEPT}


@pytest.mark.parametrize(
    "overrides,code,fragments",
    [
        (["training.num_steps=2"], 0, ["nothing to do", "all 2 updates"]),
        (["training.num_steps=1"], EXIT_BAD_INPUT, ["already done 2 updates"]),
        (["training.num_steps=2", "training.lr=5e-4"], EXIT_BAD_INPUT, ["training.lr: 0.0001"]),
        # A genuine resume (2 of 4 done) may not change the trajectory either.
        (["training.num_steps=4", "training.lr=5e-4"], EXIT_BAD_INPUT, ["training.lr: 0.0001"]),
        (["training.num_steps=4", "model.dim_model=64"], EXIT_BAD_INPUT, ["model.dim_model: 32"]),
        (["training.num_steps=4", "data.synthetic.seed=5"], EXIT_BAD_INPUT, ["data.synthetic"]),
        (["training.resume=never"], EXIT_BAD_INPUT, ["training.resume=never", "would overwrite"]),
    ],
    ids=[
        "same_config",
        "fewer_steps",
        "changed_lr",
        "resume_changed_lr",
        "resume_changed_model",
        "resume_changed_data",
        "resume_never",
    ],
)
def test_rerunning_a_finished_run_changes_no_file(finished_run, overrides, code, fragments):
    before = _digest(finished_run)
    proc = run_train(finished_run, *overrides)
    assert proc.returncode == code, proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr[-2000:])
    assert _digest(finished_run) == before


# ----------------------------------------------------------------------------- live processes


def _start(run_dir: Path, *overrides: str) -> subprocess.Popen:
    args = [*TINY, "training.num_steps=100000", *overrides, f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(
        [sys.executable, "-m", "act_hydra.train", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches it
    )


def _wait_for_log(run_dir: Path, text: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    log = run_dir / "train.log"
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in {log} after {timeout} s")


def test_a_second_run_into_a_busy_folder_is_refused_and_a_killed_one_resumes(tmp_path):
    run_dir = tmp_path / "run"
    first = _start(run_dir)
    try:
        _wait_for_log(run_dir, "step 1 ", first)
        second = run_train(run_dir, "training.num_steps=100000")
        assert second.returncode == EXIT_BAD_INPUT
        assert f"pid {first.pid}" in second.stderr and "in use" in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # as the OOM killer or a node failure would
        first.wait()
    # The first run may have done any number of updates by now: resume it for two more.
    done = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"]
    third = run_train(run_dir, f"training.num_steps={done + 2}")
    assert third.returncode == 0, third.stderr[-2000:]
    assert "resumed from" in (run_dir / "train.log").read_text()


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path):
    run_dir = tmp_path / "run"
    # Two DataLoader workers: they get the Ctrl-C too and must not die under the main process.
    proc = _start(run_dir, "data.num_workers=2", "training.save_every=1000")
    _wait_for_log(run_dir, "step 1 ", proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, stderr[-2000:]
    assert "Traceback" not in stderr and "Ctrl-C: checkpoint saved" in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert summary["status"] == "interrupted"
    assert summary["steps_done"] == saved["step"] >= 2


def test_training_runs_with_stderr_closed(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "act_hydra.train", *TINY, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(2),  # `2>&-`: Python starts with sys.stderr = None
        timeout=300,
    )
    assert proc.returncode == 0
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_a_bug_leaves_its_traceback_in_train_log_and_a_failed_summary(tmp_path):
    """Exit 1 (a genuine bug): on a cluster only the run directory comes back."""
    run_dir = tmp_path / "run"
    inject = (
        "import sys, act_hydra.train as t\n"
        "def boom(*args, **kwargs):\n"
        "    raise RuntimeError('injected bug')\n"
        "t.load_data = boom\n"
        "sys.argv = ['act-train', *sys.argv[1:]]\n"
        "t.cli()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", inject, *TINY, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    log = (run_dir / "train.log").read_text()
    assert "Traceback" in log and "injected bug" in log
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "injected bug" in summary["error"]
    assert (run_dir / ".hydra" / "config.yaml").is_file()
