"""Resumable checkpoints of a run directory: the last two, each checked by its SHA-256.

``checkpoint.json`` lists the newest checkpoint first, then the one before it::

    {"version": 2, "checkpoints": [
        {"group": 1, "update": 6, "file": "checkpoint-g1-u6.ckpt", "sha256": "…", "bytes": …},
        {"group": 1, "update": 4, "file": "checkpoint-g1-u4.ckpt", "sha256": "…", "bytes": …}]}

A ``.ckpt`` file is ``MAGIC``, the length of a JSON header (8 bytes, little-endian), the
header (each leaf's dtype and shape, in ``jax.tree.leaves`` order of the states) and every
leaf's raw bytes: restoring it into the structure of freshly initialised states is exact.
It is written leaf by leaf from host copies, without packing the state into one message first
(flax's msgpack, which earlier versions wrote, held the loop for about a second on a 177 MiB
replay state: ``benchmarks/checkpoint.py``). ``.msgpack`` files of earlier runs are still
read.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from plasticine_jax.config.load import ConfigError

POINTER = "checkpoint.json"
KEEP = 2
MAGIC = b"PJXCKPT1"


class CheckpointError(ConfigError):
    """No intact checkpoint to resume from (what was written is left as it is)."""


class Checkpoint(NamedTuple):
    """Where to resume: ``group`` at ``update`` (0: from its start), with the saved bytes."""

    group: int
    update: int
    data: bytes


Payload = Sequence[bytes | np.ndarray]


def encode(tree: Any) -> list[bytes | np.ndarray]:
    """The checkpoint payload of ``tree``: the header, then a host copy of every leaf.

    The copies are what must happen before the states are donated to the next chunk; the
    hashing and writing (``write_checkpoint``) can come after it is dispatched."""
    leaves = [np.array(x, copy=True, order="C") for x in jax.tree.leaves(tree)]
    header = json.dumps([[x.dtype.name, list(x.shape)] for x in leaves]).encode()
    return [MAGIC + len(header).to_bytes(8, "little") + header, *leaves]


def decode(target: Any, data: bytes, name: str = "checkpoint") -> Any:
    """The states saved in ``data`` (a ``.ckpt`` payload, or an earlier run's flax msgpack),
    in the structure of ``target`` (freshly initialised states of the same program).

    Raises:
      CheckpointError: the saved leaves do not match ``target``'s (another program).
    """
    if not data.startswith(MAGIC):
        from flax import serialization

        return serialization.from_bytes(target, data)
    n = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 8], "little")
    offset = len(MAGIC) + 8 + n
    header = json.loads(data[len(MAGIC) + 8 : offset])
    leaves, treedef = jax.tree.flatten(target)
    expected = [[jnp.dtype(x.dtype).name, list(np.shape(x))] for x in leaves]
    if header != expected:
        pairs = zip(header, expected, strict=False)
        k = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
        if k is None:
            where = f"{len(header)} leaves saved, {len(expected)} expected"
        else:
            where = f"leaf {k}: saved {header[k]}, expected {expected[k]}"
        raise CheckpointError(
            f"{name} holds states of another program ({where}); it was written by a run with "
            "a different config or version. Resume it with the version that wrote it, or "
            "start a new run"
        )
    out = []
    for dtype, shape in header:
        dt = jnp.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        out.append(np.frombuffer(data, dt, count, offset).reshape(shape))
        offset += count * dt.itemsize
    return jax.tree.unflatten(treedef, out)


def _bytes_of(part: bytes | np.ndarray) -> memoryview:
    if isinstance(part, bytes):
        return memoryview(part)
    return memoryview(np.ascontiguousarray(part).reshape(-1).view(np.uint8))


def atomic_write(path: Path, data: bytes | Payload) -> tuple[str, int]:
    """Writes ``data`` (bytes, or the parts of a payload in order) to ``path`` through a
    temp file, fsync and rename; returns the content's SHA-256 and size."""
    parts = [data] if isinstance(data, bytes) else data
    digest, size = hashlib.sha256(), 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        for part in parts:
            view = _bytes_of(part)
            f.write(view)
            digest.update(view)
            size += view.nbytes
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return digest.hexdigest(), size


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


def write_checkpoint(
    run_dir: Path, group: int, update: int, finished: bool, data: bytes | Payload
) -> None:
    """Records the states after ``update`` of ``group`` (``data``: ``encode(states)``), or,
    with ``finished``, that the group is done; keeps the previous checkpoint and deletes
    older files."""
    if finished:
        entry: dict[str, Any] = {"group": group + 1, "update": 0, "file": None}
    else:
        name = f"checkpoint-g{group}-u{update}.ckpt"
        sha256, size = atomic_write(run_dir / name, data)
        entry = {"group": group, "update": update, "file": name, "sha256": sha256,
                 "bytes": size}  # fmt: skip
    kept = [entry, *_entries(run_dir)][:KEEP]
    atomic_write(run_dir / POINTER, json.dumps({"version": 2, "checkpoints": kept}).encode())
    names = {e["file"] for e in kept if e.get("file")}
    for pattern in ("checkpoint-g*-u*.ckpt", "checkpoint-g*-u*.msgpack"):
        for old in run_dir.glob(pattern):
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
