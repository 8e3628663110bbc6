"""Weights & Biases tracking (logger=wandb). wandb is imported only inside this module's
functions, so with logger=none it is never imported.

- `check_wandb_ready(cfg)` runs before any training: logger.mode=online with no credential
  fails with a ConfigError that says how to provide one. It looks only at the environment and
  wandb's own login store; it makes no network call.
- `WandbLogger` wraps one run. `wandb.init` gets `dir=<run dir>` (files land in
  `<run dir>/wandb/`), the resolved config plus Hydra's choices, the job's overrides, the output
  dir and the git revision. Group and name follow the sweep: see `_group` and `_name`.
- W&B never stops training: if wandb.init fails (network, quota, bad entity) that is a warning
  and the logger turns inert; a failing log/summary/artifact call is a warning too (once, then
  debug). `finish()` is idempotent and waits until the run's files are complete.
- logger.mode=disabled gives an inert logger without importing wandb.
- Credentials come only from `WANDB_API_KEY` (an OSMO credential provides it) or wandb's own
  login (`wandb login`); nothing here stores, logs or prints the key.
- Only rank 0 of a torchrun job talks to W&B; other ranks get an inert logger.
"""

from __future__ import annotations

import configparser
import logging
import netrc
import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from act_hydra.config import LoggerConfig
from act_hydra.validate import ConfigError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.wandb.ai"
OSMO_CREDENTIAL_COMMAND = "osmo credential set wandb --type GENERIC --payload wandb_api_key=<key>"


# ----------------------------------------------------------------------------- credentials


def _wandb_settings_files() -> list[Path]:
    """wandb's global settings file, then the local one (./wandb/settings)."""
    config_dir = os.environ.get("WANDB_CONFIG_DIR")
    global_dir = Path(config_dir) if config_dir else Path("~/.config/wandb").expanduser()
    return [global_dir / "settings", Path.cwd() / "wandb" / "settings"]


def _read_wandb_settings() -> dict[str, str]:
    values: dict[str, str] = {}
    for path in _wandb_settings_files():
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        if parser.has_section("default"):
            values.update(parser["default"])
    return values


def _netrc_path() -> Path | None:
    if os.environ.get("NETRC"):
        return Path(os.environ["NETRC"]).expanduser()
    for name in ("~/.netrc", "~/_netrc"):
        path = Path(name).expanduser()
        if path.exists():
            return path
    return None


def _credential_source() -> str | None:
    """Where wandb would find a credential, without reading it out or calling the network.

    The same sources wandb 0.31 checks (wandb/sdk/lib/wbauth/authenticate.py): the
    WANDB_API_KEY / WANDB_IDENTITY_TOKEN_FILE environment variables, a .netrc entry for the
    W&B host (what `wandb login` writes), and an api_key in wandb's settings files.
    """
    if os.environ.get("WANDB_API_KEY"):
        return "WANDB_API_KEY"
    if os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return "WANDB_IDENTITY_TOKEN_FILE"
    settings = _read_wandb_settings()
    base_url = os.environ.get("WANDB_BASE_URL") or settings.get("base_url") or DEFAULT_BASE_URL
    path = _netrc_path()
    if path is not None:
        try:
            entry = netrc.netrc(str(path)).authenticators(urlsplit(base_url).netloc)
        except (netrc.NetrcParseError, OSError):
            entry = None
        if entry and entry[2]:
            return str(path)
    if settings.get("api_key"):
        return "wandb settings"
    return None


def _api_key_format_problem() -> str | None:
    """wandb's own offline format check of WANDB_API_KEY (private API: best effort)."""
    key = os.environ.get("WANDB_API_KEY")
    if not key:
        return None
    try:
        from wandb.sdk.lib.wbauth.validation import check_api_key
    except Exception:  # noqa: BLE001  (an older or newer wandb without this helper)
        return None
    return check_api_key(key)


def _settings_problems(cfg: LoggerConfig) -> list[tuple[str, str]]:
    """(key, wandb's own message) for each setting wandb.Settings rejects (no network)."""
    import wandb

    problems = []
    for key, settings in (
        ("logger.project", {"project": cfg.project}),
        ("logger.tags", {"run_tags": tuple(cfg.tags)}),
    ):
        try:
            wandb.Settings(**settings)
        except Exception as err:  # noqa: BLE001  (UsageError or pydantic's ValidationError)
            lines = str(err).splitlines()
            reason = next((ln for ln in lines if "Value error," in ln), lines[0] if lines else "")
            problems.append((key, reason.split("Value error,")[-1].split(" [type=")[0].strip()))
    return problems


