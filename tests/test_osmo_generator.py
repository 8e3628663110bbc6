"""OSMO sweep generator: Hydra's job list, validated jobs, deterministic, valid workflow files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hydra._internal.hydra as hydra_internal
import pytest
import yaml
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_config_search_path
from hydra.core.global_hydra import GlobalHydra
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf

import act_hydra.config  # noqa: F401  (registers the schema Hydra composes)
from act_hydra.compose import compose_train_config
from act_hydra.errors import EXIT_BAD_INPUT
from act_hydra.osmo import cli as generator
from act_hydra.osmo import main_check, validate_workflow_text
from act_hydra.osmo.config import OsmoConfig, check_osmo_settings
from act_hydra.osmo.sweep import Job, expand_sweep
from act_hydra.osmo.workflow import build_workflow, render_workflows, to_yaml
from tests.helpers import CONF_DIR, ROOT, TINY

SWEEP_FILE = ROOT / "osmo" / "osmo-workflow-sweep.yaml"
SINGLE_FILE = ROOT / "osmo" / "osmo-workflow.yaml"
SINGLE_ARGS = ["osmo.workflow_name=act-hydra-train"]
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SUMMARY_CALLBACK = "act_hydra.sweep_callback.SweepSummaryCallback"


# ----------------------------------------------------------------------------- Hydra's own list


class _NoCallbacks:
    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


@pytest.fixture
def hydra_multirun(monkeypatch, tmp_path):
    """args -> the job override lists Hydra's real multirun hands its launcher.

    Runs ``Hydra.multirun`` in-process on conf/ (master composition, the configured sweeper,
    ``validate_batch_is_legal`` composing every job); only the launcher's ``launch`` is replaced
    by a recorder, so no job executes, and the multirun callbacks (the sweep summary, not under
    test here) are left out.
    """

    def run(args: list[str]) -> list[list[str]]:
        launched: list[list[str]] = []

        def launch(self, job_overrides, initial_job_idx):
            launched.extend(list(job) for job in job_overrides)
            return [
                JobReturn(overrides=list(job), status=JobStatus.COMPLETED, _return_value=None)
                for job in job_overrides
            ]

        launcher = Plugins.instance().class_name_to_class[JOBLIB]
        monkeypatch.setattr(launcher, "launch", launch)
        monkeypatch.setattr(hydra_internal, "Callbacks", _NoCallbacks)
        hydra = Hydra.create_main_hydra2(
            task_name="train", config_search_path=create_config_search_path(str(CONF_DIR))
        )
        try:
            hydra.multirun(
                config_name="train",
                task_function=lambda cfg: None,
                overrides=[*args, f"hydra.sweep.dir={tmp_path / 'multirun'}"],
                with_log_configuration=False,
            )
        finally:
            GlobalHydra.instance().clear()
        return launched

    return run


SWEEP_CASES = {
    # osmo.* are generator settings: they must neither reach the jobs nor multiply them
    "lists": [
        "training.lr=1e-5,1e-4",
        "osmo.cpu=4",
        "training.kl_weight=1,10",
        "osmo.image=nvcr.io/acme/act-hydra:1.0",
    ],
    "range": ["training.seed=range(1,4)", "training.batch_size=4"],
    "choice-and-group": ["scheduler=choice(none,cosine)", "training.lr=choice(1e-4,3e-4)"],
    # sweep=default sweeps lr x kl_weight x batch_size; the command line fixes lr and replaces
    # the batch_size axis (it keeps its position in the order)
    "preset-with-cli-axis": ["sweep=default", "training.batch_size=2,16", "training.lr=1e-4"],
    "glob": ["model=glob(*)", "training.lr=1e-4"],
}


@pytest.mark.parametrize("case", list(SWEEP_CASES))
def test_job_list_is_the_one_hydra_multirun_launches(case, hydra_multirun):
    args = SWEEP_CASES[case]
    expected = hydra_multirun([a for a in args if not a.startswith("osmo.")])  # training's args
    jobs = [list(job.overrides) for job in expand_sweep(args).jobs]
    assert jobs == expected
    assert (
        len(jobs)
        == {"lists": 4, "range": 3, "choice-and-group": 4, "preset-with-cli-axis": 4, "glob": 2}[
            case
        ]
    )
    if case == "preset-with-cli-axis":  # preset axes first, a CLI value keeps the axis' place
        assert jobs[0] == [
            "training.lr=0.0001",
            "training.kl_weight=1",
            "training.batch_size=2",
            "sweep=default",
        ]
        assert [j[2] for j in jobs] == ["training.batch_size=2", "training.batch_size=16"] * 2


# ----------------------------------------------------------------------------- real CLI runs

# A valid sweep whose jobs stop at once (before any data or model work): every job fails its
# training.resume check, in a multirun that records the failure and goes on.
CHEAP_SWEEP = [
    "sweep=default",
    "training.lr=1e-4",
    "logger=wandb",
    "logger.mode=disabled",
    "training.resume=/nonexistent/last.pt",
]
TASK_INDEX = 2

# Runs `python -m act_hydra.train ARGS` for each ARGS in one interpreter (runpy, exactly what
# `-m` does), so torch is imported once for both CLI runs; prints each run's exit status.
CLI_RUNS = """
import json, runpy, sys
codes = []
for argv in json.loads(sys.argv[1]):
    sys.argv = ["act_hydra/train.py", *argv]
    sys.modules.pop("act_hydra.train", None)  # as fresh as `python -m act_hydra.train`
    try:
        runpy.run_module("act_hydra.train", run_name="__main__", alter_sys=True)
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code if isinstance(exc.code, int) else 1)
print("EXIT CODES", json.dumps(codes))
"""


def _python(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """The real CLI, twice: `--multirun CHEAP_SWEEP` (one worker) and the generated task
    run-002 with {{output}} replaced by a temp folder. Returns (generator plan, sweep dir, task
    output dir, exit codes, log text)."""
    tmp = tmp_path_factory.mktemp("cli_runs")
    sweep_dir, output = tmp / "multirun", tmp / "osmo_output"
    plan = expand_sweep(CHEAP_SWEEP)
    task = build_workflow(plan.osmo, plan.jobs)["workflow"]["tasks"][TASK_INDEX]
    assert task["name"] == "run-002" and task["command"] == ["python"]
    assert task["args"][:2] == ["-m", "act_hydra.train"]
    task_args = _task_args(output)
    multirun_args = [
        "--multirun",
        *CHEAP_SWEEP,
        "hydra.launcher.n_jobs=1",
        f"hydra.sweep.dir={sweep_dir}",
        *_no_summary_plot(),
    ]
    proc = _python(["-c", CLI_RUNS, json.dumps([multirun_args, task_args])])
    assert "EXIT CODES" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    codes = json.loads(proc.stdout.split("EXIT CODES", 1)[1])
    return plan, sweep_dir, output, codes, proc.stdout + proc.stderr


def _task_args(output: Path) -> list[str]:
    """act-train's arguments in the generated task run-002, its output folder filled in."""
    plan = expand_sweep(CHEAP_SWEEP)
    task = build_workflow(plan.osmo, plan.jobs)["workflow"]["tasks"][TASK_INDEX]
    return [a.replace("{{output}}", str(output)) for a in task["args"][2:]]


