"""Observation and reward normalisation by running statistics, as gym's wrappers define it.

Two wrappers, each keeping its statistics in the environment state, so a vmapped member
keeps its own, a checkpoint holds them and a resumed run goes on with them:

* ``NormalizeObservation``: ``clip((obs - mean) / sqrt(var + 1e-8), -clip, clip)``, with
  ``mean``/``var`` per observation element, updated by every batch of observations the
  environment returns (``reset`` and ``step``) before it is normalised.
* ``NormalizeReward``: ``clip(reward / sqrt(var(G) + 1e-8), -clip, clip)``, with ``var(G)``
  the running variance of a discounted return ``G`` kept per env and updated, before the
  division, with this step's ``G [N]``. Which episode end restarts ``G`` differs between
  the two lines of gym (``returns``):

  - ``"gymnasium"`` (gymnasium >= 0.27: ``wrappers/normalize.py`` in 0.27 to 0.29,
    ``wrappers/stateful_reward.py`` from 1.0): ``G_t = G_{t-1} * gamma * (1 - terminated_t)
    + r_t``. The terminated step itself restarts ``G`` (to ``r_t``); a truncation does not.
  - ``"gym"`` (gym <= 0.26, e.g. gym 0.23.1): ``G_t = G_{t-1} * gamma + r_t``, then ``G``
    is set to 0 where the episode ended (terminated or truncated), i.e. ``G_t = G_{t-1} *
    gamma * (1 - done_{t-1}) + r_t``.

The running statistics are gym's ``RunningMeanStd`` (initial count ``1e-4``, mean 0, var 1)
with Chan et al.'s parallel update over the batch ``[N]`` of this member's envs, as gym's
wrappers do around a vector env (``batch_mean``/``batch_var`` over axis 0, ``ddof=0``).

What the agent sees: ``obs`` and ``info.final_obs`` (the bootstrap observation of a
truncated episode) are normalised with the same statistics, those after this step's update;
the statistics are not updated with ``final_obs``. ``reward`` is normalised, while
``info.episode_return`` stays the inner environment's undiscounted return of raw rewards, so
the logged returns are comparable with and without normalisation.

``reset_on_task_switch`` restarts the statistics (and ``G``) when a continual scenario
switches tasks, as Plasticine's continual DMC and Procgen do by building fresh gym wrappers
for every task. The step that ends a task returns the first observation of the next task
(``envs.continual``): that observation is normalised with fresh statistics updated with it
alone, as gym's ``reset`` of a new wrapper does, while the step's final observation and reward
(the old task's) use the old statistics. No-op for a single-task environment.

References:
  gymnasium ``wrappers/utils.py`` (``RunningMeanStd``), ``wrappers/stateful_observation.py``,
  ``wrappers/stateful_reward.py``; gym 0.23.1 ``wrappers/normalize.py``; Chan, Golub &
  LeVeque (1979), "Updating formulae and a pairwise algorithm for computing sample variances".
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from plasticine_jax.envs.continual import TaskSchedule
from plasticine_jax.envs.core import Environment, Wrapper

Array = jax.Array

RETURNS = ("gymnasium", "gym")
COUNT_EPSILON = 1e-4  # gym's RunningMeanStd(epsilon=1e-4): the initial count
EPSILON = 1e-8  # gym's NormalizeObservation / NormalizeReward(epsilon=1e-8)


class RunningMeanStd(NamedTuple):
    """Running mean and (population) variance of values of shape ``mean.shape``.

    Attributes:
      mean: ``[*shape]`` float32.
      var: ``[*shape]`` float32.
      count: float32 scalar, starting at ``COUNT_EPSILON``.
    """

    mean: Array
    var: Array
    count: Array

    @classmethod
    def create(cls, shape: tuple[int, ...]) -> RunningMeanStd:
        """gym's initial statistics: mean 0, var 1, count 1e-4."""
        return cls(
            jnp.zeros(shape, jnp.float32),
            jnp.ones(shape, jnp.float32),
            jnp.asarray(COUNT_EPSILON, jnp.float32),
        )

    def update(self, x: Array) -> RunningMeanStd:
        """Adds the batch ``x [B, *shape]`` (Chan et al.'s parallel update, as gym's).

        ``delta = batch_mean - mean``, ``n = count + B``; ``mean += delta * B / n``;
        ``var = (var * count + batch_var * B + delta**2 * count * B / n) / n``. Written with
        the ratios ``count / n`` and ``B / n`` so that float32 keeps the small terms.
        """
        x = x.astype(jnp.float32)
        batch = x.shape[0]
        batch_mean = jnp.mean(x, axis=0)
        batch_var = jnp.var(x, axis=0)
        total = self.count + batch
        w_old, w_new = self.count / total, batch / total
        delta = batch_mean - self.mean
        mean = self.mean + delta * w_new
        var = self.var * w_old + batch_var * w_new + jnp.square(delta) * w_old * w_new
        return RunningMeanStd(mean, var, total)

    def scale(self) -> Array:
        """``sqrt(var + 1e-8)``, the divisor of both wrappers."""
        return jnp.sqrt(self.var + EPSILON)


def _task_ends(env: Environment, count: Array) -> Array:
    """Whether the step at per-env counter ``count`` ends a task of ``env``'s schedule."""
    spec = env.spec
    return TaskSchedule(spec.num_tasks, spec.steps_per_task).ends_task(count)


def _pick(cond: Array, x: Any, y: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(cond, a, b), x, y)