def check_wandb_ready(cfg: LoggerConfig) -> None:
    """Fail before training when logger=wandb cannot work; never touches the network."""
    if cfg.backend != "wandb" or cfg.mode == "disabled":
        return
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        raise ConfigError(
            "logger=wandb needs the wandb package, which is not installed. Fix: pip install "
            "wandb, or pass logger=none (metrics.jsonl is written either way)."
        )
    for key, problem in _settings_problems(cfg):
        raise ConfigError(
            f"{key} is invalid for W&B: {problem.rstrip('.')}. Fix: pass a valid {key} (or "
            "logger=none); wandb would refuse it at start-up and the run would go untracked."
        )
    if cfg.mode != "online":
        return
    if _credential_source() is None:
        raise ConfigError(
            "logger.mode='online' needs a W&B API key and none was found: WANDB_API_KEY is not "
            "set and wandb has no stored login (~/.netrc or wandb settings). Fix: export "
            "WANDB_API_KEY=<key> (on OSMO, store it once with `"
            + OSMO_CREDENTIAL_COMMAND
            + "`; the workflow maps it to WANDB_API_KEY), or run `wandb login` once on this "
            "machine, or log locally with logger.mode=offline (upload later with `wandb sync "
            "<run dir>/wandb/offline-run-*`) or turn W&B off with logger.mode=disabled."
        )
    problem = _api_key_format_problem()
    if problem:
        raise ConfigError(
            f"WANDB_API_KEY is set but wandb rejects its format: {problem} Fix: export the key "
            "shown at https://wandb.ai/authorize (on OSMO: `"
            + OSMO_CREDENTIAL_COMMAND
            + "`), or pass logger.mode=offline."
        )


# ----------------------------------------------------------------------------- run metadata


def _hydra_config():
    """HydraConfig of the running job, or None outside a Hydra run (tests, scripts)."""
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:
        return None
    return HydraConfig.get() if HydraConfig.initialized() else None


def _is_multirun(hc) -> bool:
    from hydra.types import RunMode

    return hc is not None and hc.mode == RunMode.MULTIRUN


def _hydra_info(hc) -> dict[str, Any]:
    if hc is None:
        return {}
    from omegaconf import OmegaConf

    return {
        "choices": OmegaConf.to_container(hc.runtime.choices, resolve=True),
        "overrides": list(hc.overrides.task),
        "output_dir": hc.runtime.output_dir,
    }


def _sweep_group(sweep_dir: str) -> str:
    """The sweep folder's name; Hydra's default `multirun/<date>/<time>` keeps the date."""
    path = Path(sweep_dir)
    if re.fullmatch(r"\d\d-\d\d-\d\d", path.name) and re.fullmatch(
        r"\d{4}-\d\d-\d\d", path.parent.name
    ):
        return f"{path.parent.name}_{path.name}"
    return path.name


def _group(cfg: LoggerConfig, hc) -> str | None:
    if cfg.group:
        return cfg.group
    if os.environ.get("WANDB_RUN_GROUP"):  # an OSMO workflow sets it to the workflow id
        return os.environ["WANDB_RUN_GROUP"]
    if _is_multirun(hc):
        return _sweep_group(hc.sweep.dir)
    return None


