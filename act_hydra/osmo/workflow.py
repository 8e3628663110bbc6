"""Build NVIDIA OSMO workflow files from a validated sweep: a pure function of (settings, jobs).

One task per job, named by index (``run-000``, ...), in the job order. Each task runs

    python -m act_hydra.train <job overrides> logger=wandb \\
        hydra.mode=RUN hydra.run.dir={{output}}/run-000

(``python -m act_hydra.launch --standalone --nnodes=1 --nproc_per_node=N -- ...``, torchrun
behind a wrapper that keeps a preempted run's exit code 75, when
``osmo.gpus_per_task > 1``), with every argument a quoted string in exec form (no shell).
``hydra.mode=RUN`` keeps a preset that sets ``hydra.mode: MULTIRUN`` (``sweep=default``) from
sweeping again inside the task. W&B: all tasks of a workflow share the group
``WANDB_RUN_GROUP={{workflow_id}}`` and get ``WANDB_API_KEY`` from the OSMO credential
``osmo.wandb_credential`` (payload key ``osmo.wandb_payload_key``). Outputs: with
``osmo.output_url`` set, each task uploads ``{{output}}`` (its run dir and nothing else) to
``<output_url>/{{workflow_id}}/<task>/``. Exit codes (:mod:`act_hydra.errors`): EXIT_OK
completes the task, EXIT_PREEMPTED (SIGTERM after saving a checkpoint) reschedules it, anything
else fails it.

When a run spans several nodes (``osmo.nodes_per_run > 1``) the workflow uses ``groups``: one
group per run whose lead is torchrun's rank 0. More jobs than ``osmo.max_tasks_per_workflow``
tasks are split into numbered parts, or refused.

The YAML is deterministic: fixed key order, every string double-quoted, no timestamps.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from act_hydra.errors import EXIT_OK, EXIT_PREEMPTED, ConfigError
from act_hydra.osmo.config import OsmoConfig
from act_hydra.osmo.sweep import Job, too_many_tasks

GENERATOR = "scripts/generate_osmo_sweep.py"  # named in each file's header


class WorkflowError(ConfigError):
    """The sweep does not fit the workflow limits; the message says how to proceed."""


class _Quoted(str):
    """A string emitted double-quoted, so YAML (and OSMO's re-parse) keeps it a string."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # never emit &anchors / *aliases
        return True


_Dumper.add_representer(
    _Quoted,
    lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style='"'),
)


def task_name(index: int) -> str:
    """``run-000``: by index, never by a value (OSMO names allow no dots)."""
    return f"run-{index:03d}"


def node_task_name(index: int, node: int) -> str:
    return f"{task_name(index)}-node-{node}"


