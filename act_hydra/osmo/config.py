"""The generator's cluster settings (``osmo.*``): schema, defaults and range rules.

``conf/osmo_sweep.yaml`` is the generator's primary config: this schema (``osmo_sweep_schema``)
and the ``osmo`` group (``conf/osmo/default.yaml``). The training schema knows nothing of these
keys, so runs never carry them. They shape the workflow file only: they are never passed to the
tasks and cannot be swept.
"""

# OmegaConf reads these annotations at run time: keep typing.Optional here.
# ruff: noqa: UP045

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore

from act_hydra.osmo import rules

CONFIG_NAME = "osmo_sweep"
MAX_WORKFLOW_NAME = 48  # the server allows 64; '-part-10-of-12' must still fit


@dataclass
class OsmoConfig:
    """Cluster settings of the OSMO sweep generator; training never sees them."""

    workflow_name: str = "act-hydra-sweep"  # OSMO workflow name; the workflow id is <name>-<N>
    image: str = "nvcr.io/your-org/act-hydra:latest"  # built from osmo/Dockerfile
    platform: Optional[str] = None  # resource platform; null: the pool's default platform
    cpu: int = 8  # per task (one task per node of a run)
    gpu: Optional[int] = None  # per task; null: osmo.gpus_per_task
    memory: str = "64Gi"  # binary units (Gi, Mi, ...); "GB" is rejected by OSMO
    storage: str = "100Gi"  # ephemeral storage per task
    gpus_per_task: int = 1  # > 1: torchrun --nproc_per_node=N
    nodes_per_run: int = 1  # > 1: one task group per run, torchrun rank 0 is the lead
    master_port: int = 29500  # torchrun rendezvous port of a multi-node run
    wandb_credential: str = "wandb"  # osmo credential set <name> --type GENERIC ...
    wandb_payload_key: str = "wandb_api_key"  # ... --payload <key>=<W&B API key>
    output_url: Optional[str] = None  # each task uploads to <output_url>/{{workflow_id}}/<task>/
    dataset_url: Optional[str] = None  # downloaded to {{input:0}}; sets data.dataset_dir
    exec_timeout: str = "24h"  # per run: <int><d|h|m|s>
    queue_timeout: str = "24h"
    max_tasks_per_workflow: int = 20  # the server's max_num_tasks (admin setting, default 20)
    split_large_sweeps: bool = True  # more tasks: numbered files ...-part-1-of-N.yaml
    # Environment of every task, so nothing is downloaded at run time: the image holds the
    # ResNet weights under torch_home (osmo/Dockerfile); generated datasets go to cache_dir.
    torch_home: str = "/opt/act-hydra/cache/torch"
    hf_home: str = "/opt/act-hydra/cache/huggingface"
    cache_dir: str = "/tmp/act-hydra-cache"


@dataclass
class OsmoSweepConfig:
    """The root of ``conf/osmo_sweep.yaml``."""

    osmo: OsmoConfig = field(default_factory=OsmoConfig)


ConfigStore.instance().store(name="osmo_sweep_schema", node=OsmoSweepConfig)


def check_osmo_settings(osmo: OsmoConfig) -> list[str]:
    """Problems of the ``osmo.*`` settings, each naming the key, the value, the rule, a fix."""
    problems: list[str] = []

    def bad(key: str, rule: str | None, fix: str) -> None:
        if rule:
            problems.append(f"osmo.{key}={getattr(osmo, key)!r} is invalid: {rule}. Fix: {fix}.")

    bad(
        "workflow_name", rules.name_problem(osmo.workflow_name), "pass osmo.workflow_name=act-sweep"
    )
    if len(osmo.workflow_name) > MAX_WORKFLOW_NAME:
        room = f"more than {MAX_WORKFLOW_NAME} characters leave no room for '-part-K-of-N'"
        bad("workflow_name", room, "pass a shorter osmo.workflow_name")
    if not osmo.image.strip() or any(char.isspace() for char in osmo.image):
        bad("image", "it must be an image reference", "pass osmo.image=nvcr.io/<org>/act-hydra:1")
    if osmo.platform is not None and not osmo.platform.strip():
        bad("platform", "it must not be empty", "pass osmo.platform=null (the pool's default)")
    if osmo.cpu < 1:
        bad("cpu", "a task needs at least one whole core", "pass osmo.cpu=8")
    if osmo.gpus_per_task < 1:
        bad("gpus_per_task", "a task runs at least 1 training process", "pass osmo.gpus_per_task=1")
    if osmo.gpu is not None and osmo.gpu < 0:
        bad("gpu", "it must be >= 0", "pass osmo.gpu=null")
    elif osmo.gpu is not None and osmo.gpu < osmo.gpus_per_task and osmo.gpus_per_task > 1:
        per_gpu = f"a task runs osmo.gpus_per_task={osmo.gpus_per_task} processes, one per GPU"
        bad("gpu", per_gpu, f"pass osmo.gpu={osmo.gpus_per_task} (or osmo.gpu=null)")
    if osmo.nodes_per_run < 1:
        bad("nodes_per_run", "it must be >= 1", "pass osmo.nodes_per_run=1")
    if not 1 <= osmo.master_port <= 65535:
        bad("master_port", "it must be a TCP port", "pass osmo.master_port=29500")
    for key in ("memory", "storage"):
        bad(key, rules.size_problem(getattr(osmo, key)), f"pass osmo.{key}=64Gi")
    for key in ("exec_timeout", "queue_timeout"):
        bad(key, rules.duration_problem(getattr(osmo, key)), f"pass osmo.{key}=24h")
    bad(
        "wandb_credential",
        rules.name_problem(osmo.wandb_credential),
        "pass osmo.wandb_credential=wandb",
    )
    if not osmo.wandb_payload_key.strip():
        bad(
            "wandb_payload_key",
            "it names a key of the credential",
            "pass osmo.wandb_payload_key=wandb_api_key",
        )
    for key in ("output_url", "dataset_url"):
        if getattr(osmo, key) is not None:
            bad(
                key,
                rules.storage_url_problem(getattr(osmo, key)),
                f"pass osmo.{key}=s3://<bucket>/<prefix>",
            )
    if osmo.max_tasks_per_workflow < 1:
        bad("max_tasks_per_workflow", "it must be >= 1", "pass osmo.max_tasks_per_workflow=20")
    elif osmo.nodes_per_run > osmo.max_tasks_per_workflow:
        limit = (
            "every node is one OSMO task, and a workflow holds at most "
            f"osmo.max_tasks_per_workflow={osmo.max_tasks_per_workflow}"
        )
        bad("nodes_per_run", limit, "lower osmo.nodes_per_run or raise osmo.max_tasks_per_workflow")
    for key in ("torch_home", "hf_home", "cache_dir"):
        if not getattr(osmo, key).startswith("/"):
            bad(key, "it must be an absolute path in the container", f"pass osmo.{key}=/tmp/{key}")
    for key, value in vars(osmo).items():
        if isinstance(value, str) and rules.JINJA_RE.search(value):
            jinja = "OSMO renders the file as a Jinja template, so {{, {% and {# are not allowed"
            bad(key, jinja, "remove them")
    return problems