def _continual(env: Environment, reset_on_task_switch: bool) -> bool:
    return reset_on_task_switch and env.spec.num_tasks > 1 and env.spec.steps_per_task > 0


class NormalizeObsState(NamedTuple):
    inner: Any
    obs_rms: RunningMeanStd
    step_count: Array  # int32 scalar: per-env steps so far (for reset_on_task_switch)


class NormalizeObservation(Wrapper):
    """``clip((obs - mean) / sqrt(var + 1e-8), -clip, clip)`` with running statistics.

    Args:
      env: the environment to wrap.
      clip: bound of the normalised observation (CleanRL's ``np.clip(obs, -10, 10)``).
      reset_on_task_switch: restart the statistics at every task switch (module docstring).
    """

    def __init__(self, env: Environment, clip: float = 10.0, reset_on_task_switch: bool = False):
        self._env = env
        self._clip = float(clip)
        self._reset = _continual(env, reset_on_task_switch)
        self.spec = env.spec

    def normalize(self, rms: RunningMeanStd, obs: Array) -> Array:
        """``obs [N, *obs_shape]`` normalised with ``rms`` and clipped."""
        return jnp.clip((obs - rms.mean) / rms.scale(), -self._clip, self._clip)

    def reset(self, key: Array) -> tuple[Array, NormalizeObsState]:
        obs, inner = self._env.reset(key)
        rms = RunningMeanStd.create(self.spec.obs_shape).update(obs)
        state = NormalizeObsState(inner, rms, jnp.zeros((), jnp.int32))
        return self.normalize(rms, obs), state

    def step(self, key: Array, state: NormalizeObsState, action: Array):
        obs, inner, reward, terminated, truncated, info = self._env.step(key, state.inner, action)
        rms = final_rms = state.obs_rms.update(obs)
        if self._reset:
            ends = _task_ends(self._env, state.step_count)
            fresh = RunningMeanStd.create(self.spec.obs_shape).update(obs)
            final_rms = _pick(ends, state.obs_rms, rms)
            rms = _pick(ends, fresh, rms)
        info = info._replace(final_obs=self.normalize(final_rms, info.final_obs))
        new = NormalizeObsState(inner, rms, state.step_count + 1)
        return self.normalize(rms, obs), new, reward, terminated, truncated, info


class NormalizeRewardState(NamedTuple):
    inner: Any
    return_rms: RunningMeanStd
    returns: Array  # [N] float32: the discounted return G carried into the next step
    step_count: Array  # int32 scalar: per-env steps so far (for reset_on_task_switch)


class NormalizeReward(Wrapper):
    """``clip(reward / sqrt(var(G) + 1e-8), -clip, clip)``, ``G`` a discounted return per env.

    Args:
      env: the environment to wrap.
      gamma: the discount of ``G`` (CleanRL passes the agent's ``gamma``).
      clip: bound of the normalised reward (CleanRL's ``np.clip(reward, -10, 10)``).
      returns: ``"gymnasium"`` or ``"gym"``: which episode end restarts ``G`` (module
        docstring).
      reset_on_task_switch: restart ``G`` and its statistics at every task switch.
    """

    def __init__(
        self,
        env: Environment,
        gamma: float = 0.99,
        clip: float = 10.0,
        returns: str = "gymnasium",
        reset_on_task_switch: bool = False,
    ):
        if returns not in RETURNS:
            raise ValueError(f"normalize returns {returns!r}; choose one of {list(RETURNS)}")
        self._env = env
        self._gamma = float(gamma)
        self._clip = float(clip)
        self._returns = returns
        self._reset = _continual(env, reset_on_task_switch)
        self.spec = env.spec

    def reset(self, key: Array) -> tuple[Array, NormalizeRewardState]:
        obs, inner = self._env.reset(key)
        n = self.spec.num_envs
        state = NormalizeRewardState(
            inner, RunningMeanStd.create(()), jnp.zeros(n, jnp.float32), jnp.zeros((), jnp.int32)
        )
        return obs, state

    def step(self, key: Array, state: NormalizeRewardState, action: Array):
        obs, inner, reward, terminated, truncated, info = self._env.step(key, state.inner, action)
        reward = reward.astype(jnp.float32)
        if self._returns == "gymnasium":
            g = state.returns * self._gamma * (1.0 - terminated.astype(jnp.float32)) + reward
            carried = g
        else:
            g = state.returns * self._gamma + reward
            carried = jnp.where(terminated | truncated, 0.0, g)
        rms = state.return_rms.update(g)
        normalized = jnp.clip(reward / rms.scale(), -self._clip, self._clip)
        if self._reset:
            ends = _task_ends(self._env, state.step_count)
            rms = _pick(ends, RunningMeanStd.create(()), rms)
            carried = jnp.where(ends, 0.0, carried)
        new = NormalizeRewardState(inner, rms, carried, state.step_count + 1)
        return obs, new, normalized, terminated, truncated, info


def normalize_env(env: Environment, cfg: Any | None) -> Environment:
    """Wraps ``env`` as ``cfg`` (a ``config.NormalizeConfig``, or None for neither) asks:
    ``NormalizeObservation`` inside, then ``NormalizeReward``."""
    if cfg is None:
        return env
    if cfg.obs:
        env = NormalizeObservation(env, cfg.clip_obs, cfg.reset_on_task_switch)
    if cfg.reward:
        env = NormalizeReward(
            env, cfg.gamma, cfg.clip_reward, cfg.returns, cfg.reset_on_task_switch
        )
    return env
