"""Checks shared by the command-line tools: their numeric flags and the paths they write.

Every check runs before anything is computed or written and raises BadInputError (exit code 2)
naming the flag, the value, the rule and a fix. The folder an output goes into must already
exist (an output folder itself is created, its parents are not), so a mistyped path leaves
nothing behind.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Collection
from pathlib import Path

from act_hydra.errors import BadInputError

NOT_CREATED = "missing folders are not created, so a mistyped path leaves nothing behind"
NOT_CREATED_ABOVE = (
    "the output folder is created, but not its parents, so a mistyped path leaves nothing behind"
)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse exits 2 with the message)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: it must be an integer >= {low}")
    return value


def image_formats() -> list[str]:
    """The file extensions matplotlib writes without extra software (pgf needs LaTeX)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return sorted(set(FigureCanvasAgg(Figure()).get_supported_filetypes()) - {"pgf"})


def check_output_file(path: Path, flag: str, formats: Collection[str] = ()) -> None:
    """``path`` can be written as a new or replaced file: not a folder, in a writable folder
    that exists, with one of ``formats`` as its extension (when given)."""
    check_not_a_folder(path, flag, ".png" if formats else "")
    suffix = path.suffix.lstrip(".").lower()
    if formats and suffix not in formats:
        raise BadInputError(
            f"{flag} {path} is invalid: "
            + (f"'.{suffix}'" if suffix else "a name without an extension")
            + f" is not an image format this tool writes ({', '.join(formats)}). "
            f"Fix: pass {flag} {path.with_suffix('.png')}."
        )
    check_writable_folder(path.parent, flag, path)


def check_not_a_folder(path: Path, flag: str, suffix: str = "") -> None:
    if path.is_dir():
        raise BadInputError(
            f"{flag} {path} is invalid: it is a folder, and the output is one file. "
            f"Fix: pass {flag} {path}/<name>{suffix}."
        )


def check_output_dir(path: Path, flag: str) -> None:
    """``path`` is a writable folder, or can be created as one in an existing writable folder."""
    if path.exists() and not path.is_dir():
        raise BadInputError(
            f"{flag} {path} is invalid: it is a file, and the output is written into a "
            f"folder. Fix: pass {flag} <a folder>."
        )
    if path.is_dir():
        check_writable_folder(path, flag, path)
    else:
        check_writable_folder(path.parent, flag, path, NOT_CREATED_ABOVE)


def check_writable_folder(
    folder: Path, flag: str, target: Path, why_missing: str = NOT_CREATED
) -> None:
    if not folder.is_dir():
        raise BadInputError(
            f"{flag} {target} is invalid: the folder {folder} does not exist ({why_missing}). "
            f"Fix: create it first (mkdir -p {folder}), or pass {flag} <an existing folder>/"
            f"{target.name}."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInputError(
            f"{flag} {target} is invalid: the folder {folder} is not writable. "
            f"Fix: pass {flag} <a writable folder>/{target.name}."
        )
