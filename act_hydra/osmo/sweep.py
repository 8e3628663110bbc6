"""Expand Hydra command-line arguments into the job list a ``--multirun`` would launch.

The same arguments a user gives ``python -m act_hydra.train --multirun`` (presets such as
``sweep=default`` included) become one :class:`Job` per sweep point, in Hydra's order and with
Hydra's override strings, by running Hydra's own pieces in the order ``Hydra.multirun`` and
``BasicSweeper.sweep`` run them (hydra-core 1.3, see reference/hydra.md §1.1 and §1.4-A):

1. compose the *master* config in ``RunMode.MULTIRUN`` with the config loader's
   ``load_configuration`` (sweep values are skipped there, presets and groups are loaded);
2. take ``hydra.sweeper.params`` as ``key=value`` strings first, then the task overrides
   (``hydra.overrides.task``), parse them with Hydra's ``OverridesParser`` and expand them with
   ``BasicSweeper.split_arguments``: a later key replaces an earlier one in its first position,
   which is how a command-line axis beats a preset's axis;
3. compose every job with ``load_sweep_config`` (what the launcher does for each job), then
   validate it with the rules training applies (:func:`act_hydra.validate.validate_config` on
   ``OmegaConf.to_object``), before anything is written.

``osmo.*`` arguments are generator settings: they are read from the master config, removed
from the job list and never multiply jobs. Everything here is side-effect free (no sweep dir,
no logging setup, no files).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

import act_hydra.config  # noqa: F401  (registers the schema and resolvers)
from act_hydra.compose import CONF_DIR
from act_hydra.config import OsmoConfig, TrainConfig
from act_hydra.validate import ConfigError, validate_config

CONFIG_NAME = "train"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"

# The values OSMO substitutes for its special tokens (reference/osmo.md §1.10); used to compose
# a task's arguments here exactly as the container will see them.
OSMO_TOKEN_VALUES = {
    "{{output}}": "/osmo/data/output",
    "{{input:0}}": "/osmo/data/input/0",
    "{{workflow_id}}": "act-hydra-sweep-1",
}
DATASET_DIR_OVERRIDE = "data.dataset_dir={{input:0}}"

# Hydra settings that only shape a local multirun (sweep dir, sweeper, launcher) or that each
# task sets itself (hydra.mode=RUN, hydra.run.dir): used for the expansion, not forwarded.
_NOT_FORWARDED_HYDRA = ("hydra.sweep", "hydra.sweeper", "hydra/sweeper", "hydra.launcher",
                        "hydra/launcher", "hydra.mode")
_JINJA = re.compile(r"\{\{|\{%|\{#")  # what opens a Jinja expression, statement, comment
_NAME = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$")
_SIZE = re.compile(r"^(\d+(\.\d+)?)(T|Ti|TiB|G|Gi|GiB|M|Mi|MiB|K|Ki|KiB|B|m)?$")
_DURATION = re.compile(r"^(\d+(d|h|m|s|ms|us)?|P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?)$")
_URL = re.compile(r"^(s3|gs|tos|swift)://[^/\s]+(/\S*)?$|^azure://[^/\s]+/[^/\s]+(/\S*)?$")


class SweepError(ValueError):
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
    return key == "osmo" or key.startswith("osmo.") or key.startswith("osmo/")


def substitute_tokens(text: str, values: dict[str, str] | None = None) -> str:
    """Replace OSMO's special tokens with the values the container sees."""
    for token, value in (values or OSMO_TOKEN_VALUES).items():
        text = text.replace(token, value)
    return text


def _hydra_message(err: BaseException) -> str:
    text = str(err).strip()
    cause = err.__cause__
    if cause is not None and str(cause).strip() and str(cause).strip() not in text:
        text = f"{text}\n{str(cause).strip()}"
    return text


def _compose_master(loader, args: list[str]) -> DictConfig:
    try:
        return loader.load_configuration(config_name=CONFIG_NAME, overrides=args,
                                         run_mode=RunMode.MULTIRUN)
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
            "or pass hydra/sweeper=basic.")
    params = sweeper.get("params") or {}
    return [f"{key}={value}" for key, value in params.items()] + \
        list(OmegaConf.to_container(master.hydra.overrides.task, resolve=False))


