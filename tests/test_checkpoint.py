"""The checkpoint file format (runner/checkpoint.py): exact round trips, the bytes on disk
as the docstring states them, earlier runs' msgpack files, and a clear error for states of
another program."""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from plasticine_jax.runner.checkpoint import (
    MAGIC,
    POINTER,
    CheckpointError,
    decode,
    encode,
    read_checkpoint,
    write_checkpoint,
)


class State(NamedTuple):
    params: dict
    step: jnp.ndarray
    buffer: jnp.ndarray


def _state(seed=0):
    rng = np.random.default_rng(seed)
    return State(
        params={"w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                "h": jnp.asarray(rng.normal(size=(5,)), jnp.bfloat16)},
        step=jnp.asarray(7, jnp.int32),
        buffer=jnp.asarray(rng.integers(0, 255, size=(2, 3, 4)), jnp.uint8),
    )  # fmt: skip


def _assert_same(a, b):
    import jax

    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_checkpoint_round_trips_exactly_through_the_file(tmp_path):
    state = _state()
    write_checkpoint(tmp_path, 0, 5, False, encode(state))
    group, update, data = read_checkpoint(tmp_path)
    assert (group, update) == (0, 5)
    _assert_same(decode(_state(seed=1), data), state)


def test_the_file_is_magic_header_and_raw_leaves_as_documented(tmp_path):
    state = {"a": jnp.asarray([1, 2], jnp.int32), "b": jnp.asarray([[0.5]], jnp.float32)}
    write_checkpoint(tmp_path, 2, 3, False, encode(state))
    header = b'[["int32", [2]], ["float32", [1, 1]]]'
    expected = (MAGIC + len(header).to_bytes(8, "little") + header
                + np.asarray([1, 2], "<i4").tobytes() + np.asarray([0.5], "<f4").tobytes())
    path = tmp_path / "checkpoint-g2-u3.ckpt"
    assert path.read_bytes() == expected
    (entry,) = json.loads((tmp_path / POINTER).read_text())["checkpoints"]
    assert entry["sha256"] == hashlib.sha256(expected).hexdigest()
    assert entry["bytes"] == len(expected)


def test_an_earlier_runs_msgpack_checkpoint_is_still_read(tmp_path):
    state = _state()
    data = serialization.to_bytes(state)
    (tmp_path / "checkpoint-g0-u4.msgpack").write_bytes(data)
    pointer = {"version": 2, "checkpoints": [{
        "group": 0, "update": 4, "file": "checkpoint-g0-u4.msgpack",
        "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}]}  # fmt: skip
    (tmp_path / POINTER).write_text(json.dumps(pointer))
    group, update, saved = read_checkpoint(tmp_path)
    assert (group, update) == (0, 4)
    _assert_same(decode(_state(seed=1), saved), state)
    # the next checkpoint replaces it in the usual way: the last two kept, older deleted
    write_checkpoint(tmp_path, 0, 6, False, encode(state))
    write_checkpoint(tmp_path, 0, 8, False, encode(state))
    assert sorted(p.name for p in tmp_path.glob("checkpoint-g*")) == [
        "checkpoint-g0-u6.ckpt", "checkpoint-g0-u8.ckpt"]


def test_states_of_another_program_are_refused_naming_the_leaf():
    data = b"".join(bytes(p) if isinstance(p, bytes) else p.tobytes() for p in encode(_state()))
    other = _state()._replace(buffer=jnp.zeros((2, 3, 5), jnp.uint8))
    with pytest.raises(CheckpointError, match=r"leaf 3: saved \['uint8', \[2, 3, 4\]\], "
                                              r"expected \['uint8', \[2, 3, 5\]\]"):
        decode(other, data, "run/checkpoint.json's newest")
