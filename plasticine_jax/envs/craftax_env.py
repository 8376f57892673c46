"""Craftax and Craftax-Classic adapter with optimistic resets.

Generating a Craftax world is far costlier than stepping one (Craftax: nine floors of
procedural generation), so resetting every finished env with a freshly generated world
makes an auto-resetting step hundreds of times slower. Instead the state carries a *pool*
of worlds generated ahead. Each step:

1. the ``N`` envs step (no auto-reset inside Craftax);
2. finished envs take consecutive pool slots, starting at a read cursor (slot
   ``(read + rank) % P`` for the ``rank``-th finished env), and the cursor advances;
3. ``worlds_per_step = ceil(N / reset_ratio)`` new worlds are generated into the next
   slots at a write cursor, overwriting the oldest.

Every world handed out is a freshly generated, never-played state. If envs finish faster
than worlds are made, a world can be handed out twice (two episodes on the same map):
that is the "optimistic" bet of Craftax's own ``OptimisticResetVecEnvWrapper``, made
rarer here by the pool. The cost per step is ``worlds_per_step`` generations instead of
``N``.

Truncation: Craftax ends an episode at ``max_timesteps`` with the same ``done`` as death;
we recompute termination with the time limit removed, so a time-out is ``truncated``.

``info.extras["achievements"]`` is ``[N, A]``: the achievements of the episode that ended
at this step (zero elsewhere); feed it to ``craftax_score.achievement_success_rates``.

Logged metrics (the ``Environment`` episode-metric hooks): ``achievement/<name>`` per
achievement, the fraction of the update's finished episodes that unlocked it, and
``craftax_score``, the Craftax score of those rates in percent (Hafner 2021, Crafter, eq. 1,
as reported by Matthews et al. 2024, Craftax; see ``craftax_score``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from plasticine_jax.envs.continual import tree_where
from plasticine_jax.envs.core import DiscreteActions, Environment, EnvSpec, EpisodeStats, StepInfo
from plasticine_jax.envs.craftax_score import achievement_metrics, score_from_means

CRAFTAX_IDS = {
    "Craftax-Symbolic-v1": "Craftax-Pixels-v1",
    "Craftax-Classic-Symbolic-v1": "Craftax-Classic-Pixels-v1",
}
_NO_TIME_LIMIT = 2**30


class CraftaxState(NamedTuple):
    env_state: Any  # [N] craftax EnvState
    stats: EpisodeStats
    pool_state: Any  # [P] fresh worlds
    pool_obs: jax.Array  # [P, *obs_shape]
    read: jax.Array  # int32 scalar cursors into the pool ring
    write: jax.Array


def achievement_names(env_id: str) -> tuple[str, ...]:
    """Names (lower case) of the achievements, in ``extras["achievements"]`` order."""
    if "Classic" in env_id:
        from craftax.craftax_classic.constants import Achievement
    else:
        from craftax.craftax.constants import Achievement
    return tuple(a.name.lower() for a in sorted(Achievement, key=lambda a: a.value))


class CraftaxEnv(Environment):
    """``num_envs`` Craftax envs with optimistic resets from a pool of pre-generated worlds.

    Args:
      env_id: ``"Craftax-Symbolic-v1"`` or ``"Craftax-Classic-Symbolic-v1"`` (or the
        ``-Pixels-`` ids).
      num_envs: batch size.
      pixels: use the pixel observation (``[H, W, 3]``) instead of the symbolic vector.
      reset_ratio: ``num_envs / worlds_per_step``; 1 generates a world per env per step.
      pool_size: worlds kept ready (default ``max(num_envs, 2 * worlds_per_step)``).
      **params: ``EnvParams`` fields, e.g. ``max_timesteps``.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        pixels: bool = False,
        reset_ratio: int = 16,
        pool_size: int | None = None,
        **params: Any,
    ):
        from craftax.craftax_env import make_craftax_env_from_name

        allowed = set(CRAFTAX_IDS) | set(CRAFTAX_IDS.values())
        if env_id not in allowed:
            raise ValueError(f"unknown craftax env {env_id!r}; choose one of {sorted(allowed)}")
        if pixels:
            env_id = CRAFTAX_IDS.get(env_id, env_id)
        self._env = make_craftax_env_from_name(env_id, auto_reset=False)
        defaults = self._env.default_params
        fields = {f.name for f in dataclasses.fields(defaults)}
        unknown = set(params) - fields
        if unknown:
            raise ValueError(f"unknown craftax options {sorted(unknown)}")
        self._params = defaults.replace(**params)
        self._no_limit = self._params.replace(max_timesteps=_NO_TIME_LIMIT)
        self.worlds_per_step = max(1, math.ceil(num_envs / max(1, int(reset_ratio))))
        self.pool_size = int(pool_size or max(num_envs, 2 * self.worlds_per_step))
        if self.pool_size < self.worlds_per_step:
            raise ValueError(f"pool_size {self.pool_size} < worlds_per_step")
        self.achievement_names = achievement_names(env_id)
        obs_shape = self._env.observation_space(self._params).shape
        self.spec = EnvSpec(
            name=env_id,
            num_envs=num_envs,
            obs_shape=tuple(int(s) for s in obs_shape),
            action_space=DiscreteActions(int(self._env.num_actions)),
        )

    def episode_metrics(self, info: StepInfo) -> dict[str, jax.Array]:
        """``achievement/<name>``: 1.0 where the episode that ended here unlocked it."""
        return achievement_metrics(self.achievement_names, info.extras["achievements"])

    def summarize_episode_metrics(self, means: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """``craftax_score``: ``exp(mean_i ln(1 + s_i)) - 1`` over the success rates
        ``s_i`` in percent (Hafner 2021, "Benchmarking the Spectrum of Agent Capabilities",
        eq. 1; the score of Matthews et al. 2024, "Craftax: A Lightning-Fast Benchmark for
        Open-Ended Reinforcement Learning"). NaN when no episode ended in the update."""
        return score_from_means(self.achievement_names, means)

    def _generate(self, key: jax.Array, count: int):
        obs, state = jax.vmap(self._env.reset, in_axes=(0, None))(
            jax.random.split(key, count), self._params
        )
        return obs.astype(jnp.float32), state

    def reset(self, key: jax.Array) -> tuple[jax.Array, CraftaxState]:
        # One generation call for the envs and the pool: world generation is the largest
        # part of the compiled program, and each call site is compiled separately.
        n = self.spec.num_envs
        all_obs, worlds = self._generate(key, n + self.pool_size)
        obs, pool_obs = all_obs[:n], all_obs[n:]
        env_state = jax.tree.map(lambda x: x[:n], worlds)
        pool_state = jax.tree.map(lambda x: x[n:], worlds)
        zero = jnp.zeros((), jnp.int32)
        state = CraftaxState(
            env_state, EpisodeStats.zeros(self.spec.num_envs), pool_state, pool_obs, zero, zero
        )
        return obs, state

    def step(self, key: jax.Array, state: CraftaxState, action: jax.Array):
        n, pool = self.spec.num_envs, self.pool_size
        step_key, gen_key = jax.random.split(key)
        obs_st, env_st, reward, done, _ = jax.vmap(self._env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(step_key, n), state.env_state, action, self._params
        )
        obs_st = obs_st.astype(jnp.float32)
        done = done.astype(bool)
        terminated = done & jax.vmap(self._env.is_terminal, in_axes=(0, None))(
            env_st, self._no_limit
        )
        truncated = done & ~terminated

        # Hand out pool worlds to the finished envs, in rank order from the read cursor.
        rank = jnp.cumsum(done.astype(jnp.int32)) - 1
        slot = (state.read + rank) % pool
        fresh_state = jax.tree.map(lambda x: x[slot], state.pool_state)
        env_state = tree_where(done, fresh_state, env_st)
        obs = tree_where(done, state.pool_obs[slot], obs_st)
        read = (state.read + jnp.sum(done, dtype=jnp.int32)) % pool

        # Refill: overwrite the oldest slots with newly generated worlds.
        new_obs, new_state = self._generate(gen_key, self.worlds_per_step)
        dest = (state.write + jnp.arange(self.worlds_per_step)) % pool
        pool_state = jax.tree.map(lambda p, x: p.at[dest].set(x), state.pool_state, new_state)
        pool_obs = state.pool_obs.at[dest].set(new_obs)
        write = (state.write + self.worlds_per_step) % pool

        reward = reward.astype(jnp.float32)
        stats, ep_ret, ep_len = state.stats.update(reward, done)
        achievements = env_st.achievements.astype(jnp.float32) * done[:, None]
        info = StepInfo(
            final_obs=obs_st,
            task_id=jnp.zeros(n, jnp.int32),
            task_switched=jnp.zeros(n, bool),
            episode_return=ep_ret,
            episode_length=ep_len,
            extras={"achievements": achievements},
        )
        new = CraftaxState(env_state, stats, pool_state, pool_obs, read, write)
        return obs, new, reward, terminated, truncated, info
