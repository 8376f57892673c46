"""Permuted observations: a fresh fixed permutation of what the agent sees, per task.

The scenario of Dohare et al. (2024, "Loss of plasticity in deep continual learning",
Permuted MNIST) and Plasticine's permuted-observation RL tasks. The dynamics and rewards
are untouched; only the observation is permuted, so a network must relearn its input layer.

Permutations are fixed at construction from ``seed`` and the task index (task ``k`` uses
``numpy.random.default_rng([seed, k])``), so they are identical for every vmapped agent
seed and across processes, and live in the compiled program as one constant table.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from plasticine_jax.envs.continual import TaskSchedule
from plasticine_jax.envs.core import Environment, Wrapper

MODES = ("features", "pixels")


class PermutedState(NamedTuple):
    inner: Any
    step_count: jax.Array  # int32 scalar: per-env steps taken so far


def permutation_table(
    obs_shape: tuple[int, ...], num_tasks: int, seed: int, mode: str, patch_size: int
) -> np.ndarray:
    """Returns ``[num_tasks, prod(obs_shape)]`` int32 gather indices into the flat obs.

    ``features`` permutes every element. ``pixels`` needs ``obs_shape == (H, W, C)`` and
    permutes ``patch_size x patch_size`` patches of the image, keeping the pixels inside a
    patch and the channels of each pixel together.
    """
    size = math.prod(obs_shape)
    flat = np.arange(size).reshape(obs_shape)
    table = np.empty((num_tasks, size), np.int32)
    for k in range(num_tasks):
        rng = np.random.default_rng([seed, k])
        if mode == "features":
            table[k] = rng.permutation(size)
            continue
        if len(obs_shape) != 3:
            raise ValueError(f"mode='pixels' needs (H, W, C) observations, got {obs_shape}")
        h, w, c = obs_shape
        p = patch_size
        if h % p or w % p:
            raise ValueError(f"patch_size {p} does not divide the image size {h}x{w}")
        patches = flat.reshape(h // p, p, w // p, p, c).transpose(0, 2, 1, 3, 4)
        patches = patches.reshape((h // p) * (w // p), p, p, c)
        patches = patches[rng.permutation(patches.shape[0])]
        image = patches.reshape(h // p, w // p, p, p, c).transpose(0, 2, 1, 3, 4)
        table[k] = image.reshape(-1)
    return table


class PermutedObs(Wrapper):
    """Wraps any batched ``Environment``; permutes its observations per task.

    Episodes run on across a task switch (the MDP is unchanged); only the view changes.

    Args:
      env: the environment to wrap.
      schedule: task count and per-env steps per task.
      seed: seeds the permutations (not the agent's PRNG key).
      mode: ``"features"`` (every element) or ``"pixels"`` (spatial patches).
      patch_size: patch side for ``mode="pixels"``.
    """

    def __init__(
        self,
        env: Environment,
        schedule: TaskSchedule,
        seed: int = 0,
        mode: str = "features",
        patch_size: int = 1,
    ):
        if mode not in MODES:
            raise ValueError(f"permuted_obs mode {mode!r}; choose one of {list(MODES)}")
        self._env = env
        self._schedule = schedule
        self._table = permutation_table(
            env.spec.obs_shape, schedule.num_tasks, seed, mode, patch_size
        )
        self.spec = env.spec._replace(
            name=f"{env.spec.name}/permuted_obs",
            num_tasks=schedule.num_tasks,
            steps_per_task=schedule.steps_per_task,
        )

    def permute(self, obs: jax.Array, task: jax.Array) -> jax.Array:
        """Applies task ``task``'s permutation to ``obs [N, *obs_shape]``."""
        n = obs.shape[0]
        perm = jnp.asarray(self._table)[task]
        return obs.reshape(n, -1)[:, perm].reshape(obs.shape)

    def reset(self, key: jax.Array) -> tuple[jax.Array, PermutedState]:
        obs, inner = self._env.reset(key)
        count = jnp.zeros((), jnp.int32)
        return self.permute(obs, self._schedule.task_of(count)), PermutedState(inner, count)

    def step(self, key: jax.Array, state: PermutedState, action: jax.Array):
        obs, inner, reward, terminated, truncated, info = self._env.step(key, state.inner, action)
        count = state.step_count
        task = self._schedule.task_of(count)
        n = self.spec.num_envs
        info = info._replace(
            final_obs=self.permute(info.final_obs, task),
            task_id=jnp.full(n, task, jnp.int32),
            task_switched=jnp.full(n, self._schedule.switched(count)),
        )
        obs = self.permute(obs, self._schedule.task_of(count + 1))
        return obs, PermutedState(inner, count + 1), reward, terminated, truncated, info