def _no_summary_plot() -> list[str]:
    """Hydra overrides that skip the sweep summary's plot (seconds of matplotlib; the summary
    callback is not under test here). They change no job override."""
    callbacks = compose_train_config([], return_hydra_config=True).hydra.callbacks
    summary = callbacks.get("sweep_summary")
    if summary is not None and summary.get("_target_") == SUMMARY_CALLBACK:
        return ["++hydra.callbacks.sweep_summary.plot=false"]
    return []


def _job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def test_job_list_equals_a_real_cli_multirun(cli_runs):
    plan, sweep_dir, _, codes, log = cli_runs
    # every job failed (on purpose): the sweep summary callback makes the multirun exit 1
    assert codes[0] in (0, 1), log[-3000:]
    launched = [
        yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text()) for d in _job_dirs(sweep_dir)
    ]
    assert len(launched) == 4
    assert [list(j.overrides) for j in plan.jobs] == launched


def test_a_generated_task_runs_locally_with_the_multirun_jobs_config(cli_runs):
    _, sweep_dir, output, codes, log = cli_runs
    # the task ran once, in RUN mode although sweep=default sets hydra.mode: MULTIRUN: a single
    # run exits 2 on the bad resume path, where a multirun job records it and the sweep exits 0
    assert codes[1] == 2, log[-3000:]
    assert "training.resume='/nonexistent/last.pt' is invalid" in log
    # A refused run records no config (.hydra/ is written once a run's checks pass), so the
    # task's config is composed from its arguments, as its CLI run composed it.
    assert not (output / "run-002" / ".hydra").exists()
    task_overrides = [a for a in _task_args(output) if not a.startswith("hydra.run.dir=")]
    local = compose_train_config(task_overrides, return_hydra_config=True)
    assert local.hydra.mode == RunMode.RUN
    remote = _job_dirs(sweep_dir)[TASK_INDEX] / ".hydra"
    local_job = yaml.safe_load(OmegaConf.to_yaml(local))
    del local_job["hydra"]
    assert local_job == yaml.safe_load((remote / "config.yaml").read_text())
    assert list(local.hydra.overrides.task) == yaml.safe_load(
        (remote / "overrides.yaml").read_text()
    )


