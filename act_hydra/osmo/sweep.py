"""Expand the generator's arguments into the job list ``act_hydra.train --multirun`` launches.

The arguments are those of ``python -m act_hydra.train --multirun`` (presets such as
``sweep=default`` included) plus the cluster settings ``osmo.*``. They are split in two:

- ``osmo.*`` (and ``osmo=<option>``) compose the generator's own primary config,
  ``conf/osmo_sweep.yaml`` (:mod:`act_hydra.osmo.config`); they never reach the jobs;
- the others become one :class:`Job` per sweep point, in Hydra's order and with Hydra's override
  strings, by running Hydra's own pieces on ``conf/train.yaml`` in the order ``Hydra.multirun``
  and ``BasicSweeper.sweep`` run them (hydra-core 1.3):

  1. compose the master config in ``RunMode.MULTIRUN`` with the config loader's
     ``load_configuration`` (sweep values are skipped there; presets and groups are loaded);
  2. take ``hydra.sweeper.params`` as ``key=value`` strings first, then the task overrides
     (``hydra.overrides.task``), parse them with Hydra's ``OverridesParser`` and expand them with
     ``BasicSweeper.split_arguments``: a later key replaces an earlier one in its first position,
     which is how a command-line axis beats a preset's axis;
  3. compose every job with ``load_sweep_config`` (what the launcher does for each job), then
     validate it with the rules training applies (:func:`act_hydra.validate.validate_config`),
     before anything is written.

Nothing here has side effects (no sweep dir, no logging setup, no files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from act_hydra.compose import COMPOSITION_FIX, CONF_DIR, hydra_error_message
from act_hydra.config import TrainConfig
from act_hydra.errors import ConfigError
from act_hydra.osmo.config import CONFIG_NAME, OsmoConfig, check_osmo_settings
from act_hydra.osmo.rules import JINJA_RE
from act_hydra.validate import validate_config

TRAIN_CONFIG = "train"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"

# What OSMO substitutes for its special tokens in the container: a job is composed here with
# exactly the arguments its task will see.
OSMO_TOKEN_VALUES = {
    "{{output}}": "/osmo/data/output",
    "{{input:0}}": "/osmo/data/input/0",
    "{{workflow_id}}": "act-hydra-sweep-1",
}
DATASET_DIR_OVERRIDE = "data.dataset_dir={{input:0}}"

# Hydra settings that only shape a local multirun (sweep dir, sweeper, launcher) or that each
# task sets itself (hydra.mode=RUN, hydra.run.dir): used for the expansion, not forwarded.
_NOT_FORWARDED_HYDRA = (
    "hydra.sweep",
    "hydra.sweeper",
    "hydra/sweeper",
    "hydra.launcher",
    "hydra/launcher",
    "hydra.mode",
)


class SweepError(ConfigError):
    """The arguments cannot become a workflow; the message says why and how to fix it."""


@dataclass(frozen=True)
class Job:
    """One point of the sweep.

    ``overrides`` is exactly what Hydra's multirun launches for this job. ``args`` is what the
    OSMO task passes to ``act_hydra.train`` before ``hydra.mode=RUN hydra.run.dir=...``: the
    overrides, then ``logger=wandb`` (unless the job picks a logger itself), the dataset input
    (``data.dataset_dir={{input:0}}`` when ``osmo.dataset_url`` is set) and the user's other
    ``hydra.*`` settings. ``wandb``/``wandb_online`` describe the composed logger.
    """

    overrides: tuple[str, ...]
    args: tuple[str, ...]
    wandb: bool
    wandb_online: bool


@dataclass(frozen=True)
class SweepPlan:
    """The expanded, validated sweep: generator settings plus one job per sweep point."""

    osmo: OsmoConfig
    jobs: tuple[Job, ...]


def is_generator_setting(override: Override) -> bool:
    """``osmo.*`` (and the ``osmo`` group itself) configure the generator, not the jobs."""
    key = override.key_or_group
    return key == "osmo" or key.startswith(("osmo.", "osmo/"))


def substitute_tokens(text: str) -> str:
    """Replace OSMO's special tokens with the values the container sees."""
    for token, value in OSMO_TOKEN_VALUES.items():
        text = text.replace(token, value)
    return text


def _hydra_message(err: BaseException) -> str:
    return (
        f"{hydra_error_message(err)}\n{COMPOSITION_FIX} The osmo.* settings are listed in "
        "conf/osmo/default.yaml."
    )


