"""Exit codes of the Hydra CLIs (act-train, act-eval) for Hydra's own errors.

Hydra exits 1 both for its composition errors (a wrong type, an unknown key or config option)
and for an exception after composition. The first kind is bad input, exit 2 like every other
rule a config breaks. Each CLI's first callback calls ``mark_composed()``; an exit 1 before that
came from composition.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from act_hydra.errors import EXIT_BAD_INPUT, EXIT_UNEXPECTED

_composed = False


def mark_composed() -> None:
    global _composed
    _composed = True


def run_hydra_app(app: Callable[[], Any]) -> None:
    """Call a ``@hydra.main`` function, turning exit 1 before composition into exit 2."""
    try:
        app()
    except SystemExit as exit_:
        if exit_.code == EXIT_UNEXPECTED and not _composed:
            sys.exit(EXIT_BAD_INPUT)
        raise