@pytest.mark.slow
def test_a_generated_task_trains_like_its_multirun_job(tmp_path):
    args = [*TINY, "training.lr=3e-4", "logger=wandb", "logger.mode=disabled"]
    proc = _python(
        [
            "-m",
            "act_hydra.train",
            "--multirun",
            *args,
            "hydra.launcher.n_jobs=1",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = expand_sweep(args)
    task = build_workflow(plan.osmo, plan.jobs)["workflow"]["tasks"][0]
    proc = _python([a.replace("{{output}}", str(tmp_path / "osmo")) for a in task["args"]])
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "osmo" / "run-000"
    assert yaml.safe_load((run_dir / "summary.json").read_text())["status"] == "completed"
    assert yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()) == yaml.safe_load(
        (tmp_path / "multirun" / "0" / ".hydra" / "config.yaml").read_text()
    )


# ----------------------------------------------------------------------------- checked-in files


def test_checked_in_sweep_workflow_is_regenerated_byte_identical():
    plan = expand_sweep(["sweep=default"])
    assert render_workflows(plan.osmo, plan.jobs, ["sweep=default"]) == [SWEEP_FILE.read_text()]
    plan = expand_sweep(SINGLE_ARGS)
    assert render_workflows(plan.osmo, plan.jobs, SINGLE_ARGS) == [SINGLE_FILE.read_text()]


def test_checked_in_workflows_pass_the_offline_validator(capsys):
    assert main_check([str(SWEEP_FILE), str(SINGLE_FILE)]) == 0
    assert generator.main(["--check", str(SWEEP_FILE)]) == 0


def test_checked_in_sweep_has_one_task_per_job_with_quoted_args_and_wandb():
    text = SWEEP_FILE.read_text()
    doc = yaml.safe_load(text)["workflow"]
    tasks = doc["tasks"]
    assert [t["name"] for t in tasks] == [f"run-{i:03d}" for i in range(12)]
    for task in tasks:
        args = task["args"]
        assert args[:2] == ["-m", "act_hydra.train"]
        assert args[-2:] == ["hydra.mode=RUN", f"hydra.run.dir={{{{output}}}}/{task['name']}"]
        assert "logger=wandb" in args and not any(a.startswith("osmo") for a in args)
        assert task["environment"]["WANDB_RUN_GROUP"] == "{{workflow_id}}"
        assert task["credentials"] == {"wandb": {"WANDB_API_KEY": "wandb_api_key"}}
        assert task["exitActions"] == {"COMPLETE": "0", "RESCHEDULE": "75"}
    assert '- "training.lr=1e-05"' in text  # every string is quoted in the file


# ----------------------------------------------------------------------------- CLI behaviour


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("training.lrr=1", "Key 'lrr' not in 'TrainingConfig'"),
        ("training.lr=1e-4,-1", "training.lr=-1.0 is invalid"),
        ("scheduler=cosnie", "Could not find 'scheduler/cosnie'"),
        ("osmo.gpu=1,2", "cannot be swept"),
        ("osmo.memory=16GB", "osmo.memory='16GB' is invalid"),
        ("osmo.cpuu=4", "Key 'cpuu' not in 'OsmoConfig'"),
        ("+osmo.cpuu=4", "drop the '+'"),
        ("training.lr=interval(0,1)", "does not support sweep type"),
    ],
)
def test_invalid_overrides_exit_nonzero_and_write_nothing(override, fragment, tmp_path, capsys):
    assert generator.main([override, "-o", str(tmp_path / "out" / "wf.yaml")]) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_script_entry_point_reports_a_typo(tmp_path):
    out = tmp_path / "wf.yaml"
    proc = _python(["scripts/generate_osmo_sweep.py", "training.lrr=1", "-o", str(out)])
    assert proc.returncode == 2
    assert "training.lrr" in proc.stderr and not out.exists()