def _expand(parser: OverridesParser, arguments: list[str]) -> list[list[str]]:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    try:
        overrides = parser.parse_overrides(arguments)
    except HydraException as err:
        raise SweepError(_hydra_message(err)) from err
    job_overrides: list[Override] = []
    for override in overrides:
        if is_generator_setting(override):
            if override.is_sweep_override():
                raise SweepError(
                    f"{override.input_line}: osmo.* settings shape the workflow file and cannot "
                    "be swept (every task of a workflow shares them). Fix: give one value, and "
                    "generate one workflow per setting if you need several.")
            continue
        value = override.value() if override.is_sweep_override() else None
        if getattr(value, "shuffle", False):
            raise SweepError(
                f"{override.input_line}: shuffle() draws a new random job order on every run, so "
                "the workflow would not be reproducible. Fix: list the values in the order you "
                "want them.")
        job_overrides.append(override)
    try:
        batches = BasicSweeper.split_arguments(job_overrides, None)
    except HydraException as err:
        raise SweepError(_hydra_message(err)) from err
    return [list(job) for batch in batches for job in batch]


def _forwarded_hydra_overrides(master: DictConfig) -> list[str]:
    forwarded = []
    for line in OmegaConf.to_container(master.hydra.overrides.hydra, resolve=False):
        key = line.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra.run"):
            raise SweepError(
                f"{line}: the generator sets hydra.run.dir itself, under {{{{output}}}} (the "
                "folder OSMO uploads), one per task. Fix: drop this override.")
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
        raise ConfigError(" ".join(
            f"{key} is required but not set. Fix: pass {key}=<value> on the command line."
            for key in missing))
    return OmegaConf.to_object(cfg)


