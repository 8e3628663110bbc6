"""NVIDIA OSMO workflow support: an offline validator (and, in act_hydra.osmo.sweep and act_hydra.osmo.workflow, the sweep generator).

The validator checks a workflow file against every rule the OSMO server applies that can be
decided without a server (``/work/shared/reference/osmo.md`` §2.6)::

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
