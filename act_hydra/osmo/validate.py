"""Offline validator for NVIDIA OSMO workflow files.

OSMO has no offline pre-check: ``osmo workflow submit --dry-run`` only renders the template and
``osmo workflow validate`` needs a live server, a pool and credentials. This module applies every
rule of the server pipeline that can be decided from the file alone (the rule ids and facts are
those of ``/work/shared/reference/osmo.md`` §2; :data:`RULES` lists what is checked):

1. template stage: top-level sections, ``version``, special-token spelling, Jinja rendering
   (``default-values`` plus ``variables``, like ``--set``), then YAML parsing;
2. schema stage: every map's keys and every field's type, unit and format, names and their
   uniqueness, leads, inputs/outputs, files, exit actions, timeouts, labels;
3. parse stage: task-input ordering, resource lookup, topology key sets, task count;
4. the name-length part of the semantic stage (64 characters, so flat tasks get 58).

Scalars are checked on the YAML node tree (``yaml.compose``), so the validator knows whether a
value was quoted and what YAML turned it into: an unquoted ``007`` in ``args`` is reported because
OSMO receives ``"7"``.

Pool-, user- and registry-dependent checks (platforms, topology keys of the pool, resource
assertions, GPU quota, image pullability, data and generic credentials) are out of reach; run
``osmo workflow validate --pool <pool>`` for those.
"""

from __future__ import annotations

import argparse
import base64
import difflib
import math
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

DEFAULT_MAX_TASKS = 20  # admin setting workflow.max_num_tasks (default)
DEFAULT_MAX_NAME_LENGTH = 64  # admin setting workflow_info.max_name_length (default)
TEMPLATE_MAX_SECONDS = 0.5  # UserWorkflowLimitConfig.jinja_sandbox_max_time (default)
MAX_LABELS = 16
FILE_SECRET_LIMIT = 1024 * 1024  # each files[] entry becomes a Kubernetes Secret

RULES: dict[str, str] = {
    "V-T1": "Top-level keys are only workflow, default-values and version, each once, at "
    "column 0; default-values is a map.",
    "V-T2": "Only the workflow section reaches the server; version, when present, must be 2.",
    "V-T3": "Special tokens are written exactly {{output}}, {{workflow_id}}, {{input:N}}, "
    "{{input:<task>}}, {{host:<task>}} (no inner spaces, no misspellings) and refer to an "
    "existing input or task; they are only substituted inside task fields.",
    "V-T4": "Jinja syntax anywhere in the workflow section is live: the file must render "
    "({# opens a comment, every variable needs a default-values entry or --set).",
    "V-T5": "Rendering the template must finish within the sandbox limit (0.5 s).",
    "V-T6": "The rendered text must be valid YAML; a scalar that starts with {{ must be quoted.",
    "V-S1": "Workflow, group and task names exist and match "
    "^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$ (no dots).",
    "V-S2": "The workflow map has only known keys and exactly one non-empty tasks or groups list.",
    "V-S3": "Task and group names are unique after lower-casing and treating _ as -.",
    "V-S4": "No task is named osmo-ctrl.",
    "V-S5": "Task fields have their documented shape: image, non-empty command, string args, "
    "scalar environment values, credentials, files, exitActions, checkpoint, volumeMounts, "
    "downloadType, cacheSize; values that YAML would not read as the intended string are quoted.",
    "V-S6": "Each input/output is exactly one known form (task/url; dataset only on <=6.3) with "
    "only its own keys; URLs use a supported storage scheme; regexes compile.",
    "V-S7": "A group has a name, a non-empty task list, boolean flags and exactly one lead when "
    "it has more than one task.",
    "V-S8": "Resources: cpu/gpu are non-negative integers; memory/storage are <number><binary "
    "unit>; only known keys; topology entries are well formed.",
    "V-S9": "Durations are a number of seconds, <int><d|h|m|s|ms|us> or ISO-8601 (no mixed "
    "units); timeout has only exec_timeout and queue_timeout.",
    "V-S10": "Workflow labels exist only on OSMO main/6.4: at most 16, Kubernetes label syntax.",
    "V-P1": "Flat tasks become one-task groups named <task>-group, so {{host:...}} cannot reach "
    "another flat task.",
    "V-P2": "A task input names an existing task whose group comes earlier in list order.",
    "V-P3": "Every resource: names a workflow.resources entry; a task without one needs a "
    "default entry once resources is given.",
    "V-P4": "All tasks that request topology use the same set of topology keys (offline part).",
    "V-P5": "A workflow has at most max_num_tasks tasks (default 20; each node counts).",
    "V-N1": "Workflow, group (including the generated <task>-group) and task names are at most "
    "64 characters, so flat task names at most 58.",
    "V-K1": "Each image parses as a Docker image reference (offline part of the image check).",
    "V-C2": "files[].localpath (CLI only) exists and is not combined with contents.",
}

# --------------------------------------------------------------------------------------------
# Patterns (copied from the OSMO sources cited in reference/osmo.md)

_NAME = r"[a-zA-Z](?:[a-zA-Z0-9_-]*[a-zA-Z0-9])?"
NAME_RE = re.compile(rf"^{_NAME}$")
NAME_PATTERN_TEXT = "^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$"
_TASK_REF_RE = re.compile(rf"^(?P<first>{_NAME})(?::(?P<second>{_NAME}))?$")
_CODE_RE = re.compile(r"^(\d+(-\d+)?)+(,\d+(-\d+)?)*$")
_QUANTITY_RE = re.compile(r"(\d+(?:\.\d+)?)([a-zA-Z]*)")
MEASUREMENTS = ("T", "Ti", "TiB", "G", "Gi", "GiB", "M", "Mi", "MiB", "K", "Ki", "KiB", "B", "m")
_DURATION_RE = re.compile(r"^(\d+)(d|h|ms|us|m|s)$")
_ISO_DURATION_RE = re.compile(
    r"^P(?!$)(\d+(?:\.\d+)?W)?(\d+(?:\.\d+)?D)?"
    r"(T(?=\d)(\d+(?:\.\d+)?H)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?S)?)?$"
)
_URI = r"[^/,;*]+"
STORAGE_URL_RE = re.compile(
    rf"^swift://{_URI}(/{_URI}){{2,}}/*$|^s3://{_URI}(/{_URI})*/*$|^gs://{_URI}(/{_URI})*/*$"
    rf"|^tos://{_URI}(/{_URI})+/*$|^azure://{_URI}(/{_URI})+/*$"
)
# The renderer protects exactly these spellings from Jinja (TemplateSpec).
PROTECTED_TOKEN_RE = re.compile(r"\{\{(uuid|workflow_id|output|input:[^}]+|host:[^}]+)\}\}")
_BRACES_RE = re.compile(r"\{\{([^\n]*?)\}\}")
_JINJA_BINDING_RE = re.compile(r"\{%-?\s*(?:for\s+([\w\s,()]+?)\s+in\b|set\s+([\w\s,]+?)\s*=)")
_RAW_BLOCK_RE = re.compile(r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}", re.DOTALL)
_SECTION_RE = re.compile(
    r"^([a-zA-Z][a-zA-Z0-9_-]*):(.*?)(?=^[a-zA-Z][a-zA-Z0-9_-]*:|\Z)", re.DOTALL | re.MULTILINE
)
_LABEL_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_DNS_PREFIX_RE = re.compile(rf"^(?=.{{1,253}}$){_DNS_LABEL}(?:\.{_DNS_LABEL})*$")
_DATASET_PART = r"[a-zA-Z0-9_{}-]+"
_DATASET_NAME_RE = re.compile(rf"^(({_DATASET_PART})/)?({_DATASET_PART})(:([a-zA-Z0-9_{{}}-]*))?$")
_IP = r"([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])"
_HOST_PART = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"
_IMAGE_NAME_PART = r"([0-9a-z]([0-9a-z_.-]*[0-9a-z])?)"
IMAGE_RE = re.compile(
    rf"^((({_IP}\.){{3}}{_IP}|localhost|({_HOST_PART}\.)+({_HOST_PART})|{_HOST_PART}(?=:\d+/))"
    rf"(:[0-9]{{1,5}})?/)?"
    rf"{_IMAGE_NAME_PART}(/{_IMAGE_NAME_PART})*"
    r"(:[a-zA-Z0-9_][a-zA-Z0-9._-]*)?(@[A-Za-z0-9_+.-]+:[A-Fa-f0-9]+)?$"
)

_TOKEN_HELP = "{{output}}, {{workflow_id}}, {{input:<N>}}, {{input:<task>}}, {{host:<task>}}"

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"

TOP_LEVEL_KEYS = ("workflow", "default-values", "version")
WORKFLOW_KEYS = ("name", "pool", "labels", "resources", "timeout", "tasks", "groups", "backend")
GROUP_KEYS = ("name", "barrier", "ignoreNonleadStatus", "tasks")
TASK_KEYS = (
    "name",
    "image",
    "command",
    "args",
    "lead",
    "environment",
    "credentials",
    "inputs",
    "outputs",
    "files",
    "resource",
    "exitActions",
    "checkpoint",
    "volumeMounts",
    "privileged",
    "hostNetwork",
    "downloadType",
    "cacheSize",
    "kpis",
    "resources",
    "backend",
)
RESOURCE_KEYS = ("cpu", "gpu", "memory", "storage", "platform", "nodesExcluded", "topology")
TOPOLOGY_KEYS = ("key", "group", "requirementType")
TIMEOUT_KEYS = ("exec_timeout", "queue_timeout")
FILE_KEYS = ("path", "contents", "base64", "localpath")
CHECKPOINT_KEYS = ("path", "url", "frequency", "regex")
KPI_KEYS = ("index", "path")
EXIT_ACTIONS = ("COMPLETE", "FAIL", "RESCHEDULE")
_PYDANTIC_BOOL_STRINGS = {"0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes"}