def check_osmo_settings(osmo: OsmoConfig) -> list[str]:
    """Problems of the ``osmo.*`` settings, each naming the key, the value, the rule, a fix."""
    problems: list[str] = []

    def check(ok: bool, key: str, value, rule: str, fix: str) -> None:
        if not ok:
            problems.append(f"osmo.{key}={value!r} is invalid: {rule}. Fix: {fix}.")

    check(bool(_NAME.match(osmo.workflow_name)) and len(osmo.workflow_name) <= 48,
          "workflow_name", osmo.workflow_name,
          "OSMO names are letters, digits, '-' and '_' (no dots), start with a letter, end with "
          "a letter or digit, and this one needs room for a '-part-N-of-M' suffix (<= 48 chars)",
          "pass osmo.workflow_name=act-sweep-lr")
    check(bool(osmo.image.strip()) and not any(c.isspace() for c in osmo.image), "image",
          osmo.image, "it must be an image reference",
          "pass osmo.image=nvcr.io/<org>/act-hydra:<tag>")
    if osmo.platform is not None:
        check(bool(osmo.platform.strip()), "platform", osmo.platform, "it must not be empty",
              "pass osmo.platform=null (the pool's default platform)")
    check(osmo.cpu >= 1, "cpu", osmo.cpu, "a task needs at least one whole core", "pass osmo.cpu=8")
    check(osmo.gpus_per_task >= 1, "gpus_per_task", osmo.gpus_per_task,
          "it is the number of training processes per task, at least 1",
          "pass osmo.gpus_per_task=1")
    if osmo.gpu is not None:
        check(osmo.gpu >= 0, "gpu", osmo.gpu, "it must be >= 0", "pass osmo.gpu=null")
        check(osmo.gpu >= osmo.gpus_per_task or (osmo.gpu == 0 and osmo.gpus_per_task == 1),
              "gpu", osmo.gpu,
              f"a task runs osmo.gpus_per_task={osmo.gpus_per_task} processes, one per GPU",
              f"pass osmo.gpu={osmo.gpus_per_task} (or osmo.gpu=null)")
    check(osmo.nodes_per_run >= 1, "nodes_per_run", osmo.nodes_per_run, "it must be >= 1",
          "pass osmo.nodes_per_run=1")
    check(1 <= osmo.master_port <= 65535, "master_port", osmo.master_port,
          "it must be a TCP port", "pass osmo.master_port=29500")
    for key in ("memory", "storage"):
        value = getattr(osmo, key)
        check(bool(_SIZE.match(value)), key, value,
              "OSMO sizes are <number><binary unit> (Gi, Mi, Ti, ...; GB is rejected)",
              f"pass osmo.{key}=64Gi")
    for key in ("exec_timeout", "queue_timeout"):
        value = getattr(osmo, key)
        check(bool(_DURATION.match(value)), key, value,
              "a duration is <int><d|h|m|s|ms|us> (no mixed units) or ISO-8601",
              f"pass osmo.{key}=24h")
    check(bool(_NAME.match(osmo.wandb_credential)), "wandb_credential", osmo.wandb_credential,
          "an OSMO credential name is letters, digits, '-' and '_'",
          "pass osmo.wandb_credential=wandb")
    check(bool(osmo.wandb_payload_key.strip()), "wandb_payload_key", osmo.wandb_payload_key,
          "it names a key of the credential's payload", "pass osmo.wandb_payload_key=wandb_api_key")
    for key in ("output_url", "dataset_url"):
        value = getattr(osmo, key)
        if value is not None:
            check(bool(_URL.match(value)), key, value,
                  "OSMO storage URLs are s3://, gs://, azure://<account>/<container>, tos:// or "
                  "swift://", f"pass osmo.{key}=s3://<bucket>/<prefix> (or null)")
    check(osmo.max_tasks_per_workflow >= 1, "max_tasks_per_workflow", osmo.max_tasks_per_workflow,
          "it must be >= 1", "pass osmo.max_tasks_per_workflow=20")
    check(osmo.nodes_per_run <= osmo.max_tasks_per_workflow, "nodes_per_run", osmo.nodes_per_run,
          f"every node is one OSMO task and a workflow holds at most "
          f"osmo.max_tasks_per_workflow={osmo.max_tasks_per_workflow}",
          "lower osmo.nodes_per_run or raise osmo.max_tasks_per_workflow")
    for key in ("torch_home", "hf_home", "cache_dir"):
        value = getattr(osmo, key)
        check(value.startswith("/"), key, value, "it must be an absolute path in the container",
              f"pass osmo.{key}=/tmp/{key}")
    for key in ("workflow_name", "image", "platform", "wandb_credential", "wandb_payload_key",
                "output_url", "dataset_url", "torch_home", "hf_home", "cache_dir"):
        value = getattr(osmo, key)
        check(value is None or not _JINJA.search(value), key, value,
              "OSMO renders the file as a Jinja template, so {{, {%, {# are not allowed",
              "remove the braces")
    return problems


