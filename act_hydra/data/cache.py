"""The dataset cache: generated datasets live in one folder each, keyed by their settings.

``cached_dataset(kind, settings, generate)`` returns ``<root>/<kind>/<key>``, where the key is a
hash of every setting that changes the data (the generator's version included), and calls
``generate(folder)`` on first use. Generation writes into a temporary sibling folder that is
renamed into place in one step (act_hydra.atomic.atomic_dir): a killed generation leaves no half
dataset behind, and parallel sweep jobs that race to create the same dataset are safe (one
rename wins, the others use the winner's). ``MANIFEST`` (the settings) is written last.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from act_hydra.atomic import atomic_dir, writable_problem
from act_hydra.errors import DatasetError

CACHE_ENV = "ACT_HYDRA_CACHE"
MANIFEST = "task.json"


def default_cache_root() -> Path:
    """``$ACT_HYDRA_CACHE``, else ``$XDG_CACHE_HOME/act_hydra``, else ``~/.cache/act_hydra``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "act_hydra"


def cache_key(settings: dict[str, Any]) -> str:
    """Short hash of the settings (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def cached_dataset(
    kind: str,
    settings: dict[str, Any],
    generate: Callable[[Path], dict[str, Any]],
    cache_root: str | Path | None = None,
) -> Path:
    """The folder of the dataset for ``settings``, generated on first use.

    ``generate(folder)`` writes the episodes and returns facts for the manifest (for example the
    scripted success rate); the manifest holds them next to the settings.
    """
    root = Path(cache_root).expanduser() if cache_root is not None else default_cache_root()
    final = root / kind / cache_key(settings)
    if (final / MANIFEST).is_file():
        return final
    problem = writable_problem(root / kind)
    if problem:
        setting = (
            f"data.dataset_dir={str(cache_root)!r}"
            if cache_root is not None
            else f"the dataset cache {root} (${CACHE_ENV}, else ~/.cache/act_hydra)"
        )
        raise DatasetError(
            f"{setting} is invalid: generated datasets are written into {root / kind}, which "
            f"cannot be created or written ({problem}). Fix: pass data.dataset_dir=<a writable "
            f"folder> or set {CACHE_ENV}=<a writable folder>."
        )
    with atomic_dir(final) as tmp:
        facts = generate(tmp)
        (tmp / MANIFEST).write_text(json.dumps({**settings, **facts}, indent=2) + "\n")
    if not (final / MANIFEST).is_file():
        raise RuntimeError(
            f"{final} holds no complete dataset (no {MANIFEST}); delete that folder and run again."
        )
    return final
