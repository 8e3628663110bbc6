"""W&B tracking (logger=wandb), checked against what real offline runs wrote.

No mock of wandb and no network: runs use mode=offline and are read back from their
run-*.wandb transaction log with tests/wandb_offline.py. wandb's own files (artifact staging,
settings, cache) go to a per-module temporary folder, never to ~.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from act_hydra.config import LoggerConfig
from act_hydra.validate import ConfigError
from act_hydra.wandb_logger import WandbLogger, _group, _name, artifact_name, check_wandb_ready
from tests.helpers import ROOT, TINY
from tests.wandb_offline import find_offline_run_files, read_offline_run

# wandb 0.31 checks the key's format (40+ word characters after an optional "<prefix>-"), also
# offline; this one passes and is easy to grep for.
FAKE_KEY = "local-0123456789abcdef0123456789abcdef01234567"
FAKE_SECRET = FAKE_KEY.split("-", 1)[1]
OSMO_COMMAND = "osmo credential set wandb --type GENERIC --payload wandb_api_key=<key>"

RESOLVED = {
    "training": {"lr": 3e-4, "kl_weight": 10.0, "batch_size": 2},
    "model": {"dim_model": 32, "chunk_size": 5},
    "logger": {"backend": "wandb"},
}
TRAIN_ROWS = [
    {
        "step": s,
        "train/loss": 1.0 / (s + 1),
        "train/l1": 0.5 / (s + 1),
        "train/kl": 0.01 * s,
        "lr": 3e-4,
        "lr_backbone": 1e-5,
        "grad_norm": 2.0 + s,
        "samples_per_s": 100.0 + s,
    }
    for s in range(4)
]
VAL_ROWS = [{"step": s, "val/loss": 0.9 - 0.1 * s, "val/l1": 0.4, "val/kl": 0.02} for s in (1, 3)]


def offline(**kwargs) -> LoggerConfig:
    return LoggerConfig(backend="wandb", mode="offline", **kwargs)


def files_containing(root: Path, needles: list[str]) -> list[str]:
    hits = []
    for path in Path(root).rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path}: {n}" for n in needles if n.encode() in data]
    return hits


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for a child process with no W&B credential anywhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "WANDB_API_KEY",
            "WANDB_IDENTITY_TOKEN_FILE",
            "NETRC",
            "WANDB_CONFIG_DIR",
            "WANDB_RUN_GROUP",
            "WANDB_BASE_URL",
            "RANK",
        )
    }
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        WANDB_DATA_DIR=str(tmp / "wandb-data"),
        WANDB_CACHE_DIR=str(tmp / "wandb-cache"),
        WANDB_SILENT="true",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wandb_home(tmp_path_factory):
    """wandb's own folders, HOME included, point into a temporary folder for this module."""
    home = tmp_path_factory.mktemp("wandb_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        for var, sub in (
            ("WANDB_DATA_DIR", "data"),
            ("WANDB_CACHE_DIR", "cache"),
            ("WANDB_CONFIG_DIR", "config"),
            ("WANDB_ARTIFACT_DIR", "artifacts"),
        ):
            mp.setenv(var, str(home / sub))
        mp.setenv("WANDB_SILENT", "true")
        for var in ("WANDB_RUN_GROUP", "WANDB_BASE_URL", "RANK", "NETRC"):
            mp.delenv(var, raising=False)
        yield home


@pytest.fixture(scope="module")
def shared_run(wandb_home, tmp_path_factory):
    """One offline run shared by several tests: logged rows, summary, artifact, double finish.

    The fake key and a workflow group are in the environment, as on an OSMO task.
    """
    run_dir = tmp_path_factory.mktemp("runs") / "my-run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_API_KEY", FAKE_KEY)
        mp.setenv("WANDB_RUN_GROUP", "osmo-workflow-42")
        logger = WandbLogger(
            offline(tags=["t1", "t2"], notes="a note", log_model=True), run_dir, RESOLVED
        )
        assert logger.id, "wandb.init failed in offline mode"
        for row in TRAIN_ROWS:
            logger.log(row)
            val = [v for v in VAL_ROWS if v["step"] == row["step"]]
            if val:
                logger.log(val[0])
        ckpt = run_dir / "checkpoints"
        ckpt.mkdir()
        for name in ("best.pt", "last.pt"):
            (ckpt / name).write_bytes(b"weights of " + name.encode())
        logger.set_summary({"best/val_loss": 0.6, "best/val_step": 3, "status": "completed"})
        logger.log_checkpoints([ckpt / "best.pt", ckpt / "last.pt", ckpt / "missing.pt"])
        logger.finish(0)
        logger.finish(0)  # idempotent
        logger.log({"step": 99, "train/loss": 1.0})  # after finish: ignored, no exception
        logger.set_summary({"late": 1})
    return logger, run_dir, read_offline_run(run_dir)