def runs_per_workflow(osmo: OsmoConfig) -> int:
    return max(1, osmo.max_tasks_per_workflow // osmo.nodes_per_run)


def split_jobs(osmo: OsmoConfig, n_jobs: int) -> list[range]:
    """Job index ranges, one per workflow file; WorkflowError when too many and not splitting."""
    per_file = runs_per_workflow(osmo)
    if n_jobs <= per_file:
        return [range(n_jobs)]
    refusal = too_many_tasks(osmo, n_jobs)
    if refusal:
        raise WorkflowError(refusal)
    return [range(start, min(start + per_file, n_jobs)) for start in range(0, n_jobs, per_file)]


def part_workflow_name(osmo: OsmoConfig, part: int, n_parts: int) -> str:
    return osmo.workflow_name if n_parts == 1 else f"{osmo.workflow_name}-part-{part}-of-{n_parts}"


def part_paths(path: str | Path, n_parts: int) -> list[Path]:
    """``osmo/x.yaml`` -> ``[osmo/x.yaml]`` or ``[osmo/x-part-1-of-2.yaml, ...]``."""
    path = Path(path)
    if n_parts == 1:
        return [path]
    return [
        path.with_name(f"{path.stem}-part-{k}-of-{n_parts}{path.suffix}")
        for k in range(1, n_parts + 1)
    ]


def _launcher(osmo: OsmoConfig, index: int, node: int) -> tuple[list[str], list[str]]:
    """(command, launcher args before the training overrides).

    Several processes run through ``python -m act_hydra.launch <torchrun args> --``: torchrun
    reports a worker's exit code 75 (preempted, checkpoint saved) as 1, and the launcher turns
    it back into 75 so that the exitActions reschedule the task.
    """
    if osmo.nodes_per_run > 1:
        lead = node_task_name(index, 0)
        torchrun = [
            f"--nnodes={osmo.nodes_per_run}",
            f"--nproc_per_node={osmo.gpus_per_task}",
            f"--node_rank={node}",
            f"--master_addr={{{{host:{lead}}}}}",
            f"--master_port={osmo.master_port}",
        ]
    elif osmo.gpus_per_task > 1:
        torchrun = ["--standalone", "--nnodes=1", f"--nproc_per_node={osmo.gpus_per_task}"]
    else:
        return ["python"], ["-m", "act_hydra.train"]
    return ["python"], ["-m", "act_hydra.launch", *torchrun, "--"]


def _task(osmo: OsmoConfig, job: Job, index: int, node: int = 0) -> dict[str, Any]:
    run = task_name(index)
    name = run if osmo.nodes_per_run == 1 else node_task_name(index, node)
    command, launcher_args = _launcher(osmo, index, node)
    args = [*launcher_args, *job.args, "hydra.mode=RUN", f"hydra.run.dir={{{{output}}}}/{run}"]
    environment = {
        "PYTHONUNBUFFERED": "1",
        "TORCH_HOME": osmo.torch_home,
        "HF_HOME": osmo.hf_home,
        "ACT_HYDRA_CACHE": osmo.cache_dir,
    }
    task: dict[str, Any] = {"name": name}
    if osmo.nodes_per_run > 1 and node == 0:
        task["lead"] = True
    task["image"] = osmo.image
    task["command"] = command
    task["args"] = args
    if job.wandb:
        environment["WANDB_RUN_GROUP"] = "{{workflow_id}}"
    task["environment"] = environment
    if job.wandb_online:
        task["credentials"] = {osmo.wandb_credential: {"WANDB_API_KEY": osmo.wandb_payload_key}}
    if osmo.dataset_url is not None:
        task["inputs"] = [{"url": osmo.dataset_url}]
    if osmo.output_url is not None and node == 0:
        task["outputs"] = [{"url": f"{osmo.output_url.rstrip('/')}/{{{{workflow_id}}}}/{run}/"}]
    task["exitActions"] = {"COMPLETE": str(EXIT_OK), "RESCHEDULE": str(EXIT_PREEMPTED)}
    return task


def build_workflow(
    osmo: OsmoConfig, jobs: Sequence[Job], *, first_index: int = 0, name: str | None = None
) -> dict[str, Any]:
    """The workflow document (``version`` + ``workflow``) for ``jobs``, numbered from
    ``first_index``; no limit check (see :func:`split_jobs`)."""
    resource: dict[str, Any] = {
        "cpu": osmo.cpu,
        "gpu": osmo.gpus_per_task if osmo.gpu is None else osmo.gpu,
        "memory": osmo.memory,
        "storage": osmo.storage,
    }
    if osmo.platform is not None:
        resource["platform"] = osmo.platform
    workflow: dict[str, Any] = {
        "name": name or osmo.workflow_name,
        "timeout": {"exec_timeout": osmo.exec_timeout, "queue_timeout": osmo.queue_timeout},
        "resources": {"default": resource},
    }
    indices = range(first_index, first_index + len(jobs))
    if osmo.nodes_per_run == 1:
        workflow["tasks"] = [_task(osmo, job, i) for i, job in zip(indices, jobs)]
    else:
        workflow["groups"] = [
            {
                "name": task_name(i),
                "ignoreNonleadStatus": False,
                "tasks": [_task(osmo, job, i, node) for node in range(osmo.nodes_per_run)],
            }
            for i, job in zip(indices, jobs)
        ]
    return {"version": 2, "workflow": workflow}


def _quote_strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _quote_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_quote_strings(item) for item in value]
    if isinstance(value, str):
        return _Quoted(value)
    return value


def to_yaml(document: dict[str, Any], header: Sequence[str] = ()) -> str:
    """YAML text with every string value double-quoted and ``# header`` lines on top."""
    body = yaml.dump(
        _quote_strings(document),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    lines = [f"# {line}".rstrip() for line in header]
    return "\n".join([*lines, body]) if lines else body


def command_line(args: Sequence[str]) -> str:
    """The generator command that reproduces a file (its settings, not its output path)."""
    return shlex.join(["python", GENERATOR, *args]).replace("\n", "\\n")


def render_workflows(osmo: OsmoConfig, jobs: Sequence[Job], args: Sequence[str] = ()) -> list[str]:
    """The YAML text of each workflow file (one unless the sweep is split into parts).

    ``args`` (the generator's override arguments) only go into the header comment.
    """
    parts = split_jobs(osmo, len(jobs))
    texts = []
    for number, indices in enumerate(parts, start=1):
        part_jobs = [jobs[i] for i in indices]
        first, last = task_name(indices[0]), task_name(indices[-1])
        runs = f"{len(part_jobs)} run{'s' if len(part_jobs) != 1 else ''} ({first}" + (
            f" ... {last})" if len(part_jobs) > 1 else ")"
        )
        header = [
            "NVIDIA OSMO workflow for act_hydra, generated; do not edit by hand. Regenerate with:",
            f"  {command_line(args)} -o <this file>",
            f"{runs}: one task per job of the Hydra multirun with the same arguments, in its "
            "order."
            + (
                f" Part {number} of {len(parts)} of a sweep of {len(jobs)} runs."
                if len(parts) > 1
                else ""
            ),
            "Validate: python scripts/generate_osmo_sweep.py --check <this file>",
            "Submit:   osmo workflow submit <this file> --pool <pool>   (see osmo/README.md)",
        ]
        document = build_workflow(
            osmo,
            part_jobs,
            first_index=indices[0],
            name=part_workflow_name(osmo, number, len(parts)),
        )
        texts.append(to_yaml(document, header))
    return texts
