"""envpool adapter: a C++ pool stepped from inside the compiled program.

Design (why not envpool's own ``xla()``): envpool 1.x exposes ``send``/``recv`` as XLA FFI
calls whose output shapes are fixed to the pool's ``num_envs`` and which declare no
``vmap_method``, so they cannot run under ``jax.vmap``; and envpool resets a finished env
on the *next* step (ignoring that step's action), where our protocol resets at once and
reports ``final_obs``. We therefore call the pool through ``jax.pure_callback`` with
``vmap_method="expand_dims"``:

- Seeds x envs share **one pool**. Under ``vmap`` (any nesting: seeds, hyperparameters x
  seeds) the callback receives the batched arguments with their leading axes, ``[*B, N]``;
  the pool holds ``prod(B) * N`` envs, built on the first ``reset`` with that size, and the
  results are reshaped back to ``[*B, N, ...]``, so each seed's agent sees only its own
  ``N`` envs. Unvmapped, ``B`` is empty and the pool holds ``N``.
- Each env is seeded from its own agent seed's key (envpool's ``env_seed``), so a vmapped
  seed sees the same envs as the same seed run alone.
- Finished envs are reset immediately (envpool's partial ``reset(env_id)``) and their last
  observation is returned as ``final_obs``. Atari with ``episodic_life``: a life loss is
  ``terminated`` but the game goes on (no reset; envpool spends the next step continuing
  it), a game over or a time limit resets the game.
- Steps are chained through the step counter returned by the callback, so XLA keeps them
  in order. Limits: a pool lives in the host process, so one program at a time may use an
  adapter instance; ``pure_callback`` must not be differentiated through (nobody does).

Task sequences (``procgen_levels``, ``dmc_sequence``) use the same step counter: when a
task ends the host rebuilds the pool for the next task's env id/options (a host-side pool
rebuild, triggered from inside the compiled program at the exact step), every episode is
cut (``truncated``) and the next observation is the new task's first.

uint8 observations (Atari, Procgen) are scaled to ``[0, 1]`` float32; dict observations
(DMC) are flattened and concatenated in sorted key order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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


class EnvpoolState(NamedTuple):
    step_count: jax.Array  # int32 scalar, returned by the host: orders the callbacks
    stats: EpisodeStats


def _flat_size(space: Any) -> tuple[int, ...]:
    if hasattr(space, "spaces"):  # gymnasium Dict
        return (sum(max(1, math.prod(s.shape)) for s in space.spaces.values()),)
    return tuple(int(d) for d in space.shape)


def _to_float(obs: Any, batch: int) -> np.ndarray:
    if isinstance(obs, Mapping):
        parts = [np.asarray(obs[k], np.float32).reshape(batch, -1) for k in sorted(obs)]
        return np.concatenate(parts, axis=1)
    obs = np.asarray(obs)
    if obs.dtype == np.uint8:
        return obs.astype(np.float32) * np.float32(1.0 / 255.0)
    return obs.astype(np.float32)


def _action_space(space: Any) -> DiscreteActions | ContinuousActions:
    if hasattr(space, "n"):
        return DiscreteActions(int(space.n))
    low, high = float(np.min(space.low)), float(np.max(space.high))
    return ContinuousActions(tuple(int(d) for d in space.shape), low, high)


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
      **options: envpool options (e.g. Atari's ``episodic_life``, ``reward_clip``,
        ``noop_max``, ``stack_num``, ``img_height``; Procgen's ``num_levels``).
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        tasks: list[tuple[str, dict[str, Any]]] | None = None,
        schedule: TaskSchedule | None = None,
        **options: Any,
    ):
        import envpool

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
        obs_shapes = {_flat_size(s.observation_space) for s in specs}
        actions = {repr(_action_space(s.action_space)) for s in specs}
        if len(obs_shapes) != 1 or len(actions) != 1:
            raise ValueError(f"envpool tasks differ in spaces: {obs_shapes}, {actions}")
        first = specs[0]
        self._dict_obs = hasattr(first.observation_space, "spaces")
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
        out[np.asarray(env_id)] = (
            _to_float(obs, len(env_id))
            .reshape(len(env_id), -1)
            .reshape((len(env_id), *self.spec.obs_shape))
        )
        return out

    def _host_reset(self, seeds: Any) -> np.ndarray:
        seeds = np.asarray(seeds)
        lead = seeds.shape[:-1]
        flat = seeds.reshape(-1).astype(np.int64)
        obs = self._build(int(self._schedule.task_of(0)), flat)
        obs = obs.reshape(*lead, self.spec.num_envs, *self.spec.obs_shape)
        return obs, np.zeros(lead, np.int32)

    def _host_step(self, count: Any, action: Any):
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
            next_obs[np.asarray(rinfo["env_id"])] = _to_float(fresh, len(ids)).reshape(
                (len(ids), *self.spec.obs_shape)
            )
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

    # ---- traced side -----------------------------------------------------------------
    def reset(self, key: jax.Array) -> tuple[jax.Array, EnvpoolState]:
        n = self.spec.num_envs
        seeds = jax.random.randint(key, (n,), 0, 2**31 - 1, jnp.int32)
        # The step counter comes out of the callback so that every later step depends on
        # the reset: a pure_callback whose results go unused may be removed by XLA.
        obs, count = jax.pure_callback(
            self._host_reset,
            (
                jax.ShapeDtypeStruct((n, *self.spec.obs_shape), jnp.float32),
                jax.ShapeDtypeStruct((), jnp.int32),
            ),
            seeds,
            vmap_method="expand_dims",
        )
        return obs, EnvpoolState(count, EpisodeStats.zeros(n))

    def step(self, key: jax.Array, state: EnvpoolState, action: jax.Array):
        del key  # envpool's envs carry their own RNG, seeded at reset
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
        obs, final, reward, term, trunc, count, extras = jax.pure_callback(
            self._host_step, out, state.step_count, action, vmap_method="expand_dims"
        )
        stats, ep_ret, ep_len = state.stats.update(reward, term | trunc)
        c = state.step_count
        task = self._schedule.task_of(c) if self.spec.num_tasks > 1 else jnp.zeros((), jnp.int32)
        switched = self._schedule.switched(c) if self.spec.num_tasks > 1 else False
        info = StepInfo(
            final_obs=final,
            task_id=jnp.full(n, task, jnp.int32),
            task_switched=jnp.full(n, switched, bool),
            episode_return=ep_ret,
            episode_length=ep_len,
            extras=dict(zip(self._extras, extras, strict=True)),
        )
        return obs, EnvpoolState(count, stats), reward, term, trunc, info


def make_envpool_sequence(
    scenario: str, env_id: str, num_envs: int, options: dict[str, Any], sopts: dict[str, Any]
) -> EnvpoolEnv:
    """Builds ``procgen_levels`` or ``dmc_sequence`` from their scenario options.

    ``procgen_levels`` (Plasticine's continual Procgen): task ``k`` plays ``num_levels``
    (default 1) levels from ``start_level + k * level_stride`` (defaults 0 and 20), 10 tasks
    by default. ``dmc_sequence``: ``tasks`` is a list of envpool DMC ids or the name of one
    of ``DMC_SEQUENCES``; task ``k`` runs ``tasks[k % len(tasks)]``.
    """
    if scenario == "procgen_levels":
        schedule = schedule_from_options(sopts, default_tasks=10)
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
        schedule = schedule_from_options(sopts, default_tasks=len(ids))
        check_no_unknown(sopts, scenario)
        tasks = [(tid, dict(options)) for tid in ids]
    return EnvpoolEnv(tasks[0][0], num_envs, tasks=tasks, schedule=schedule)