# ----------------------------------------------------------------------------- the shared run


def test_offline_run_holds_config_and_git_revision(shared_run):
    logger, run_dir, run = shared_run
    assert run.run_id == logger.id
    assert run.config["training"] == RESOLVED["training"]
    assert run.config["model"] == RESOLVED["model"]
    assert "hydra" not in run.config  # not a Hydra run: nothing to add
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if rev.returncode == 0:
        assert run.config["git_rev"] == rev.stdout.strip()
    # wandb wrote under the run directory
    assert run.path.is_relative_to(run_dir / "wandb")


def test_offline_run_history_at_steps(shared_run):
    _, _, run = shared_run
    for row in TRAIN_ROWS:
        got = run.history_at(row["step"])
        for key, value in row.items():
            if key != "step":
                assert got[key] == pytest.approx(value), (row["step"], key)
    for row in VAL_ROWS:
        got = run.history_at(row["step"])
        assert got["val/loss"] == pytest.approx(row["val/loss"])
        assert {"val/l1", "val/kl"} <= set(got)
    assert "val/loss" not in run.history_at(0) and "val/loss" not in run.history_at(2)
    assert max(r["_step"] for r in run.history) == 3  # the row logged after finish is not there


def test_offline_run_group_name_and_tags(shared_run):
    _, run_dir, run = shared_run
    assert run.group == "osmo-workflow-42"  # from WANDB_RUN_GROUP
    assert run.name == run_dir.name  # not a multirun: the run dir's name
    assert run.project == "act-hydra"
    assert run.job_type == "train"
    assert run.tags == ["t1", "t2"] and run.notes == "a note"


def test_offline_run_summary_artifact_and_single_exit(shared_run):
    _, _, run = shared_run
    assert run.summary["best/val_loss"] == 0.6 and run.summary["best/val_step"] == 3
    assert run.summary["status"] == "completed"
    assert "late" not in run.summary
    [art] = run.artifacts
    assert art["type"] == "model" and art["files"] == ["best.pt", "last.pt"]
    assert art["name"] == artifact_name(f"model-{run.run_id}")
    assert run.record_types.count("exit") == 1 and run.exit_code == 0


def test_api_key_is_in_no_file_under_the_run_dir(shared_run):
    _, run_dir, _ = shared_run
    assert len(list(run_dir.rglob("*"))) > 5  # wandb did write its files there
    assert files_containing(run_dir, [FAKE_KEY, FAKE_SECRET]) == []


def test_artifact_names_are_legal():
    assert artifact_name("model-ab12:cd/ef gh") == "model-ab12-cd-ef-gh"
    assert artifact_name("::") == "model"


# ----------------------------------------------------------------------------- resume, failures


def test_resume_with_the_same_id_reuses_it(wandb_home, tmp_path):
    """Offline, wandb cannot merge into the earlier run (wandb#2423): a second offline run with
    the same id is written next to the first; `wandb sync` uploads both under that one id."""
    first = WandbLogger(offline(), tmp_path, RESOLVED)
    first.log({"step": 0, "train/loss": 1.0})
    first.finish()
    second = WandbLogger(offline(), tmp_path, RESOLVED, run_id=first.id)
    assert second.id == first.id
    second.log({"step": 1, "train/loss": 0.5})
    second.finish()
    runs = [read_offline_run(p) for p in find_offline_run_files(tmp_path)]
    assert [r.run_id for r in runs] == [first.id, first.id]
    assert [[h["_step"] for h in r.history] for r in runs] == [[0], [1]]


def test_init_failure_is_a_warning_and_the_logger_stays_usable(wandb_home, tmp_path, caplog):
    # A real wandb.init failure: wandb rejects this id (as a corrupt checkpoint could hold).
    with caplog.at_level(logging.WARNING, logger="act_hydra.wandb_logger"):
        logger = WandbLogger(offline(log_model=True), tmp_path, RESOLVED, run_id="bad:id/x")
    assert logger.id is None and logger.run is None
    assert "wandb.init failed" in caplog.text and "Training goes on" in caplog.text
    logger.log({"step": 0, "train/loss": 1.0})
    logger.set_summary({"status": "completed"})
    logger.log_checkpoints([tmp_path / "best.pt"])
    logger.finish(1)
    logger.finish(1)