def too_many_tasks(osmo: OsmoConfig, n_jobs: int) -> str | None:
    """Why ``n_jobs`` runs cannot go into one workflow without splitting (None: they can)."""
    per_file = max(1, osmo.max_tasks_per_workflow // osmo.nodes_per_run)
    if n_jobs <= per_file or osmo.split_large_sweeps:
        return None
    n_tasks = n_jobs * osmo.nodes_per_run
    needed = str(n_tasks) if osmo.nodes_per_run == 1 else \
        f"{n_tasks} ({n_jobs} runs x {osmo.nodes_per_run} nodes)"
    return (f"the sweep needs {needed} OSMO tasks, more than osmo.max_tasks_per_workflow="
            f"{osmo.max_tasks_per_workflow} (the server's max_num_tasks, 20 unless your admin "
            f"raised it). Fix: pass osmo.split_large_sweeps=true to write "
            f"{-(-n_jobs // per_file)} numbered workflow files of at most "
            f"{per_file * osmo.nodes_per_run} tasks, or osmo.max_tasks_per_workflow={n_tasks} if "
            "your pool allows that many tasks per workflow.")


def _job_args(overrides: list[str], parser: OverridesParser, osmo: OsmoConfig,
              forwarded: list[str]) -> list[str]:
    parsed = parser.parse_overrides(overrides)
    keys = {o.key_or_group for o in parsed}
    extra = [] if "logger" in keys else ["logger=wandb"]
    if osmo.dataset_url is not None:
        if "data.dataset_dir" in keys:
            raise SweepError(
                "data.dataset_dir is set on the command line and by osmo.dataset_url (which "
                "downloads the dataset to {{input:0}} and points data.dataset_dir there). Fix: "
                "drop one of them.")
        extra.append(DATASET_DIR_OVERRIDE)
    return [*overrides, *extra, *forwarded]


def expand_sweep(args: Sequence[str]) -> SweepPlan:
    """Expand, compose and validate the sweep of ``args`` (Hydra overrides); raise SweepError.

    Nothing is written. ``-m``/``--multirun`` in ``args`` are accepted and ignored: the
    arguments are always expanded as a multirun would expand them.
    """
    args = [a for a in args if a not in ("-m", "--multirun")]
    for arg in args:
        if _JINJA.search(arg):
            raise SweepError(
                f"{arg}: OSMO renders workflow files as Jinja templates, so '{{{{', '{{%' and "
                "'{#' cannot appear in an override. Fix: remove them (the generator adds "
                "{{output}}, {{input:0}} and {{workflow_id}} itself).")
    if GlobalHydra.instance().is_initialized():
        raise SweepError("Hydra is already initialized in this process (GlobalHydra); call "
                         "expand_sweep outside a Hydra app or compose() context.")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        parser = OverridesParser.create(config_loader=loader)
        master = _compose_master(loader, args)
        try:
            osmo: OsmoConfig = OmegaConf.to_object(master.osmo)
        except OmegaConfBaseException as err:
            raise SweepError(_hydra_message(err)) from err
        problems = check_osmo_settings(osmo)
        if problems:
            raise SweepError("\n".join(problems))
        forwarded = _forwarded_hydra_overrides(master)
        job_lists = _expand(parser, _sweep_arguments(master))
        refusal = too_many_tasks(osmo, len(job_lists))
        if refusal:  # before composing what may be hundreds of jobs
            raise SweepError(refusal)

        jobs: list[Job] = []
        errors: list[str] = []
        for index, overrides in enumerate(job_lists):
            label = f"job {index} ({' '.join(overrides) or 'no overrides'})"
            try:
                job_args = _job_args(overrides, parser, osmo, forwarded)
                own = job_args[:len(job_args) - len(forwarded)]  # hydra.* are in master
                train_args = [substitute_tokens(a) for a in own]
                cfg = loader.load_sweep_config(master, train_args)
                train_cfg = _train_config(cfg)
                validate_config(train_cfg)
                if osmo.dataset_url is not None and train_cfg.data.synthetic is not None:
                    raise ConfigError(
                        f"osmo.dataset_url={osmo.dataset_url!r} downloads recorded episodes, "
                        "but this job trains on the built-in synthetic task (data=synthetic), "
                        "which would write generated episodes into the input folder. Fix: pass "
                        "data=aloha_hdf5 (or an experiment that selects it), or drop "
                        "osmo.dataset_url.")
            except (ConfigError, SweepError) as err:
                errors.append(f"{label}:\n{err}")
                continue
            except (HydraException, OmegaConfBaseException, ValueError) as err:
                errors.append(f"{label}:\n{_hydra_message(err)}")
                continue
            lg = train_cfg.logger
            jobs.append(Job(overrides=tuple(overrides), args=tuple(job_args),
                            wandb=lg.backend == "wandb",
                            wandb_online=lg.backend == "wandb" and lg.mode == "online"))
    if errors:
        unique = list(dict.fromkeys(errors))
        shown = "\n\n".join(unique[:5])
        more = f"\n\n... and {len(unique) - 5} more" if len(unique) > 5 else ""
        raise SweepError(f"{len(errors)} of {len(job_lists)} jobs are invalid; nothing was "
                         f"written.\n\n{shown}{more}")
    return SweepPlan(osmo=osmo, jobs=tuple(jobs))


def job_overrides(args: Sequence[str]) -> list[list[str]]:
    """The job list alone (order and override strings), as Hydra's multirun would launch it."""
    return [list(job.overrides) for job in expand_sweep(args).jobs]
