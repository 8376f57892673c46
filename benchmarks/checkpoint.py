"""Checkpoint writers side by side, on a replay agent's state: ours (``runner/checkpoint.py``:
host copies of the leaves, then a header and the raw leaves streamed to disk with their
SHA-256, atomic write, fsync), the flax msgpack payload ours wrote before (same file handling),
and Orbax (``orbax.checkpoint.StandardCheckpointer``, asynchronous).

A replay buffer makes the state large, so the case is DQN on Breakout-MinAtar
(``configs/dqn_minatar_breakout.yaml``) with ``--buffer`` transitions a member and
``--seeds`` members, the state the run loop checkpoints. For each writer, alternated
``--repeats`` times:

* ``blocking_s``: the time the run loop's thread is held before it can dispatch the next
  chunk (which donates the states). Ours: ``encode`` (host copies; the file write then
  overlaps the next chunk, see runner/loop.py); msgpack: ``flax.serialization.to_bytes``;
  Orbax: ``save`` returning. Orbax then reads the arrays in a background thread, which the
  loop's donation would not allow: in the loop it would need a copy or a wait first, so its
  ``blocking_s`` here is a lower bound.
* ``total_s``: until the checkpoint is durable on disk (ours: encoding + SHA-256 + atomic
  write with fsync; Orbax: ``wait_until_finished``).
* ``restore_s``: reading it back into the states' structure, checked equal leaf by leaf.

Usage::

    python benchmarks/checkpoint.py --seeds 8 --buffer 100000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from plasticine_jax.config import load_config
from plasticine_jax.runner.checkpoint import decode, encode, read_checkpoint, write_checkpoint
from plasticine_jax.runner.plan import plan
from plasticine_jax.runner.program import Program


def states_of(seeds: int, buffer: int):
    cfg = load_config(
        "configs/dqn_minatar_breakout.yaml",
        [f"run.num_seeds={seeds}", f"agent.buffer_size={buffer}", "agent.learning_starts=64",
         "run.total_timesteps=100000"],
    )  # fmt: skip
    (group,) = plan(cfg)
    program = Program(group)
    states = program.init()
    return jax.block_until_ready(states)


def nbytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def ours(states, run_dir: Path, k: int, msgpack: bool = False) -> dict[str, float]:
    t0 = time.perf_counter()
    data = serialization.to_bytes(states) if msgpack else encode(states)
    t1 = time.perf_counter()
    write_checkpoint(run_dir, 0, k + 1, False, data)
    t2 = time.perf_counter()
    _, _, saved = read_checkpoint(run_dir)
    back = decode(states, saved)
    t3 = time.perf_counter()
    _check_equal(states, back)
    return {"blocking_s": t1 - t0, "total_s": t2 - t0, "restore_s": t3 - t2}


def orbax(states, root: Path, k: int) -> dict[str, float]:
    import orbax.checkpoint as ocp

    ckpt = ocp.StandardCheckpointer()
    path = root / f"orbax-{k}"
    t0 = time.perf_counter()
    ckpt.save(path, states)
    t1 = time.perf_counter()
    ckpt.wait_until_finished()
    t2 = time.perf_counter()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, states)
    back = ckpt.restore(path, abstract)
    t3 = time.perf_counter()
    _check_equal(states, back)
    ckpt.close()
    shutil.rmtree(path)
    return {"blocking_s": t1 - t0, "total_s": t2 - t0, "restore_s": t3 - t2}


def _check_equal(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--buffer", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    states = states_of(args.seeds, args.buffer)
    size = nbytes(states)
    times: dict[str, list[dict[str, float]]] = {"ours": [], "msgpack": [], "orbax": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "run").mkdir()
        for k in range(args.repeats):
            times["ours"].append(ours(states, root / "run", 2 * k))
            times["msgpack"].append(ours(states, root / "run", 2 * k + 1, msgpack=True))
            times["orbax"].append(orbax(states, root, k))
    med = {
        w: {key: statistics.median(t[key] for t in ts) for key in ts[0]}
        for w, ts in times.items()
    }
    print(f"state: {args.seeds} members x {args.buffer} transitions = {size / 2**20:.0f} MiB")
    print(f"{'writer':7} {'blocking s':>10} {'total s':>8} {'restore s':>9}")
    for w, m in med.items():
        print(f"{w:7} {m['blocking_s']:10.3f} {m['total_s']:8.3f} {m['restore_s']:9.3f}")
    out = {"seeds": args.seeds, "buffer": args.buffer, "state_bytes": size,
           "median": med, "runs": times}  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
