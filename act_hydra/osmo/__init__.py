"""NVIDIA OSMO support: a workflow generator for Hydra sweeps and an offline workflow check.

- :mod:`act_hydra.osmo.cli`: the ``act-osmo-sweep`` command;
- :mod:`act_hydra.osmo.config`: its cluster settings (``osmo.*``, ``conf/osmo_sweep.yaml``);
- :mod:`act_hydra.osmo.sweep`: the job list ``act_hydra.train --multirun`` would launch;
- :mod:`act_hydra.osmo.workflow`: the workflow files of a sweep;
- :mod:`act_hydra.osmo.validate` and :mod:`act_hydra.osmo.rules`: the offline check::

    from act_hydra.osmo import validate_workflow_file
    for problem in validate_workflow_file("osmo/osmo-workflow-sweep.yaml"):
        print(problem)
"""

from act_hydra.osmo.validate import (
    RULES,
    Problem,
    main_check,
    validate_workflow_file,
    validate_workflow_text,
)

__all__ = ["RULES", "Problem", "main_check", "validate_workflow_file", "validate_workflow_text"]