def _swept_keys(hc) -> set[str]:
    """Keys that take several values in this sweep: a sweep override on the command line (read
    back from the multirun.yaml Hydra saves before launching jobs) or an axis of
    hydra.sweeper.params that the command line did not pin to one value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    parser = OverridesParser.create()
    swept: dict[str, bool] = {}
    try:
        params = OmegaConf.to_container(hc.sweeper.params, resolve=False) or {}
        for key, value in params.items():
            [o] = parser.parse_overrides([f"{key}={value}"])
            swept[o.key_or_group] = o.is_sweep_override()
    except Exception:  # noqa: BLE001  (a sweeper without params)
        pass
    try:
        saved = OmegaConf.load(Path(hc.sweep.dir) / "multirun.yaml")
        for o in parser.parse_overrides(list(saved.hydra.overrides.task)):
            swept[o.key_or_group] = o.is_sweep_override()  # the command line replaces an axis
    except Exception:  # noqa: BLE001  (no multirun.yaml: another sweeper)
        pass
    return {key for key, is_swept in swept.items() if is_swept}


def _name(cfg: LoggerConfig, hc, run_dir: Path) -> str:
    if cfg.name:
        return cfg.name
    if _is_multirun(hc) and len(hc.overrides.task) > 0:
        # Named after the values this job sweeps (`training.lr=1e-05,training.kl_weight=1`);
        # the overrides shared by every job of the sweep would only make names long.
        from hydra.core.override_parser.overrides_parser import OverridesParser

        task = list(hc.overrides.task)
        try:
            keys = _swept_keys(hc)
            parsed = OverridesParser.create().parse_overrides(task)
            swept = [line for line, o in zip(task, parsed) if o.key_or_group in keys]
        except Exception:  # noqa: BLE001  (a name is not worth failing over)
            swept = []
        return ",".join(swept or task)
    return run_dir.name


def git_revision() -> str | None:
    """HEAD of the repository holding this package, or None (no git, not a checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", rev) else None


def artifact_name(text: str) -> str:
    """A legal W&B artifact name: letters, digits, '-', '_' and '.' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"


def _scrub(text: str) -> str:
    """Never echo the API key, even if a library error message contains it."""
    key = os.environ.get("WANDB_API_KEY")
    return text.replace(key, "<WANDB_API_KEY>") if key else text


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


# ----------------------------------------------------------------------------- logger


class WandbLogger:
    """One W&B run. Every method is safe to call whatever happened before."""

    def __init__(
        self, cfg: LoggerConfig, run_dir: Path, resolved_config: dict, run_id: str | None = None
    ):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run = None
        self.id: str | None = None
        self._finished = False
        self._log_failed = False
        if cfg.mode == "disabled" or _rank() != 0:
            return  # inert: wandb is not even imported
        hc = _hydra_config()
        config = dict(resolved_config)
        hydra_info = _hydra_info(hc)
        if hydra_info:
            config["hydra"] = hydra_info
        rev = git_revision()
        if rev:
            config["git_rev"] = rev
        try:
            import wandb

            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(
                dir=str(self.run_dir),
                project=cfg.project,
                entity=cfg.entity,
                group=_group(cfg, hc),
                name=_name(cfg, hc, self.run_dir),
                tags=list(cfg.tags) or None,
                notes=cfg.notes,
                job_type=cfg.job_type,
                mode=cfg.mode,
                id=run_id,
                resume="allow" if run_id else None,
                config=config,
                # Local sweep workers are reused: never hand back a run left over from an
                # earlier job of this process.
                reinit="finish_previous",
            )
            self.id = self.run.id
        except Exception as err:  # noqa: BLE001  (W&B must never stop training)
            self.run = None
            log.warning(
                "W&B is off for this run: wandb.init failed (%s: %s). Training goes on; "
                "metrics are still written to metrics.jsonl.",
                type(err).__name__,
                _scrub(str(err)),
            )
            return
        where = Path(self.run.dir).resolve()
        if self.run_dir.resolve() not in where.parents:
            log.warning(
                "wandb could not write under %s and uses %s instead.", self.run_dir, where.parent
            )
        log.info(
            "W&B run %s (%s, project %s, group %s, name %s)",
            self.id,
            cfg.mode,
            cfg.project,
            self.run.group or "-",
            self.run.name,
        )

    @property
    def active(self) -> bool:
        return self.run is not None and not self._finished

    def _warn(self, what: str, err: Exception) -> None:
        if self._log_failed:
            log.debug("W&B %s failed: %s", what, _scrub(str(err)))
            return
        self._log_failed = True
        log.warning(
            "W&B %s failed (%s: %s); training goes on (further W&B errors are logged at "
            "debug level).",
            what,
            type(err).__name__,
            _scrub(str(err)),
        )

    def log(self, row: dict) -> None:
        """Log one metrics row at its optimizer step (`row["step"]`, 0-based)."""
        if not self.active:
            return
        try:
            data = {k: v for k, v in row.items() if k != "step"}
            self.run.log(data, step=int(row["step"]))
        except Exception as err:  # noqa: BLE001
            self._warn("log", err)

    def set_summary(self, summary: dict) -> None:
        if not self.active:
            return
        try:
            self.run.summary.update(dict(summary))
        except Exception as err:  # noqa: BLE001
            self._warn("summary update", err)

    def log_checkpoints(self, paths: list[Path]) -> None:
        """With logger.log_model: one artifact (type "model") holding the given checkpoints."""
        if not self.active or not self.cfg.log_model:
            return
        files = [Path(p) for p in paths if Path(p).is_file()]
        if not files:
            return
        try:
            import wandb

            art = wandb.Artifact(
                artifact_name(f"model-{self.id}"),
                type="model",
                metadata={"files": [p.name for p in files]},
            )
            # Online, the upload finishes inside finish(), so wandb may read the files in
            # place. Offline, `wandb sync` reads them later and a resumed run may overwrite
            # last.pt first, so wandb keeps its own copy.
            policy = "immutable" if self.cfg.mode == "online" else "mutable"
            for path in files:
                art.add_file(str(path), name=path.name, policy=policy)
            self.run.log_artifact(art, aliases=["latest"])
        except Exception as err:  # noqa: BLE001
            self._warn("checkpoint artifact", err)

    def finish(self, exit_code: int = 0) -> None:
        """End the run (uploads what is pending). Safe to call twice or after a failure."""
        if self._finished:
            return
        self._finished = True
        if self.run is None:
            return
        try:
            self.run.finish(exit_code=exit_code)
        except Exception as err:  # noqa: BLE001
            log.warning(
                "W&B finish failed (%s: %s); the run's local files are under %s.",
                type(err).__name__,
                _scrub(str(err)),
                self.run_dir / "wandb",
            )
        # wandb 0.31's run.finish() can return before its core process has flushed the run's
        # files (offline, the run-*.wandb log is sometimes still empty then). Shutting the core
        # down waits for that, so the run dir is complete when we return: what an OSMO upload
        # or a reused sweep worker that is killed at the end of the sweep relies on. The next
        # wandb.init in this process starts a new core (a fraction of a second).
        try:
            import wandb

            wandb.teardown()
        except Exception as err:  # noqa: BLE001
            log.debug("wandb.teardown failed: %s", _scrub(str(err)))

    def __enter__(self) -> WandbLogger:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(0 if exc_type is None else 1)