def _split_arguments(parser: OverridesParser, args: list[str]) -> tuple[list[str], list[str]]:
    """(generator settings, training arguments), each in the order given."""
    try:
        overrides = parser.parse_overrides(args)
    except HydraException as err:
        raise SweepError(_hydra_message(err)) from err
    settings: list[str] = []
    train_args: list[str] = []
    for arg, override in zip(args, overrides):
        if not is_generator_setting(override):
            train_args.append(arg)
        elif override.is_sweep_override():
            raise SweepError(
                f"{arg}: osmo.* settings shape the workflow file and cannot be swept (every task "
                "of a workflow shares them). Fix: give one value, and generate one workflow per "
                "setting if you need several."
            )
        elif override.is_add() or override.is_force_add():
            raise SweepError(
                f"{arg}: '+' adds a key the schema does not have, and every osmo.* setting is in "
                "conf/osmo/default.yaml already. Fix: drop the '+' (and check the key's spelling)."
            )
        else:
            settings.append(arg)
    return settings, train_args


def _compose_settings(settings: list[str]) -> OsmoConfig:
    try:
        cfg = compose(config_name=CONFIG_NAME, overrides=settings)
        osmo = OmegaConf.to_object(cfg.osmo)
    except (HydraException, OmegaConfBaseException) as err:
        raise SweepError(_hydra_message(err)) from err
    assert isinstance(osmo, OsmoConfig)
    problems = check_osmo_settings(osmo)
    if problems:
        raise SweepError("\n".join(problems))
    return osmo


def _compose_master(loader, args: list[str]) -> DictConfig:
    try:
        return loader.load_configuration(
            config_name=TRAIN_CONFIG, overrides=args, run_mode=RunMode.MULTIRUN
        )
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise SweepError(_hydra_message(err)) from err


def _sweep_arguments(master: DictConfig) -> list[str]:
    """BasicSweeper.sweep's argument list: ``hydra.sweeper.params`` first, then the task
    overrides of the command line (``BasicSweeper._parse_config`` + ``arguments``)."""
    sweeper = master.hydra.sweeper
    target = sweeper.get("_target_")
    if target != BASIC_SWEEPER:
        raise SweepError(
            f"hydra/sweeper selects {target!r}, but only Hydra's basic sweeper (a fixed grid) "
            "can be expanded into OSMO tasks ahead of time. Fix: drop the hydra/sweeper override "
            "or pass hydra/sweeper=basic."
        )
    params = sweeper.get("params") or {}
    task = [str(override) for override in master.hydra.overrides.task]
    return [f"{key}={value}" for key, value in params.items()] + task


def _expand(parser: OverridesParser, arguments: list[str]) -> list[list[str]]:
    try:
        overrides = parser.parse_overrides(arguments)
        for override in overrides:
            value = override.value() if override.is_sweep_override() else None
            if getattr(value, "shuffle", False):
                raise SweepError(
                    f"{override.input_line}: shuffle() draws a new random job order on every "
                    "run, so the workflow would not be reproducible. Fix: list the values in "
                    "the order you want them."
                )
        batches = BasicSweeper.split_arguments(overrides, None)
    except HydraException as err:
        raise SweepError(_hydra_message(err)) from err
    return [list(job) for batch in batches for job in batch]


def _forwarded_hydra_overrides(master: DictConfig) -> list[str]:
    forwarded = []
    for line in (str(override) for override in master.hydra.overrides.hydra):
        key = line.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra.run"):
            raise SweepError(
                f"{line}: the generator sets hydra.run.dir itself, under {{{{output}}}} (the "
                "folder OSMO uploads), one per task. Fix: drop this override."
            )
        if not key.startswith(_NOT_FORWARDED_HYDRA):
            forwarded.append(line)
    return forwarded


