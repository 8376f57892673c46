"""Resumable checkpoints of a run directory: the last two, each checked by its SHA-256.

``checkpoint.json`` lists the newest checkpoint first, then the one before it::

    {"version": 2, "checkpoints": [
        {"group": 1, "update": 6, "file": "checkpoint-g1-u6.msgpack", "sha256": "…", "bytes": …},
        {"group": 1, "update": 4, "file": "checkpoint-g1-u4.msgpack", "sha256": "…", "bytes": …}]}

An entry with ``"file": null`` marks a group finished (the next group starts fresh at
update 0). Each file is written atomically (temp file, fsync, rename) *before* the pointer
names it, so a crash at any moment leaves a pointer to complete files. A file that is
missing, truncated or corrupted (its size or checksum disagrees) is reported and the
previous checkpoint is used instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from plasticine_jax.config.load import ConfigError

POINTER = "checkpoint.json"
KEEP = 2


class CheckpointError(ConfigError):
    """No intact checkpoint to resume from (what was written is left as it is)."""


class Checkpoint(NamedTuple):
    """Where to resume: ``group`` at ``update`` (0: from its start), with the saved bytes."""

    group: int
    update: int
    data: bytes


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _entries(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / POINTER
    if not path.exists():
        return []
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"{path} is corrupted ({e}); the run cannot be resumed from it. Its metrics.csv "
            f"is intact: start a new run, or restore {POINTER} from a backup"
        ) from None
    if "checkpoints" not in meta:  # version 1: one entry, no checksum
        return [meta]
    return list(meta["checkpoints"])


def write_checkpoint(run_dir: Path, group: int, update: int, finished: bool, data: bytes) -> None:
    """Records the states after ``update`` of ``group`` (or, with ``finished``, that the
    group is done), keeping the previous checkpoint and deleting older files."""
    if finished:
        entry: dict[str, Any] = {"group": group + 1, "update": 0, "file": None}
    else:
        name = f"checkpoint-g{group}-u{update}.msgpack"
        atomic_write(run_dir / name, data)
        entry = {
            "group": group,
            "update": update,
            "file": name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
    kept = [entry, *_entries(run_dir)][:KEEP]
    atomic_write(run_dir / POINTER, json.dumps({"version": 2, "checkpoints": kept}).encode())
    names = {e["file"] for e in kept if e.get("file")}
    for old in run_dir.glob("checkpoint-g*-u*.msgpack"):
        if old.name not in names:
            old.unlink()


def _verify(run_dir: Path, entry: dict[str, Any]) -> tuple[bytes | None, str]:
    path = run_dir / entry["file"]
    if not path.is_file():
        return None, f"{path.name} is missing"
    data = path.read_bytes()
    if "bytes" in entry and len(data) != entry["bytes"]:
        return None, f"{path.name} is truncated ({len(data)} of {entry['bytes']} bytes)"
    if "sha256" in entry and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        return None, f"{path.name} is corrupted (its SHA-256 does not match {POINTER})"
    return data, ""


def read_checkpoint(run_dir: Path) -> Checkpoint:
    """The newest intact checkpoint; ``(0, 0, b"")`` when none was ever written.

    Raises:
      CheckpointError: checkpoints were recorded but none of them is intact.
    """
    entries = _entries(run_dir)
    if not entries:
        return Checkpoint(0, 0, b"")
    problems = []
    for entry in entries:
        if not entry.get("file"):
            return Checkpoint(int(entry["group"]), 0, b"")
        data, problem = _verify(run_dir, entry)
        if data is not None:
            if problems:
                print(
                    f"checkpoint: {'; '.join(problems)}; resuming from the previous one "
                    f"(group {entry['group']}, update {entry['update']})",
                    file=sys.stderr,
                )
            return Checkpoint(int(entry["group"]), int(entry["update"]), data)
        problems.append(problem)
    raise CheckpointError(
        f"no intact checkpoint in {run_dir}: {'; '.join(problems)}. metrics.csv is left as "
        f"it is; start a new run to continue"
    )
