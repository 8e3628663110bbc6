"""What the OSMO server accepts in a workflow file, as data and pure functions.

The rule ids (:data:`RULES`), the keys each part of a workflow may have, the formats of names,
sizes, durations, storage URLs and special tokens, and the message of every problem
(:data:`MESSAGES`). The offline check of workflow files (:mod:`act_hydra.osmo.validate`) and the
check of the generator's ``osmo.*`` settings (:mod:`act_hydra.osmo.config`) share them, so both
apply the same rule and suggest the same fix. Each ``*_problem`` function says why a value breaks
its rule, or returns None.
"""

from __future__ import annotations

import difflib
import re

RULES: dict[str, str] = {
    "V-T1": "The top-level keys are workflow, default-values and version, each once.",
    "V-T2": "version, when present, is 2.",
    "V-T3": "Special tokens are spelt exactly, name an input of their task or a task of its "
    "group, and appear only in task fields.",
    "V-T4": "Any other {{ }}, {% %} or {# is Jinja syntax; templates are not checked.",
    "V-T6": "The file is valid YAML; a value that starts with {{ is quoted.",
    "V-S1": "Workflow, group and task names exist and match ^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$",
    "V-S2": "The workflow has known keys and exactly one non-empty tasks or groups list.",
    "V-S3": "Task and group names are unique, ignoring case and reading _ as -.",
    "V-S4": "No task is named osmo-ctrl.",
    "V-S5": "A task has known keys, an image, a non-empty command; command, args and environment "
    "values are strings OSMO receives unchanged; credentials and exitActions are well formed.",
    "V-S6": "Each input is a task or a storage URL, each output a storage URL.",
    "V-S7": "A group has tasks, and exactly one lead when it has several.",
    "V-S8": "cpu and gpu are whole numbers >= 0; memory and storage are <number><binary unit>.",
    "V-S9": "Timeouts are seconds, <int><d|h|m|s|ms|us> or ISO-8601 (no mixed units).",
    "V-P1": "Flat tasks become one-task groups: {{host:...}} cannot reach another flat task.",
    "V-P5": "A workflow has at most max_num_tasks tasks (20 by default; each node counts).",
    "V-N1": "Names have at most 64 characters, flat task names 58 (OSMO adds '-group').",
}

TOP_LEVEL_KEYS = ("workflow", "default-values", "version")
WORKFLOW_KEYS = ("name", "pool", "labels", "resources", "timeout", "tasks", "groups", "backend")
GROUP_KEYS = ("name", "barrier", "ignoreNonleadStatus", "tasks")
TASK_KEYS = (
    *("name", "image", "command", "args", "lead", "environment", "credentials", "inputs"),
    *("outputs", "files", "resource", "exitActions", "checkpoint", "volumeMounts", "privileged"),
    *("hostNetwork", "downloadType", "cacheSize", "kpis", "resources", "backend"),
)
RESOURCE_KEYS = ("cpu", "gpu", "memory", "storage", "platform", "nodesExcluded", "topology")
TIMEOUT_KEYS = ("exec_timeout", "queue_timeout")
EXIT_ACTIONS = ("COMPLETE", "FAIL", "RESCHEDULE")

NAME_RE = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$")  # also credential names
EXIT_CODES_RE = re.compile(r"^(\d+(-\d+)?)+(,\d+(-\d+)?)*$")  # "0", "0,1-10,16"
SIZE_UNITS = ("T", "Ti", "TiB", "G", "Gi", "GiB", "M", "Mi", "MiB", "K", "Ki", "KiB", "B", "m")
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)([a-zA-Z]*)")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
_DURATION_RE = re.compile(r"(\d+)(d|h|ms|us|m|s)")
_ISO_RE = re.compile(r"P(?!$)(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?")
_URI = r"[^/,;*]+"
_STORAGE_URL_RE = re.compile(
    rf"^swift://{_URI}(/{_URI}){{2,}}/*$|^s3://{_URI}(/{_URI})*/*$|^gs://{_URI}(/{_URI})*/*$"
    rf"|^tos://{_URI}(/{_URI})+/*$|^azure://{_URI}(/{_URI})+/*$"
)
# OSMO substitutes exactly these spellings; anything else in {{ }} is a Jinja expression.
TOKEN_RE = re.compile(r"\{\{(uuid|workflow_id|output|input:[^}]+|host:[^}]+)\}\}")
BRACES_RE = re.compile(r"\{\{([^\n]*?)\}\}")
JINJA_RE = re.compile(r"\{\{|\{%|\{#")  # what opens a Jinja expression, statement or comment
TOKENS = "{{output}}, {{workflow_id}}, {{input:<N>}}, {{input:<task>}}, {{host:<task>}}"

