"""Writes that a crash or a kill can never leave half done.

A file is written to a temporary name in the same folder, flushed to disk, then renamed over
the target: a reader sees either the previous complete file or the new complete file. A folder
(a generated dataset) is built under a temporary sibling name and renamed into place when it is
complete. Temporary names are ``.<name>.tmp-<host>-<pid>-<random>``: ``remove_stale`` deletes
those whose process is gone (on this host), so a writer killed midway leaves nothing that
lasts, and a live writer's work in progress is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TMP_MARKER = ".tmp-"


def temporary_sibling(path: Path) -> Path:
    """A fresh temporary name next to ``path``, owned by this process."""
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return path.with_name(f".{path.name}{TMP_MARKER}{owner}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale(folder: str | os.PathLike[str], name: str = "") -> list[Path]:
    """Delete the temporary files and folders for ``name`` (all names when empty) in
    ``folder`` whose writer process is gone. Only names made on this host are judged: a
    process id means nothing on another machine sharing the folder."""
    removed: list[Path] = []
    host = socket.gethostname()
    for path in Path(folder).glob(f".{name}*{TMP_MARKER}*"):
        owner = path.name.rpartition(TMP_MARKER)[2].rsplit("-", 2)  # host (may hold -), pid, random
        if len(owner) != 3 or owner[0] != host or not owner[1].isdigit():
            continue
        if _process_alive(int(owner[1])):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


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
    tmp = temporary_sibling(path)
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

    On an error the temporary folder is removed; one left by a killed process is removed by
    the next ``atomic_dir`` for the same ``final``. If another process completed ``final``
    first, its folder is kept and ours is discarded; an empty ``final`` is replaced.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final.parent, final.name)
    tmp = temporary_sibling(final)
    tmp.mkdir()
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


def writable_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be created or written (the OS's reason), or None when it can."""
    probe = folder / f".write_probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        return err.strerror or str(err)
    return None