def test_large_sweep_is_split_into_numbered_files(tmp_path, capsys):
    out = tmp_path / "sweep.yaml"
    args = ["training.seed=range(3)", "osmo.max_tasks_per_workflow=2"]
    assert generator.main([*args, "-o", str(out)]) == 0
    parts = [tmp_path / "sweep-part-1-of-2.yaml", tmp_path / "sweep-part-2-of-2.yaml"]
    assert sorted(tmp_path.iterdir()) == parts
    docs = [yaml.safe_load(p.read_text())["workflow"] for p in parts]
    assert [d["name"] for d in docs] == [
        "act-hydra-sweep-part-1-of-2",
        "act-hydra-sweep-part-2-of-2",
    ]
    assert [[t["name"] for t in d["tasks"]] for d in docs] == [["run-000", "run-001"], ["run-002"]]
    assert main_check([str(p) for p in parts]) == 0

    refused = tmp_path / "refused"
    assert (
        generator.main([*args, "osmo.split_large_sweeps=false", "-o", str(refused / "sweep.yaml")])
        == 2
    )
    err = capsys.readouterr().err
    assert "osmo.max_tasks_per_workflow" in err and "osmo.split_large_sweeps=true" in err
    assert not refused.exists()


def test_submit_without_the_osmo_cli_says_how_to_submit(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    out = tmp_path / "wf.yaml"
    assert generator.main(["training.lr=1e-4", "-o", str(out), "--submit", "--pool", "p1"]) == 127
    err = capsys.readouterr().err
    assert "osmo CLI is not installed" in err
    assert f"osmo workflow submit {out} --pool p1" in err
    assert out.exists()


def test_submit_calls_the_osmo_cli(tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "osmo.log"
    fake = bin_dir / "osmo"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "wf.yaml"
    assert generator.main(["training.lr=1e-4", "-o", str(out), "--submit", "--pool", "p1"]) == 0
    assert log.read_text() == f"workflow submit {out} --pool p1\n"


def test_submit_needs_a_pool():
    with pytest.raises(SystemExit) as exc:
        generator.main(["--submit"])
    assert exc.value.code == 2


def test_check_reports_a_broken_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SWEEP_FILE.read_text().replace('name: "run-001"', 'name: "run-0.01"'))
    assert generator.main(["--check", str(bad)]) == EXIT_BAD_INPUT
    assert "[V-S1]" in capsys.readouterr().out


# ----------------------------------------------------------------------------- workflow shapes


def _jobs(n: int) -> list[Job]:
    return [
        Job(
            overrides=(f"training.seed={i}",),
            args=(f"training.seed={i}", "logger=wandb"),
            wandb=True,
            wandb_online=True,
        )
        for i in range(n)
    ]


def _osmo(**settings) -> OsmoConfig:
    return OsmoConfig(**{"output_url": "s3://bucket/act-sweeps", **settings})


def test_torchrun_task_shape_validates():
    osmo = _osmo(gpus_per_task=4)
    doc = build_workflow(osmo, _jobs(2))
    text = to_yaml(doc)
    assert validate_workflow_text(text) == []
    task = doc["workflow"]["tasks"][1]
    # torchrun behind act_hydra.launch, which keeps a preempted run's exit code 75
    assert task["command"] == ["python"]
    assert task["args"][:6] == [
        "-m",
        "act_hydra.launch",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=4",
        "--",
    ]
    assert doc["workflow"]["resources"]["default"]["gpu"] == 4
    assert task["outputs"] == [{"url": "s3://bucket/act-sweeps/{{workflow_id}}/run-001/"}]


def test_multi_node_runs_become_groups_with_one_lead():
    osmo = _osmo(nodes_per_run=2, gpus_per_task=8, dataset_url="s3://bucket/episodes")
    doc = build_workflow(osmo, _jobs(2))
    assert validate_workflow_text(to_yaml(doc)) == []
    groups = doc["workflow"]["groups"]
    assert [g["name"] for g in groups] == ["run-000", "run-001"]
    lead, worker = groups[1]["tasks"]
    assert (lead["name"], lead["lead"], "lead" in worker) == ("run-001-node-0", True, False)
    for rank, task in enumerate((lead, worker)):
        assert task["args"][:8] == [
            "-m",
            "act_hydra.launch",
            "--nnodes=2",
            "--nproc_per_node=8",
            f"--node_rank={rank}",
            "--master_addr={{host:run-001-node-0}}",
            "--master_port=29500",
            "--",
        ]
        assert task["args"][-1] == "hydra.run.dir={{output}}/run-001"
        assert task["inputs"] == [{"url": "s3://bucket/episodes"}]
    assert "outputs" in lead and "outputs" not in worker  # only the lead uploads


def test_multi_node_sweeps_count_every_node_against_the_task_limit():
    osmo = _osmo(nodes_per_run=2, max_tasks_per_workflow=4)
    texts = render_workflows(osmo, _jobs(3))
    assert len(texts) == 2  # 2 runs x 2 nodes fill the first workflow
    assert all(validate_workflow_text(t, max_tasks=4) == [] for t in texts)


def test_dataset_url_points_the_jobs_at_the_input(tmp_path):
    plan = expand_sweep(
        [
            "data=aloha_hdf5",
            "osmo.dataset_url=s3://bucket/cube",
            "osmo.output_url=s3://bucket/runs/",
        ]
    )
    task = build_workflow(plan.osmo, plan.jobs)["workflow"]["tasks"][0]
    assert "data.dataset_dir={{input:0}}" in task["args"]
    assert task["inputs"] == [{"url": "s3://bucket/cube"}]
    assert task["outputs"] == [{"url": "s3://bucket/runs/{{workflow_id}}/run-000/"}]
    with pytest.raises(ValueError, match="data=aloha_hdf5"):
        expand_sweep(["osmo.dataset_url=s3://bucket/cube"])  # synthetic data + a dataset input


def test_a_job_choosing_its_logger_keeps_it_and_hydra_settings_are_forwarded():
    plan = expand_sweep(["logger=none", "hydra.verbose=true", "hydra.sweep.dir=/tmp/x"])
    task = build_workflow(plan.osmo, plan.jobs)["workflow"]["tasks"][0]
    assert task["args"][2:] == [
        "logger=none",
        "hydra.verbose=true",
        "hydra.mode=RUN",
        "hydra.run.dir={{output}}/run-000",
    ]
    assert "credentials" not in task and "WANDB_RUN_GROUP" not in task["environment"]


def test_osmo_settings_are_the_generators_own_config_not_the_training_schema():
    assert "osmo" not in compose_train_config([])  # runs never carry the cluster settings
    plan = expand_sweep(["osmo=default", "osmo.cpu=4", "training.lr=1e-4"])
    assert plan.osmo.cpu == 4 and plan.osmo.image == OsmoConfig().image
    assert [list(job.overrides) for job in plan.jobs] == [["training.lr=0.0001"]]  # as Hydra


def test_osmo_settings_are_checked_with_key_rule_and_fix():
    problems = check_osmo_settings(
        OsmoConfig(
            gpu=2, gpus_per_task=4, workflow_name="a.b", output_url="http://x", exec_timeout="10h5m"
        )
    )
    text = "\n".join(problems)
    for fragment in (
        "osmo.gpu=2",
        "pass osmo.gpu=4",
        "osmo.workflow_name='a.b'",
        "osmo.output_url='http://x'",
        "osmo.exec_timeout='10h5m'",
    ):
        assert fragment in text
    assert check_osmo_settings(OsmoConfig()) == []
