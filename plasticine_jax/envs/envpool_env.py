"""envpool adapter: a C++ pool stepped from inside the compiled program.

Two interfaces, chosen with the ``interface`` option:

``"xla"`` (the default wherever it can serve the env, see ``_choose_interface``) steps the
pool through envpool's own XLA interface (``env.xla()``: ``send``/``recv`` as XLA FFI
calls), so the C++ pool runs inside the compiled program with no Python on the step path.

- envpool's FFI calls have fixed shapes and no batching rule, so ``reset`` and ``step``
  are two primitives (``_RESET_P``, ``_STEP_P``) whose batching rules fold the vmapped
  axes (seeds, or hyperparameters x seeds, any nesting) into the env axis: one call on a
  pool of ``prod(B) * N`` envs, results reshaped back to ``[*B, N, ...]``, so each
  member's agent sees only its own ``N`` envs. The pool is built when the program is
  lowered (one per total size, kept by the adapter) and its handle is baked into the
  compiled program. (``custom_vmap`` would also trace the unbatched body, building an
  unused pool of ``N`` envs.)
- Seeds: envpool seeds envs when the pool is built, before any agent key exists, so the
  envs are seeded from the ``seed`` option (default 0): flat env ``i`` (member ``i // N``)
  gets envpool seed ``seed + i``. A program's members therefore see different envs, and
  member ``m`` of a vmapped run sees what a run alone with ``seed = seed + m * N`` sees.
- envpool restarts a finished env on the *next* ``send`` and ignores that step's action.
  The adapter reports it as it is: the ending step returns the final observation as
  ``obs``, and the next step is marked ``info.action_ignored`` (reward 0, not counted in
  episode lengths). PPO leaves those transitions out of its loss.
- ``reset`` (once per run) resets the whole pool from the host.

``"callback"`` (for task sequences, DMC/MuJoCo's float64 actions, GPU hosts) calls the
pool through ``jax.pure_callback`` with ``vmap_method="expand_dims"``: one pool for seeds x envs as
above, each env seeded from its own agent seed's key (a vmapped seed sees the same envs as
that seed run alone), finished games reset at once with ``final_obs`` reported, and task
sequences (``procgen_levels``, ``dmc_sequence``) rebuild the pool on the host at the exact
step a task ends (every episode is cut, ``truncated``, and the next observation is the
new task's first). Steps are chained through a counter returned by the callback, so XLA
keeps them in order.

Both: Atari with ``episodic_life`` marks a lost life ``terminated`` (no bootstrap) while the
game goes on; envpool spends the step after it continuing the game and ignores that
step's action (``action_ignored``). Episode return and length are per *game* (a game over
or a time limit), as Atari results are reported. A pool lives in the host process: one
program at a time may use an adapter instance; neither interface may be differentiated
through. The XLA interface runs on the CPU backend (envpool's wheels register CPU FFI
targets only); use ``interface: callback`` on a GPU/TPU host.

uint8 observations (Atari, Procgen) are scaled to ``[0, 1]`` float32 and images moved from
envpool's ``[C, H, W]`` to ``[H, W, C]``; dict observations (DMC) are flattened and
concatenated in sorted key order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import ShapedArray
from jax.extend.core import Primitive
from jax.interpreters import batching, mlir

from plasticine_jax.envs.continual import TaskSchedule, check_no_unknown, schedule_from_options
from plasticine_jax.envs.core import (
    ContinuousActions,
    DiscreteActions,
    Environment,
    EnvSpec,
    EpisodeStats,
    StepInfo,
)
from plasticine_jax.envs.registry import MissingExtraError

# Plasticine's continual DMC sequences (one full cycle each).
DMC_SEQUENCES = {
    "walker": ["WalkerStand-v1", "WalkerWalk-v1", "WalkerRun-v1"] * 2,
    "quadruped": ["QuadrupedWalk-v1", "QuadrupedRun-v1"],
    "dog": ["DogStand-v1", "DogWalk-v1", "DogRun-v1", "DogTrot-v1"],
}


INTERFACES = ("xla", "callback")


class EnvpoolState(NamedTuple):
    step_count: jax.Array  # int32 scalar: the task schedule's clock
    token: jax.Array  # orders the host calls: the pool handle (xla) or a counter (callback)
    pending: jax.Array  # bool [N]: envpool will ignore these envs' next action
    stats: EpisodeStats


def _obs_shape(space: Any) -> tuple[int, ...]:
    """Our observation shape for an envpool space: dicts flattened, images channel-last."""
    if hasattr(space, "spaces"):  # gymnasium Dict
        return (sum(max(1, math.prod(s.shape)) for s in space.spaces.values()),)
    shape = tuple(int(d) for d in space.shape)
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape


def _to_obs(obs: Any, batch: int, xp: Any = np) -> Any:
    """envpool's observations ``[batch, ...]`` as ours: float32, uint8 scaled to [0, 1],
    dicts flattened in sorted key order, ``[C, H, W]`` images moved to ``[H, W, C]`` (the
    layout of every other backend and of the conv torsos). ``xp`` is numpy or jax.numpy."""
    if isinstance(obs, Mapping):
        parts = [xp.asarray(obs[k], xp.float32).reshape(batch, -1) for k in sorted(obs)]
        return xp.concatenate(parts, axis=1)
    scale = 1.0 / 255.0 if obs.dtype == np.uint8 else 1.0
    out = obs.astype(xp.float32) * xp.float32(scale)
    return xp.transpose(out, (0, 2, 3, 1)) if out.ndim == 4 else out


def _action_space(space: Any) -> DiscreteActions | ContinuousActions:
    """Discrete, or a box bounded per dimension where its dimensions' bounds differ (DMC's
    quadruped: [-1, 1], [-1, 1.1] and [-0.8, 0.8] by joint), else by one number."""
    if hasattr(space, "n"):
        return DiscreteActions(int(space.n))

    def bound(b: Any) -> float | tuple[float, ...]:
        flat = [float(x) for x in np.asarray(b, np.float32).reshape(-1)]
        return flat[0] if len(set(flat)) == 1 else tuple(flat)

    shape = tuple(int(d) for d in space.shape)
    return ContinuousActions(shape, bound(space.low), bound(space.high))


def _choose_interface(interface: str | None, tasks: Any, spec: Any, task_id: str) -> str:
    """The requested interface, or the default: ``xla`` where it can serve the env.

    ``xla`` cannot serve task sequences (the host rebuilds the pool), non-CPU backends
    (envpool registers CPU FFI targets only) or float64 actions (DMC, MuJoCo: JAX computes
    in float32 unless x64 is on, and envpool's ``send`` checks the dtype).
    """
    f64 = getattr(spec.action_space, "dtype", None) == np.float64
    reasons = []
    if tasks:
        reasons.append("task sequences rebuild the pool on the host at each task switch")
    if jax.default_backend() != "cpu":
        reasons.append(f"it runs on the CPU backend only, not {jax.default_backend()!r}")
    if f64 and not jax.config.jax_enable_x64:
        reasons.append(f"{task_id} takes float64 actions and JAX runs in float32 (x64 off)")
    if interface is None:
        return "callback" if reasons else "xla"
    if interface == "xla" and reasons:
        raise ValueError(
            f"envpool's XLA interface cannot serve {task_id}: {'; '.join(reasons)}. Set the "
            "env option `interface: callback` (or leave it out to get the default)"
        )
    return interface


class _XlaPool(NamedTuple):
    """A pool built for the XLA interface, with envpool's FFI functions bound to it."""

    env: Any
    handle: np.ndarray  # uint8 bytes of the pool's address: the first FFI call's input
    recv: Any
    send: Any


class _Pool:
    """Host side: the envpool object, its size and the task it was built for."""

    def __init__(self) -> None:
        self.env: Any = None
        self.task = -1
        self.seeds: np.ndarray | None = None


class EnvpoolEnv(Environment):
    """``num_envs`` envpool envs per agent seed, one pool for all seeds.

    Args:
      env_id: an envpool task id (``"Pong-v5"``, ``"CoinrunEasy-v0"``, ``"WalkerWalk-v1"``).
      num_envs: envs per agent seed.
      tasks: for task sequences, ``[(env_id, options), ...]`` per task (overrides
        ``env_id``/``options``); all must share observation and action spaces.
      schedule: the task schedule for ``tasks``.
      interface: ``"xla"`` or ``"callback"`` (module docstring); ``None`` picks ``xla``
        wherever it can serve the env.
      **options: envpool options (e.g. Atari's ``episodic_life``, ``reward_clip``,
        ``noop_max``, ``stack_num``, ``img_height``; Procgen's ``num_levels``), and
        ``seed``: the base env seed of the ``xla`` interface (default 0).
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        tasks: list[tuple[str, dict[str, Any]]] | None = None,
        schedule: TaskSchedule | None = None,
        interface: str | None = None,
        **options: Any,
    ):
        import envpool

        if interface is not None and interface not in INTERFACES:
            raise ValueError(f"envpool interface {interface!r}; choose one of {list(INTERFACES)}")
        self._seed = options.pop("seed", None)
        self._tasks = tasks or [(env_id, dict(options))]
        self._schedule = schedule or TaskSchedule(1, 1)
        known = set(envpool.list_all_envs())
        specs = []
        for tid, topts in self._tasks:
            if tid not in known:
                raise ValueError(f"unknown envpool task {tid!r} (see envpool.list_all_envs())")
            try:
                specs.append(envpool.make_spec(tid, **topts))
            except ImportError as err:  # a native library missing, e.g. Procgen's Qt 5
                raise MissingExtraError(
                    f"envpool cannot load the native library of {tid!r}: {err}. Procgen "
                    "needs Debian's Qt 5 runtime: `apt-get install -y libqt5core5a libqt5gui5`."
                ) from err
            except Exception as err:  # envpool raises bare errors for bad options
                raise ValueError(f"envpool rejected options {topts} for {tid!r}: {err}") from err
        obs_shapes = {_obs_shape(s.observation_space) for s in specs}
        actions = {repr(_action_space(s.action_space)) for s in specs}
        if len(obs_shapes) != 1 or len(actions) != 1:
            raise ValueError(f"envpool tasks differ in spaces: {obs_shapes}, {actions}")
        first = specs[0]
        self.interface = _choose_interface(interface, tasks, first, self._tasks[0][0])
        if self.interface == "callback" and self._seed is not None:
            raise ValueError(
                "envpool option seed: the callback interface seeds every env from its agent "
                "seed's key; drop the option (it applies to `interface: xla` only)"
            )
        self._seed = int(self._seed or 0)
        self._atari = self._tasks[0][0].endswith("-v5")
        # Per-env info fields passed on in ``extras`` (a fixed set, decided here).
        fields = getattr(first.config, "_fields", ())
        self._extras = ("lives",) if self._atari else ()
        if "num_levels" in fields:  # Procgen
            self._extras = ("level_seed",)
        self.spec = EnvSpec(
            name=f"envpool/{self._tasks[0][0]}",
            num_envs=num_envs,
            obs_shape=obs_shapes.pop(),
            action_space=_action_space(first.action_space),
            num_tasks=self._schedule.num_tasks if tasks else 1,
            steps_per_task=self._schedule.steps_per_task if tasks else 0,
        )
        self._pool = _Pool()
        self._xla_pools: dict[int, _XlaPool] = {}
        self._xla_reset_sizes: set[int] = set()

    # ---- host side -------------------------------------------------------------------
    def _build(self, task: int, seeds: np.ndarray) -> np.ndarray:
        import envpool

        tid, topts = self._tasks[task % len(self._tasks)]
        if self._pool.env is not None:
            self._pool.env.close()
        env = envpool.make(
            tid,
            env_type="gymnasium",
            num_envs=len(seeds),
            batch_size=len(seeds),
            env_seed=[int(s) for s in seeds],
            **topts,
        )
        self._pool.env, self._pool.task, self._pool.seeds = env, task, seeds
        obs, info = env.reset()
        return self._ordered(obs, info["env_id"], len(seeds))

    def _ordered(self, obs: Any, env_id: np.ndarray, batch: int) -> np.ndarray:
        out = np.empty((batch, *self.spec.obs_shape), np.float32)
        out[np.asarray(env_id)] = _to_obs(obs, len(env_id))
        return out

    def _host_reset(self, seeds: Any) -> np.ndarray:
        seeds = np.asarray(seeds)
        lead = seeds.shape[:-1]
        flat = seeds.reshape(-1).astype(np.int64)
        obs = self._build(int(self._schedule.task_of(0)), flat)
        obs = obs.reshape(*lead, self.spec.num_envs, *self.spec.obs_shape)
        return obs, np.zeros(lead, np.int32)

    def _host_step(self, count: Any, action: Any):  # callback interface
        count, action = np.asarray(count), np.asarray(action)
        n = self.spec.num_envs
        act_rank = 0 if isinstance(self.spec.action_space, DiscreteActions) else 1
        lead = np.broadcast_shapes(count.shape, action.shape[: action.ndim - 1 - act_rank])
        batch = math.prod(lead) * n
        counts = np.unique(count)
        if len(counts) != 1:
            raise RuntimeError(f"envpool seeds out of step: counts {counts}")
        c = int(counts[0])
        env = self._pool.env
        if env is None or len(self._pool.seeds) != batch:
            raise RuntimeError(
                f"envpool pool holds {0 if env is None else len(self._pool.seeds)} envs but "
                f"the step has {batch}: call reset under the same vmap as step"
            )
        action = np.broadcast_to(action, (*lead, *action.shape[len(lead) :]))
        action = action.reshape(batch, *action.shape[len(lead) + 1 :])
        if act_rank == 0:
            action = action.astype(np.int32)
        else:
            action = action.astype(np.float64)
        obs, reward, term, trunc, info = env.step(action, np.arange(batch, dtype=np.int32))
        order = np.argsort(info["env_id"])
        final = self._ordered(obs, info["env_id"], batch)
        reward = np.asarray(reward, np.float32)[order]
        term = np.asarray(term, bool)[order]
        trunc = np.asarray(trunc, bool)[order] & ~term
        next_obs = final.copy()
        game_over = term | trunc
        if self._atari and "lives" in info:
            game_over = trunc | (term & (np.asarray(info["lives"])[order] == 0))
        task, next_task = self._schedule.task_of(c), self._schedule.task_of(c + 1)
        if task != next_task:  # end of a task: rebuild the pool for the next one
            trunc = trunc | ~term
            next_obs = self._build(int(next_task), self._pool.seeds)
        elif game_over.any():
            ids = np.flatnonzero(game_over).astype(np.int32)
            fresh, rinfo = env.reset(ids)
            next_obs[np.asarray(rinfo["env_id"])] = _to_obs(fresh, len(ids))
        shape = (*lead, n)
        extras = tuple(np.asarray(info[k], np.int32)[order].reshape(shape) for k in self._extras)
        return (
            next_obs.reshape(*shape, *self.spec.obs_shape),
            final.reshape(*shape, *self.spec.obs_shape),
            reward.reshape(shape),
            term.reshape(shape),
            trunc.reshape(shape),
            np.full(lead, c + 1, np.int32),
            extras,
        )

    # ---- XLA interface ----------------------------------------------------------------
    def _xla_pool(self, size: int) -> _XlaPool:
        """The pool of ``size`` envs, built the first time a program using it is lowered."""
        if size not in self._xla_pools:
            import envpool

            tid, topts = self._tasks[0]
            env = envpool.make(
                tid,
                env_type="gymnasium",
                num_envs=size,
                batch_size=size,
                seed=self._seed,
                **topts,
            )
            handle, recv, send, _ = env.xla()
            self._xla_pools[size] = _XlaPool(env, np.asarray(handle), recv, send)
        return self._xla_pools[size]

    def _xla_reset_impl(self, token: jax.Array) -> tuple[jax.Array, jax.Array]:
        size = token.shape[0]
        pool = self._xla_pool(size)
        env, handle = pool.env, pool.handle
        self._xla_reset_sizes.add(size)

        def host():
            obs, info = env.reset()
            return handle, self._ordered(obs, info["env_id"], size)

        out = (
            jax.ShapeDtypeStruct(handle.shape, handle.dtype),
            jax.ShapeDtypeStruct((size, *self.spec.obs_shape), jnp.float32),
        )
        # The handle comes out of the callback so that every step depends on the reset.
        return jax.pure_callback(host, out)

    def _xla_step_impl(self, handle: jax.Array, action: jax.Array) -> list[jax.Array]:
        size = action.shape[0]
        if size not in self._xla_reset_sizes:
            raise RuntimeError(
                f"envpool: a step on {size} envs, but no reset on that many: call reset and "
                "step under the same vmap (a reset key unbatched under vmap is not enough)"
            )
        pool = self._xla_pool(size)
        handle = pool.send(handle, action, jnp.arange(size, dtype=jnp.int32))
        handle, (obs, reward, term, trunc, info) = pool.recv(handle)
        order = jnp.argsort(info["env_id"])
        obs = _to_obs(obs, size, jnp)[order]
        extras = [info[k].astype(jnp.int32)[order] for k in self._extras]
        return [handle, obs, reward.astype(jnp.float32)[order], term[order], trunc[order], *extras]

    def _xla_action(self, action: jax.Array) -> jax.Array:
        if isinstance(self.spec.action_space, DiscreteActions):
            return action.astype(jnp.int32)
        return action.astype(jax.dtypes.canonicalize_dtype(jnp.float64))

    # ---- traced side -----------------------------------------------------------------
    def reset(self, key: jax.Array) -> tuple[jax.Array, EnvpoolState]:
        n = self.spec.num_envs
        seeds = jax.random.randint(key, (n,), 0, 2**31 - 1, jnp.int32)
        if self.interface == "xla":
            # The seeds only carry the vmapped axes into the batching rule; envpool seeded
            # the pool from the ``seed`` option when it was built.
            token, obs = _RESET_P.bind(seeds, adapter=self)
        else:
            # The counter comes out of the callback so that every later step depends on the
            # reset: a pure_callback whose results go unused may be removed by XLA.
            obs, token = jax.pure_callback(
                self._host_reset,
                (
                    jax.ShapeDtypeStruct((n, *self.spec.obs_shape), jnp.float32),
                    jax.ShapeDtypeStruct((), jnp.int32),
                ),
                seeds,
                vmap_method="expand_dims",
            )
        state = EnvpoolState(
            jnp.zeros((), jnp.int32), token, jnp.zeros(n, bool), EpisodeStats.zeros(n)
        )
        return obs, state

    def _callback_step(self, state: EnvpoolState, action: jax.Array):
        n = self.spec.num_envs
        obs_struct = jax.ShapeDtypeStruct((n, *self.spec.obs_shape), jnp.float32)
        flag = jax.ShapeDtypeStruct((n,), jnp.bool_)
        out = (
            obs_struct,
            obs_struct,
            jax.ShapeDtypeStruct((n,), jnp.float32),
            flag,
            flag,
            jax.ShapeDtypeStruct((), jnp.int32),
            tuple(jax.ShapeDtypeStruct((n,), jnp.int32) for _ in self._extras),
        )
        obs, final, reward, term, trunc, token, extras = jax.pure_callback(
            self._host_step, out, state.token, action, vmap_method="expand_dims"
        )
        return obs, final, reward, term, trunc, token, dict(zip(self._extras, extras, strict=True))

    def step(self, key: jax.Array, state: EnvpoolState, action: jax.Array):
        del key  # envpool's envs carry their own RNG, seeded when the pool is built
        n = self.spec.num_envs
        ignored = state.pending
        if self.interface == "xla":
            token, obs, reward, term, trunc, *extras = _STEP_P.bind(
                state.token, self._xla_action(action), adapter=self
            )
            extras = dict(zip(self._extras, extras, strict=True))
            trunc = trunc & ~term
            final = obs  # no reset yet: envpool restarts finished envs on the next step
        else:
            obs, final, reward, term, trunc, token, extras = self._callback_step(state, action)
        reward = jnp.where(ignored, 0.0, reward)
        game_over = term | trunc
        if "lives" in extras:  # Atari: a lost life is terminal, the game goes on
            game_over = trunc | (term & (extras["lives"] == 0))
        if self.interface == "xla":
            pending = term | trunc
        else:  # the callback resets finished games at once; a lost life is continued
            pending = term & ~game_over
        stats, ep_ret, ep_len = state.stats.update(reward, game_over, counted=~ignored)
        c = state.step_count
        task = self._schedule.task_of(c) if self.spec.num_tasks > 1 else jnp.zeros((), jnp.int32)
        switched = self._schedule.switched(c) if self.spec.num_tasks > 1 else False
        info = StepInfo(
            final_obs=final,
            task_id=jnp.full(n, task, jnp.int32),
            task_switched=jnp.full(n, switched, bool),
            episode_return=ep_ret,
            episode_length=ep_len,
            extras=extras,
            action_ignored=ignored,
        )
        return obs, EnvpoolState(c + 1, token, pending, stats), reward, term, trunc, info


# ---- the XLA interface's primitives ---------------------------------------------------
# envpool's FFI calls have fixed shapes (the pool's size) and no batching rule. Two
# primitives wrap them: ``reset(token [K]) -> (handle, obs)`` and ``step(handle,
# action [K]) -> (handle, obs, reward, terminated, truncated, *extras)`` on a pool of ``K``
# envs. Their batching rules fold the vmapped axis into ``K`` and bind again (so nested
# vmaps fold too); only lowering builds the pool (``_xla_pool``), for the final ``K``.
_RESET_P = Primitive("envpool_reset")
_RESET_P.multiple_results = True
_STEP_P = Primitive("envpool_step")
_STEP_P.multiple_results = True


def _reset_abstract(token, *, adapter):
    return [
        ShapedArray((8,), jnp.uint8),
        ShapedArray((token.shape[0], *adapter.spec.obs_shape), jnp.float32),
    ]


def _step_abstract(handle, action, *, adapter):
    size = action.shape[0]
    reward = ShapedArray((size,), jnp.float32)
    terminated = truncated = ShapedArray((size,), jnp.bool_)
    extras = [ShapedArray((size,), jnp.int32) for _ in adapter._extras]
    obs = ShapedArray((size, *adapter.spec.obs_shape), jnp.float32)
    return [handle, obs, reward, terminated, truncated, *extras]


def _fold(x: jax.Array, dim: int | None, axis_size: int) -> jax.Array:
    """Moves the vmapped axis first (broadcasting an unbatched ``x``) and folds it into
    the env axis: ``[B, K, ...] -> [B * K, ...]``."""
    x = jnp.broadcast_to(x, (axis_size, *x.shape)) if dim is None else jnp.moveaxis(x, dim, 0)
    return x.reshape(axis_size * x.shape[1], *x.shape[2:])


def _reset_batched(axis_data, args, dims, *, adapter):
    axis_size = axis_data.size
    (token,), (dim,) = args, dims
    handle, obs = _RESET_P.bind(_fold(token, dim, axis_size), adapter=adapter)
    return [handle, obs.reshape(axis_size, -1, *obs.shape[1:])], [None, 0]


def _step_batched(axis_data, args, dims, *, adapter):
    axis_size = axis_data.size
    (handle, action), (h_dim, a_dim) = args, dims
    if h_dim is not None:  # every member holds the same handle
        handle = jnp.take(handle, 0, axis=h_dim)
    handle, *outs = _STEP_P.bind(handle, _fold(action, a_dim, axis_size), adapter=adapter)
    outs = [x.reshape(axis_size, -1, *x.shape[1:]) for x in outs]
    return [handle, *outs], [None] + [0] * len(outs)


for _p, _abstract, _impl, _batched in (
    (_RESET_P, _reset_abstract, "_xla_reset_impl", _reset_batched),
    (_STEP_P, _step_abstract, "_xla_step_impl", _step_batched),
):
    _p.def_abstract_eval(_abstract)
    _run = (lambda name: lambda *args, adapter: list(getattr(adapter, name)(*args)))(_impl)
    _p.def_impl(_run)
    mlir.register_lowering(_p, mlir.lower_fun(_run, multiple_results=True))
    batching.fancy_primitive_batchers[_p] = _batched


def make_envpool_sequence(
    scenario: str, env_id: str, num_envs: int, options: dict[str, Any], sopts: dict[str, Any]
) -> EnvpoolEnv:
    """Builds ``procgen_levels`` or ``dmc_sequence`` from their scenario options.

    ``procgen_levels`` (Plasticine's continual Procgen): task ``k`` plays ``num_levels``
    (default 1) levels from ``start_level + k * level_stride`` (defaults 0 and 20), 10 tasks
    by default. ``dmc_sequence``: ``tasks`` is a list of envpool DMC ids or the name of one
    of ``DMC_SEQUENCES``; task ``k`` runs ``tasks[k % len(tasks)]``.
    """
    options = dict(options)
    adapter = {k: options.pop(k) for k in ("interface", "seed") if k in options}
    if scenario == "procgen_levels":
        schedule = schedule_from_options(sopts, 10, num_envs)
        start = int(sopts.pop("start_level", 0))
        stride = int(sopts.pop("level_stride", 20))
        num_levels = int(sopts.pop("num_levels", 1))
        check_no_unknown(sopts, scenario)
        tasks = [
            (env_id, {**options, "num_levels": num_levels, "start_level": start + k * stride})
            for k in range(schedule.num_tasks)
        ]
    else:
        seq = sopts.pop("tasks", env_id)
        ids = DMC_SEQUENCES[seq] if isinstance(seq, str) and seq in DMC_SEQUENCES else seq
        if isinstance(ids, str) or not ids:
            raise ValueError(
                f"dmc_sequence tasks: a list of envpool ids or one of {sorted(DMC_SEQUENCES)}"
            )
        schedule = schedule_from_options(sopts, len(ids), num_envs)
        check_no_unknown(sopts, scenario)
        tasks = [(tid, dict(options)) for tid in ids]
    return EnvpoolEnv(tasks[0][0], num_envs, tasks=tasks, schedule=schedule, **adapter)
