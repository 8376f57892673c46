"""The one environment protocol every backend speaks.

Environments are *batched*: an ``Environment`` owns ``num_envs`` copies and its ``reset`` /
``step`` take and return arrays with a leading ``[num_envs]`` axis. Backends that are
single-env functions (gymnax, Brax, Craftax) ``vmap`` inside their adapter; backends that
are pools (envpool) map their pool onto that axis. The agent never vmaps over envs itself.

``step`` follows gymnax 1.0: it returns ``(obs, state, reward, terminated, truncated,
info)`` and resets finished environments automatically. ``terminated`` means the MDP
ended (no bootstrap); ``truncated`` means a time limit cut the episode (bootstrap from
``info.final_obs``, the observation *before* the automatic reset).

One backend cannot reset at once: envpool's XLA interface (and envpool's Atari after a
lost life) restarts a finished env on the *next* step and ignores that step's action.
Such an adapter returns the final observation as ``obs`` of the ending step and marks the
next step ``info.action_ignored``; that transition is not the agent's doing, so agents
leave it out of their losses (PPO does) and episode statistics do not count it.
"""

from __future__ import annotations

import abc
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class DiscreteActions(NamedTuple):
    """``n`` discrete actions, encoded as int32 scalars."""

    n: int


class ContinuousActions(NamedTuple):
    """A box of float32 actions of ``shape``, bounded elementwise by ``low``/``high``: one
    number for every dimension, or (where dimensions differ, as DMC's quadruped's joints do)
    a tuple of one per dimension in row-major order, kept a tuple so the spec stays hashable."""

    shape: tuple[int, ...]
    low: float | tuple[float, ...]
    high: float | tuple[float, ...]

    def bounds(self) -> tuple[Any, Any]:
        """``(low, high)``: floats, or float32 arrays of ``shape`` for per-dimension bounds."""
        if isinstance(self.low, float) and isinstance(self.high, float):
            return self.low, self.high
        return tuple(
            np.broadcast_to(np.asarray(b, np.float32).reshape(-1), (math.prod(self.shape),))
            .reshape(self.shape)
            for b in (self.low, self.high)
        )


ActionSpace = DiscreteActions | ContinuousActions


class EnvSpec(NamedTuple):
    """Static facts about a batched environment (hashable: decides shapes)."""

    name: str
    num_envs: int
    obs_shape: tuple[int, ...]
    action_space: ActionSpace
    num_tasks: int = 1
    steps_per_task: int = 0  # per-env steps per task; 0 for a single, endless task


class StepInfo(NamedTuple):
    """What every step reports besides obs/reward/terminated/truncated. All ``[num_envs]``.

    Attributes:
      final_obs: ``[N, *obs_shape]`` observation reached by this step, before auto-reset.
      task_id: int32 index of the task the step was taken in.
      task_switched: bool, True on the first step of a new task.
      episode_return: undiscounted return of the episode that ended at this step; 0 where
        no episode ended.
      episode_length: length of that episode; 0 where none ended.
      extras: backend-specific per-env arrays (e.g. Craftax achievements); a fixed dict.
      action_ignored: bool, True where the env ignored this step's action because it was
        restarting an env that finished at the step before (envpool's deferred reset);
        ``None`` (the default) for backends that always reset at once.
    """

    final_obs: Array
    task_id: Array
    task_switched: Array
    episode_return: Array
    episode_length: Array
    extras: dict[str, Array]
    action_ignored: Array | None = None


class Environment(abc.ABC):
    """Batched, auto-resetting environment. Pure: all state lives in ``state``."""

    spec: EnvSpec

    @abc.abstractmethod
    def reset(self, key: Array) -> tuple[Array, Any]:
        """Returns ``(obs [N, *obs_shape], state)``."""

    @abc.abstractmethod
    def step(
        self, key: Array, state: Any, action: Array
    ) -> tuple[Array, Any, Array, Array, Array, StepInfo]:
        """Returns ``(obs, state, reward [N], terminated [N], truncated [N], info)``."""

    def episode_metrics(self, info: StepInfo) -> dict[str, Array]:
        """Per-episode values to log, read from one step's ``info``: ``{name: [N] float}``.

        A value counts only for envs whose episode ended at this step (zero elsewhere). The
        agent sums each over its rollout, divides by the number of finished episodes and
        logs the mean as ``env/{name}`` (NaN when no episode ended). Default: none.
        Wrappers forward their inner environment's.
        """
        del info
        return {}

    def summarize_episode_metrics(self, means: dict[str, Array]) -> dict[str, Array]:
        """Metrics derived from one update's ``episode_metrics`` means (e.g. the Craftax
        score from the achievement success rates), logged as ``env/{name}``. Default: none."""
        del means
        return {}


class Wrapper(Environment):
    """An ``Environment`` built on an inner one, ``self._env`` (a continual scenario).

    Forwards the inner environment's episode-metric hooks, so a wrapped Craftax still logs
    its achievements and score. A subclass that ends episodes its inner environment did not
    end (e.g. ``DynamicsShift(reset_on_switch=True)``) counts those episodes with the zeros
    the inner ``episode_metrics`` reports where no episode ended.
    """

    _env: Environment

    @property
    def inner(self) -> Environment:
        """The wrapped environment."""
        return self._env

    def episode_metrics(self, info: StepInfo) -> dict[str, Array]:
        return self._env.episode_metrics(info)

    def summarize_episode_metrics(self, means: dict[str, Array]) -> dict[str, Array]:
        return self._env.summarize_episode_metrics(means)


class EpisodeStats(NamedTuple):
    """Running return/length per env, carried inside adapters' states."""

    running_return: Array
    running_length: Array

    @classmethod
    def zeros(cls, num_envs: int) -> EpisodeStats:
        return cls(jnp.zeros(num_envs, jnp.float32), jnp.zeros(num_envs, jnp.int32))

    def update(
        self, reward: Array, done: Array, counted: Array | None = None
    ) -> tuple[EpisodeStats, Array, Array]:
        """Adds ``reward``; returns the new stats and the finished episodes' return/length.

        ``counted`` (bool ``[N]``, default all True) says which envs' steps add to the
        length: a step whose action the env ignored (``StepInfo.action_ignored``) does not.
        """
        ret = self.running_return + reward.astype(jnp.float32)
        step = 1 if counted is None else counted.astype(jnp.int32)
        length = self.running_length + step
        finished_ret = jnp.where(done, ret, 0.0)
        finished_len = jnp.where(done, length, 0)
        new = EpisodeStats(jnp.where(done, 0.0, ret), jnp.where(done, 0, length))
        return new, finished_ret, finished_len
