"""One experiment over several processes (hosts), with ``jax.distributed``.

``plasticine-jax run --coordinator HOST:PORT --num-processes N --process-id I ...`` started
once per process (same config, same overrides, same working tree) runs one experiment whose
member axis is sharded over every device of every process: ``jax.devices()`` is global after
``initialize``, so ``program.member_sharding`` builds a global mesh and every jitted function
runs SPMD. What the host loop needs on top of that is here:

- ``initialize``: checks the flags (before anything compiles), turns on CPU collectives
  (gloo; the guard's ``frozen.any()`` over members is a cross-device reduction), then
  ``jax.distributed.initialize``.
- ``to_global``: identical host data on every process (keys, hyperparameters, a resumed
  checkpoint's states) -> a global array on the member sharding.
- ``to_host``: device outputs the host reads (metrics, states for a checkpoint) -> numpy,
  gathered from every process (``multihost_utils.process_allgather``) when they are not all
  addressable here (so every process holds a checkpoint's states in host memory while it
  is written).
- ``is_writer``: process 0 alone writes the run directory; the others run the same programs
  in the same order and write nothing.
- ``on_writer``: runs a step on process 0 only (making the run directory) and hands its
  result, or its ``ConfigError``, to every process, so all agree on the directory's name.
- ``agree``: any-of over processes of the loop's per-chunk decisions (stop, checkpoint now),
  so no process leaves a collective the others wait in.

Supported: new runs and ``--resume`` (the run directory and config on a filesystem every
process sees), Ctrl-C on any one process (all stop after the same chunk),
``stop_after_chunks``, any backend whose environments live on the device. Tested over two
processes on CPU with gymnax CartPole PPO (``tests/test_distributed.py``); other agents and
on-device backends take the same code path, untested over processes.
Not supported: a member count that is not a multiple of the global device count (an
error: one device cannot hold every member when they live on several hosts); envpool (its
pools live in each host process; an error); a second Ctrl-C, a killed process or an
exception on one process (the others then wait in a collective until JAX's coordination
service times out: stop them too, and ``--resume`` from the last checkpoint); W&B logging
from processes other than 0 (only process 0 logs).
Without the flags the CLI initialises nothing: one process, as before. Python code in an
environment that ``jax.distributed.initialize()`` configures by itself (Slurm, Cloud TPU)
can call that, after ``jax.config.update("jax_cpu_collectives_implementation", "gloo")`` on
CPU, before ``runner.loop.run``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import jax
import numpy as np

from plasticine_jax.config.load import ConfigError

T = TypeVar("T")


def check_flags(
    coordinator: str | None, num_processes: int | None, process_id: int | None
) -> bool:
    """Whether the flags ask for a multi-process run; a ``ConfigError`` naming the fix when
    they are incomplete or out of range. Touches no JAX state."""
    given = {
        "--coordinator": coordinator is not None,
        "--num-processes": num_processes is not None,
        "--process-id": process_id is not None,
    }
    if not any(given.values()):
        return False
    if not all(given.values()):
        missing = ", ".join(k for k, v in given.items() if not v)
        present = ", ".join(k for k, v in given.items() if v)
        raise ConfigError(
            f"{present} also needs {missing}: a multi-process run takes all three, e.g. "
            f"--coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0 on the first "
            f"host and --process-id 1 on the second (the same address and count on each)"
        )
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"--coordinator {coordinator!r}: give HOST:PORT of process 0, e.g. 10.0.0.1:1234"
        )
    if num_processes < 1:
        raise ConfigError(f"--num-processes {num_processes}: give 1 or more processes")
    if not 0 <= process_id < num_processes:
        raise ConfigError(
            f"--process-id {process_id} is out of range for --num-processes "
            f"{num_processes}: give 0 to {num_processes - 1}, a different one to each process"
        )
    return True


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Joins this process to a multi-process run (call before any JAX computation).

    Does nothing, and returns False, when no flag is given. Every process must call it with
    the same ``coordinator`` (process 0's ``HOST:PORT``, reachable from all) and
    ``num_processes``, each with its own ``process_id``; it returns when all have joined.
    """
    if not check_flags(coordinator, num_processes, process_id):
        return False
    # XLA:CPU has no cross-process collectives unless told which implementation to use;
    # GPU and TPU backends ignore this option.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )
    return True


