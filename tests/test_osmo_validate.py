"""Offline OSMO workflow validator: good files pass, each broken variant names its rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from act_hydra.errors import EXIT_BAD_INPUT
from act_hydra.osmo import RULES, Problem, main_check, validate_workflow_file
from act_hydra.osmo import validate_workflow_text as check

DATA = Path(__file__).parent / "data" / "osmo"
GOOD = ["sweep_3run.yaml", "ddp_2node.yaml", "sweep_4gpu.yaml"]
SWEEP = "sweep_3run.yaml"
DDP = "ddp_2node.yaml"
GPU4 = "sweep_4gpu.yaml"
JINJA = "templated_sweep.yaml"

URL0 = '- url: "s3://my-bucket/act-sweeps/{{workflow_id}}/run-000/"'
ARGS0 = (
    '["training.lr=1e-4", "training.batch_size=8", "training.seed=0", '
    '"hydra.run.dir={{output}}/hydra"]'
)
GROUP0 = 'WANDB_RUN_GROUP: "{{workflow_id}}"'
NAME0 = 'WANDB_NAME: "run-000"'


def text(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize("name", GOOD)
def test_good_files_validate_clean(name: str) -> None:
    assert validate_workflow_file(DATA / name) == []


def test_a_template_is_reported_not_rendered() -> None:
    problems = check(text(JINJA))
    assert [(p.rule, p.location) for p in problems] == [("V-T4", "line 3")]
    assert "does not render templates" in problems[0].message


# (id, base file, text to replace, replacement, rule, message fragment, location or None, kwargs)
# fmt: off
BROKEN = [
    ("unknown-top-level-key", SWEEP, "version: 2", "verison: 2",
     "V-T1", "unknown top-level key 'verison'", "line 2", {}),
    ("duplicate-top-level-key", SWEEP, "version: 2", "version: 2\nversion: 2",
     "V-T1", "duplicate top-level key 'version'", "line 3", {}),
    ("no-workflow-section", SWEEP, "workflow:\n  name: act-sweep-lr", "Workflow:\n  name: x",
     "V-T1", "Workflow spec not found", None, {}),
    ("version-3", SWEEP, "version: 2", "version: 3",
     "V-T2", "version is 3", None, {}),
    ("token-with-spaces", SWEEP, ARGS0, ARGS0.replace("{{output}}", "{{ output }}"),
     "V-T3", "Write {{output}}", "workflow.tasks[0].args[3]", {}),
    ("token-misspelled", SWEEP, GROUP0, GROUP0.replace("workflow_id", "workflowid"),
     "V-T3", "Did you mean {{workflow_id}}?", "workflow.tasks[0].environment.WANDB_RUN_GROUP", {}),
    ("token-wrong-case", SWEEP, ARGS0, ARGS0.replace("{{output}}", "{{Output}}"),
     "V-T3", "Did you mean {{output}}?", "workflow.tasks[0].args[3]", {}),
    ("input-token-without-inputs", SWEEP, NAME0, 'WANDB_NAME: "{{input:0}}"',
     "V-T3", "the task has no inputs", "workflow.tasks[0].environment.WANDB_NAME", {}),
    ("host-token-unknown-task", DDP, "addr {{host:master}}", "addr {{host:mastr}}",
     "V-T3", "{{host:mastr}} in task 'master' names no task", None, {}),
    ("token-outside-task", SWEEP, "name: act-sweep-lr", 'name: "act-{{workflow_id}}"',
     "V-T3", "outside any task", "workflow.name", {}),
    ("jinja-comment-in-script", DDP, "pipefail\n", 'pipefail\n          echo "${#A[@]}"\n',
     "V-T4", "'{#' opens a Jinja comment", None, {}),
    ("unquoted-token-scalar", SWEEP, URL0, "- url: {{output}}/x",
     "V-T6", 'Quote the whole scalar: "{{output}}/x"', None, {}),
    ("yaml-syntax-error", SWEEP, "  - name: run-001\n", "  - name: [run-001\n",
     "V-T6", "not valid YAML", None, {}),
    ("name-with-dot", SWEEP, "name: run-001", "name: run-0.001",
     "V-S1", "Dots are not allowed", "workflow.tasks[1].name", {}),
    ("name-ends-with-dash", SWEEP, "name: act-sweep-lr", "name: act-sweep-",
     "V-S1", "does not match", "workflow.name", {}),
    ("task-without-name", SWEEP, "  - name: run-001\n", "  - resource: default\n",
     "V-S1", "the task has no 'name'", "workflow.tasks[1]", {}),
    ("tasks-and-groups", SWEEP, "  tasks:\n",
     "  groups: [{name: g, tasks: [{name: x, image: ubuntu, command: [ls]}]}]\n  tasks:\n",
     "V-S2", "Cannot use both groups and tasks", "workflow", {}),
    ("no-tasks-or-groups", GPU4, "  tasks:\n", "  tasks: []\n  old_tasks:\n",
     "V-S2", "at least one group or one task", "workflow", {}),
    ("unknown-workflow-key", SWEEP, "  timeout:\n", "  timeouts:\n",
     "V-S2", "Did you mean 'timeout'?", "workflow.timeouts", {}),
    ("names-collide-after-folding", SWEEP, "name: run-001", "name: Run_000",
     "V-S3", "collides with 'run-000'", "workflow.tasks[1].name", {}),
    ("group-name-collides-with-task", DDP, "  - name: ddp\n", "  - name: Worker_1\n",
     "V-S3", "collides with 'Worker_1'", "workflow.groups[0].tasks[1].name", {}),
    ("task-named-osmo-ctrl", SWEEP, "name: run-002", "name: OSMO_ctrl",
     "V-S4", 'cannot be named "osmo-ctrl"', "workflow.tasks[2].name", {}),
    ("unknown-task-key", SWEEP, "  - name: run-002\n", "  - name: run-002\n    env: {A: b}\n",
     "V-S5", "Did you mean 'environment'?", "workflow.tasks[2].env", {}),
    ("empty-command", SWEEP, "  - name: run-002\n    image: nvcr.io/my-org/act-hydra:1.0.0\n"
     '    command: ["python", "-m", "act_hydra.train"]',
     "  - name: run-002\n    image: nvcr.io/my-org/act-hydra:1.0.0\n    command: []",
     "V-S5", "should have at least one command", "workflow.tasks[2].command", {}),
    ("unquoted-number-arg-changes", SWEEP, ARGS0, ARGS0.replace("[", "[007, "),
     "V-S5", "so OSMO receives '7'", "workflow.tasks[0].args[0]", {}),
    ("unquoted-float-arg-changes", SWEEP, ARGS0, ARGS0.replace("[", "[1.0e-4, "),
     "V-S5", "receives '0.0001'", "workflow.tasks[0].args[0]", {}),
    ("boolean-arg", SWEEP, ARGS0, ARGS0.replace("[", "[true, "),
     "V-S5", "reads as a boolean", "workflow.tasks[0].args[0]", {}),
    ("unquoted-boolean-env", SWEEP, 'WANDB_PROJECT: "act-sweeps"', "WANDB_PROJECT: yes",
     "V-S5", 'Quote it: "yes"', "workflow.tasks[0].environment.WANDB_PROJECT", {}),
    ("nested-env-value", SWEEP, 'WANDB_PROJECT: "act-sweeps"', "WANDB_PROJECT: {a: b}",
     "V-S5", "nested values are rejected", "workflow.tasks[0].environment.WANDB_PROJECT", {}),
    ("credential-as-list", SWEEP, "      wandb:\n        WANDB_API_KEY: wandb_api_key",
     "      wandb: [WANDB_API_KEY]",
     "V-S5", "is a list, which OSMO rejects", "workflow.tasks[0].credentials.wandb", {}),
    ("credential-bad-name", SWEEP, "credentials:\n      wandb:", "credentials:\n      wandb.key:",
     "V-S5", "credential name 'wandb.key'", None, {}),
    ("restart-exit-action", GPU4, "RESCHEDULE: ", "RESTART: ",
     "V-S5", "Invalid exit action RESTART", "workflow.tasks[0].exitActions.RESTART", {}),
    ("bad-exit-codes", GPU4, 'COMPLETE: "0"', 'COMPLETE: "0, 1"',
     "V-S5", "Invalid exit codes '0, 1'", "workflow.tasks[0].exitActions.COMPLETE", {}),
    ("output-url-with-path", SWEEP, URL0, URL0 + "\n      path: models",
     "V-S6", "url outputs have no 'path' key", "workflow.tasks[0].outputs[0].path", {}),
    ("output-url-not-storage", SWEEP, URL0, '- url: "http://my-bucket/x/"',
     "V-S6", "is not a storage URL", "workflow.tasks[0].outputs[0].url", {}),
    ("input-mixes-forms", SWEEP, URL0, URL0 + "\n    inputs: [{task: run-000, url: 's3://b/x'}]",
     "V-S6", "mixes the forms task, url", "workflow.tasks[0].inputs[0]", {}),
    ("group-two-leads", DDP, "    - name: worker-1\n", "    - name: worker-1\n      lead: true\n",
     "V-S7", "has 2 leader(s)", "workflow.groups[0].tasks", {}),
    ("group-no-lead", DDP, "      lead: true\n", "",
     "V-S7", "has 0 leader(s)", "workflow.groups[0].tasks", {}),
    ("group-empty", DDP, "  groups:\n", "  groups:\n  - {name: empty, tasks: []}\n",
     "V-S7", "needs to have at least one task", "workflow.groups[0].tasks", {}),
    ("fractional-cpu", SWEEP, "cpu: 8", "cpu: 0.5",
     "V-S8", "integer field", "workflow.resources.default.cpu", {}),
    ("negative-gpu", SWEEP, "gpu: 1", "gpu: -1",
     "V-S8", "it must be 0 or more", "workflow.resources.default.gpu", {}),
    ("memory-decimal-unit", SWEEP, "memory: 48Gi", "memory: 48GB",
     "V-S8", "invalid unit 'GB'", "workflow.resources.default.memory", {}),
    ("memory-without-unit", SWEEP, "memory: 48Gi", "memory: 48",
     "V-S8", "reads it as 48 bytes", "workflow.resources.default.memory", {}),
    ("storage-milli-unit", SWEEP, "storage: 100Gi", "storage: 512m",
     "V-S8", "not mebibytes", "workflow.resources.default.storage", {}),
    ("unknown-resource-key", SWEEP, "gpu: 1", "gpus: 1",
     "V-S8", "Did you mean 'gpu'?", "workflow.resources.default.gpus", {}),
    ("mixed-unit-timeout", SWEEP, "exec_timeout: 12h", "exec_timeout: 10h5m",
     "V-S9", "mixed units are rejected; write 605m", "workflow.timeout.exec_timeout", {}),
    ("quoted-number-timeout", SWEEP, "exec_timeout: 12h", 'exec_timeout: "3600"',
     "V-S9", "write 3600s", "workflow.timeout.exec_timeout", {}),
    ("unknown-timeout-key", SWEEP, "queue_timeout: 6h", "queue-timeout: 6h",
     "V-S9", "Did you mean 'queue_timeout'?", "workflow.timeout.queue-timeout", {}),
    ("host-token-across-flat-tasks", SWEEP, NAME0, 'WANDB_NAME: "{{host:run-001}}"',
     "V-P1", "every flat task becomes its own group", "workflow.tasks[0].environment.WANDB_NAME",
     {}),
    ("too-many-tasks", SWEEP, "name: act-sweep-lr", "name: act-sweep-lr",
     "V-P5", "at most 2 per workflow", "workflow", {"max_tasks": 2}),
    ("flat-task-name-59-chars", SWEEP, "name: run-001", "name: r" + "x" * 58,
     "V-N1", "flat task names can have at most 58", "workflow.tasks[1].name", {}),
    ("workflow-name-too-long", SWEEP, "name: act-sweep-lr", "name: a" + "x" * 64,
     "V-N1", "has 65 characters; the limit is 64", "workflow.name", {}),
]
# fmt: on


@pytest.mark.parametrize(
    ("base", "old", "new", "rule", "fragment", "location", "kwargs"),
    [pytest.param(*case[1:], id=case[0]) for case in BROKEN],
)
def test_broken_variant_reports_its_rule(
    base: str,
    old: str,
    new: str,
    rule: str,
    fragment: str,
    location: str | None,
    kwargs: dict,
) -> None:
    source = text(base)
    assert old in source, "the mutation must apply to the fixture"
    problems = check(source.replace(old, new, 1), **kwargs)
    matching = [p for p in problems if p.rule == rule and fragment in p.message]
    assert matching, f"no [{rule}] problem with {fragment!r} in:\n" + "\n".join(map(str, problems))
    if location is not None:
        assert location in [p.location for p in matching]
    assert rule in RULES


def test_at_least_fifteen_broken_variants_cover_every_rule() -> None:
    assert len(BROKEN) >= 15
    assert {case[4] for case in BROKEN} == set(RULES)


def test_quoted_values_are_fine_where_unquoted_ones_change() -> None:
    source = text(SWEEP).replace(ARGS0, ARGS0.replace("[", '["007", 8, '))
    assert check(source) == []  # "007" is quoted; 8 comes back as "8"


def test_name_length_boundary_for_flat_tasks_and_group_tasks() -> None:
    ok = text(SWEEP).replace("name: run-001", "name: r" + "x" * 57)  # 58 characters
    assert check(ok) == []
    group_task = text(DDP).replace("name: worker-1", "name: w" + "x" * 63)  # 64, in a group
    assert check(group_task) == []


def test_task_limit_counts_every_node_and_is_configurable() -> None:
    tasks = "".join(
        f"  - name: run-{i:03d}\n    image: nvcr.io/my-org/act-hydra:1.0.0\n"
        f"    command: [python, -m, act_hydra.train]\n"
        for i in range(21)
    )
    source = f"workflow:\n  name: big-sweep\n  tasks:\n{tasks}"
    problems = check(source)
    assert [p.rule for p in problems] == ["V-P5"]
    assert "21 tasks" in problems[0].message
    assert check(source, max_tasks=21) == []


@pytest.mark.parametrize(
    "source",
    [
        "",
        "   \n",
        "[1, 2",
        "workflow: 5\n",
        "workflow:\n  - a\n",
        "workflow:\n  name: [a\n",
        "{workflow: {name: a}}\n",
        "workflow:\n  name: a\n  tasks: 3\n",
        "workflow:\n  name: a\n  tasks: [null, 3, {name: b}]\n",
        "workflow: !!python/name:os.system\n",
        "workflow:\n  name: a\n  tasks:\n  - name: t\n    image: i\n    command: {{output}}\n",
    ],
)
def test_garbage_comes_back_as_problems_not_exceptions(source: str) -> None:
    problems = check(source)
    assert problems and all(isinstance(p, Problem) and p.rule in RULES for p in problems)


def test_problem_has_location_line_and_readable_str() -> None:
    problems = check(text(SWEEP).replace("cpu: 8", "cpu: 0.5"))
    assert len(problems) == 1
    problem = problems[0]
    assert (problem.location, problem.rule, problem.line) == (
        "workflow.resources.default.cpu",
        "V-S8",
        10,
    )
    assert str(problem).startswith("workflow.resources.default.cpu: [V-S8] cpu is 0.5")
    assert str(problem).endswith("(line 10)")


def test_main_check_prints_ok_or_one_line_per_problem(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(text(SWEEP))
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        text(SWEEP).replace("memory: 48Gi", "memory: 48GB").replace("cpu: 8", "cpu: 0.5")
    )
    assert main_check([str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: OK\n"
    assert main_check([str(good), str(bad)]) == EXIT_BAD_INPUT
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{good}: OK"
    assert lines[1].startswith(f"{bad}: workflow.resources.default.cpu: [V-S8] ")
    assert lines[2].startswith(f"{bad}: workflow.resources.default.memory: [V-S8] ")
    assert len(lines) == 3
    assert main_check([str(tmp_path / "missing.yaml")]) == EXIT_BAD_INPUT
    assert "cannot read" in capsys.readouterr().out


def test_rules_table_lists_only_reference_ids() -> None:
    assert all(rule.split("-")[0] == "V" and desc for rule, desc in RULES.items())
