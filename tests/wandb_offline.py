"""Read back what an offline wandb run wrote, for tests (no network, no mock).

An offline run leaves ``<dir>/wandb/offline-run-<time>-<id>/run-<id>.wandb``: wandb's
transaction log, the file that ``wandb sync`` uploads later. It is a LevelDB-style log of
serialized ``wandb.proto.wandb_internal_pb2.Record`` messages:

- a 7-byte header: ``b":W&B"``, magic 0xBEE1 (little-endian uint16), version 0;
- then 32 KiB blocks of chunks, each ``<checksum:uint32><length:uint16><type:uint8><data>``,
  where type is FULL (1) or FIRST/MIDDLE/LAST (2/3/4) for a record split over blocks, and the
  checksum is CRC-32 (IEEE) of the type byte followed by the data. A block tail shorter than a
  chunk header is zero padding.

wandb <= 0.18 shipped a Python reader for this (``wandb.sdk.internal.datastore.DataStore``);
wandb 0.31 writes it from the Go core and no longer ships one, so this module reads the format
itself and decodes every record with wandb's own protobuf classes.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = struct.Struct("<4sHB")  # ident, magic, version
CHUNK = struct.Struct("<IHB")  # checksum, length, type
BLOCK_LEN = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list:
    """Every Record in a run-*.wandb file, in the order they were written."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    ident, magic, version = HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1 or version != 0:
        raise ValueError(
            f"{path}: not a wandb transaction log ({ident!r}, {magic:#x}, version {version})"
        )
    pos, records, pending = HEADER.size, [], None
    while pos < len(data):
        left_in_block = BLOCK_LEN - pos % BLOCK_LEN
        if left_in_block < CHUNK.size:
            pos += left_in_block  # zero padding at the end of a block
            continue
        if pos + CHUNK.size > len(data):
            break  # torn tail
        checksum, length, ctype = CHUNK.unpack_from(data, pos)
        if checksum == 0 and length == 0 and ctype == 0:
            pos += left_in_block  # zero-filled rest of a block
            continue
        chunk = data[pos + CHUNK.size : pos + CHUNK.size + length]
        if len(chunk) < length:
            break  # torn tail (killed writer)
        if zlib.crc32(bytes([ctype]) + chunk) & 0xFFFFFFFF != checksum:
            raise ValueError(f"{path}: bad checksum at offset {pos}")
        pos += CHUNK.size + length
        if ctype == FULL:
            payload = chunk
        elif ctype == FIRST:
            pending = chunk
            continue
        elif ctype == MIDDLE:
            pending += chunk
            continue
        elif ctype == LAST:
            payload, pending = pending + chunk, None
        else:
            raise ValueError(f"{path}: unknown chunk type {ctype} at offset {pos}")
        record = pb.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def _items(items) -> dict[str, Any]:
    """Config/summary/history items: a key (or nested_key path) and a JSON value."""
    out: dict[str, Any] = {}
    for item in items:
        key = item.key if item.key else "/".join(item.nested_key)
        out[key] = json.loads(item.value_json)
    return out


@dataclass
class OfflineRun:
    """What one offline run recorded, decoded."""

    path: Path
    run_id: str = ""
    project: str = ""
    entity: str = ""
    group: str = ""
    name: str = ""
    job_type: str = ""
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    resumed: bool = False
    config: dict[str, Any] = field(default_factory=dict)  # top-level keys, values decoded
    history: list[dict[str, Any]] = field(default_factory=list)  # rows with "_step"
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    record_types: list[str] = field(default_factory=list)

    def history_at(self, step: int) -> dict[str, Any]:
        """Every key logged at one step (rows of the same step merged)."""
        merged: dict[str, Any] = {}
        for row in self.history:
            if row.get("_step") == step:
                merged.update(row)
        return merged


def read_offline_run(path: Path) -> OfflineRun:
    """Decode a run-*.wandb file, or the single offline run under a folder."""
    path = Path(path)
    if path.is_dir():
        path = find_offline_run_files(path, expect_one=True)[0]
    run = OfflineRun(path=path)
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        run.record_types.append(kind)
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.entity = r.run_id, r.project, r.entity
            run.group, run.name, run.job_type = r.run_group, r.display_name, r.job_type
            run.notes, run.tags, run.resumed = r.notes, list(r.tags), r.resumed
            run.config.update(_items(r.config.update))
            run.summary.update(_items(r.summary.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
            for item in record.config.remove:
                run.config.pop(item.key, None)
        elif kind == "history":
            row = _items(record.history.item)
            if record.history.HasField("step"):
                row.setdefault("_step", record.history.step.num)
            run.history.append(row)
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
            for item in record.summary.remove:
                run.summary.pop(item.key, None)
        elif kind == "artifact":
            a = record.artifact
            run.artifacts.append(
                {
                    "name": a.name,
                    "type": a.type,
                    "aliases": list(a.aliases),
                    "files": sorted(Path(e.path).name for e in a.manifest.contents),
                    "local_paths": sorted(e.local_path for e in a.manifest.contents),
                }
            )
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def find_offline_run_files(run_dir: Path, expect_one: bool = False) -> list[Path]:
    """run-*.wandb files under <run_dir>/wandb/offline-run-*/, oldest first."""
    files = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    if expect_one and len(files) != 1:
        raise AssertionError(f"expected one offline run under {run_dir}/wandb, found {files}")
    return files
