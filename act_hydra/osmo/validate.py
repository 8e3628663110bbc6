"""Offline check of NVIDIA OSMO workflow files: the server's rules the file alone decides.

It covers what the generator writes and what a hand edit plausibly breaks (the rules and their
messages are in :mod:`act_hydra.osmo.rules`). Values are checked on the YAML node tree, so the
check knows whether a value was quoted: an unquoted ``007`` in ``args`` is reported because OSMO
receives ``"7"``. Other task keys (``files``, ``checkpoint``, ...) pass unchecked and a Jinja
template is reported, not rendered; what depends on the pool, the registry or the user's
credentials only ``osmo workflow validate FILE --pool <pool>`` can check.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from act_hydra.errors import EXIT_BAD_INPUT, EXIT_OK
from act_hydra.osmo import rules
from act_hydra.osmo.rules import MESSAGES, RULES, TOKEN_RE, fold

__all__ = ["RULES", "Problem", "main_check", "validate_workflow_file", "validate_workflow_text"]

DEFAULT_MAX_TASKS = 20  # the server's max_num_tasks (an admin setting)
DEFAULT_MAX_NAME_LENGTH = 64  # the server's max_name_length (an admin setting)

_STR, _INT, _FLOAT, _BOOL, _NULL, _MAP, _SEQ = (
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")
)
_TRUE, _FALSE = {"true", "yes", "on", "y", "t", "1"}, {"false", "no", "off", "n", "f", "0"}
Names = list[tuple[str, str, Node, str]]  # (name, location, node, "workflow" | "group" | "task")
_NO_MAP, _NO_LIST = MappingNode(_MAP, []), SequenceNode(_SEQ, [])  # a key that is not there


@dataclass(frozen=True)
class Problem:
    """One reason the OSMO server would reject (or silently change) a workflow file.

    ``location`` is a YAML path such as ``workflow.tasks[2].name`` (``line N`` outside the
    workflow section), ``rule`` an id of :data:`RULES`, ``message`` what is wrong and how to
    fix it, ``line`` the 1-based line in the file when known.
    """

    location: str
    rule: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        line = f" (line {self.line})" if self.line and self.location[:5] != "line " else ""
        return f"{self.location}: [{self.rule}] {self.message}{line}"


def validate_workflow_text(
    text: str, *, max_tasks: int = DEFAULT_MAX_TASKS, max_name_length: int = DEFAULT_MAX_NAME_LENGTH
) -> list[Problem]:
    """Every problem found in the workflow ``text`` (empty: none).

    ``max_tasks`` and ``max_name_length`` are the server's admin limits. Never raises on bad
    input: a YAML error comes back as a problem.
    """
    return _Checker(text, max_tasks, max_name_length).run()


def validate_workflow_file(path: str | os.PathLike[str], **options: Any) -> list[Problem]:
    """Read ``path`` (UTF-8) and check it; ``options`` as for :func:`validate_workflow_text`.

    Raises ``OSError`` or ``UnicodeDecodeError`` when the file cannot be read.
    """
    return validate_workflow_text(Path(path).read_text(encoding="utf-8"), **options)


def main_check(paths: list[str], **options: Any) -> int:
    """Check each file; print ``FILE: OK`` or one ``FILE: LOCATION: [RULE] message`` line per
    problem. Returns EXIT_OK when every file passes, else EXIT_BAD_INPUT."""
    status = EXIT_OK
    for file in paths:
        try:
            lines = [f"{file}: {problem}" for problem in validate_workflow_file(file, **options)]
        except (OSError, UnicodeDecodeError) as err:
            lines = [f"{file}: ERROR: cannot read the file ({err})"]
        status = EXIT_BAD_INPUT if lines else status
        print("\n".join(lines or [f"{file}: OK"]))
    return status


@dataclass
class _Task:
    loc: str
    node: Node
    group: int  # the index of its group; a flat task: its own index
    flat: bool
    name: str | None = None
    lead: bool = False
    inputs: set[str] = field(default_factory=set)  # what {{input:...}} may name


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][\w-]*", key) else f"{path}[{key!r}]"


def _suggest(key: str, known: tuple[str, ...]) -> str:
    """'Did you mean ...? ' for the known key a typo most likely meant (same letters, a prefix,
    a close spelling), or ''."""
    same = [k for k in known if k.lower().replace("-", "_") == key.lower().replace("-", "_")]
    prefix = [k for k in known if len(key) >= 3 and k.lower().startswith(key.lower())]
    hint = same or prefix or difflib.get_close_matches(key, known, 1, 0.6)
    return f"Did you mean {hint[0]!r}? " if hint else ""


def _kind(node: Node) -> str:
    if isinstance(node, (MappingNode, SequenceNode)):
        return "a map" if isinstance(node, MappingNode) else "a list"
    kinds = {_STR: "a string", _INT: "an integer", _FLOAT: "a float", _BOOL: "a boolean"}
    return kinds.get(node.tag, "null (an empty value)")


def _strings(node: Node, loc: str) -> list[tuple[str, ScalarNode]]:
    """Every string value under ``node`` (keys excluded) with its YAML path."""
    if isinstance(node, SequenceNode):
        return [s for i, item in enumerate(node.value) for s in _strings(item, f"{loc}[{i}]")]
    if isinstance(node, MappingNode):
        return [s for k, v in node.value for s in _strings(v, _child(loc, str(k.value)))]
    return [(loc, node)] if isinstance(node, ScalarNode) and node.tag == _STR else []


def _unquoted_braces(line: str) -> str | None:
    """The unquoted value that starts with ``{{`` on ``line``, if any."""
    quote = ""
    for i, char in enumerate(line):
        if char in "'\"" and quote in ("", char):
            quote = "" if quote else char
        elif not quote and char == "#" and line[i - 1 : i] in ("", " "):
            return None
        elif not quote and line.startswith("{{", i):
            return line[i:].split(",")[0].split("]")[0].rstrip()
    return None


class _Checker:
    def __init__(self, text: str, max_tasks: int, max_name_length: int) -> None:
        self.text = text
        self.max_tasks = max_tasks
        self.max_name_length = max_name_length
        self.problems: list[Problem] = []

    def add(self, rule: str, message: str, loc: str, node: Node | None, /, **values: Any) -> None:
        """Report the ``message`` of :data:`MESSAGES`, filled in with ``values``, at ``loc``."""
        line = node.start_mark.line + 1 if node else int(loc[5:]) if loc[:5] == "line " else None
        problem = Problem(loc, rule, MESSAGES[message] % values, line)
        if problem not in self.problems:
            self.problems.append(problem)

    def run(self) -> list[Problem]:
        def at(offset: int) -> str:
            return f"line {self.text.count(chr(10), 0, offset) + 1}"

        template = re.search(r"\{%|^default-values\s*:", self.text, re.MULTILINE)
        if template:  # a template is YAML only once rendered
            self.add("V-T4", "template", at(template.start()), None)
            return self.problems
        for match in re.finditer(r"\{#", self.text):
            self.add("V-T4", "comment", at(match.start()), None)
        try:
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
            index, lines = (mark.line if mark else 0), self.text.splitlines()
            for i in (index, index - 1):
                if 0 <= i < len(lines) and (value := _unquoted_braces(lines[i])):
                    self.add("V-T6", "unquoted-braces", f"line {i + 1}", None, value=value)
                    return self.problems
            reasons = [getattr(err, "context", None), getattr(err, "problem", None)]
            error = "; ".join(str(r) for r in reasons if r) or str(err).splitlines()[0]
            self.add("V-T6", "yaml", f"line {index + 1}", None, error=error)
            return self.problems
        workflow = self._top_level(root)
        if workflow is not None:
            self._workflow(workflow)
        return self.problems

    def _top_level(self, root: Node | None) -> Node | None:
        """V-T1/V-T2: the server finds the sections at keys that start a line."""
        workflow, seen = None, set()
        for key_node, value in root.value if isinstance(root, MappingNode) else []:
            key, where = str(key_node.value), f"line {key_node.start_mark.line + 1}"
            if key not in rules.TOP_LEVEL_KEYS:
                fix = _suggest(key, rules.TOP_LEVEL_KEYS) or "Indent it under 'workflow:'."
                self.add("V-T1", "top-key", where, key_node, key=key, fix=fix)
            elif key in seen:
                self.add("V-T1", "top-key-twice", where, key_node, key=key)
            elif key == "version" and str(value.value).strip().lstrip("+") != "2":
                shown = value.value if isinstance(value, ScalarNode) else _kind(value)
                self.add("V-T2", "version", where, value, value=shown)
            elif key == "workflow" and not root.flow_style:  # type: ignore[union-attr]
                workflow = value
            seen.add(key)
        if workflow is None:
            self.add("V-T1", "no-workflow", "workflow", root)
        return workflow

    # ---- values ------------------------------------------------------------------------------

    def _type(self, node: Node, loc: str, rule: str, what: str, expected: str) -> None:
        self.add(rule, "type", loc, node, what=what, expected=expected, kind=_kind(node))

    def _map(self, node: Node, loc: str, rule: str, what: str) -> dict[str, tuple[Node, Node]]:
        """key -> (key node, value node); {} after reporting a value that is no map."""
        if not isinstance(node, MappingNode):
            self._type(node, loc, rule, what, "a map")
            return {}
        return {str(k.value): (k, v) for k, v in node.value}

    def _fields(
        self,
        node: Node,
        loc: str,
        rule: str,
        what: str,
        known: tuple[str, ...],
        hints: dict[str, str] | None = None,
    ) -> dict[str, Node]:
        """The values of the known keys; each unknown key is reported (with its ``hints``)."""
        pairs = self._map(node, loc, rule, what)
        for key, (key_node, _) in pairs.items():
            if key not in known:
                fix = (hints or {}).get(key) or _suggest(key, known)
                self.add(
                    rule,
                    "unknown-key",
                    _child(loc, key),
                    key_node,
                    key=key,
                    what=what,
                    fix=fix,
                    known=", ".join(known),
                )
        return {key: value for key, (_, value) in pairs.items() if key in known}

    def _list(self, node: Node, loc: str, rule: str, what: str) -> list[Node]:
        if isinstance(node, SequenceNode):
            return list(node.value)
        self._type(node, loc, rule, what, "a list" + " ([] or no key)" * (node.tag == _NULL))
        return []

    def _string(
        self, node: Node, loc: str, rule: str, what: str, nonempty: bool = False
    ) -> str | None:
        """The string OSMO receives, or None after reporting a value that is none. An unquoted
        number passes when OSMO's str() gives back its text (8), not otherwise (007, 1.0e-4)."""
        if not isinstance(node, ScalarNode) or node.tag not in (_STR, _INT, _FLOAT, _BOOL):
            self._type(node, loc, rule, what, "a string")
            return None
        text = node.value
        received = text if node.tag in (_STR, _BOOL) else str(yaml.safe_load(text))
        if node.tag == _BOOL:
            self.add(rule, "unquoted-bool", loc, node, what=what, text=text)
        elif received != text:
            self.add(rule, "unquoted-number", loc, node, what=what, text=text, received=received)
        elif nonempty and not text.strip():
            self.add(rule, "empty", loc, node, what=what)
        else:
            return text
        return None

    def _bool(self, node: Node, loc: str, rule: str, what: str) -> bool:
        word = node.value.lower() if isinstance(node, ScalarNode) else ""
        if word not in _TRUE | _FALSE:
            self._type(node, loc, rule, what, "true or false")
        return word in _TRUE

    def _format(self, problem: str | None, node: Node, loc: str, rule: str, what: str) -> None:
        if problem:
            self.add(rule, "format", loc, node, what=what, problem=problem)

    # ---- the workflow ------------------------------------------------------------------------

    def _workflow(self, node: Node) -> None:
        fields = self._fields(node, "workflow", "V-S2", "workflow", rules.WORKFLOW_KEYS)
        if not isinstance(node, MappingNode):
            return
        outside = [(f"workflow.{k}", v) for k, v in fields.items() if k not in ("tasks", "groups")]
        name = self._name(fields, "workflow", node, "workflow")
        names: Names = [(name, "workflow.name", fields["name"], "workflow")] if name else []
        self._resources(fields.get("resources", _NO_MAP))
        timeout = self._fields(
            fields.get("timeout", _NO_MAP),
            "workflow.timeout",
            "V-S9",
            "workflow.timeout",
            rules.TIMEOUT_KEYS,
        )
        for key, value in timeout.items():
            self._duration(value, f"workflow.timeout.{key}", key)
        lists = {
            key: self._list(value, f"workflow.{key}", "V-S2", f"workflow.{key}")
            for key, value in fields.items()
            if key in ("tasks", "groups") and value.tag != _NULL
        }
        if lists.get("tasks") and lists.get("groups"):
            self.add("V-S2", "tasks-and-groups", "workflow", fields["groups"])
        elif not lists.get("tasks") and not lists.get("groups"):
            self.add("V-S2", "no-tasks", "workflow", node)

        tasks: list[_Task] = []
        for i, item in enumerate(lists.get("tasks", [])):
            tasks.append(self._task(item, f"workflow.tasks[{i}]", i, flat=True))
            names.extend(self._task_names(tasks[-1:]))
        for i, item in enumerate([] if lists.get("tasks") else lists.get("groups", [])):
            group = self._group(item, f"workflow.groups[{i}]", i, names, outside)
            tasks.extend(group)
            names.extend(self._task_names(group))
        self._names(names)
        self._tokens(tasks, outside)
        if len(tasks) > self.max_tasks:
            where, limit = fields.get("tasks") or fields.get("groups"), self.max_tasks
            self.add("V-P5", "too-many-tasks", "workflow", where, count=len(tasks), limit=limit)

    def _name(self, fields: dict[str, Node], loc: str, node: Node, what: str) -> str | None:
        """V-S1: the ``name`` of a workflow, group or task."""
        if "name" not in fields:
            self.add("V-S1", "no-name", loc, node, what=what)
            return None
        value, loc, what = fields["name"], f"{loc}.name", f"{what} name"
        name = self._string(value, loc, "V-S1", what, nonempty=True)
        self._format(name and rules.name_problem(name), value, loc, "V-S1", what)
        return name

    @staticmethod
    def _task_names(tasks: list[_Task]) -> Names:
        return [(t.name, f"{t.loc}.name", t.node, "task") for t in tasks if t.name is not None]

    def _resources(self, node: Node) -> None:
        """V-S8: cpu and gpu are counts, memory and storage sizes."""
        specs = self._map(node, "workflow.resources", "V-S8", "workflow.resources")
        for name, (_, spec) in specs.items():
            loc = _child("workflow.resources", name)
            fields = self._fields(spec, loc, "V-S8", f"resource spec {name!r}", rules.RESOURCE_KEYS)
            for key, value in fields.items():
                where = _child(loc, key)
                if key in ("memory", "storage") and value.tag != _NULL:
                    text = self._string(value, where, "V-S8", key)
                    self._format(text and rules.size_problem(text), value, where, "V-S8", key)
                elif key in ("cpu", "gpu") and value.tag != _NULL:
                    self._count(value, where, key)

    def _count(self, node: Node, loc: str, what: str) -> None:
        """A whole number >= 0 (a quoted one passes, as OSMO converts it)."""
        text = node.value if isinstance(node, ScalarNode) else ""
        try:
            number = float(yaml.safe_load(text) if node.tag in (_INT, _FLOAT) else text)
        except ValueError:
            number = None
        if number is None or not math.isfinite(number):
            self._type(node, loc, "V-S8", what, "a whole number")
        elif number != int(number):
            self.add("V-S8", "fraction", loc, node, what=what, text=node.value)
        elif number < 0:
            self.add("V-S8", "negative", loc, node, what=what, text=node.value)

    def _duration(self, node: Node, loc: str, what: str) -> None:
        if node.tag in (_INT, _FLOAT, _NULL):
            if node.tag != _NULL and yaml.safe_load(node.value) < 0:
                self.add("V-S9", "negative", loc, node, what=what, text=node.value)
            return
        text = self._string(node, loc, "V-S9", what)
        self._format(text and rules.duration_problem(text), node, loc, "V-S9", what)

    def _group(
        self, node: Node, loc: str, index: int, names: Names, outside: list[tuple[str, Node]]
    ) -> list[_Task]:
        """V-S7: a group's fields, its tasks and its lead."""
        fields = self._fields(node, loc, "V-S7", "group", rules.GROUP_KEYS)
        if not isinstance(node, MappingNode):
            return []
        name = self._name(fields, loc, node, "group")
        if name is not None:
            names.append((name, f"{loc}.name", fields["name"], "group"))
            outside.append((f"{loc}.name", fields["name"]))
        for key in ("barrier", "ignoreNonleadStatus"):
            if key in fields:
                self._bool(fields[key], f"{loc}.{key}", "V-S7", key)
        items = self._list(fields.get("tasks", _NO_LIST), f"{loc}.tasks", "V-S7", "tasks")
        if not items:
            self.add("V-S7", "empty-group", f"{loc}.tasks", fields.get("tasks", node), name=name)
        tasks = [
            self._task(item, f"{loc}.tasks[{i}]", index, False) for i, item in enumerate(items)
        ]
        leads = sum(task.lead for task in tasks)
        if len(tasks) > 1 and leads != 1:
            self.add("V-S7", "leads", f"{loc}.tasks", fields["tasks"], name=name, count=leads)
        return tasks

    def _task(self, node: Node, loc: str, group: int, flat: bool) -> _Task:
        """V-S5: a task's own fields."""
        task = _Task(loc, node, group, flat)
        fields = self._fields(node, loc, "V-S5", "task", rules.TASK_KEYS)
        if not isinstance(node, MappingNode):
            return task
        task.name = self._name(fields, loc, node, "task")
        for key in ("image", "command"):
            if key not in fields:
                self.add("V-S5", "missing", loc, node, key=key)
        if "image" in fields:
            self._string(fields["image"], f"{loc}.image", "V-S5", "image", nonempty=True)
        for key in ("command", "args"):
            items = self._list(fields.get(key, _NO_LIST), f"{loc}.{key}", "V-S5", key)
            for i, item in enumerate(items):
                self._string(item, f"{loc}.{key}[{i}]", "V-S5", "arg" if key == "args" else key)
        if isinstance(fields.get("command"), SequenceNode) and not fields["command"].value:
            self.add("V-S5", "no-command", f"{loc}.command", fields["command"], name=task.name)
        if "lead" in fields:
            task.lead = self._bool(fields["lead"], f"{loc}.lead", "V-S5", "lead")
        env = self._map(
            fields.get("environment", _NO_MAP), f"{loc}.environment", "V-S5", "environment"
        )
        for key, (_, value) in env.items():
            where, what = _child(f"{loc}.environment", key), f"environment value of {key}"
            if isinstance(value, (MappingNode, SequenceNode)):
                self._type(value, where, "V-S5", what, "a string (nested values are rejected)")
            else:
                self._string(value, where, "V-S5", what)
        self._credentials(fields.get("credentials", _NO_MAP), f"{loc}.credentials")
        for key in ("inputs", "outputs"):
            self._io(fields.get(key, _NO_LIST), f"{loc}.{key}", key, task)
        if "resource" in fields:
            self._string(fields["resource"], f"{loc}.resource", "V-S5", "resource", nonempty=True)
        loc = f"{loc}.exitActions"
        actions = self._map(fields.get("exitActions", _NO_MAP), loc, "V-S5", "exitActions")
        for action, (key_node, value) in actions.items():
            where = _child(loc, action)
            if action.upper() not in rules.EXIT_ACTIONS:
                self.add("V-S5", "exit-action", where, key_node, action=action)
                continue
            codes = self._string(value, where, "V-S5", f"exit codes of {action}", True)
            if codes is not None and not rules.EXIT_CODES_RE.match(codes):
                self.add("V-S5", "exit-codes", where, value, codes=codes, action=action)
        return task

    def _credentials(self, node: Node, loc: str) -> None:
        for name, (key_node, value) in self._map(node, loc, "V-S5", "credentials").items():
            where = _child(loc, name)
            self._format(rules.name_problem(name), key_node, where, "V-S5", "credential name")
            if isinstance(value, SequenceNode):
                self.add("V-S5", "credential-list", where, value, name=name)
            elif isinstance(value, MappingNode):
                for env, (_, key) in self._map(value, where, "V-S5", "credential").items():
                    self._string(key, _child(where, env), "V-S5", f"payload key of {env}", True)
            else:
                self._string(value, where, "V-S5", f"mount path of credential {name!r}", True)

    def _io(self, node: Node, loc: str, kind: str, task: _Task) -> None:
        """V-S6: inputs are tasks or storage URLs, outputs storage URLs."""
        forms = ("task", "url") if kind == "inputs" else ("url",)
        for i, item in enumerate(self._list(node, loc, "V-S6", kind)):
            iloc = f"{loc}[{i}]"
            task.inputs.update([str(i)] if kind == "inputs" else [])
            hints = {"path": rules.OUTPUT_PATH_HINT} if kind == "outputs" else None
            pairs = self._fields(item, iloc, "V-S6", f"an item of {kind}", (*forms, "regex"), hints)
            present = [form for form in forms if form in pairs]
            if isinstance(item, MappingNode) and len(present) != 1:
                how = "mixes the forms" if present else "has none of the forms"
                forms_text = ", ".join(present or forms)
                self.add("V-S6", "io-forms", iloc, item, kind=kind, how=how, forms=forms_text)
            elif (
                present
                and (
                    value := self._string(
                        pairs[present[0]], f"{iloc}.{present[0]}", "V-S6", present[0], True
                    )
                )
                is not None
            ):
                if present[0] == "url":
                    problem = rules.storage_url_problem(value)
                    self._format(problem, pairs["url"], f"{iloc}.url", "V-S6", "url")
                else:
                    task.inputs.add(value.rsplit(":", 1)[-1])  # {{input:<task>}}

    # ---- across tasks ------------------------------------------------------------------------

    def _names(self, entries: Names) -> None:
        """V-S3 unique names, V-S4 no osmo-ctrl, V-N1 lengths (a flat task's group adds 6)."""
        seen: dict[str, tuple[str, str]] = {}
        for name, loc, node, what in entries:
            found, limit = {"what": what, "name": name, "length": len(name)}, self.max_name_length
            if what != "workflow" and fold(name) in seen:
                other, where = seen[fold(name)]
                self.add("V-S3", "same-name", loc, node, other=other, where=where, **found)
            seen.setdefault(fold(name), (name, loc))
            if what == "task" and fold(name) == "osmo-ctrl":
                self.add("V-S4", "osmo-ctrl", loc, node, **found)
            if len(name) > limit:
                self.add("V-N1", "long-name", loc, node, limit=limit, **found)
            elif loc.startswith("workflow.tasks[") and len(name) > limit - len("-group"):
                self.add("V-N1", "long-flat-name", loc, node, limit=limit - len("-group"), **found)

    def _tokens(self, tasks: list[_Task], outside: list[tuple[str, Node]]) -> None:
        """V-T3, V-T4 and V-P1 for every {{...}} in a string value."""
        groups: dict[int, set[str]] = {}
        for task in tasks:
            groups.setdefault(task.group, set()).update([task.name] if task.name else [])
        flat = {task.name for task in tasks if task.flat}
        for loc, scalar in (s for where, node in outside for s in _strings(node, where)):
            self._braces(loc, scalar)
            for match in TOKEN_RE.finditer(scalar.value):
                self.add("V-T3", "token-outside", loc, scalar, token=match.group(0))
        for task in tasks:
            peers = groups.get(task.group, set())
            for loc, scalar in _strings(task.node, task.loc):
                self._braces(loc, scalar)
                for match in TOKEN_RE.finditer(scalar.value):
                    kind, _, target = match.group(1).partition(":")
                    found = {"token": match.group(0), "name": task.name}
                    if kind == "input" and target not in task.inputs:
                        valid = ", ".join(sorted(task.inputs)) or "the task has no inputs"
                        self.add("V-T3", "input-token", loc, scalar, valid=valid, **found)
                    elif kind == "host" and target not in peers and task.flat and target in flat:
                        self.add("V-P1", "host-flat", loc, scalar, **found)
                    elif kind == "host" and target not in peers:
                        found["valid"] = ", ".join(sorted(peers))
                        self.add("V-T3", "host-token", loc, scalar, **found)

    def _braces(self, loc: str, scalar: ScalarNode) -> None:
        for match in rules.BRACES_RE.finditer(scalar.value):
            if not TOKEN_RE.fullmatch(match.group(0)):
                rule, message = rules.braces_problem(match.group(1))
                self.add(rule, "token", loc, scalar, problem=message)
