"""NVIDIA OSMO workflow support: the sweep generator (act_hydra.osmo.sweep, .workflow) and an
offline validator of workflow files (act_hydra.osmo.validate).

The validator checks a workflow file against every rule the OSMO server applies that can be
decided without a server (the OSMO research notes, §2.6)::

    from act_hydra.osmo import validate_workflow_file
    for problem in validate_workflow_file("osmo/sweep.yaml"):
        print(problem)

or from a shell: ``python -m act_hydra.osmo.validate osmo/sweep.yaml``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DEFAULT_MAX_NAME_LENGTH",
    "DEFAULT_MAX_TASKS",
    "RULES",
    "Problem",
    "main_check",
    "validate_workflow_file",
    "validate_workflow_text",
]


def __getattr__(name: str) -> Any:
    # Imported lazily so `python -m act_hydra.osmo.validate` does not import the module twice.
    if name in __all__:
        return getattr(importlib.import_module("act_hydra.osmo.validate"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