OUTPUT_PATH_HINT = "url outputs have no 'path' key: {{output}} goes directly under the URL. "

# The message of each kind of problem; the %(name)s fields are filled in where it is found.
MESSAGES = {
    "template": "the file is a Jinja template (default-values or {%% %%}); this offline check "
    "does not render templates. Check the rendered file or run `osmo workflow validate`.",
    "comment": "'{#' opens a Jinja comment (as in bash's ${#A[@]}), so OSMO's rendering fails.",
    "yaml": "not valid YAML: %(error)s.",
    "unquoted-braces": "the unquoted value %(value)s starts with '{{', which YAML reads as a "
    'map, so parsing fails. Quote the whole scalar: "%(value)s".',
    "top-key": "unknown top-level key %(key)r: OSMO allows only workflow, default-values and "
    "version. %(fix)s",
    "top-key-twice": "duplicate top-level key %(key)r: merge the two sections.",
    "version": "version is %(value)s, but the only workflow spec version is 2.",
    "no-workflow": "Workflow spec not found: add a top-level block map 'workflow:'.",
    "unknown-key": "unknown key %(key)r in %(what)s: OSMO rejects it. %(fix)sAllowed: %(known)s.",
    "type": "%(what)s must be %(expected)s, got %(kind)s.",
    "unquoted-bool": "%(what)s is the unquoted %(text)r, which YAML reads as a boolean: OSMO "
    "rejects it or receives 'True'. Quote it: \"%(text)s\".",
    "unquoted-number": "%(what)s is the unquoted %(text)r, which YAML reads as a number, so OSMO "
    'receives %(received)r. Quote it: "%(text)s".',
    "empty": "%(what)s is empty; give it a value.",
    "format": "%(what)s %(problem)s.",  # with the text of a *_problem function
    "token": "%(problem)s",  # with the text of braces_problem
    "no-name": "the %(what)s has no 'name'; add 'name: <name>'.",
    "missing": "the task has no %(key)r; it is required.",
    "long-name": "%(what)s name %(name)r has %(length)d characters; the limit is %(limit)d.",
    "long-flat-name": "%(what)s name %(name)r has %(length)d characters; flat task names can "
    "have at most %(limit)d (OSMO names the task's group <task>-group).",
    "same-name": "%(what)s name %(name)r collides with %(other)r at %(where)s: OSMO compares "
    "names ignoring case and reading '_' as '-'.",
    "osmo-ctrl": 'Container %(name)s cannot be named "osmo-ctrl" (OSMO\'s sidecar).',
    "tasks-and-groups": "Cannot use both groups and tasks in the same workflow.",
    "no-tasks": "Workflows need to have at least one group or one task.",
    "too-many-tasks": "the workflow has %(count)d tasks, but OSMO accepts at most %(limit)d per "
    "workflow (each node of a run counts). Split it into several workflows.",
    "empty-group": "Group %(name)r needs to have at least one task.",
    "leads": "Group %(name)r has %(count)d leader(s) but must have exactly one: set "
    "'lead: true' on one task (torchrun's rank 0).",
    "fraction": "%(what)s is %(text)s, but it is an integer field (whole units only).",
    "negative": "%(what)s is %(text)s; it must be 0 or more.",
    "no-command": 'Container %(name)s should have at least one command, e.g. ["python"].',
    "credential-list": "credential %(name)r is a list, which OSMO rejects: map variables to "
    "payload keys (%(name)s: {ENV_NAME: payload_key}).",
    "io-forms": "%(kind)s item %(how)s %(forms)s: each item is exactly one of them.",
    "exit-action": "Invalid exit action %(action)s: use COMPLETE, FAIL or RESCHEDULE.",
    "exit-codes": "Invalid exit codes %(codes)r for %(action)s: write codes and ranges "
    'separated by commas, no spaces, e.g. "0,1-10,16".',
    "token-outside": "%(token)s is outside any task: OSMO replaces special tokens only in task "
    "fields.",
    "input-token": "%(token)s in task %(name)r names none of its inputs (%(valid)s), so it "
    "stays literal.",
    "host-flat": "%(token)s in flat task %(name)r: every flat task becomes its own group and "
    "{{host:...}} only reaches tasks of the same group. Put both tasks in one of 'groups:'.",
    "host-token": "%(token)s in task %(name)r names no task of its group (%(valid)s).",
}


