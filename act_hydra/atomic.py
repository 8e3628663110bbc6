"""Writes that a crash or a kill can never leave half done.

A file is written to a temporary name in the same folder, flushed to disk, then renamed over
the target: a reader sees either the previous complete file or the new complete file. A folder
(a generated dataset) is built under a temporary sibling name and renamed into place when it is
complete. Temporary names start with a dot and contain ``.tmp-`` so that stale ones left by a
killed process are easy to recognise and remove (``remove_stale``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TMP_MARKER = ".tmp-"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not allow opening folders
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yield a binary file; on a clean exit it replaces ``path`` whole, on an error it is gone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARKER}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_file(path) as f:
        f.write(text.encode())


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


@contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``final``; on a clean exit it becomes ``final``.

    On an error the temporary folder is removed; a killed process leaves it behind under a
    dotted ``.tmp-`` name, which ``remove_stale(final.parent)`` cleans up later. If another
    process completed ``final`` first, its folder is kept and ours is discarded.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}{TMP_MARKER}", dir=final.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp)  # lost a race with an identical writer: keep theirs
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(final.parent)


def remove_stale(folder: str | os.PathLike[str], name: str = "") -> None:
    """Remove temporary files and folders for ``name`` (all when empty) left by killed
    writers. Only call it where no other live process writes into ``folder``."""
    for stale in Path(folder).glob(f".{name}*{TMP_MARKER}*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