_ALIASES = {
    "env": "environment",
    "envs": "environment",
    "environ": "environment",
    "env_vars": "environment",
    "gpus": "gpu",
    "cpus": "cpu",
    "mem": "memory",
    "disk": "storage",
    "ephemeral-storage": "storage",
    "ephemeral_storage": "storage",
    "cmd": "command",
    "arguments": "args",
    "arg": "args",
    "exit_actions": "exitActions",
    "volumes": "volumeMounts",
    "volume_mounts": "volumeMounts",
    "host_network": "hostNetwork",
    "download_type": "downloadType",
    "cache_size": "cacheSize",
    "leader": "lead",
    "ignore_nonlead_status": "ignoreNonleadStatus",
    "nodes_excluded": "nodesExcluded",
    "requirement_type": "requirementType",
    "secrets": "credentials",
    "input": "inputs",
    "output": "outputs",
    "file": "files",
    "timeouts": "timeout",
    "task": "tasks",
    "group": "groups",
    "resource": "resources",
    "execTimeout": "exec_timeout",
    "queueTimeout": "queue_timeout",
    "exec-timeout": "exec_timeout",
    "queue-timeout": "queue_timeout",
    "default_values": "default-values",
    "defaults": "default-values",
}


@dataclass(frozen=True)
class Problem:
    """One reason the OSMO server would reject (or silently mangle) a workflow file.

    ``location`` is a YAML path such as ``workflow.tasks[2].name`` (or ``line N`` when the
    problem sits outside any value, e.g. in a comment); ``rule`` is the id from
    reference/osmo.md §2 (see :data:`RULES`); ``message`` says what is wrong, the offending value
    and how to fix it; ``line`` is the 1-based line in the file when known.
    """

    location: str
    rule: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = (
            f" (line {self.line})" if self.line and not self.location.startswith("line ") else ""
        )
        return f"{self.location}: [{self.rule}] {self.message}{where}"


def validate_workflow_text(
    text: str,
    *,
    max_tasks: int = DEFAULT_MAX_TASKS,
    max_name_length: int = DEFAULT_MAX_NAME_LENGTH,
    osmo_version: str = "main",
    variables: Mapping[str, Any] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> list[Problem]:
    """Return every offline-detectable problem of the OSMO workflow ``text`` (empty: valid).

    ``max_tasks`` / ``max_name_length`` are the admin limits (defaults 20 / 64).
    ``osmo_version`` is ``"main"`` (6.4: ``labels`` allowed, ``dataset`` I/O rejected) or
    ``"6.3"`` / ``"6.2"`` (the reverse). ``variables`` act like ``osmo workflow submit --set``
    for templated files. ``base_dir`` resolves ``files[].localpath`` (checked only when given).
    Never raises on bad input: YAML and template errors come back as problems.
    """
    if osmo_version not in ("main", "6.4", "6.3", "6.2"):
        raise ValueError(
            f"osmo_version must be 'main', '6.4', '6.3' or '6.2', not {osmo_version!r}"
        )
    checker = _Checker(
        text,
        max_tasks=max_tasks,
        max_name_length=max_name_length,
        legacy=osmo_version in ("6.3", "6.2"),
        variables=dict(variables or {}),
        base_dir=Path(base_dir) if base_dir is not None else None,
    )
    return checker.run()


def validate_workflow_file(path: str | os.PathLike[str], **options: Any) -> list[Problem]:
    """Read ``path`` (UTF-8) and validate it; ``options`` as for :func:`validate_workflow_text`.

    ``files[].localpath`` entries are resolved relative to the file's folder, like the CLI does.
    Raises ``OSError`` when the file cannot be read.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    options.setdefault("base_dir", path.parent)
    return validate_workflow_text(text, **options)


def format_problem(file: str, problem: Problem) -> str:
    """``FILE: LOCATION: [RULE] message`` (plus `` (line N)`` when the line is known)."""
    return f"{file}: {problem}"


def main_check(paths: list[str], **options: Any) -> int:
    """Validate each file, print ``FILE: LOCATION: [RULE] message`` lines or ``FILE: OK``.

    Returns 0 when every file is valid, 1 otherwise (including unreadable files).
    ``options`` as for :func:`validate_workflow_text`.
    """
    status = 0
    for file in paths:
        try:
            problems = validate_workflow_file(file, **options)
        except (OSError, UnicodeDecodeError) as err:
            print(f"{file}: ERROR: cannot read the file ({err})")
            status = 1
            continue
        if not problems:
            print(f"{file}: OK")
            continue
        status = 1
        for problem in problems:
            print(format_problem(file, problem))
    return status


def main(argv: list[str] | None = None) -> int:
    """``python -m act_hydra.osmo.validate FILE... [--max-tasks N] [--set k=v]``."""
    parser = argparse.ArgumentParser(
        prog="python -m act_hydra.osmo.validate",
        description="Check NVIDIA OSMO workflow files offline (rules of reference/osmo.md §2).",
    )
    parser.add_argument("files", nargs="+", help="workflow YAML files")
    parser.add_argument("--max-tasks", type=int, default=DEFAULT_MAX_TASKS)
    parser.add_argument("--max-name-length", type=int, default=DEFAULT_MAX_NAME_LENGTH)
    parser.add_argument("--osmo-version", default="main", choices=["main", "6.4", "6.3", "6.2"])
    parser.add_argument(
        "--set",
        dest="variables",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="template variable, like `osmo workflow submit --set` (repeatable)",
    )
    args = parser.parse_args(argv)
    variables: dict[str, Any] = {}
    for item in args.variables:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set expects NAME=VALUE, got {item!r}")
        variables[name] = _typed_set_value(value)
    return main_check(
        args.files,
        max_tasks=args.max_tasks,
        max_name_length=args.max_name_length,
        osmo_version=args.osmo_version,
        variables=variables,
    )


def _typed_set_value(value: str) -> Any:
    """``--set`` typing of the server: int, then float, else the string (V-C4)."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


# --------------------------------------------------------------------------------------------
# Implementation


@dataclass
class _Task:
    name: str | None
    loc: str
    node: Node
    group_index: int  # index of its group (flat: of the task)
    group_name: str | None  # flat: "<task>-group"
    flat: bool
    resource: str | None = None  # explicit `resource:` value
    resource_node: Node | None = None
    lead: bool = False
    input_count: int = 0
    input_names: set[str] = field(default_factory=set)  # names usable in {{input:<name>}}
    task_inputs: list[tuple[str, str, Node]] = field(default_factory=list)  # (ref, loc, node)


@dataclass
class _Pending:
    line: int
    offset: int | None  # character offset in the parsed text, when it maps 1:1 to the file
    rule: str
    message: str


def _child(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


def _suggest(key: str, known: tuple[str, ...] | list[str]) -> str | None:
    if key in _ALIASES and _ALIASES[key] in known:
        return _ALIASES[key]
    lowered = {k.lower(): k for k in known}
    if key.lower() in lowered:
        return lowered[key.lower()]
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _kind(node: Node | None) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, MappingNode):
        return "a map"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        _STR: "a string",
        _INT: "an integer",
        _FLOAT: "a float",
        _BOOL: "a boolean",
        _NULL: "null (an empty value)",
    }.get(node.tag, f"a value tagged {node.tag}")


def _fold(name: str) -> str:
    """OSMO's name comparison key (``kb_objects.k8s_name``): lower case, ``_`` as ``-``."""
    return name.lower().replace("_", "-")


