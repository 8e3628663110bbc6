"""Bad input to the tools beside training (act-eval, act-sweep-summary, act-plot-lr,
act-osmo-sweep, act-make-sim-dataset, act-launch, the benchmark), through the real CLIs: each
mistake exits with its code and a message naming the key or file, without a traceback, and
leaves nothing half-written.

The CLI processes share one tiny trained run and run three at a time in a module fixture; the
parametrised tests then check the stored results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT, TINY, run_cli, run_train

# Root ignores file permissions; without CAP_DAC_OVERRIDE it obeys them like anyone else.
UNPRIVILEGED = (
    ["setpriv", "--bounding-set=-dac_override", "--inh-caps=-dac_override"]
    if os.geteuid() == 0 and shutil.which("setpriv")
    else []
)
SUMMARY_FILES = ("sweep_summary.csv", "sweep_summary.md", "sweep_val_loss.png")


@dataclass
class Case:
    id: str
    module: str
    args: Callable[[Path], list[str]]  # the shared folder -> arguments
    code: int
    fragments: list[str]
    absent: Callable[[Path], list[Path]] = lambda w: []  # must not exist afterwards
    one_line: bool = False  # the whole of stderr is one message line
    read_only: bool = False  # needs a folder this process cannot write into


def _no_gpu_device() -> str:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return f"cuda:{count}" if count else "cuda"


COMPOSE = [
    Case(
        "plot_lr_wrong_type",
        "act_hydra.plot_lr",
        lambda w: ["training.lr=abc", "-o", str(w / "lr1.png")],
        2,
        ["training.lr=abc", "could not be converted to Float", "Fix:"],
        lambda w: [w / "lr1.png"],
    ),
    Case(
        "plot_lr_list_as_string",
        "act_hydra.plot_lr",
        lambda w: ["data.camera_names=top", "-o", str(w / "lr2.png")],
        2,
        ["data.camera_names=top", "not a ListConfig"],
    ),
    Case(
        "plot_lr_unknown_option",
        "act_hydra.plot_lr",
        lambda w: ["scheduler=linear", "-o", str(w / "lr3.png")],
        2,
        ["scheduler/linear", "cosine", "none"],
    ),
    Case(
        "osmo_sweep_wrong_type",
        "act_hydra.osmo.cli",
        lambda w: ["training.lr=1e-4,abc", "-o", str(w / "osmo" / "wf.yaml")],
        2,
        ["training.lr=abc", "could not be converted to Float"],
        lambda w: [w / "osmo"],
    ),
    Case(
        "make_sim_dataset_float_steps",
        "act_hydra.make_sim_dataset",
        lambda w: [str(w / "simdata"), "training.num_steps=1e3"],
        2,
        ["training.num_steps=1e3", "Integer"],
        lambda w: [w / "simdata"],
    ),
    Case(
        "benchmark_list_as_string",
        "benchmarks.benchmark",
        lambda w: [*TINY, "data.camera_names=top"],
        2,
        ["data.camera_names=top", "not a ListConfig"],
    ),
    Case(
        "launch_unknown_key",
        "act_hydra.launch",
        lambda w: ["--nproc_per_node=1", "--", "training.nokey=1", f"hydra.run.dir={w / 'ddp'}"],
        2,
        ["training.nokey", "not in 'TrainingConfig'"],
        lambda w: [w / "ddp"],
    ),
    Case(
        "eval_wrong_type",
        "act_hydra.eval",
        lambda w: [f"checkpoint={w / 'run'}", "eval.num_episodes=abc"],
        2,
        ["eval.num_episodes", "could not be converted to Integer"],
    ),
]

OUTPUTS = [
    Case(
        "plot_lr_into_a_folder",
        "act_hydra.plot_lr",
        lambda w: ["-o", str(w / "sweeps")],
        2,
        ["-o", "is a folder", "Fix: pass -o"],
        one_line=True,
    ),
    Case(
        "plot_lr_missing_folder",
        "act_hydra.plot_lr",
        lambda w: ["-o", str(w / "nowhere" / "lr.png")],
        2,
        ["nowhere", "does not exist", "mkdir -p"],
        lambda w: [w / "nowhere"],
        one_line=True,
    ),
    Case(
        "plot_lr_not_an_image",
        "act_hydra.plot_lr",
        lambda w: ["-o", str(w / "lr.xyz")],
        2,
        ["'.xyz' is not an image format", "png", "svg"],
        lambda w: [w / "lr.xyz"],
        one_line=True,
    ),
    Case(
        "plot_lr_read_only_folder",
        "act_hydra.plot_lr",
        lambda w: ["-o", str(w / "read_only" / "lr.png")],
        2,
        ["read_only", "is not writable"],
        lambda w: [w / "read_only" / "lr.png"],
        one_line=True,
        read_only=True,
    ),
    Case(
        "plot_lr_writes_svg",
        "act_hydra.plot_lr",
        lambda w: ["scheduler=cosine", "scheduler.warmup_steps=100", "-o", str(w / "lr.svg")],
        0,
        ["wrote", "end of warmup"],
    ),
    Case(
        "osmo_sweep_into_a_folder",
        "act_hydra.osmo.cli",
        lambda w: ["training.lr=1e-4", "-o", str(w / "sweeps")],
        2,
        ["-o", "is a folder", "<name>.yaml"],
        one_line=True,
    ),
    Case(
        "benchmark_zero_threads",
        "benchmarks.benchmark",
        lambda w: ["--threads", "0", *TINY],
        2,
        ["--threads", "'0' is invalid", ">= 1"],
    ),
    Case(
        "benchmark_negative_threads",
        "benchmarks.benchmark",
        lambda w: ["--threads=-2", *TINY],
        2,
        ["--threads", "'-2' is invalid"],
    ),
]

EVAL = [
    Case(
        f"eval_{name}",
        "act_hydra.eval",
        lambda w, name=name: [f"checkpoint={w / 'ckpts' / (name + '.pt')}"],
        2,
        [f"{name}.pt", *fragments],
        lambda w: [w / "ckpts" / "eval"],
    )
    for name, fragments in [
        ("truncated", ["truncated or damaged"]),
        ("binary", ["not a file torch.save wrote"]),
        ("text", ["not a file torch.save wrote", "hello"]),
        ("state_dict", ["no format entry", "bare state_dict"]),
    ]
] + [
    Case(
        "eval_falls_back_to_last_pt",
        "act_hydra.eval",
        lambda w: [f"checkpoint={w / 'damaged_best'}", "eval.num_episodes=1", "eval.num_videos=0"],
        0,
        ["damaged_best/checkpoints/best.pt is unusable", "damaged_best/checkpoints/last.pt"],
    ),
    Case(
        "eval_mistyped_path_creates_nothing",
        "act_hydra.eval",
        lambda w: [f"checkpoint={w / 'runn'}"],
        2,
        ["checkpoint=", "runn", "neither a checkpoint file nor a run directory"],
        lambda w: [w / "runn"],
    ),
    Case(
        "eval_mistyped_file_creates_nothing",
        "act_hydra.eval",
        lambda w: [f"checkpoint={w / 'run' / 'checkpoints' / 'bset.pt'}"],
        2,
        ["bset.pt", "neither a checkpoint file"],
        lambda w: [w / "run" / "eval"],
    ),
    Case(
        "eval_read_only_run_dir",
        "act_hydra.eval",
        lambda w: [f"checkpoint={w / 'read_only_run'}"],
        2,
        ["must be writable", "Fix: pass hydra.run.dir="],
        lambda w: [w / "read_only_run" / "eval"],
        read_only=True,
    ),
    Case(
        "eval_device_absent",
        "act_hydra.eval",
        lambda w: [f"checkpoint={w / 'run'}", f"eval.device={_no_gpu_device()}"],
        2,
        ["eval.device=", "Fix: pass eval.device="],
    ),
    Case(
        "eval_device_malformed_index",
        "act_hydra.eval",
        lambda w: [f"checkpoint={w / 'run'}", "eval.device=cuda:x"],
        2,
        ["eval.device='cuda:x'", "cuda:N"],
    ),
    Case(
        "eval_device_unknown",
        "act_hydra.eval",
        lambda w: [f"checkpoint={w / 'run'}", "eval.device=tpu"],
        2,
        ["eval.device='tpu'", "auto, cpu, cuda, mps"],
    ),
    Case(
        "eval_seed_too_large",
        "act_hydra.eval",
        lambda w: [f"checkpoint={w / 'run'}", f"eval.seed_base={2**32}"],
        2,
        [f"eval.seed_base={2**32}", "unsigned 32-bit"],
    ),
    Case(
        "eval_counts_and_negative_seed",
        "act_hydra.eval",
        lambda w: [
            f"checkpoint={w / 'run'}",
            "eval.num_episodes=0",
            "eval.num_videos=-1",
            "eval.num_workers=-1",
            "eval.seed_base=-1",
        ],
        2,
        ["eval.num_episodes=0", "eval.num_videos=-1", "eval.num_workers=-1", "eval.seed_base=-1"],
    ),
]

SWEEP = [
    Case(
        "summary_empty_sweep_writes_nothing",
        "act_hydra.sweep_summary_cli",
        lambda w: [str(w / "sweeps" / "empty")],
        2,
        ["no run directory under", "nothing was written"],
        lambda w: [w / "sweeps" / "empty" / name for name in SUMMARY_FILES],
        one_line=True,
    ),
    Case(
        "summary_job_summary_not_an_object",
        "act_hydra.sweep_summary_cli",
        lambda w: [str(w / "sweeps" / "odd"), "--no-plot"],
        0,
        ["odd/1/summary.json holds an array, not a JSON object"],
    ),
    Case(
        "summary_out_is_a_file",
        "act_hydra.sweep_summary_cli",
        lambda w: [str(w / "sweeps" / "good"), "-o", str(w / "a_file")],
        2,
        ["--out", "a_file", "is a file"],
        one_line=True,
    ),
    Case(
        "summary_out_in_a_missing_folder",
        "act_hydra.sweep_summary_cli",
        lambda w: [str(w / "sweeps" / "good"), "-o", str(w / "nothere" / "summary")],
        2,
        ["nothere", "does not exist", "not its parents"],
        lambda w: [w / "nothere"],
        one_line=True,
    ),
    Case(
        "summary_out_read_only",
        "act_hydra.sweep_summary_cli",
        lambda w: [str(w / "sweeps" / "good"), "-o", str(w / "read_only")],
        2,
        ["read_only", "is not writable"],
        lambda w: [w / "read_only" / name for name in SUMMARY_FILES],
        one_line=True,
        read_only=True,
    ),
    Case(
        "multirun_of_zero_jobs",
        "act_hydra.train",
        lambda w: ["--multirun", *TINY, "training.seed=range(0)", f"hydra.sweep.dir={w / 'none'}"],
        2,
        ["no run directory under", "nothing was written"],
        lambda w: [w / "none" / name for name in SUMMARY_FILES],
    ),
]

CASES = COMPOSE + OUTPUTS + EVAL + SWEEP


def make_world(w: Path) -> None:
    """The trained run, damaged copies of its checkpoint, sweep folders, read-only folders."""
    run = w / "run"
    proc = run_train(run, "training.num_steps=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    good = (run / "checkpoints" / "last.pt").read_bytes()
    ckpts = w / "ckpts"
    ckpts.mkdir()
    (ckpts / "truncated.pt").write_bytes(good[: len(good) // 2])
    (ckpts / "binary.pt").write_bytes(bytes(range(256)) * 64)
    (ckpts / "text.pt").write_text("hello, this is not a checkpoint\n")
    torch.save({"weight": torch.zeros(3)}, ckpts / "state_dict.pt")
    shutil.copytree(run, w / "damaged_best")
    (w / "damaged_best" / "checkpoints" / "best.pt").write_bytes(good[:1000])
    shutil.copytree(run, w / "read_only_run")
    (w / "read_only").mkdir()
    (w / "a_file").write_text("")
    (w / "sweeps" / "empty").mkdir(parents=True)
    shutil.copytree(run, w / "sweeps" / "good" / "0")
    shutil.copytree(run, w / "sweeps" / "odd" / "0")
    (w / "sweeps" / "odd" / "1").mkdir()
    (w / "sweeps" / "odd" / "1" / "summary.json").write_text("[1, 2]\n")
    for folder in (w / "read_only_run", w / "read_only"):
        folder.chmod(0o555)


def cannot_write(folder: Path) -> bool:
    probe = subprocess.run([*UNPRIVILEGED, "test", "-w", str(folder)], check=False)
    return probe.returncode != 0


def run_case(case: Case, w: Path) -> subprocess.CompletedProcess:
    if not case.read_only:
        return run_cli(case.module, case.args(w))
    return subprocess.run(
        [*UNPRIVILEGED, sys.executable, "-m", case.module, *case.args(w)],
        cwd=ROOT,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """(the shared folder, {case id: finished process, or None when it cannot run here})."""
    w = tmp_path_factory.mktemp("tools")
    make_world(w)
    read_only_works = cannot_write(w / "read_only")
    runnable = [c for c in CASES if read_only_works or not c.read_only]
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            procs = dict(
                zip([c.id for c in runnable], pool.map(lambda c: run_case(c, w), runnable))
            )
        yield w, procs
    finally:
        for folder in (w / "read_only_run", w / "read_only"):
            folder.chmod(0o755)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_tool_reports_bad_input(results, case):
    w, procs = results
    if case.id not in procs:
        pytest.skip("this process can write into read-only folders (root without setpriv)")
    proc = procs[case.id]
    assert proc.returncode == case.code, (proc.returncode, proc.stderr[-3000:])
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output[-3000:]
    for fragment in case.fragments:
        assert fragment in output, (fragment, output[-3000:])
    if case.one_line:
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for path in case.absent(w):
        assert not path.exists(), path


def test_fallback_evaluates_last_pt(results):
    w, procs = results
    (out,) = (w / "damaged_best" / "eval").iterdir()
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["checkpoint"] == str(w / "damaged_best" / "checkpoints" / "last.pt")


def test_summary_lists_the_odd_job_and_writes_the_table(results):
    w, procs = results
    odd = w / "sweeps" / "odd"
    assert "1 of 2 sweep jobs did not complete" in procs["summary_job_summary_not_an_object"].stderr
    assert (odd / "sweep_summary.md").is_file() and not (odd / "sweep_val_loss.png").exists()


def test_case_count_stays_sensible():
    assert 25 <= len(CASES) <= 35
