"""Brax adapter: ant, halfcheetah, hopper, walker2d, inverted_pendulum, ... .

The physics backend (``generalized``, ``positional``, ``spring``, ``mjx``) is an option.
Brax's own wrappers put the time limit into ``done`` and reset to one cached initial state;
we keep a per-env step counter instead, so a time-out is ``truncated`` (not ``terminated``),
and reset finished envs from fresh keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from plasticine_jax.envs.continual import tree_where
from plasticine_jax.envs.core import (
    ContinuousActions,
    Environment,
    EnvSpec,
    EpisodeStats,
    StepInfo,
)

BRAX_BACKENDS = ("generalized", "positional", "spring", "mjx")


class BraxState(NamedTuple):
    env_state: Any  # [N] brax.envs.State
    time: jax.Array  # [N] int32 steps into the current episode
    stats: EpisodeStats


class BraxEnv(Environment):
    """``num_envs`` copies of a Brax environment.

    Args:
      env_id: a Brax env name (``"ant"``, ``"halfcheetah"``, ``"hopper"``, ``"walker2d"``,
        ``"inverted_pendulum"``, ...).
      num_envs: batch size.
      backend: physics pipeline, one of ``BRAX_BACKENDS``.
      episode_length: time limit in env steps (truncation).
      **env_kwargs: passed to ``brax.envs.get_environment``.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        backend: str = "positional",
        episode_length: int = 1000,
        **env_kwargs: Any,
    ):
        from brax import envs

        if backend not in BRAX_BACKENDS:
            raise ValueError(f"brax backend {backend!r}; choose one of {list(BRAX_BACKENDS)}")
        if env_id not in envs._envs:
            raise ValueError(f"unknown brax env {env_id!r}; choose one of {sorted(envs._envs)}")
        self._env = envs.get_environment(env_id, backend=backend, **env_kwargs)
        self.episode_length = int(episode_length)
        self.spec = EnvSpec(
            name=f"brax/{env_id}",
            num_envs=num_envs,
            obs_shape=(int(self._env.observation_size),),
            action_space=ContinuousActions((int(self._env.action_size),), -1.0, 1.0),
        )

    @property
    def sys(self) -> Any:
        """The Brax ``System`` (physics parameters) the env steps with by default."""
        return self._env.sys

    @contextlib.contextmanager
    def _using(self, sys: Any) -> Iterator[None]:
        # Brax envs read ``self.sys`` when traced; swapping it during tracing is how Brax's
        # own domain-randomisation wrapper feeds traced physics parameters.
        saved = self._env.unwrapped.sys
        self._env.unwrapped.sys = sys
        try:
            yield
        finally:
            self._env.unwrapped.sys = saved

    def _reset_envs(self, key: jax.Array, sys: Any) -> Any:
        with self._using(sys):
            return jax.vmap(self._env.reset)(jax.random.split(key, self.spec.num_envs))

    def reset_with(self, key: jax.Array, sys: Any) -> tuple[jax.Array, BraxState]:
        """``reset`` under physics ``sys``."""
        n = self.spec.num_envs
        env_state = self._reset_envs(key, sys)
        state = BraxState(env_state, jnp.zeros(n, jnp.int32), EpisodeStats.zeros(n))
        return env_state.obs.astype(jnp.float32), state

    def step_with(self, key: jax.Array, state: BraxState, action: jax.Array, sys: Any):
        """``step`` under physics ``sys`` (resets also use ``sys``)."""
        with self._using(sys):
            stepped = jax.vmap(self._env.step)(state.env_state, action)
        fresh = self._reset_envs(key, sys)
        terminated = stepped.done > 0.5
        time = state.time + 1
        truncated = (time >= self.episode_length) & ~terminated
        done = terminated | truncated
        env_state = tree_where(done, fresh, stepped)
        reward = stepped.reward.astype(jnp.float32)
        stats, ep_ret, ep_len = state.stats.update(reward, done)
        n = self.spec.num_envs
        info = StepInfo(
            final_obs=stepped.obs.astype(jnp.float32),
            task_id=jnp.zeros(n, jnp.int32),
            task_switched=jnp.zeros(n, bool),
            episode_return=ep_ret,
            episode_length=ep_len,
            extras={},
        )
        new = BraxState(env_state, jnp.where(done, 0, time), stats)
        return env_state.obs.astype(jnp.float32), new, reward, terminated, truncated, info

    def reset(self, key: jax.Array) -> tuple[jax.Array, BraxState]:
        return self.reset_with(key, self.sys)

    def step(self, key: jax.Array, state: BraxState, action: jax.Array):
        return self.step_with(key, state, action, self.sys)
