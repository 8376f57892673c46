"""One compile group -> its compiled functions: ``init`` over members and ``run_chunk``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from plasticine_jax.agents import make_agent
from plasticine_jax.config.load import chunk_updates
from plasticine_jax.envs.registry import make_env
from plasticine_jax.runner import distributed
from plasticine_jax.runner.cache import enable_compile_cache
from plasticine_jax.runner.lapack_threads import limit_lapack_threads
from plasticine_jax.runner.plan import CompileGroup


class ProgramState(NamedTuple):
    """What a group carries between chunks: every member's agent state, stacked on axis 0,
    and ``diverged_at`` ``[M]`` int32: 0 for a healthy member, else the (1-based) update at
    which its loss or parameters first turned non-finite. A diverged member is frozen there."""

    members: Any
    diverged_at: jax.Array


def _all_finite(tree: Any) -> jax.Array:
    leaves = [
        jnp.isfinite(x).all()
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    ]
    return jnp.stack(leaves).all() if leaves else jnp.asarray(True)


def _strong_types(tree: Any) -> Any:
    """``tree`` with every weakly typed leaf made strong. Some env resets (gymnax MinAtar's
    SpaceInvaders and Freeway) return weakly typed ints, which the first update turns
    strong: the second chunk then no longer matched the compiled one and compiled again."""

    def strong(x):
        if getattr(x, "weak_type", False) and jnp.issubdtype(x.dtype, jnp.number):
            return jax.lax.convert_element_type(x, x.dtype)
        return x

    return jax.tree.map(strong, tree)


def guard_update(update, trained_params, loss_keys, unguarded: str | None = None):
    """Wraps one member's ``update`` into an update of every member that freezes a member
    whose update diverged instead of letting it spread.

    After the update, a member is healthy if its trained parameters and its loss terms
    (``loss_keys`` of the update's scalars) are all finite. A member that is not, or that
    diverged before, keeps its previous state (no further updates, its envs do not step)
    and reports NaN for every scalar, plus ``diverged`` (0/1) and ``diverged_at`` (the
    update of the first non-finite value, 0 while healthy).

    The finiteness checks run per member, under ``vmap``. The select of the old or the new
    state runs outside it, under ``lax.cond`` on "any member frozen": a healthy run pays for
    the checks only, not for a ``where`` over every member's whole state each update (9% of
    PQN's CartPole update, ``benchmarks/value_agents.py --profile``). The values are the
    same either way.

    Args:
      update: ``(state, update_index) -> (state, scalars)`` of one member.
      trained_params: ``state -> params`` checked for finiteness.
      loss_keys: names of the scalars that must stay finite.
      unguarded: a field of the state that is taken as the update wrote it even for a frozen
        member (a replay buffer: selecting the old one would touch every slot of it each
        update, O(capacity); a frozen member never learns from it again).

    Returns:
      ``(states, diverged_at, update_index) -> (states, diverged_at, scalars)``, over the
      member axis (axis 0 of ``states``, ``diverged_at`` and every scalar).
    """

    def member(state, i):
        new, out = update(state, i)
        ok = _all_finite(trained_params(new)) & _all_finite([out[k] for k in loss_keys])
        return new, out, ok

    members = jax.vmap(member, in_axes=(0, None))

    def pick(frozen, old, new):
        def where(o, x):
            return jnp.where(frozen.reshape(frozen.shape + (1,) * (x.ndim - 1)), o, x)

        if unguarded is None:
            return jax.tree.map(where, old, new)
        picked = jax.tree.map(
            where, old._replace(**{unguarded: None}), new._replace(**{unguarded: None})
        )
        return picked._replace(**{unguarded: getattr(new, unguarded)})

    def guarded(states, diverged_at, i):
        new, out, ok = members(states, i)
        frozen = (diverged_at > 0) | ~ok
        new = jax.lax.cond(frozen.any(), pick, lambda f, old, x: x, frozen, states, new)
        diverged_at = jnp.where(diverged_at > 0, diverged_at, jnp.where(ok, 0, i + 1))
        out = {k: jnp.where(frozen, jnp.nan, v) for k, v in out.items()}
        out["diverged"] = frozen.astype(jnp.float32)
        out["diverged_at"] = diverged_at.astype(jnp.float32)
        return new, diverged_at.astype(jnp.int32), out

    return guarded


def init_compiler_options(prefill_steps: int) -> dict[str, Any] | None:
    """XLA options for compiling ``init``: backend optimisation level 0 when ``init`` only
    initialises (no replay prefill). It runs once, in milliseconds, while LLVM's optimisation
    of its random draws (a threefry per weight matrix) took most of its compile: PPO on
    CartPole, 8 members, compile 2.76 s -> 0.98 s, run 2.6 ms -> 10.3 ms
    (``benchmarks/RESULTS.md``, issue 13, "Start-up parts"). The initial weights can differ
    from an optimised build's in the last bits (up to 4e-6 measured; tests compile everything
    at level 0 anyway). A replay agent's ``init`` also runs its prefill, thousands of env
    steps, so it is optimised as before."""
    return None if prefill_steps else {"xla_backend_optimization_level": 0}


class Program:
    """The compiled program of one group: every member advances in lock-step.

    ``run_chunk(states, start, length)`` runs ``length`` updates in one compiled loop whose
    body is the guarded agent update of every member (``guard_update``: the agent's update
    vmapped over the member axis, with the update index unbatched). ``length`` is a runtime
    argument up to ``chunk`` (the metrics buffer's static length), so one compile serves
    every chunk length: a shorter last chunk, and chunks sized by time (``ChunkSizer``).
    Member states are sharded over all devices (of every process, in a multi-process run:
    runner/distributed.py) when the member count divides evenly; ``sharding_note`` says why
    not otherwise (an error over several processes).
    """

    def __init__(self, group: CompileGroup):
        enable_compile_cache()  # a repeated run loads its programs instead of compiling
        limit_lapack_threads()  # XLA:CPU's LAPACK calls: one thread each, not a second pool
        cfg = group.cfg
        e = cfg.env

        def build_env(num_envs: int):
            return make_env(
                e.backend, e.id, num_envs, e.options, e.scenario, e.scenario_options,
                e.normalize,
            )  # fmt: skip

        env = build_env(e.num_envs)
        eval_env = build_env(cfg.eval.num_envs) if cfg.eval.every else None
        self.group = group
        self.agent = make_agent(cfg, env, group.methods, eval_env)
        self.num_updates = self.agent.num_updates
        self.chunk = chunk_updates(cfg, len(group.members))
        self.sized_by_time = not cfg.run.chunk_updates
        self.chunk_seconds = cfg.run.chunk_seconds
        self.steps_per_update = self.agent.steps_per_update
        self.prefill_steps = self.agent.prefill_steps
        self.sharding, self.sharding_note = member_sharding(len(group.members), jax.devices())
        # jitted so that its trace (made once for the metrics buffer, _out_struct) is reused
        # by the chunk loop instead of tracing the update a second time
        self._guarded = jax.jit(guard_update(
            self.agent.update, self.agent.trained_params, self.agent.loss_keys,
            self.agent.unguarded,
        ))
        self._out: dict[str, jax.ShapeDtypeStruct] | None = None
        self._run_chunk = jax.jit(self._chunk, donate_argnums=0)
        init = lambda keys, hp: _strong_types(jax.vmap(self.agent.init)(keys, hp))  # noqa: E731
        # init's states on the member sharding, as every chunk returns them: the first chunk
        # is then the same program as the others (else a sharded run compiled it twice)
        shard = {"out_shardings": self.sharding} if self.sharding else {}
        self._init = jax.jit(init, **shard)  # traceable inside other transformations
        # the call itself: options are only allowed on an outermost jit
        self._init_call = jax.jit(
            init, compiler_options=init_compiler_options(self.prefill_steps), **shard
        )

    @property
    def compiles(self) -> int:
        """Programs compiled for ``run_chunk`` so far (one per distinct chunk length)."""
        return self._run_chunk._cache_size()

    def sizer(self) -> ChunkSizer:
        """The lengths of this group's chunks: ``run.chunk_updates`` each, or sized by
        time (``run.chunk_seconds``) when that is 0."""
        return ChunkSizer(self.chunk, self.chunk_seconds if self.sized_by_time else None)

    def metric_names(self) -> list[str]:
        """Names of the per-update scalars, found by tracing only (nothing compiled)."""
        return sorted(self._out_struct())

    def _out_struct(self) -> dict[str, jax.ShapeDtypeStruct]:
        """Shape and dtype of one update's scalars over the members (tracing only, once)."""
        if self._out is None:
            states = self.init_shapes()
            _, _, self._out = jax.eval_shape(
                self._guarded, states.members, states.diverged_at, jnp.int32(0)
            )
        return self._out

    def _keys(self) -> jax.Array:
        return jnp.stack([jax.random.PRNGKey(m.seed) for m in self.group.members])

    def init_fn(self, keys: jax.Array, hp: Any) -> ProgramState:
        members = self._init(keys, hp)
        return ProgramState(members, jnp.zeros(keys.shape[0], jnp.int32))

    def init_shapes(self) -> ProgramState:
        """Shapes and dtypes of ``init()``'s states, by tracing only (nothing compiled or
        allocated). ``jax.eval_shape(program.init)`` does not work: ``init`` is the outermost
        call, compiled with options (``init_compiler_options``) a traced jit refuses."""
        return jax.eval_shape(self.init_fn, self._keys(), self.group.hp)

    def init(self) -> ProgramState:
        hp = self.group.hp
        keys = self._keys()
        if self.sharding is not None:
            keys, hp = distributed.to_global((keys, hp), self.sharding)
            zeros = distributed.to_global(np.zeros(keys.shape[0], np.int32), self.sharding)
        else:
            zeros = jnp.zeros(keys.shape[0], jnp.int32)
        return ProgramState(self._init_call(keys, hp), zeros)

    def _chunk(
        self, states: ProgramState, start: jax.Array, length: jax.Array
    ) -> tuple[ProgramState, dict[str, Any]]:
        # A loop with a runtime trip count, writing each update's scalars into row i of a
        # [chunk, M] buffer: what lax.scan does for a static length, without a compile per
        # length. Rows from ``length`` on stay zero; the host drops them.
        def body(i, carry):
            s, buf = carry
            members, diverged_at, out = self._guarded(s.members, s.diverged_at, start + i)
            buf = {
                k: jax.lax.dynamic_update_index_in_dim(buf[k], out[k], i, 0) for k in buf
            }
            return ProgramState(members, diverged_at), buf

        buf = {
            k: jnp.zeros((self.chunk, *v.shape), v.dtype) for k, v in self._out_struct().items()
        }
        return jax.lax.fori_loop(0, length, body, (states, buf))

    def _length(self, length: int | None) -> int:
        length = self.chunk if length is None else int(length)
        if not 1 <= length <= self.chunk:
            raise ValueError(f"a chunk has 1 to {self.chunk} updates here, not {length}")
        return length

    def dispatch(
        self, states: ProgramState, start: int, length: int | None = None
    ) -> tuple[ProgramState, dict[str, jax.Array]]:
        """Starts advancing every member by ``length`` (default ``chunk``) updates and returns
        at once (JAX's asynchronous dispatch): the new states and the ``[chunk, M]`` metrics
        buffers are device arrays still being computed; rows ``length`` on are padding.
        ``states`` is donated."""
        length = self._length(length)
        return self._run_chunk(states, jnp.int32(start), jnp.int32(length))

    def run_chunk(
        self, states: ProgramState, start: int, length: int | None = None
    ) -> tuple[ProgramState, dict[str, np.ndarray]]:
        """Advances every member by ``length`` (default ``chunk``) updates; metrics come back
        ``[length, M]`` as numpy arrays (waits for the chunk). A ``length`` over ``chunk``
        runs as consecutive chunks of at most ``chunk`` (same compile, same values)."""
        length = self.chunk if length is None else int(length)
        if length < 1:
            raise ValueError(f"a chunk has at least 1 update, not {length}")
        pieces = []
        for a in range(start, start + length, self.chunk):
            n = min(self.chunk, start + length - a)
            states, out = self.dispatch(states, a, n)
            pieces.append({k: np.asarray(v)[:n] for k, v in out.items()})
        return states, {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}


class ChunkSizer:
    """The length of each next chunk of a group.

    With ``target_seconds`` None every chunk has ``cap`` updates (``run.chunk_updates``),
    the last one what remains. Otherwise chunks are sized by time: the first has 1 update
    (its time includes the compile), the second 2, and each later one
    ``floor(target_seconds / seconds_per_update)`` of the chunk before it, at most 8 times
    the one before (an estimate from a short chunk can be low: a metrics or eval update may
    not have fallen in it) and at most ``cap``. Chunk lengths never change results: one
    compiled loop serves every length.
    """

    GROWTH = 8

    def __init__(self, cap: int, target_seconds: float | None):
        self.cap, self.target = cap, target_seconds
        self._count = 0

    def next(self, remaining: int, last_length: int = 0, last_seconds: float = 0.0) -> int:
        """Length of the next chunk, given the updates left and the length and wall
        seconds of the chunk before it (ignored for the first two chunks)."""
        self._count += 1
        if self.target is None:
            want = self.cap
        elif self._count <= 2:
            want = self._count
        else:
            per_update = max(last_seconds, 1e-9) / max(last_length, 1)
            want = min(int(self.target / per_update), self.GROWTH * last_length)
        return max(1, min(want, self.cap, remaining))


def member_sharding(num_members: int, devices: list[Any]) -> tuple[NamedSharding | None, str]:
    """The member axis's sharding over ``devices``, and a note for the summary.

    With one device nothing is sharded (note ``""``). With several, members are split
    evenly; a member count that does not divide the device count runs on one device, and
    the note says so (pad the seeds to a multiple to use them all).
    """
    if len(devices) < 2:
        return None, ""
    if num_members % len(devices):
        distributed.check_divides(num_members, len(devices))  # an error over many processes
        return None, (
            f"not sharded: {num_members} members do not divide over {len(devices)} devices; "
            f"all run on {devices[0]} (use a member count that is a multiple of "
            f"{len(devices)})"
        )
    mesh = Mesh(np.asarray(devices), ("members",))
    return NamedSharding(mesh, PartitionSpec("members")), (
        f"sharded over {len(devices)} devices"
    )