def test_online_init_without_credential_is_a_warning_not_an_exception(tmp_path):
    """Straight to WandbLogger (skipping check_wandb_ready): wandb.init raises, we go on."""
    code = textwrap.dedent(f"""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        from act_hydra.config import LoggerConfig
        from act_hydra.wandb_logger import WandbLogger
        logger = WandbLogger(LoggerConfig(backend="wandb", mode="online"), {str(tmp_path)!r}, {{}})
        logger.log({{"step": 0, "train/loss": 1.0}})
        logger.finish()
        print("id", logger.id)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "id None" in proc.stdout
    assert "WARNING W&B is off for this run: wandb.init failed" in proc.stderr


def test_unreachable_server_is_a_warning(tmp_path):
    """A real network failure, kept local: the server URL points at a closed port."""
    code = textwrap.dedent(f"""
        import logging
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        from act_hydra.config import LoggerConfig
        from act_hydra.wandb_logger import WandbLogger
        logger = WandbLogger(LoggerConfig(backend="wandb", mode="online"), {str(tmp_path)!r}, {{}})
        logger.finish()
        print("id", logger.id)
    """)
    env = clean_env(
        tmp_path,
        WANDB_API_KEY=FAKE_KEY,
        WANDB_BASE_URL="http://127.0.0.1:9",
        WANDB_INIT_TIMEOUT="2",
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "id None" in proc.stdout and "wandb.init failed" in proc.stderr
    assert "127.0.0.1:9" in proc.stderr  # it did try the (closed) server
    assert FAKE_SECRET not in proc.stdout + proc.stderr
    assert files_containing(tmp_path, [FAKE_SECRET]) == []


# ----------------------------------------------------------------------------- credentials


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    for var in (
        "WANDB_API_KEY",
        "WANDB_IDENTITY_TOKEN_FILE",
        "NETRC",
        "WANDB_CONFIG_DIR",
        "WANDB_BASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    return home


def test_online_without_credential_fails_with_the_fixes(no_credentials):
    with pytest.raises(ConfigError) as err:
        check_wandb_ready(LoggerConfig(backend="wandb", mode="online"))
    message = str(err.value)
    for needle in ("WANDB_API_KEY", OSMO_COMMAND, "`wandb login`", "logger.mode=offline"):
        assert needle in message


def test_credential_sources_and_modes_that_need_none(no_credentials, monkeypatch):
    check_wandb_ready(LoggerConfig(backend="none", mode="online"))
    check_wandb_ready(LoggerConfig(backend="wandb", mode="offline"))
    check_wandb_ready(LoggerConfig(backend="wandb", mode="disabled"))
    online = LoggerConfig(backend="wandb", mode="online")
    # what `wandb login` writes
    netrc = no_credentials / ".netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    check_wandb_ready(online)
    netrc.write_text(f"machine other.host\n  login user\n  password {FAKE_KEY}\n")
    with pytest.raises(ConfigError):
        check_wandb_ready(online)
    monkeypatch.setenv("WANDB_BASE_URL", "https://other.host")  # a self-hosted server
    check_wandb_ready(online)
    monkeypatch.delenv("WANDB_BASE_URL")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    check_wandb_ready(online)


def test_malformed_key_fails_without_echoing_it(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "tooshort-secretvalue")
    with pytest.raises(ConfigError) as err:
        check_wandb_ready(LoggerConfig(backend="wandb", mode="online"))
    assert "WANDB_API_KEY" in str(err.value) and "secretvalue" not in str(err.value)


# ----------------------------------------------------------------------------- imports, ranks


def test_importing_the_module_does_not_import_wandb():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import act_hydra.wandb_logger, act_hydra.tracking, sys; "
            "assert 'wandb' not in sys.modules, 'wandb imported'",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_disabled_mode_and_nonzero_ranks_stay_inert_without_importing_wandb(tmp_path):
    code = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from act_hydra.config import LoggerConfig
        from act_hydra.wandb_logger import WandbLogger
        for mode, rank in (("disabled", "0"), ("offline", "1")):
            os.environ["RANK"] = rank
            logger = WandbLogger(LoggerConfig(backend="wandb", mode=mode, log_model=True),
                                 Path({str(tmp_path)!r}), {{}})
            logger.log({{"step": 0, "train/loss": 1.0}})
            logger.set_summary({{"a": 1}})
            logger.log_checkpoints([])
            logger.finish()
            assert logger.id is None, (mode, rank)
        assert "wandb" not in sys.modules, "wandb imported"
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "wandb").exists()


# ----------------------------------------------------------------------------- group and name


def test_group_and_name_in_a_multirun(compose_train, monkeypatch, tmp_path):
    from hydra.types import RunMode
    from omegaconf import OmegaConf, open_dict

    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)
    job = ["model.dim_model=32", "training.lr=1e-05", "training.kl_weight=1"]
    hc = compose_train(job, return_hydra_config=True).hydra
    sweep_dir = tmp_path / "multirun" / "2025-01-31" / "10-20-30"
    sweep_dir.mkdir(parents=True)
    with open_dict(hc):
        hc.mode = RunMode.MULTIRUN
        hc.sweep.dir = str(sweep_dir)
        hc.overrides.task = job
    run_dir = sweep_dir / "0"
    cfg = LoggerConfig(backend="wandb")
    assert _group(cfg, hc) == "2025-01-31_10-20-30"  # Hydra's default sweep dir keeps its date
    # without the sweep's multirun.yaml the name is all of the job's overrides
    assert _name(cfg, hc, run_dir) == ",".join(job)
    # with it, only the swept keys (what Hydra saved for `-m model.dim_model=32 training.lr=...`)
    OmegaConf.save(
        {
            "hydra": {
                "overrides": {
                    "task": [
                        "model.dim_model=32",
                        "training.lr=1e-05,1e-4",
                        "training.kl_weight=1,10",
                    ]
                }
            }
        },
        sweep_dir / "multirun.yaml",
    )
    assert _name(cfg, hc, run_dir) == "training.lr=1e-05,training.kl_weight=1"
    # a sweep preset's axes count too, unless the command line pins them to one value
    OmegaConf.save(
        {"hydra": {"overrides": {"task": ["training.lr=1e-05", "sweep=default"]}}},
        sweep_dir / "multirun.yaml",
    )
    with open_dict(hc):
        hc.sweeper.params = {"training.lr": "1e-5,5e-5", "training.kl_weight": "1,10"}
    assert _name(cfg, hc, run_dir) == "training.kl_weight=1"

    with open_dict(hc):
        hc.sweep.dir = "/sweeps/lr_grid"
    assert _group(cfg, hc) == "lr_grid"
    monkeypatch.setenv("WANDB_RUN_GROUP", "wf-7")
    assert _group(cfg, hc) == "wf-7"
    explicit = LoggerConfig(backend="wandb", group="g", name="n")
    assert (_group(explicit, hc), _name(explicit, hc, run_dir)) == ("g", "n")
    # a single run: no group unless one is given, named after its run dir
    monkeypatch.delenv("WANDB_RUN_GROUP")
    assert _group(cfg, None) is None and _name(cfg, None, Path("/out/run-3")) == "run-3"


# ----------------------------------------------------------------------------- the real CLI


def _cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = clean_env(tmp_path, **extra)
    if "PYTHONPATH" not in extra:
        env.pop("PYTHONPATH")
    return env


def _cli(tmp_path: Path, args: list[str], **extra_env: str) -> subprocess.CompletedProcess:
    """The real CLI with exactly this environment (conftest's run_cli keeps os.environ)."""
    env = {**_cli_env(tmp_path, **extra_env), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "act_hydra.train", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _train(tmp_path: Path, run_dir: Path, *overrides: str, **extra_env: str):
    return _cli(tmp_path, [*TINY, *overrides, f"hydra.run.dir={run_dir}"], **extra_env)


def test_cli_offline_run_then_resume(tmp_path):
    """A real training with logger=wandb offline, killed-and-resumed style: 2 steps, then the
    same run dir continued to 4. Both offline runs carry one id; together their history holds
    every row of metrics.jsonl at its step; the fake key is in no file of the run dir."""
    run_dir = tmp_path / "run"
    overrides = [
        "logger=wandb",
        "logger.mode=offline",
        "scheduler=cosine",
        "scheduler.warmup_steps=1",
    ]
    env = {"WANDB_API_KEY": FAKE_KEY, "WANDB_RUN_GROUP": "wf-1"}
    procs = [
        _train(tmp_path, run_dir, *overrides, f"training.num_steps={n}", **env) for n in (2, 4)
    ]
    for proc in procs:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert FAKE_SECRET not in proc.stdout + proc.stderr
    first, second = [read_offline_run(p) for p in find_offline_run_files(run_dir)]
    assert first.run_id and second.run_id == first.run_id  # resume keeps the W&B run id
    assert {h["_step"] for h in first.history} == {0, 1}
    assert {h["_step"] for h in second.history} == {2, 3}
    for run in (first, second):
        assert run.group == "wf-1" and run.name == "run" and run.exit_code == 0

    assert second.config["training"]["num_steps"] == 4
    assert second.config["model"]["dim_model"] == 32
    assert second.config["scheduler"]["name"] == "cosine"
    hydra_info = second.config["hydra"]
    assert hydra_info["choices"]["logger"] == "wandb"
    assert hydra_info["choices"]["scheduler"] == "cosine"
    assert "logger.mode=offline" in hydra_info["overrides"]
    assert "training.num_steps=4" in hydra_info["overrides"]
    assert Path(hydra_info["output_dir"]) == run_dir

    # every row of metrics.jsonl is in the W&B history at its step, with the same values
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {
        "train/loss",
        "train/l1",
        "train/kl",
        "lr",
        "lr_backbone",
        "grad_norm",
        "val/loss",
        "val/l1",
        "val/kl",
    } <= set().union(*metrics)
    assert sorted({row["step"] for row in metrics}) == [0, 1, 2, 3]
    for row in metrics:
        got = {**first.history_at(row["step"]), **second.history_at(row["step"])}
        for key, value in row.items():
            if key != "step":
                assert got[key] == pytest.approx(value), (row["step"], key)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best_val_loss"] is not None
    assert summary["best_val_loss"] in (
        second.summary.get("best_val_loss"),
        second.summary.get("best/val_loss"),
    )
    assert files_containing(run_dir, [FAKE_KEY, FAKE_SECRET]) == []

    # act-eval adds its results to the same W&B run (same id), in the run's own mode.
    env = {**_cli_env(tmp_path, WANDB_API_KEY=FAKE_KEY), "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "act_hydra.eval",
            f"checkpoint={run_dir}",
            "eval.num_episodes=2",
            "eval.num_videos=0",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = read_offline_run(find_offline_run_files(run_dir)[-1])
    assert evaluated.run_id == first.run_id
    results = json.loads(next((run_dir / "eval").glob("*/eval_results.json")).read_text())
    assert evaluated.summary["eval/success_rate"] == results["success_rate"]
    assert evaluated.summary["eval/num_episodes"] == 2


def test_cli_online_without_credential_fails_before_training(tmp_path):
    run_dir = tmp_path / "run"
    proc = _cli(tmp_path, [*TINY, "logger=wandb", f"hydra.run.dir={run_dir}"])
    assert proc.returncode == 2, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for needle in ("WANDB_API_KEY", OSMO_COMMAND, "`wandb login`", "logger.mode=offline"):
        assert needle in out
    assert not (run_dir / "metrics.jsonl").exists() and not (run_dir / "wandb").exists()


def test_cli_multirun_groups_jobs_and_names_them_by_overrides(tmp_path):
    """Three jobs on two reused loky workers: each job gets its own run, all in one group."""
    sweep_dir = tmp_path / "lr_sweep"
    proc = _cli(
        tmp_path,
        [
            "--multirun",
            *TINY,
            "logger=wandb",
            "logger.mode=offline",
            "training.lr=1e-4,2e-4,3e-4",
            "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={sweep_dir}",
        ],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [read_offline_run(sweep_dir / str(i)) for i in range(3)]
    assert {r.group for r in runs} == {"lr_sweep"}
    # named after the swept key only (Hydra writes the swept values in its own float format)
    assert [r.name for r in runs] == [f"training.lr={lr}" for lr in ("0.0001", "0.0002", "0.0003")]
    assert len({r.run_id for r in runs}) == 3
    assert [r.config["training"]["lr"] for r in runs] == [1e-4, 2e-4, 3e-4]
    assert all(r.exit_code == 0 and r.history for r in runs)


def test_cli_with_logger_none_never_imports_wandb(tmp_path):
    """A stand-in `wandb` package first on the path records any import of it in the training
    process. The control shows the stand-in does shadow the real wandb there."""
    fake = tmp_path / "fake" / "wandb"
    fake.mkdir(parents=True)
    marker = tmp_path / "wandb-imported"
    (fake / "__init__.py").write_text(
        f"open({str(marker)!r}, 'a').write('imported\\n')\n"
        "raise ImportError('stand-in wandb for tests/test_wandb.py')\n"
    )
    proc = _train(tmp_path, tmp_path / "run", "logger=none", PYTHONPATH=str(tmp_path / "fake"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not marker.exists(), "logger=none imported wandb"
    # control: the same environment and entry point, importing wandb as WandbLogger does
    control = _cli_env(tmp_path, PYTHONPATH=str(tmp_path / "fake"))
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from act_hydra.config import LoggerConfig\n"
            "from act_hydra.wandb_logger import WandbLogger\n"
            "WandbLogger(LoggerConfig(backend='wandb', mode='offline'), "
            f"{str(tmp_path / 'run2')!r}, {{}})",
        ],
        cwd=ROOT,
        env=control,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert marker.exists()