def _best_unit(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _misspelled_token(inner: str, defined: set[str]) -> str | None:
    """A V-T3 message when ``{{inner}}`` looks like a special token spelt wrong, else None."""
    compact = re.sub(r"\s+", "", inner)
    shown = "{{" + inner + "}}"
    ident_match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", inner)
    ident = ident_match.group(1) if ident_match else None
    if ident is not None and ident in defined:
        return None  # a real template variable
    if PROTECTED_TOKEN_RE.fullmatch("{{" + compact + "}}"):
        return (
            f"{shown} has spaces inside the braces: OSMO only recognises the exact spelling "
            f"{{{{{compact}}}}}; with spaces Jinja evaluates it as an expression and the submit "
            f"fails (\"'{ident}' is undefined\" or a syntax error). Write {{{{{compact}}}}}."
        )
    norm = re.sub(r"[^a-z0-9:]", "", compact.lower())
    suggestion = None
    if norm in {"output", "outputs", "outputdir", "outputpath", "outdir", "outputfolder"}:
        suggestion = "{{output}}"
    elif norm in {"workflowid", "workflowids", "wfid", "workflowname", "workflowuuid", "workflow"}:
        suggestion = "{{workflow_id}}"
    elif norm in {"uuid", "uid"}:
        suggestion = "{{uuid}}"
    else:
        for prefix in ("input", "host"):
            match = re.fullmatch(rf"{prefix}s?(?:name)?:?([a-z0-9]*)", norm)
            if match:
                rest = re.split(r"[:._\-\[\]\s]+", compact, maxsplit=1)
                target = rest[1].strip("[]") if len(rest) == 2 and rest[1] else ""
                placeholder = "<N>" if prefix == "input" else "<task>"
                suggestion = f"{{{{{prefix}:{target or placeholder}}}}}"
                break
        else:
            close = difflib.get_close_matches(norm, ["output", "workflowid"], n=1, cutoff=0.8)
            if close:
                suggestion = "{{output}}" if close[0] == "output" else "{{workflow_id}}"
    if suggestion is None:
        return None
    return (
        f"{shown} is not an OSMO special token, so Jinja evaluates it as a variable and the "
        f"submit fails (\"'{ident}' is undefined\"). Did you mean {suggestion}? Special tokens "
        f"are {_TOKEN_HELP}, written exactly like that."
    )


def _unquoted_brace_hint(line_text: str) -> str | None:
    """Return the plain scalar starting with ``{{`` on ``line_text`` (outside quotes), if any."""
    single = double = False
    for i, ch in enumerate(line_text):
        if ch == "'" and not double:
            single = not single
        elif ch == '"' and not single:
            double = not double
        elif ch == "#" and not single and not double and (i == 0 or line_text[i - 1] == " "):
            return None
        elif line_text.startswith("{{", i) and not single and not double:
            scalar = re.match(r"[^,\]\n]*", line_text[i:]).group(0).rstrip()
            return scalar
    return None


class _Checker:
    def __init__(
        self,
        text: str,
        *,
        max_tasks: int,
        max_name_length: int,
        legacy: bool,
        variables: dict[str, Any],
        base_dir: Path | None,
    ) -> None:
        self.text = text
        self.max_tasks = max_tasks
        self.max_name_length = max_name_length
        self.legacy = legacy
        self.variables = variables
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        self.pending: list[_Pending] = []
        self.loader = yaml.SafeLoader("")
        self.line_offset = 0  # 0-based line of the parsed text's first line in the file
        self.lines_reliable = True
        self.offsets_reliable = True
        self.default_values: dict[str, Any] = {}

    # ---- reporting --------------------------------------------------------------------------

    def pend(self, line: int, rule: str, message: str, offset: int | None = None) -> None:
        """A problem found before the YAML tree exists; its location is resolved at the end."""
        item = _Pending(line, offset, rule, message)
        if item not in self.pending:
            self.pending.append(item)

    def add(self, loc: str, rule: str, message: str, node: Node | None = None) -> None:
        line = None
        if node is not None and self.lines_reliable:
            line = node.start_mark.line + 1 + self.line_offset
        problem = Problem(loc, rule, message, line)
        if problem not in self.problems:
            self.problems.append(problem)

    # ---- pipeline ---------------------------------------------------------------------------

    def run(self) -> list[Problem]:
        sections = self._check_sections()
        if sections is None:
            return self._finish(None)
        wf_start, wf_text = sections["workflow"]
        self.line_offset = self.text.count("\n", 0, wf_start)
        parse_text = self._template_stage(wf_text)
        if parse_text is None:
            return self._finish(None)
        root = self._parse(parse_text)
        if root is None:
            return self._finish(None)
        workflow = None
        if isinstance(root, MappingNode):
            for key_node, value_node in root.value:
                if isinstance(key_node, ScalarNode) and key_node.value == "workflow":
                    workflow = value_node
        if workflow is None:
            self.add(
                "workflow",
                "V-T1",
                "Workflow spec not found: the file needs a top-level 'workflow:' map.",
                root,
            )
            return self._finish(root)
        self._check_workflow(workflow)
        return self._finish(root)

    def _finish(self, root: Node | None) -> list[Problem]:
        spans: list[tuple[int, int, str]] = []
        if root is not None:
            self._collect_spans(root, "", spans)
        resolved = []
        for item in self.pending:
            loc = f"line {item.line}"
            if item.offset is not None and self.offsets_reliable:
                best = None
                for start, end, path in spans:
                    if start <= item.offset < end and (best is None or end - start < best[0]):
                        best = (end - start, path)
                if best is not None:
                    loc = best[1]
            resolved.append(Problem(loc, item.rule, item.message, item.line))
        return resolved + self.problems

    def _collect_spans(self, node: Node, path: str, out: list[tuple[int, int, str]]) -> None:
        if isinstance(node, ScalarNode):
            out.append(
                (
                    node.start_mark.index,
                    max(node.end_mark.index, node.start_mark.index + 1),
                    path or "line",
                )
            )
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                self._collect_spans(item, f"{path}[{i}]", out)
        elif isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, ScalarNode) else "?"
                sub = _child(path, str(key)) if path else str(key)
                self._collect_spans(key_node, sub, out)
                self._collect_spans(value_node, sub, out)

    # ---- template stage ---------------------------------------------------------------------

    def _check_sections(self) -> dict[str, tuple[int, str]] | None:
        """V-T1/V-T2: the server splits the file into top-level sections with a regex."""
        sections: dict[str, tuple[int, str]] = {}
        for match in _SECTION_RE.finditer(self.text):
            key = match.group(1)
            line = self.text.count("\n", 0, match.start()) + 1
            if key not in TOP_LEVEL_KEYS:
                hint = _suggest(key, TOP_LEVEL_KEYS)
                fix = f" Did you mean '{hint}'?" if hint else " Indent it under 'workflow:'."
                message = (
                    f"unknown top-level key {key!r}: OSMO only allows 'workflow', "
                    f"'default-values' and 'version' at column 0 (server: Unknown top-level "
                    f'key "{key}").{fix}'
                )
                self.pend(line, "V-T1", message)
                continue
            if key in sections:
                message = (
                    f"duplicate top-level key {key!r}: each section may appear once; merge the "
                    "two sections."
                )
                self.pend(line, "V-T1", message)
                continue
            sections[key] = (match.start(), match.group(1) + ":" + match.group(2))
        if "workflow" not in sections:
            message = (
                "Workflow spec not found: no line starts with 'workflow:' at column 0. Put the "
                "spec under a top-level 'workflow:' key (block style, not a {...} flow map)."
            )
            self.pend(1, "V-T1", message)
            return None
        if "default-values" in sections:
            start, body = sections["default-values"]
            line = self.text.count("\n", 0, start) + 1
            try:
                values = (yaml.safe_load(body) or {}).get("default-values")
            except yaml.YAMLError as err:
                self.pend(
                    line, "V-T6", f"default-values is not valid YAML: {_yaml_error_text(err)}"
                )
                values = None
            if values is not None and not isinstance(values, dict):
                message = (
                    f"default-values must be a map of variable names to values, got "
                    f"{type(values).__name__}; write 'default-values:' followed by indented "
                    "'name: value' lines."
                )
                self.pend(line, "V-T1", message)
            elif values:
                self.default_values = {str(k): v for k, v in values.items()}
        if "version" in sections:
            start, body = sections["version"]
            line = self.text.count("\n", 0, start) + 1
            try:
                version = yaml.safe_load(body).get("version")
            except (yaml.YAMLError, AttributeError):
                version = body
            ok = not isinstance(version, bool) and (
                version == 2 or (isinstance(version, str) and version.strip().lstrip("+") == "2")
            )
            if not ok:
                message = (
                    f"version is {version!r}, but the only workflow spec version is 2 "
                    "(VersionedWorkflowSpec rejects anything else whenever it sees the key). "
                    "Write 'version: 2' or drop the key."
                )
                self.pend(line, "V-T2", message)
        return sections

    def _template_stage(self, wf_text: str) -> str | None:
        """V-T3/V-T4/V-T5: special-token spelling and the Jinja render of the workflow section.

        Returns the text to parse as YAML, or None when rendering failed.
        """
        scan = _RAW_BLOCK_RE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), wf_text)
        defined = set(self.default_values) | set(self.variables)
        for bound in _JINJA_BINDING_RE.findall(scan):  # {% for a, b in ... %}, {% set x = ... %}
            defined.update(re.findall(r"[A-Za-z_]\w*", " ".join(bound)))
        replacements: list[tuple[int, int]] = []
        needs_render = "{%" in scan or "{#" in scan
        for match in _BRACES_RE.finditer(scan):
            if PROTECTED_TOKEN_RE.fullmatch(match.group(0)):
                continue
            line = self.line_offset + scan.count("\n", 0, match.start()) + 1
            message = _misspelled_token(match.group(1), defined)
            if message is None:
                needs_render = True
                continue
            self.pend(line, "V-T3", message, offset=match.start())
            replacements.append((match.start(), match.end()))
        text = wf_text
        for start, end in replacements:  # same length, so offsets and lines still match
            text = text[:start] + "x" * (end - start) + text[end:]
        if not needs_render:
            return text
        return self._render(text)

    def _render(self, text: str) -> str | None:
        try:
            import jinja2
            import jinja2.sandbox
        except ImportError:  # pragma: no cover - jinja2 ships with torch
            message = (
                "the workflow uses Jinja ({{ }}, {% %} or {# #}) but jinja2 is not installed, "
                "so it cannot be rendered offline; pip install jinja2."
            )
            self.pend(self.line_offset + 1, "V-T4", message)
            return None
        data: dict[str, Any] = dict(self.default_values)
        data.update(self.variables)
        tokens: dict[str, str] = {}

        def protect(match: re.Match[str]) -> str:
            key = f"osmo_token_{len(tokens)}"
            tokens[key] = match.group(0)
            data[key] = match.group(0)
            return "{{" + key + "}}"

        protected = PROTECTED_TOKEN_RE.sub(protect, text)
        env = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined)
        started = time.perf_counter()
        try:
            rendered = env.from_string(protected).render(data)
        except jinja2.TemplateSyntaxError as err:
            line = self.line_offset + (err.lineno or 1)
            hint = ""
            if "comment" in (err.message or ""):
                hint = (
                    " '{#' opens a Jinja comment (e.g. bash ${#ARR[@]}); rewrite it or wrap "
                    "the text in {% raw %}...{% endraw %}."
                )
            message = (
                f"Jinja syntax error: {err.message}. The whole workflow section is a Jinja "
                f"template, including scripts and comments.{hint}"
            )
            self.pend(line, "V-T4", message)
            return None
        except jinja2.UndefinedError as err:
            line = self.line_offset + 1
            name = re.search(r"'([^']+)' is undefined", err.message or "")
            if name:
                use = re.search(r"\{[{%][^}]*\b" + re.escape(name.group(1)) + r"\b", text)
                if use:
                    line += text.count("\n", 0, use.start())
            message = (
                f"Jinja variable error: {err.message}. Define the variable under a top-level "
                "'default-values:' map or pass it with `osmo workflow submit --set NAME=VALUE` "
                "(here: variables={...} / --set)."
            )
            self.pend(line, "V-T4", message)
            return None
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError) as err:
            self.pend(
                self.line_offset + 1, "V-T4", f"Jinja template error: {type(err).__name__}: {err}."
            )
            return None
        elapsed = time.perf_counter() - started
        if elapsed > TEMPLATE_MAX_SECONDS:
            message = (
                f"rendering the template took {elapsed:.2f} s here; the server's Jinja sandbox "
                f"stops after {TEMPLATE_MAX_SECONDS} s. Simplify the loops or generate the YAML "
                "instead of templating it."
            )
            self.pend(self.line_offset + 1, "V-T5", message)
        for key in re.findall(r"\{\{(osmo_token_\d+)\}\}", rendered):
            message = (
                f"{tokens[key]} sits inside a {{% raw %}} block: the server swaps special tokens "
                "for placeholders before rendering, so inside raw blocks the placeholder stays "
                "and OSMO never substitutes it. Move the token out of the raw block."
            )
            where = protected.find("{{" + key + "}}")
            self.pend(self.line_offset + 1 + protected.count("\n", 0, where), "V-T3", message)
            rendered = rendered.replace("{{" + key + "}}", tokens[key])
        self.offsets_reliable = False
        self.lines_reliable = rendered.rstrip("\n").count("\n") == text.rstrip("\n").count("\n")
        return rendered

    def _parse(self, text: str) -> Node | None:
        """V-T6: the rendered text is re-parsed with yaml.safe_load."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            yaml.load(text, Loader=yaml.SafeLoader)  # constructor errors, e.g. unhashable keys
        except yaml.YAMLError as err:
            self._yaml_problem(err, text)
            return None
        if root is None:
            self.pend(
                self.line_offset + 1,
                "V-T1",
                "Workflow spec not found: the workflow section is empty.",
            )
        return root

    def _yaml_problem(self, err: yaml.YAMLError, text: str) -> None:
        lines = text.splitlines()
        marks = [getattr(err, "problem_mark", None), getattr(err, "context_mark", None)]
        line_no = None
        hint = None
        for mark in marks:
            if mark is None:
                continue
            if line_no is None:
                line_no = mark.line
            for candidate in (mark.line, mark.line - 1):
                if 0 <= candidate < len(lines):
                    scalar = _unquoted_brace_hint(lines[candidate])
                    if scalar:
                        hint, line_no = scalar, candidate
                        break
            if hint:
                break
        line = (line_no or 0) + 1 + self.line_offset if self.lines_reliable else None
        if hint:
            message = (
                f"the unquoted value {hint} starts with '{{{{', which YAML reads as the start "
                f"of a flow map, so parsing fails ({_yaml_error_text(err)}). Quote the whole "
                f'scalar: "{hint}".'
            )
        else:
            message = f"not valid YAML: {_yaml_error_text(err)}."
        self.pend(line or self.line_offset + 1, "V-T6", message)

    # ---- node helpers -----------------------------------------------------------------------

    def _construct(self, node: Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def _map(
        self, node: Node | None, loc: str, rule: str, what: str
    ) -> list[tuple[str, Node, Node]] | None:
        """The (key, key node, value node) pairs of a map, or None after reporting."""
        if not isinstance(node, MappingNode):
            self.add(loc, rule, f"{what} must be a map, got {_kind(node)}.", node)
            return None
        try:
            self.loader.flatten_mapping(node)  # resolve `<<:` merge keys like safe_load does
        except yaml.YAMLError as err:
            self.add(loc, "V-T6", f"bad merge key: {_yaml_error_text(err)}.", node)
            return None
        pairs: dict[str, tuple[str, Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag not in (_STR, _INT, _FLOAT):
                self.add(
                    loc,
                    rule,
                    f"{what} has a key that is {_kind(key_node)}, not a string; quote the key.",
                    key_node,
                )
                continue
            key = key_node.value
            pairs[key] = (key, key_node, value_node)  # the last duplicate wins, like safe_load
        return list(pairs.values())

    def _fields(
        self, node: Node | None, loc: str, rule: str, what: str, known: tuple[str, ...]
    ) -> dict[str, tuple[Node, Node]] | None:
        pairs = self._map(node, loc, rule, what)
        if pairs is None:
            return None
        out: dict[str, tuple[Node, Node]] = {}
        for key, key_node, value_node in pairs:
            if key in known:
                out[key] = (key_node, value_node)
                continue
            hint = _suggest(key, known)
            fix = f"Did you mean {hint!r}? " if hint else ""
            message = (
                f'unknown key {key!r} in {what}: OSMO rejects it ("Extra inputs are not '
                f'permitted"). {fix}Allowed keys: {", ".join(known)}.'
            )
            self.add(_child(loc, key), rule, message, key_node)
        return out

    def _seq(self, node: Node | None, loc: str, rule: str, what: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            fix = " (write [] or drop the key)" if _kind(node).startswith("null") else ""
            self.add(loc, rule, f"{what} must be a list, got {_kind(node)}{fix}.", node)
            return None
        return list(node.value)

    def _string(
        self, node: Node | None, loc: str, rule: str, what: str, *, nonempty: bool = False
    ) -> str | None:
        """The string OSMO would receive, or None after reporting a value that is not one.

        Unquoted numbers are accepted when OSMO's ``str()`` coercion gives back the same text
        (``8`` -> "8"), and reported when it would not (``007`` -> "7", ``1.0e-4`` -> "0.0001").
        """
        if not isinstance(node, ScalarNode):
            self.add(loc, rule, f"{what} must be a string, got {_kind(node)}.", node)
            return None
        text = node.value
        if node.tag == _STR:
            value = text
        elif node.tag == _NULL:
            self.add(
                loc, rule, f"{what} is empty (YAML null); give it a quoted string value.", node
            )
            return None
        elif node.tag == _BOOL:
            message = (
                f"{what} is the unquoted {text!r}, which YAML reads as a boolean: OSMO rejects "
                f"booleans here or turns them into 'True'/'False'. Quote it: \"{text}\"."
            )
            self.add(loc, rule, message, node)
            return None
        elif node.tag in (_INT, _FLOAT):
            value = str(self._construct(node))
            if value != text:
                message = (
                    f"{what} is the unquoted {text!r}, which YAML reads as a number, so OSMO "
                    f'receives {value!r}. Quote it: "{text}".'
                )
                self.add(loc, rule, message, node)
                return None
        else:
            message = (
                f"{what} is the unquoted {text!r}, which YAML reads as {_kind(node)} rather "
                f'than a string. Quote it: "{text}".'
            )
            self.add(loc, rule, message, node)
            return None
        if nonempty and not value.strip():
            self.add(loc, rule, f"{what} is empty; give it a value.", node)
            return None
        return value

    def _bool(self, node: Node, loc: str, rule: str, what: str) -> bool | None:
        if isinstance(node, ScalarNode):
            if node.tag == _BOOL:
                return bool(self._construct(node))
            if node.tag in (_STR, _INT) and node.value.lower() in _PYDANTIC_BOOL_STRINGS:
                return node.value.lower() in {"1", "on", "t", "true", "y", "yes"}
        self.add(
            loc,
            rule,
            f"{what} must be true or false, got {_kind(node)} {getattr(node, 'value', '')!r}.",
            node,
        )
        return None

    def _int(self, node: Node, loc: str, rule: str, what: str) -> int | None:
        if isinstance(node, ScalarNode):
            if node.tag == _NULL:
                return None
            value: Any = None
            if node.tag == _INT:
                value = self._construct(node)
            elif node.tag == _FLOAT:
                number = self._construct(node)
                if math.isfinite(number) and number == int(number):
                    value = int(number)
                else:
                    message = (
                        f"{what} is {node.value}, but it is an integer field (whole units "
                        f"only; OSMO rejects fractions). Use {max(1, round(number))}."
                    )
                    self.add(loc, rule, message, node)
                    return None
            elif node.tag == _STR and re.fullmatch(r"\s*[+-]?\d+\s*", node.value):
                value = int(node.value)
            if value is not None:
                if value < 0:
                    self.add(loc, rule, f"{what} is {value}; it must be 0 or more.", node)
                    return None
                return value
        self.add(
            loc,
            rule,
            f"{what} must be a whole number, got {_kind(node)} {getattr(node, 'value', '')!r}.",
            node,
        )
        return None

    def _regex(self, node: Node, loc: str, rule: str, what: str) -> None:
        pattern = self._string(node, loc, rule, what)
        if pattern:
            try:
                re.compile(pattern)
            except re.error as err:
                self.add(
                    loc, rule, f"{what} {pattern!r} is not a valid Python regex ({err}).", node
                )

    def _quantity(self, node: Node, loc: str, rule: str, what: str) -> None:
        """memory / storage / cacheSize: <number><unit>, binary units (resource_quantities)."""
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return
        value = self._string(node, loc, rule, what)
        if value is None:
            return
        match = _QUANTITY_RE.fullmatch(value)
        if not match:
            message = (
                f"{what} {value!r} is not a quantity: write <number><unit>, e.g. 48Gi "
                '("Resource field has invalid value").'
            )
            self.add(loc, rule, message, node)
            return
        number, unit = match.groups()
        if unit and unit not in MEASUREMENTS:
            better = {
                "GB": "Gi",
                "MB": "Mi",
                "KB": "Ki",
                "TB": "Ti",
                "g": "Gi",
                "gb": "Gi",
                "mi": "Mi",
                "gi": "Gi",
                "Gb": "Gi",
                "k": "Ki",
            }.get(unit, "Gi")
            message = (
                f'{what} {value!r} has invalid unit {unit!r} ("Resource {what.split()[-1]} '
                f'field has invalid unit: {unit}"). OSMO units are binary and spelt '
                f"{', '.join(MEASUREMENTS[:-1])}: write {number}{better}."
            )
            self.add(loc, rule, message, node)
        elif not unit:
            message = (
                f"{what} {value!r} has no unit, so OSMO reads it as {number} bytes. Add the "
                f"unit, e.g. {number}Gi."
            )
            self.add(loc, rule, message, node)
        elif unit == "m":
            message = (
                f"{what} {value!r} uses 'm', a fraction-of-a-byte unit, not mebibytes. Write "
                f"{number}Mi."
            )
            self.add(loc, rule, message, node)

    def _duration(self, node: Node, loc: str, rule: str, what: str) -> None:
        """Timeouts and checkpoint frequency (TimeoutSpec / common.to_timedelta)."""
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return
        if isinstance(node, ScalarNode) and node.tag in (_INT, _FLOAT):
            if self._construct(node) < 0:
                self.add(
                    loc,
                    rule,
                    f"{what} is negative ({node.value}); give a positive duration such as 12h.",
                    node,
                )
            return
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            self.add(
                loc,
                rule,
                f"{what} must be a number of seconds or a duration like 12h, got {_kind(node)}.",
                node,
            )
            return
        value = node.value
        if _DURATION_RE.fullmatch(value) or _ISO_DURATION_RE.fullmatch(value):
            return
        parts = re.fullmatch(r"((\d+)(d|h|ms|us|m|s))+", value)
        if re.fullmatch(r"\d+", value):
            fix = f"write {value}s, or the unquoted number {value}"
            reason = "a quoted number has no unit"
        elif parts:
            sizes = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
            total = sum(int(n) * sizes[u] for n, u in re.findall(r"(\d+)(d|h|ms|us|m|s)", value))
            fix = f"write {_best_unit(int(total))}" if total == int(total) else "use one unit"
            reason = "mixed units are rejected"
        elif re.fullmatch(r"\d+\.\d+(d|h|m|s)", value):
            fix = "use a whole number of a smaller unit (1.5h -> 90m)"
            reason = "only whole numbers are accepted"
        else:
            fix = "write <int><d|h|m|s|ms|us> (e.g. 12h), seconds, or ISO-8601 like PT10H"
            reason = "it is not a recognised duration"
        self.add(
            loc,
            rule,
            f'{what} {value!r} cannot be parsed ("Cannot recognize duration"): {reason}; {fix}.',
            node,
        )

    def _storage_url(self, node: Node, loc: str, rule: str, what: str) -> None:
        url = self._string(node, loc, rule, what, nonempty=True)
        if url and not STORAGE_URL_RE.match(url):
            message = (
                f"{what} {url!r} is not a storage URL OSMO can use: it must look like "
                "s3://bucket/prefix/, gs://bucket/prefix/, azure://account/container/..., "
                "tos://bucket/prefix or swift://account/container/prefix (no empty path parts, "
                "no ',', ';' or '*')."
            )
            self.add(loc, rule, message, node)

    # ---- workflow ---------------------------------------------------------------------------

    def _check_workflow(self, node: Node) -> None:
        loc = "workflow"
        fields = self._fields(node, loc, "V-S2", "workflow", WORKFLOW_KEYS)
        if fields is None:
            return
        wf_name = None
        if "name" in fields:
            wf_name = self._name(fields["name"][1], "workflow.name", "workflow")
        else:
            message = (
                "the workflow has no name; add 'name: <name>' under "
                "workflow (the workflow ID becomes <name>-<N>)."
            )
            self.add(loc, "V-S1", message, node)
        if wf_name is not None and len(wf_name) > self.max_name_length:
            message = (
                f"workflow name {wf_name!r} has {len(wf_name)} characters; the limit is "
                f"{self.max_name_length}. Shorten it."
            )
            self.add("workflow.name", "V-N1", message, fields["name"][1])
        if "pool" in fields:
            self._string(fields["pool"][1], "workflow.pool", "V-S2", "workflow.pool")
        if "backend" in fields:
            self.add(
                "workflow.backend",
                "V-S2",
                "'backend' is internal: the server sets it from the pool. Remove it.",
                fields["backend"][0],
            )
        if "labels" in fields:
            self._check_labels(fields["labels"][1], "workflow.labels", fields["labels"][0])
        resources: dict[str, set[str]] | None = {"default": set()}
        if "resources" in fields:
            resources = self._check_resources(fields["resources"][1], "workflow.resources")
        if "timeout" in fields:
            self._check_timeout(fields["timeout"][1], "workflow.timeout")

        tasks_node = fields.get("tasks", (None, None))[1]
        groups_node = fields.get("groups", (None, None))[1]
        has_tasks = isinstance(tasks_node, SequenceNode) and bool(tasks_node.value)
        has_groups = isinstance(groups_node, SequenceNode) and bool(groups_node.value)
        for key, value in (("tasks", tasks_node), ("groups", groups_node)):
            if (
                value is not None
                and not isinstance(value, SequenceNode)
                and not (isinstance(value, ScalarNode) and value.tag == _NULL)
            ):
                self.add(
                    f"workflow.{key}",
                    "V-S2",
                    f"workflow.{key} must be a list, got {_kind(value)}.",
                    value,
                )
        if has_tasks and has_groups:
            message = (
                "Cannot use both groups and tasks in the same workflow: keep 'tasks:' for "
                "single-node runs, or move every task into 'groups:' (one group per run)."
            )
            self.add("workflow", "V-S2", message, groups_node)
        elif not has_tasks and not has_groups:
            message = (
                "Workflows need to have at least one group or one task: add a non-empty "
                "'tasks:' list."
            )
            self.add("workflow", "V-S2", message, node)

        tasks: list[_Task] = []
        group_names: list[tuple[str, str, Node]] = []  # (name, loc, node)
        if has_tasks:
            for i, task_node in enumerate(tasks_node.value):
                task = self._check_task(task_node, f"workflow.tasks[{i}]", i, None, flat=True)
                tasks.append(task)
        elif has_groups:
            for gi, group_node in enumerate(groups_node.value):
                gname, gtasks = self._check_group(group_node, f"workflow.groups[{gi}]", gi)
                if gname is not None:
                    group_names.append((gname, f"workflow.groups[{gi}].name", group_node))
                tasks.extend(gtasks)

        self._check_names(tasks, group_names)
        self._check_dependencies(tasks)
        if resources is not None:
            self._check_resource_refs(tasks, resources, "resources" in fields)
        self._check_task_tokens(tasks)
        for key in ("name", "pool", "labels", "resources", "timeout"):
            if key in fields:
                self._check_outside_tokens(fields[key][1], f"workflow.{key}")
        for _name, gloc, gnode in group_names:
            self._check_outside_tokens(gnode, gloc, only_scalar=True)
        if len(tasks) > self.max_tasks:
            message = (
                f"the workflow has {len(tasks)} tasks, but OSMO accepts at most "
                f'{self.max_tasks} per workflow ("Workflow cannot have more than '
                f'{self.max_tasks} tasks."; each node of a multi-node run counts). Split the '
                "sweep into several workflows or ask the admin to raise max_num_tasks."
            )
            self.add("workflow", "V-P5", message, tasks_node if has_tasks else groups_node)

    def _name(self, node: Node, loc: str, what: str) -> str | None:
        name = self._string(node, loc, "V-S1", f"{what} name", nonempty=True)
        if name is None:
            return None
        if not NAME_RE.match(name):
            hint = ""
            if "." in name:
                hint = (
                    " Dots are not allowed: do not encode values such as 0.001 in names; "
                    "use an index such as run-003 and keep the value in args."
                )
            message = (
                f"{what} name {name!r} does not match {NAME_PATTERN_TEXT}: start with a "
                "letter, use only letters, digits, '-' and '_', end with a letter or digit."
                f"{hint}"
            )
            self.add(loc, "V-S1", message, node)
        return name

    def _check_labels(self, node: Node, loc: str, key_node: Node) -> None:
        if self.legacy:
            message = (
                "workflow 'labels' exist only on OSMO main/6.4; a 6.3 server rejects them. "
                "Remove them or target a 6.4 server."
            )
            self.add(loc, "V-S10", message, key_node)
            return
        pairs = self._map(node, loc, "V-S10", "workflow.labels")
        if pairs is None:
            return
        if len(pairs) > MAX_LABELS:
            self.add(
                loc,
                "V-S10",
                f"{len(pairs)} labels given; workflows can have at most {MAX_LABELS}. Drop some.",
                node,
            )
        for key, key_node_, value_node in pairs:
            where = _child(loc, key)
            parts = key.split("/")
            bad = len(parts) > 2 or (len(parts) == 2 and not _DNS_PREFIX_RE.fullmatch(parts[0]))
            if bad or not _LABEL_NAME_RE.fullmatch(parts[-1]):
                message = (
                    f"label key {key!r} is not a Kubernetes label key: [dns-prefix/]name, name "
                    "1-63 characters of letters, digits, '-', '_', '.', starting and ending "
                    "alphanumeric."
                )
                self.add(where, "V-S10", message, key_node_)
            value = self._string(value_node, where, "V-S10", f"label {key!r} value")
            if value is not None and not _LABEL_NAME_RE.fullmatch(value):
                message = (
                    f"label value {value!r} is not a valid non-empty Kubernetes label value "
                    "(1-63 characters of letters, digits, '-', '_', '.', starting and ending "
                    "alphanumeric)."
                )
                self.add(where, "V-S10", message, value_node)

    def _check_resources(self, node: Node, loc: str) -> dict[str, set[str]] | None:
        pairs = self._map(node, loc, "V-S8", "workflow.resources")
        if pairs is None:
            return None
        result: dict[str, set[str]] = {}
        for rname, _key_node, spec in pairs:
            rloc = _child(loc, rname)
            result[rname] = set()
            fields = self._fields(spec, rloc, "V-S8", f"resource spec {rname!r}", RESOURCE_KEYS)
            if fields is None:
                continue
            for key in ("cpu", "gpu"):
                if key in fields:
                    self._int(fields[key][1], _child(rloc, key), "V-S8", f"{key}")
            for key in ("memory", "storage"):
                if key in fields:
                    self._quantity(fields[key][1], _child(rloc, key), "V-S8", f"resource {key}")
            if "platform" in fields:
                value = fields["platform"][1]
                if not (isinstance(value, ScalarNode) and value.tag == _NULL):
                    self._string(value, _child(rloc, "platform"), "V-S8", "platform")
            if "nodesExcluded" in fields:
                items = self._seq(
                    fields["nodesExcluded"][1],
                    _child(rloc, "nodesExcluded"),
                    "V-S8",
                    "nodesExcluded",
                )
                for i, item in enumerate(items or []):
                    self._string(item, f"{rloc}.nodesExcluded[{i}]", "V-S8", "node name")
            if "topology" in fields:
                tloc = _child(rloc, "topology")
                for i, item in enumerate(
                    self._seq(fields["topology"][1], tloc, "V-S8", "topology") or []
                ):
                    iloc = f"{tloc}[{i}]"
                    tf = self._fields(item, iloc, "V-S8", "topology requirement", TOPOLOGY_KEYS)
                    if tf is None:
                        continue
                    if "key" not in tf:
                        self.add(
                            iloc,
                            "V-S8",
                            "topology requirement needs a 'key' (one of the pool's topology keys).",
                            item,
                        )
                    else:
                        key = self._string(tf["key"][1], f"{iloc}.key", "V-S8", "topology key")
                        if key:
                            result[rname].add(key)
                    if "group" in tf:
                        self._string(tf["group"][1], f"{iloc}.group", "V-S8", "topology group")
                    if "requirementType" in tf:
                        kind = self._string(
                            tf["requirementType"][1],
                            f"{iloc}.requirementType",
                            "V-S8",
                            "requirementType",
                        )
                        if kind is not None and kind not in ("required", "preferred"):
                            self.add(
                                f"{iloc}.requirementType",
                                "V-S8",
                                f"requirementType {kind!r} must be 'required' or 'preferred'.",
                                tf["requirementType"][1],
                            )
        return result

    def _check_timeout(self, node: Node, loc: str) -> None:
        fields = self._fields(node, loc, "V-S9", "workflow.timeout", TIMEOUT_KEYS)
        for key, (_key_node, value) in (fields or {}).items():
            self._duration(value, _child(loc, key), "V-S9", key)

    # ---- groups and tasks -------------------------------------------------------------------

    def _check_group(self, node: Node, loc: str, index: int) -> tuple[str | None, list[_Task]]:
        fields = self._fields(node, loc, "V-S7", "group", GROUP_KEYS)
        if fields is None:
            return None, []
        name = None
        if "name" in fields:
            name = self._name(fields["name"][1], f"{loc}.name", "group")
        else:
            self.add(loc, "V-S1", "the group has no name; add 'name: <name>'.", node)
        for key in ("barrier", "ignoreNonleadStatus"):
            if key in fields:
                self._bool(fields[key][1], _child(loc, key), "V-S7", key)
        if "tasks" not in fields:
            self.add(
                loc,
                "V-S7",
                f"group {name!r} has no 'tasks' list; a group needs at least one task.",
                node,
            )
            return name, []
        items = self._seq(fields["tasks"][1], f"{loc}.tasks", "V-S7", f"group {name!r} tasks")
        if items is None:
            return name, []
        if not items:
            self.add(
                f"{loc}.tasks",
                "V-S7",
                f"Group {name!r} needs to have at least one task.",
                fields["tasks"][1],
            )
            return name, []
        tasks = [
            self._check_task(item, f"{loc}.tasks[{i}]", index, name, flat=False)
            for i, item in enumerate(items)
        ]
        leads = [t for t in tasks if t.lead]
        if len(tasks) > 1 and len(leads) != 1:
            names = ", ".join(repr(t.name) for t in leads) or "none"
            message = (
                f"Group {name!r} has {len(leads)} leader(s) ({names}) but must have exactly "
                "one: set 'lead: true' on exactly one task (torchrun rank 0); the group ends "
                "when the lead ends."
            )
            self.add(f"{loc}.tasks", "V-S7", message, fields["tasks"][1])
        return name, tasks

    def _check_task(
        self, node: Node, loc: str, index: int, group: str | None, *, flat: bool
    ) -> _Task:
        task = _Task(None, loc, node, index, group, flat)
        fields = self._fields(node, loc, "V-S5", "task", TASK_KEYS)
        if fields is None:
            return task
        for key in ("name", "image", "command"):
            if key not in fields:
                rule = "V-S1" if key == "name" else "V-S5"
                self.add(loc, rule, f"the task has no {key!r}; it is required.", node)
        if "name" in fields:
            task.name = self._name(fields["name"][1], f"{loc}.name", "task")
            if flat and task.name is not None:
                task.group_name = f"{task.name}-group"
        label = f"task {task.name!r}" if task.name else "task"
        if "image" in fields:
            image = self._string(fields["image"][1], f"{loc}.image", "V-S5", "image", nonempty=True)
            if image and not IMAGE_RE.match(image):
                message = (
                    f"image {image!r} cannot be parsed as a Docker image reference "
                    '("Could not parse docker image"): use [host[:port]/]lowercase/path'
                    "[:tag][@digest], e.g. nvcr.io/my-org/act-hydra:1.0.0."
                )
                self.add(f"{loc}.image", "V-K1", message, fields["image"][1])
        if "command" in fields:
            items = self._seq(fields["command"][1], f"{loc}.command", "V-S5", "command")
            if items is not None and not items:
                message = (
                    f"Container {task.name} should have at least one command: e.g. "
                    'command: ["python", "-m", "act_hydra.train"].'
                )
                self.add(f"{loc}.command", "V-S5", message, fields["command"][1])
            for i, item in enumerate(items or []):
                self._string(item, f"{loc}.command[{i}]", "V-S5", "command item")
        if "args" in fields:
            for i, item in enumerate(
                self._seq(fields["args"][1], f"{loc}.args", "V-S5", "args") or []
            ):
                self._string(item, f"{loc}.args[{i}]", "V-S5", "arg")
        if "lead" in fields:
            task.lead = bool(self._bool(fields["lead"][1], f"{loc}.lead", "V-S5", "lead"))
        env_names: dict[str, str] = {}
        if "environment" in fields:
            eloc = f"{loc}.environment"
            for key, _key_node, value in (
                self._map(fields["environment"][1], eloc, "V-S5", "environment") or []
            ):
                where = _child(eloc, key)
                if isinstance(value, (MappingNode, SequenceNode)):
                    message = (
                        f"environment value of {key} is {_kind(value)}; values must be plain "
                        "strings (nested values are rejected). Quote a JSON string if needed."
                    )
                    self.add(where, "V-S5", message, value)
                    continue
                self._string(value, where, "V-S5", f"environment value of {key}")
                env_names[key] = where
        if "credentials" in fields:
            self._check_credentials(fields["credentials"][1], f"{loc}.credentials", env_names)
        if "inputs" in fields:
            self._check_io(fields["inputs"][1], f"{loc}.inputs", "inputs", task)
        if "outputs" in fields:
            self._check_io(fields["outputs"][1], f"{loc}.outputs", "outputs", task)
        if "files" in fields:
            self._check_files(fields["files"][1], f"{loc}.files", label)
        if "resource" in fields:
            task.resource = self._string(
                fields["resource"][1], f"{loc}.resource", "V-S5", "resource", nonempty=True
            )
            task.resource_node = fields["resource"][1]
        if "exitActions" in fields:
            self._check_exit_actions(fields["exitActions"][1], f"{loc}.exitActions", label)
        if "checkpoint" in fields:
            self._check_checkpoints(fields["checkpoint"][1], f"{loc}.checkpoint")
        if "volumeMounts" in fields:
            vloc = f"{loc}.volumeMounts"
            for i, item in enumerate(
                self._seq(fields["volumeMounts"][1], vloc, "V-S5", "volumeMounts") or []
            ):
                mount = self._string(item, f"{vloc}[{i}]", "V-S5", "volume mount")
                if mount is None:
                    continue
                parts = mount.split(":")
                if len(parts) > 2 or not parts[0] or (len(parts) == 2 and not parts[1]):
                    message = (
                        f"Invalid task volume mount: {mount!r}; write 'src' or 'src:dst' "
                        "(the platform must allow src)."
                    )
                    self.add(f"{vloc}[{i}]", "V-S5", message, item)
        for key in ("privileged", "hostNetwork"):
            if key in fields:
                self._bool(fields[key][1], f"{loc}.{key}", "V-S5", key)
        if "downloadType" in fields:
            value = fields["downloadType"][1]
            if not (isinstance(value, ScalarNode) and value.tag == _NULL):
                kind = self._string(value, f"{loc}.downloadType", "V-S5", "downloadType")
                if kind is not None and kind != "download":
                    message = (
                        f"{label} uses invalid downloadType {kind!r}; the only valid value is "
                        "'download' (or drop the key)."
                    )
                    self.add(f"{loc}.downloadType", "V-S5", message, value)
        if "cacheSize" in fields:
            value = fields["cacheSize"][1]
            size = None
            if not (isinstance(value, ScalarNode) and value.tag == _NULL):
                size = self._string(value, f"{loc}.cacheSize", "V-S5", "cacheSize")
            if size is not None and size.endswith("%"):
                try:
                    ok = 0 <= float(size[:-1]) <= 100
                except ValueError:
                    ok = False
                if not ok:
                    self.add(
                        f"{loc}.cacheSize",
                        "V-S5",
                        f"cacheSize {size!r} must be a percentage 0-100% or a size like 20Gi.",
                        value,
                    )
            elif size is not None:
                self._quantity(value, f"{loc}.cacheSize", "V-S5", "cacheSize")
        if "kpis" in fields:
            kloc = f"{loc}.kpis"
            for i, item in enumerate(self._seq(fields["kpis"][1], kloc, "V-S5", "kpis") or []):
                kf = self._fields(item, f"{kloc}[{i}]", "V-S5", "kpi", KPI_KEYS)
                for key in KPI_KEYS:
                    if kf is not None and key not in kf:
                        self.add(f"{kloc}[{i}]", "V-S5", f"kpi needs {key!r}.", item)
                    elif kf is not None:
                        self._string(kf[key][1], f"{kloc}[{i}].{key}", "V-S5", f"kpi {key}")
        if "resources" in fields:
            message = (
                f"{label} has 'resources:', which the server overwrites from 'resource:', so "
                "these values are ignored. Put them in workflow.resources.<name> and set "
                "'resource: <name>' on the task."
            )
            self.add(f"{loc}.resources", "V-S5", message, fields["resources"][0])
        if "backend" in fields:
            self.add(
                f"{loc}.backend",
                "V-S5",
                "'backend' is internal: the server sets it. Remove it.",
                fields["backend"][0],
            )
        return task

    def _check_credentials(self, node: Node, loc: str, env_names: dict[str, str]) -> None:
        pairs = self._map(node, loc, "V-S5", "credentials")
        mapped: dict[str, str] = {}
        for cred, key_node, value in pairs or []:
            where = _child(loc, cred)
            if not NAME_RE.match(cred):
                message = (
                    f"credential name {cred!r} does not match {NAME_PATTERN_TEXT}, so no such "
                    "credential can exist (osmo credential set enforces it)."
                )
                self.add(where, "V-S5", message, key_node)
            if isinstance(value, SequenceNode):
                message = (
                    f"credential {cred!r} is a list, which OSMO rejects: map environment "
                    f"variables to payload keys ({cred}: {{ENV_NAME: payload_key}}) or give a "
                    "mount directory string."
                )
                self.add(where, "V-S5", message, value)
            elif isinstance(value, MappingNode):
                entries = self._map(value, where, "V-S5", f"credential {cred!r}") or []
                if not entries:
                    message = (
                        f"credential {cred!r} maps no environment variable; e.g. "
                        f"{cred}: {{WANDB_API_KEY: wandb_api_key}}."
                    )
                    self.add(where, "V-S5", message, value)
                for env, env_key_node, payload in entries:
                    eloc = _child(where, env)
                    if isinstance(payload, (MappingNode, SequenceNode)):
                        message = (
                            f"credential {cred!r} maps {env} to {_kind(payload)}; the value must "
                            "be the payload key (a string) of the credential."
                        )
                        self.add(eloc, "V-S5", message, payload)
                        continue
                    self._string(payload, eloc, "V-S5", f"payload key for {env}", nonempty=True)
                    if env in mapped:
                        message = (
                            f"environment variable {env} is mapped twice ({mapped[env]} and "
                            f"{eloc}); the later one silently wins. Map it once."
                        )
                        self.add(eloc, "V-S5", message, env_key_node)
                    elif env in env_names:
                        message = (
                            f"environment variable {env} is set both in {env_names[env]} and "
                            "from a credential; drop one of them."
                        )
                        self.add(eloc, "V-S5", message, env_key_node)
                    mapped.setdefault(env, eloc)
            else:
                self._string(value, where, "V-S5", f"credential {cred!r} mount path", nonempty=True)

    def _check_io(self, node: Node, loc: str, kind: str, task: _Task) -> None:
        items = self._seq(node, loc, "V-S6", kind)
        forms = (
            ("task", "url", "dataset") if kind == "inputs" else ("url", "dataset", "update_dataset")
        )
        example = (
            "{task: <name>} or {url: s3://bucket/prefix/}"
            if kind == "inputs"
            else ("{url: s3://bucket/prefix/{{workflow_id}}/<task>/}")
        )
        for i, item in enumerate(items or []):
            iloc = f"{loc}[{i}]"
            if kind == "inputs":
                task.input_count += 1
            pairs = self._map(item, iloc, "V-S6", f"each item of {kind}")
            if pairs is None:
                continue
            keys = {key: (key_node, value) for key, key_node, value in pairs}
            present = [k for k in forms if k in keys]
            if not present:
                hint = ""
                if kind == "outputs" and "task" in keys:
                    hint = " Outputs cannot be a task; downstream tasks list this task as input."
                message = (
                    f"{kind} item has none of the forms {', '.join(forms)} (keys: "
                    f"{', '.join(keys) or 'none'}); write it as {example}.{hint}"
                )
                self.add(iloc, "V-S6", message, item)
                continue
            if len(present) > 1:
                message = (
                    f"{kind} item mixes the forms {', '.join(present)}; each item is exactly "
                    f"one of them: split it into {len(present)} items."
                )
                self.add(iloc, "V-S6", message, item)
                continue
            form = present[0]
            allowed = {"task": ("task", "regex"), "url": ("url", "regex")}.get(form, (form,))
            for key, (key_node, _value) in keys.items():
                if key in allowed:
                    continue
                if form == "url" and kind == "outputs" and key == "path":
                    message = (
                        "url outputs have no 'path' key (\"Extra inputs are not permitted\"): "
                        "the contents of {{output}} are uploaded directly under the URL. Append "
                        "the sub-folder to the URL or write the files into {{output}}/<path>."
                    )
                else:
                    message = (
                        f'unknown key {key!r} in a {form} {kind[:-1]} ("Extra inputs are not '
                        f'permitted"); allowed keys: {", ".join(allowed)}.'
                    )
                self.add(_child(iloc, key), "V-S6", message, key_node)
            if "regex" in keys and form in ("task", "url"):
                self._regex(keys["regex"][1], f"{iloc}.regex", "V-S6", "regex")
            value = keys[form][1]
            if form == "task":
                ref = self._string(value, f"{iloc}.task", "V-S6", "input task", nonempty=True)
                if ref is None:
                    continue
                match = _TASK_REF_RE.match(ref)
                if not match:
                    message = (
                        f"input task {ref!r} must be a task name or <workflow_id>:<task> "
                        f"(names match {NAME_PATTERN_TEXT})."
                    )
                    self.add(f"{iloc}.task", "V-S6", message, value)
                    continue
                second = match.group("second")
                task.input_names.add(second or match.group("first"))
                if second is None:
                    task.task_inputs.append((ref, f"{iloc}.task", value))
            elif form == "url":
                self._storage_url(value, f"{iloc}.url", "V-S6", f"{kind[:-1]} url")
            elif not self.legacy:
                message = (
                    f"'{form}:' {kind} were removed on OSMO main/6.4 (datasets are deprecated, "
                    f"PR #1083). Use {example} instead, or validate with osmo_version='6.3' for "
                    "an older server."
                )
                self.add(_child(iloc, form), "V-S6", message, keys[form][0])
            else:
                self._check_dataset(value, _child(iloc, form), form)

    def _check_dataset(self, node: Node, loc: str, form: str) -> None:
        known = (
            ("name", "path", "metadata", "labels", "regex", "localpath")
            if form == "dataset"
            else ("name", "paths", "metadata", "labels")
        )
        fields = self._fields(node, loc, "V-S6", form, known)
        if fields is None:
            return
        if "name" not in fields:
            self.add(loc, "V-S6", f"{form} needs a 'name' ([bucket/]name[:tag]).", node)
        else:
            name = self._string(
                fields["name"][1], f"{loc}.name", "V-S6", "dataset name", nonempty=True
            )
            if name is not None and not _DATASET_NAME_RE.match(name):
                message = (
                    f"dataset name {name!r} must be [bucket/]name[:tag] with parts of letters, "
                    "digits, '-', '_', '{' and '}' (no dots, at most one '/')."
                )
                self.add(f"{loc}.name", "V-S6", message, fields["name"][1])
        for key in ("path", "localpath"):
            if key in fields:
                self._string(fields[key][1], f"{loc}.{key}", "V-S6", f"dataset {key}")
        if "regex" in fields:
            self._regex(fields["regex"][1], f"{loc}.regex", "V-S6", "regex")
        for key in ("paths", "metadata", "labels"):
            if key in fields:
                for i, item in enumerate(
                    self._seq(fields[key][1], f"{loc}.{key}", "V-S6", f"dataset {key}") or []
                ):
                    self._string(item, f"{loc}.{key}[{i}]", "V-S6", f"dataset {key} entry")

    def _check_files(self, node: Node, loc: str, label: str) -> None:
        seen: dict[str, str] = {}
        for i, item in enumerate(self._seq(node, loc, "V-S5", "files") or []):
            iloc = f"{loc}[{i}]"
            fields = self._fields(item, iloc, "V-S5", "file", FILE_KEYS)
            if fields is None:
                continue
            path = None
            if "path" not in fields:
                message = (
                    "the file has no 'path' (where it appears in the "
                    "container, e.g. /tmp/launch.sh)."
                )
                self.add(iloc, "V-S5", message, item)
            else:
                path = self._string(fields["path"][1], f"{iloc}.path", "V-S5", "file path")
            if path is not None:
                resolved = path.replace("{{output}}", "/osmo/data/output")
                parts = [p for p in resolved.split("/") if p]
                if not resolved.startswith("/osmo/data/output/") and (
                    not parts or parts[0] == "osmo"
                ):
                    message = (
                        f'Empty path or adding file to "/osmo" is forbidden for file: '
                        f"{path!r}; use a path such as /tmp/<name> (only /osmo/data/output/... "
                        "is allowed under /osmo)."
                    )
                    self.add(f"{iloc}.path", "V-S5", message, fields["path"][1])
                elif path in seen:
                    message = (
                        f"{label} has multiple files at the same path {path!r} (first at "
                        f"{seen[path]}); each file path must be unique."
                    )
                    self.add(f"{iloc}.path", "V-S5", message, fields["path"][1])
                seen.setdefault(path, f"{iloc}.path")
            is_b64 = False
            if "base64" in fields:
                is_b64 = bool(self._bool(fields["base64"][1], f"{iloc}.base64", "V-S5", "base64"))
            contents = None
            if "contents" in fields:
                contents = self._string(
                    fields["contents"][1], f"{iloc}.contents", "V-S5", "file contents"
                )
                if contents is not None and is_b64:
                    try:
                        base64.b64decode(contents.encode("ascii"), validate=True)
                    except (ValueError, UnicodeEncodeError):
                        message = (
                            "base64: true, but contents is not valid base64; encode the file "
                            "(base64 -w0 FILE) or set base64: false for text."
                        )
                        self.add(f"{iloc}.contents", "V-S5", message, fields["contents"][1])
                if contents is not None:
                    size = len(contents) if is_b64 else (len(contents.encode("utf-8")) + 2) // 3 * 4
                    if size > FILE_SECRET_LIMIT:
                        message = (
                            f"file contents are {size} bytes once base64-encoded; each file "
                            "becomes a Kubernetes Secret, limited to about 1 MiB. Bake large "
                            "files into the image instead."
                        )
                        self.add(f"{iloc}.contents", "V-S5", message, fields["contents"][1])
            if "localpath" in fields:
                local = self._string(
                    fields["localpath"][1], f"{iloc}.localpath", "V-C2", "localpath", nonempty=True
                )
                if "contents" in fields:
                    message = (
                        "a file has both 'localpath' and 'contents'; the CLI refuses the "
                        "combination. Keep one."
                    )
                    self.add(f"{iloc}.localpath", "V-C2", message, fields["localpath"][0])
                elif local is not None and self.base_dir is not None:
                    target = self.base_dir / local
                    if not target.is_file():
                        message = (
                            f"localpath {local!r} does not exist as a file next to the spec "
                            f"({target}); the CLI resolves it relative to the spec file and "
                            "does not support directories."
                        )
                        self.add(f"{iloc}.localpath", "V-C2", message, fields["localpath"][1])
            elif "contents" not in fields:
                message = (
                    "the file has no 'contents' (use a block scalar "
                    "'contents: |' or, with the CLI, 'localpath:')."
                )
                self.add(iloc, "V-S5", message, item)

    def _check_exit_actions(self, node: Node, loc: str, label: str) -> None:
        for key, key_node, value in self._map(node, loc, "V-S5", "exitActions") or []:
            where = _child(loc, key)
            if key.upper() not in EXIT_ACTIONS:
                message = (
                    f"Invalid exit action {key} for {label}: use COMPLETE, FAIL or RESCHEDULE "
                    "(RESTART is rejected even though one docs page shows it)."
                )
                self.add(where, "V-S5", message, key_node)
                continue
            codes = self._string(value, where, "V-S5", f"exit codes of {key}", nonempty=True)
            if codes is not None and not _CODE_RE.match(codes):
                message = (
                    f"Invalid exit codes {codes!r} for action {key}: write a comma-separated "
                    'list of codes and ranges without spaces, e.g. "0,1-10,16".'
                )
                self.add(where, "V-S5", message, value)

    def _check_checkpoints(self, node: Node, loc: str) -> None:
        for i, item in enumerate(self._seq(node, loc, "V-S5", "checkpoint") or []):
            iloc = f"{loc}[{i}]"
            fields = self._fields(item, iloc, "V-S5", "checkpoint", CHECKPOINT_KEYS)
            if fields is None:
                continue
            for key in ("path", "url", "frequency"):
                if key not in fields:
                    self.add(iloc, "V-S5", f"checkpoint needs {key!r}.", item)
            if "path" in fields:
                self._string(
                    fields["path"][1], f"{iloc}.path", "V-S5", "checkpoint path", nonempty=True
                )
            if "url" in fields:
                self._storage_url(fields["url"][1], f"{iloc}.url", "V-S5", "checkpoint url")
            if "frequency" in fields:
                self._duration(
                    fields["frequency"][1], f"{iloc}.frequency", "V-S5", "checkpoint frequency"
                )
            if "regex" in fields:
                self._regex(fields["regex"][1], f"{iloc}.regex", "V-S5", "regex")

    # ---- cross checks -----------------------------------------------------------------------

    def _check_names(self, tasks: list[_Task], groups: list[tuple[str, str, Node]]) -> None:
        entries: list[tuple[str, str, Node, str]] = []  # (name, loc, node, what)
        if groups:
            for gname, gloc, gnode in groups:
                entries.append((gname, gloc, gnode, "group"))
        for task in tasks:
            if task.name is not None:
                entries.append((task.name, f"{task.loc}.name", task.node, "task"))
        # The server walks groups and their tasks in order; order only affects which is "second".
        entries.sort(key=lambda e: _loc_order(e[1]))
        seen: dict[str, tuple[str, str]] = {}
        for name, loc, node, what in entries:
            key = _fold(name)
            if key in seen:
                other, other_loc = seen[key]
                message = (
                    f"{what} name {name!r} collides with {other!r} at {other_loc}: OSMO "
                    f"compares names case-insensitively and treats '_' as '-' (both become "
                    f'{key!r}; "Multiple tasks/groups have the same name"). Rename one.'
                )
                self.add(loc, "V-S3", message, node)
            else:
                seen[key] = (name, loc)
            if (
                what == "task"
                and _fold(name[:63].rstrip("-_") if len(name) > 63 else name) == "osmo-ctrl"
            ):
                message = (
                    f'Container {name} cannot be named "osmo-ctrl": it is the name of OSMO\'s '
                    "sidecar container. Pick another name."
                )
                self.add(loc, "V-S4", message, node)
            limit = self.max_name_length
            if len(name) > limit:
                message = (
                    f"{what} name {name!r} has {len(name)} characters; the limit is {limit}. "
                    "Shorten it (use an index such as run-003)."
                )
                self.add(loc, "V-N1", message, node)
        for task in tasks:
            if task.flat and task.name is not None and len(task.name) <= self.max_name_length:
                group = f"{task.name}-group"
                if len(group) > self.max_name_length:
                    message = (
                        f"flat task name {task.name!r} has {len(task.name)} characters; OSMO "
                        f"turns each flat task into a group named {group!r} "
                        f"({len(group)} characters), and group names are limited to "
                        f"{self.max_name_length}, so flat task names can have at most "
                        f"{self.max_name_length - len('-group')}. Shorten it."
                    )
                    self.add(f"{task.loc}.name", "V-N1", message, task.node)

    def _check_dependencies(self, tasks: list[_Task]) -> None:
        """V-P2: task inputs name an existing task of an earlier group."""
        group_of: dict[str, _Task] = {}
        for task in tasks:
            if task.name is not None:
                group_of.setdefault(task.name, task)
        for task in tasks:
            for ref, loc, node in task.task_inputs:
                upstream = group_of.get(ref)
                if upstream is None:
                    close = difflib.get_close_matches(ref, list(group_of), n=1)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    message = (
                        f"Task input {ref} does not exist: no task of this workflow has that "
                        f"name (names are case-sensitive here).{hint}"
                    )
                    self.add(loc, "V-P2", message, node)
                elif upstream.group_index >= task.group_index:
                    me = task.group_name or "this group"
                    up = upstream.group_name or "its group"
                    why = (
                        "a task cannot depend on its own group"
                        if upstream.group_index == task.group_index
                        else "groups run in list order"
                    )
                    message = (
                        f'Group "{me}" requires input group "{up}" exists before itself: '
                        f"{why}. Move {ref!r} before {task.name!r} (no cycles, no "
                        "self-dependencies, no inputs inside one group)."
                    )
                    self.add(loc, "V-P2", message, node)

    def _check_resource_refs(
        self, tasks: list[_Task], resources: dict[str, set[str]], explicit: bool
    ) -> None:
        """V-P3 resource lookup; V-P4 uniform topology key sets."""
        key_sets: dict[tuple[str, ...], str] = {}
        for task in tasks:
            name = task.resource if task.resource is not None else "default"
            if task.resource_node is not None and task.resource is None:
                continue  # already reported as a bad value
            if name not in resources:
                if task.resource is not None:
                    have = ", ".join(resources) or "none"
                    message = (
                        f"Requesting undefined resource {name!r}: workflow.resources defines "
                        f"{have}. Add workflow.resources.{name} or fix the name."
                    )
                    self.add(f"{task.loc}.resource", "V-P3", message, task.resource_node)
                elif explicit:
                    message = (
                        f"Task {task.name} has no specified resource and workflow.resources has "
                        "no 'default' entry (\"Specify a default resource in the resources "
                        "section\"). Add 'resource: <name>' to the task or a 'default' "
                        "resource spec."
                    )
                    self.add(task.loc, "V-P3", message, task.node)
                continue
            keys = tuple(sorted(resources[name]))
            if keys:
                key_sets.setdefault(keys, f"{task.loc} ({name})")
        if len(key_sets) > 1:
            listed = "; ".join(f"[{', '.join(k)}] at {where}" for k, where in key_sets.items())
            message = (
                "All tasks must use the same topology keys, but the resource specs used by the "
                f"tasks request different key sets: {listed}. Give every topology list the same "
                "keys (or none)."
            )
            self.add("workflow.resources", "V-P4", message)

    def _check_task_tokens(self, tasks: list[_Task]) -> None:
        """V-T3 / V-P1: {{input:...}} and {{host:...}} must resolve inside their task/group."""
        members: dict[int, set[str]] = {}
        flat_names = set()
        for task in tasks:
            if task.name is None:
                continue
            if task.flat:
                flat_names.add(task.name)
            else:
                members.setdefault(task.group_index, set()).add(task.name)
        for task in tasks:
            if task.name is None:
                continue
            peers = {task.name} if task.flat else members.get(task.group_index, set())
            valid_inputs = {str(i) for i in range(task.input_count)} | task.input_names
            for loc, node in _strings(task.node, task.loc):
                for match in PROTECTED_TOKEN_RE.finditer(node.value):
                    token = match.group(0)
                    kind, _, target = match.group(1).partition(":")
                    if kind == "input" and target.rstrip(" ") not in valid_inputs:
                        if target.strip() in valid_inputs:
                            fix = f"remove the spaces: {{{{input:{target.strip()}}}}}"
                        elif task.input_count:
                            fix = "valid here: " + ", ".join(
                                f"{{{{input:{v}}}}}" for v in sorted(valid_inputs)
                            )
                        else:
                            fix = "the task has no inputs; add one under 'inputs:'"
                        message = (
                            f"{token} in task {task.name!r} does not refer to one of its "
                            f"inputs (by 0-based index or upstream task name), so OSMO leaves it "
                            f"unsubstituted; {fix}."
                        )
                        self.add(loc, "V-T3", message, node)
                    elif kind == "host" and target.rstrip(" ") not in peers:
                        target = target.strip()
                        if task.flat and target in flat_names:
                            message = (
                                f"{token} in flat task {task.name!r}: every flat task becomes "
                                f"its own group ({task.name}-group) and {{{{host:...}}}} only "
                                "resolves tasks of the same group. Put the tasks that talk to "
                                "each other into one entry of 'groups:'."
                            )
                            self.add(loc, "V-P1", message, node)
                        else:
                            where = "its group" if not task.flat else "it"
                            message = (
                                f"{token} in task {task.name!r} names no task of {where} "
                                f"(valid: {', '.join(sorted(peers)) or 'none'}), so OSMO leaves "
                                "it unsubstituted. Use {{host:<task name>}} of a task in the "
                                "same group."
                            )
                            self.add(loc, "V-T3", message, node)

    def _check_outside_tokens(self, node: Node, loc: str, *, only_scalar: bool = False) -> None:
        """V-T3: special tokens outside task fields are never substituted."""
        if only_scalar:  # a group: only its name (its tasks are checked as tasks)
            name = next((v for k, v in node.value if getattr(k, "value", None) == "name"), None)
            found = [(loc, name)] if isinstance(name, ScalarNode) and name.tag == _STR else []
        else:
            found = list(_strings(node, loc))
        for loc, node in found:
            for match in PROTECTED_TOKEN_RE.finditer(node.value):
                message = (
                    f"{match.group(0)} is outside any task: OSMO substitutes special tokens only "
                    "in task fields, so it stays literal here. Use a fixed value."
                )
                self.add(loc, "V-T3", message, node)


def _strings(node: Node, loc: str, skip: set[int] | None = None) -> Iterator[tuple[str, Node]]:
    """Every string scalar value under ``node`` (keys excluded) with its YAML path."""
    if skip and id(node) in skip:
        return
    if isinstance(node, ScalarNode):
        if node.tag == _STR:
            yield loc, node
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            yield from _strings(item, f"{loc}[{i}]", skip)
    elif isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else "?"
            yield from _strings(value_node, _child(loc, str(key)), skip)


def _loc_order(loc: str) -> tuple[int, ...]:
    """Sort key following document order of ``workflow.groups[i].tasks[j].name`` paths."""
    numbers = [int(n) for n in re.findall(r"\[(\d+)\]", loc)]
    is_group_name = loc.endswith("].name") and ".tasks[" not in loc
    return (*numbers[:1], -1 if is_group_name else 0, *numbers[1:])


def _yaml_error_text(err: BaseException) -> str:
    problem = getattr(err, "problem", None)
    context = getattr(err, "context", None)
    mark = getattr(err, "problem_mark", None)
    parts = [p for p in (context, problem) if p]
    text = "; ".join(parts) if parts else str(err).splitlines()[0]
    if mark is not None:
        text += f" (column {mark.column + 1})"
    return text


if __name__ == "__main__":
    sys.exit(main())