def fold(name: str) -> str:
    """OSMO compares names this way: lower case, '_' read as '-'."""
    return name.lower().replace("_", "-")


def name_problem(value: str) -> str | None:
    """A workflow, group, task or credential name."""
    if NAME_RE.match(value):
        return None
    dots = ". Dots are not allowed: name runs by index (run-003), not by value" * ("." in value)
    return f"{value!r} does not match {NAME_RE.pattern}{dots}"


def size_problem(value: str) -> str | None:
    """A memory or storage size: <number><binary unit> (``G`` means ``Gi``; ``GB`` is refused)."""
    match = _SIZE_RE.fullmatch(value)
    if not match:
        return f"{value!r} is not a size: write <number><unit>, e.g. 64Gi"
    number, unit = match.groups()
    if not unit:
        return f"{value!r} has no unit, so OSMO reads it as {number} bytes: write {number}Gi"
    if unit == "m":
        return f"{value!r} uses 'm', a thousandth of a byte, not mebibytes: write {number}Mi"
    if unit not in SIZE_UNITS:
        better = {"GB": "Gi", "MB": "Mi", "KB": "Ki", "TB": "Ti"}.get(unit, "Gi")
        return (
            f"{value!r} has invalid unit {unit!r} (units are binary: Gi, Mi, ...): write "
            f"{number}{better}"
        )
    return None


def duration_problem(value: str) -> str | None:
    """A duration written as text: <int><d|h|m|s|ms|us> or ISO-8601, one unit only."""
    if _DURATION_RE.fullmatch(value) or _ISO_RE.fullmatch(value):
        return None
    if value.isdigit():
        return f"{value!r} is a quoted number without a unit: write {value}s"
    parts = _DURATION_RE.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return f"{value!r} is not a duration: write <int><d|h|m|s|ms|us> (e.g. 12h) or ISO-8601"
    total = sum(int(n) * _SECONDS[u] for n, u in parts)
    unit = next((u for u in "dhms" if total % _SECONDS[u] == 0), None)
    fix = f"write {total // _SECONDS[unit]:.0f}{unit}" if unit else "use one unit"
    return f"{value!r} combines units, but mixed units are rejected; {fix}"


def storage_url_problem(value: str) -> str | None:
    """An input or output URL of a storage backend OSMO supports."""
    if _STORAGE_URL_RE.match(value):
        return None
    return (
        f"{value!r} is not a storage URL: s3://, gs://, tos://, azure://<account>/<container> "
        "or swift://, with no empty parts and no ',', ';' or '*'"
    )


def braces_problem(inner: str) -> tuple[str, str]:
    """(rule, message) for ``{{inner}}`` that is not a special token as written."""
    shown, compact = "{{" + inner + "}}", re.sub(r"\s+", "", inner)
    if TOKEN_RE.fullmatch("{{" + compact + "}}"):
        return (
            "V-T3",
            f"{shown} has spaces inside the braces: OSMO only recognises the exact "
            f"spelling and Jinja fails on the expression. Write {{{{{compact}}}}}.",
        )
    head, _, target = compact.partition(":")
    meant = {"output": "output", "workflowid": "workflow_id", "uuid": "uuid"}
    meant.update(input=f"input:{target or '<N>'}", host=f"host:{target or '<task>'}")
    close = difflib.get_close_matches(re.sub(r"[^a-z]", "", head.lower()), meant, 1, 0.8)
    if close:
        return (
            "V-T3",
            f"{shown} is not an OSMO special token, so Jinja fails on an undefined "
            f"variable. Did you mean {{{{{meant[close[0]]}}}}}? Special tokens are {TOKENS}.",
        )
    return (
        "V-T4",
        f"{shown} is a Jinja expression, and the submit fails on an undefined "
        f"variable. Remove it; special tokens are {TOKENS}.",
    )
