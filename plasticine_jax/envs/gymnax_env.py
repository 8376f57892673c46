"""gymnax adapter: classic control, MinAtar, bsuite, misc."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from plasticine_jax.envs.core import (
    ContinuousActions,
    DiscreteActions,
    Environment,
    EnvSpec,
    EpisodeStats,
    StepInfo,
)


class GymnaxState(NamedTuple):
    env_state: Any
    stats: EpisodeStats


def _action_space(space: Any) -> DiscreteActions | ContinuousActions:
    from plasticine_jax.envs.gymnax_import import import_gymnax

    spaces = import_gymnax().environments.spaces

    if isinstance(space, spaces.Discrete):
        return DiscreteActions(int(space.n))
    if isinstance(space, spaces.Box):
        low = float(jnp.min(jnp.asarray(space.low)))
        high = float(jnp.max(jnp.asarray(space.high)))
        return ContinuousActions(tuple(int(s) for s in space.shape), low, high)
    raise TypeError(f"unsupported gymnax action space {type(space).__name__}")


class GymnaxEnv(Environment):
    """``num_envs`` copies of a gymnax environment, vmapped.

    Args:
      env_id: a gymnax id, e.g. ``"CartPole-v1"`` or ``"Breakout-MinAtar"``.
      num_envs: batch size.
      **env_kwargs: fields of the env's ``EnvParams`` (e.g. ``max_steps_in_episode``)
        replace the defaults; anything else is passed to ``gymnax.make``.
    """

    def __init__(self, env_id: str, num_envs: int, **env_kwargs: Any):
        import dataclasses

        from plasticine_jax.envs.gymnax_import import import_gymnax

        gymnax = import_gymnax()

        if env_id not in gymnax.registered_envs:
            raise ValueError(
                f"unknown gymnax env {env_id!r}; choose one of {sorted(gymnax.registered_envs)}"
            )
        probe, params = gymnax.make(env_id)
        fields = {f.name for f in dataclasses.fields(params)}
        param_kwargs = {k: v for k, v in env_kwargs.items() if k in fields}
        make_kwargs = {k: v for k, v in env_kwargs.items() if k not in fields}
        self._env = gymnax.make(env_id, **make_kwargs)[0] if make_kwargs else probe
        self._params = params.replace(**param_kwargs)
        obs_shape = self._env.observation_space(self._params).shape
        self.spec = EnvSpec(
            name=env_id,
            num_envs=num_envs,
            obs_shape=tuple(int(s) for s in obs_shape),
            action_space=_action_space(self._env.action_space(self._params)),
        )

    def reset(self, key: jax.Array) -> tuple[jax.Array, GymnaxState]:
        keys = jax.random.split(key, self.spec.num_envs)
        obs, env_state = jax.vmap(self._env.reset, in_axes=(0, None))(keys, self._params)
        state = GymnaxState(env_state, EpisodeStats.zeros(self.spec.num_envs))
        return obs.astype(jnp.float32), state

    def step(self, key: jax.Array, state: GymnaxState, action: jax.Array):
        keys = jax.random.split(key, self.spec.num_envs)
        obs, env_state, reward, terminated, truncated, info = jax.vmap(
            self._env.step, in_axes=(0, 0, 0, None)
        )(keys, state.env_state, action, self._params)
        terminated = terminated.astype(bool)
        truncated = jnp.logical_and(truncated.astype(bool), ~terminated)
        done = terminated | truncated
        stats, ep_ret, ep_len = state.stats.update(reward, done)
        n = self.spec.num_envs
        step_info = StepInfo(
            final_obs=info["final_observation"].astype(jnp.float32),
            task_id=jnp.zeros(n, jnp.int32),
            task_switched=jnp.zeros(n, bool),
            episode_return=ep_ret,
            episode_length=ep_len,
            extras={},
        )
        new_state = GymnaxState(env_state, stats)
        return (
            obs.astype(jnp.float32),
            new_state,
            reward.astype(jnp.float32),
            terminated,
            truncated,
            step_info,
        )