def _train_config(cfg: DictConfig) -> TrainConfig:
    """What ``act_hydra.train.main`` turns its config into (the hydra node removed)."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            " ".join(
                f"{key} is required but not set. Fix: pass {key}=<value> on the command line."
                for key in missing
            )
        )
    train_cfg = OmegaConf.to_object(cfg)
    assert isinstance(train_cfg, TrainConfig)
    return train_cfg


def too_many_tasks(osmo: OsmoConfig, n_jobs: int) -> str | None:
    """Why ``n_jobs`` runs cannot go into one workflow without splitting (None: they can)."""
    per_file = max(1, osmo.max_tasks_per_workflow // osmo.nodes_per_run)
    if n_jobs <= per_file or osmo.split_large_sweeps:
        return None
    n_tasks = n_jobs * osmo.nodes_per_run
    needed = (
        str(n_tasks)
        if osmo.nodes_per_run == 1
        else f"{n_tasks} ({n_jobs} runs x {osmo.nodes_per_run} nodes)"
    )
    return (
        f"the sweep needs {needed} OSMO tasks, more than osmo.max_tasks_per_workflow="
        f"{osmo.max_tasks_per_workflow} (the server's max_num_tasks, 20 unless your admin "
        f"raised it). Fix: pass osmo.split_large_sweeps=true to write "
        f"{-(-n_jobs // per_file)} numbered workflow files of at most "
        f"{per_file * osmo.nodes_per_run} tasks, or osmo.max_tasks_per_workflow={n_tasks} if "
        "your pool allows that many tasks per workflow."
    )


def _job_args(
    overrides: list[str], parser: OverridesParser, osmo: OsmoConfig, forwarded: list[str]
) -> list[str]:
    keys = {o.key_or_group for o in parser.parse_overrides(overrides)}
    extra = [] if "logger" in keys else ["logger=wandb"]
    if osmo.dataset_url is not None:
        if "data.dataset_dir" in keys:
            raise SweepError(
                "data.dataset_dir is set on the command line and by osmo.dataset_url (which "
                "downloads the dataset to {{input:0}} and points data.dataset_dir there). Fix: "
                "drop one of them."
            )
        extra.append(DATASET_DIR_OVERRIDE)
    return [*overrides, *extra, *forwarded]


def _job(
    loader,
    master: DictConfig,
    parser: OverridesParser,
    osmo: OsmoConfig,
    overrides: list[str],
    forwarded: list[str],
) -> Job:
    """Compose and validate one job as the launcher would run it in its task."""
    job_args = _job_args(overrides, parser, osmo, forwarded)
    own = job_args[: len(job_args) - len(forwarded)]  # the hydra.* ones are in master already
    cfg = loader.load_sweep_config(master, [substitute_tokens(a) for a in own])
    train_cfg = _train_config(cfg)
    validate_config(train_cfg)
    if osmo.dataset_url is not None and train_cfg.data.synthetic is not None:
        raise ConfigError(
            f"osmo.dataset_url={osmo.dataset_url!r} downloads recorded episodes, but this job "
            "trains on the built-in synthetic task (data=synthetic), which would write "
            "generated episodes into the input folder. Fix: pass data=aloha_hdf5 (or an "
            "experiment that selects it), or drop osmo.dataset_url."
        )
    logger = train_cfg.logger
    return Job(
        overrides=tuple(overrides),
        args=tuple(job_args),
        wandb=logger.backend == "wandb",
        wandb_online=logger.backend == "wandb" and logger.mode == "online",
    )


def expand_sweep(args: Sequence[str]) -> SweepPlan:
    """Expand, compose and validate the sweep of ``args`` (Hydra overrides); raise SweepError.

    Nothing is written. ``-m``/``--multirun`` in ``args`` are accepted and ignored: the
    arguments are always expanded as a multirun would expand them.
    """
    args = [a for a in args if a not in ("-m", "--multirun")]
    for arg in args:
        if JINJA_RE.search(arg):
            raise SweepError(
                f"{arg}: OSMO renders workflow files as Jinja templates, so '{{{{', '{{%' and "
                "'{#' cannot appear in an override. Fix: remove them (the generator adds "
                "{{output}}, {{input:0}} and {{workflow_id}} itself)."
            )
    if GlobalHydra.instance().is_initialized():
        raise SweepError(
            "Hydra is already initialized in this process (GlobalHydra); call "
            "expand_sweep outside a Hydra app or compose() context."
        )
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        parser = OverridesParser.create(config_loader=loader)
        settings, train_args = _split_arguments(parser, args)
        osmo = _compose_settings(settings)
        master = _compose_master(loader, train_args)
        forwarded = _forwarded_hydra_overrides(master)
        job_lists = _expand(parser, _sweep_arguments(master))
        refusal = too_many_tasks(osmo, len(job_lists))
        if refusal:  # before composing what may be hundreds of jobs
            raise SweepError(refusal)
        jobs: list[Job] = []
        errors: list[str] = []
        for index, overrides in enumerate(job_lists):
            try:
                jobs.append(_job(loader, master, parser, osmo, overrides, forwarded))
            except (HydraException, OmegaConfBaseException, ValueError) as err:
                message = str(err) if isinstance(err, ConfigError) else _hydra_message(err)
                errors.append(f"job {index} ({' '.join(overrides) or 'no overrides'}):\n{message}")
    if errors:
        unique = list(dict.fromkeys(errors))
        shown = "\n\n".join(unique[:5])
        more = f"\n\n... and {len(unique) - 5} more" if len(unique) > 5 else ""
        raise SweepError(
            f"{len(errors)} of {len(job_lists)} jobs are invalid; nothing was "
            f"written.\n\n{shown}{more}"
        )
    return SweepPlan(osmo=osmo, jobs=tuple(jobs))