def process_count() -> int:
    return jax.process_count()


def is_writer() -> bool:
    """Whether this process writes the run directory (process 0, or the only process)."""
    return jax.process_index() == 0


def check_config(cfg: Any) -> None:
    """In a multi-process run, a ``ConfigError`` for what it cannot run (envpool)."""
    if process_count() > 1 and cfg.env.backend == "envpool":
        raise ConfigError(
            "env.backend='envpool' cannot run over several processes: its pools live in each "
            "host process, outside the sharded program; run it as one process (drop "
            "--coordinator, --num-processes and --process-id)"
        )


def check_divides(num_members: int, num_devices: int) -> None:
    """In a multi-process run, a ``ConfigError`` when members cannot split evenly over the
    global devices (a single process instead runs them all on one device, with a note)."""
    if process_count() > 1 and num_members % num_devices:
        raise ConfigError(
            f"{num_members} members do not divide over the {num_devices} devices of "
            f"{process_count()} processes; a multi-process run shards members over every "
            f"device, so use a member count that is a multiple of {num_devices} (grid "
            f"points x run.num_seeds, e.g. run.num_seeds={_next_multiple(num_members, num_devices)}"
            f" for one setting)"
        )


def _next_multiple(n: int, k: int) -> int:
    return -(-n // k) * k


def to_global(tree: T, sharding: Any) -> T:
    """Host data (the same on every process) -> device arrays on ``sharding``, the member
    sharding (every leaf has the member axis first); ``None`` (one device): left to ``jit``
    as before."""
    if sharding is None:
        return tree
    if process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def to_host(tree: T) -> T:
    """Device arrays -> numpy arrays of their global values (waits for them). Arrays not all
    addressable from this process are gathered from every process: a collective, so every
    process must call it at the same point."""

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(get, tree)


def agree(*flags: bool) -> tuple[bool, ...]:
    """Each flag true on every process if it is true on any (one small all-gather, only in a
    multi-process run)."""
    if process_count() == 1:
        return tuple(bool(f) for f in flags)
    from jax.experimental import multihost_utils

    every = multihost_utils.process_allgather(np.asarray(flags, dtype=np.int32))
    return tuple(bool(f) for f in np.asarray(every).reshape(-1, len(flags)).any(axis=0))


def same(value: int) -> int:
    """Process 0's ``value`` on every process (one small broadcast, only in a multi-process
    run): for a decision made from process-local measurements, such as a chunk length sized
    by wall time, that must not differ (the processes would dispatch different programs)."""
    if process_count() == 1:
        return int(value)
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int64(value)))


def _broadcast_text(text: str) -> str:
    """Process 0's ``text`` on every process."""
    from jax.experimental import multihost_utils

    data = np.frombuffer(text.encode(), dtype=np.uint8)
    size = int(multihost_utils.broadcast_one_to_all(np.int32(data.size)))
    if size == 0:
        return ""
    buf = np.zeros(size, np.uint8)
    if is_writer():
        buf[:] = data
    return bytes(np.asarray(multihost_utils.broadcast_one_to_all(buf))).decode()


def on_writer(fn: Callable[[], str]) -> str:
    """``fn()`` run on process 0 only, its (string) result returned on every process; a
    ``ConfigError`` it raises is raised on every process, with its message."""
    if process_count() == 1:
        return fn()
    result, error = "", ""
    if is_writer():
        try:
            result = fn()
        except ConfigError as e:
            error = str(e)
    error = _broadcast_text(error)
    if error:
        raise ConfigError(error)
    return _broadcast_text(result)
