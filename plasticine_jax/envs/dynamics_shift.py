"""Dynamics shifts on Brax: friction and mass change per task on a schedule.

Plasticine's continual-DMC "dynamic shift" and the slippery-ant protocol of Dohare et al.
(2024, Nature, "Loss of plasticity in deep continual learning"): the agent, its observation
and its reward stay the same while the physics changes. Task ``k`` multiplies every geom's
friction coefficients by ``friction[k % len(friction)]`` and every body's mass and inertia
by ``mass[k % len(mass)]`` (scaling inertia with mass keeps each body's shape). Both the
MuJoCo fields (``geom_friction``, ``body_mass``, ``body_inertia``, read by the ``mjx``
backend and by contact generation) and Brax's link inertia (read by ``generalized``,
``positional``, ``spring``) are scaled.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from plasticine_jax.envs.brax_env import BraxEnv, BraxState
from plasticine_jax.envs.continual import TaskSchedule, tree_where
from plasticine_jax.envs.core import Wrapper


class DynamicsShiftState(NamedTuple):
    inner: BraxState
    step_count: jax.Array  # int32 scalar


class DynamicsShift(Wrapper):
    """A ``BraxEnv`` whose friction and mass are scaled per task.

    Args:
      env: the Brax environment.
      schedule: task count and per-env steps per task.
      friction: friction multipliers, task ``k`` uses ``friction[k % len(friction)]``.
      mass: mass (and inertia) multipliers, cycled the same way.
      reset_on_switch: end every episode at a task boundary (``truncated``) and start the
        next task from fresh states; otherwise episodes run on under the new physics.
    """

    def __init__(
        self,
        env: BraxEnv,
        schedule: TaskSchedule,
        friction: tuple[float, ...] = (1.0,),
        mass: tuple[float, ...] = (1.0,),
        reset_on_switch: bool = False,
    ):
        if not friction or not mass or min(*friction, *mass) <= 0:
            raise ValueError(f"friction {friction} and mass {mass} must be positive lists")
        self._env = env
        self._schedule = schedule
        self._reset_on_switch = reset_on_switch
        sys = env.sys
        k = np.arange(schedule.num_tasks)
        f = np.asarray(friction, np.float32)[k % len(friction)]
        m = np.asarray(mass, np.float32)[k % len(mass)]
        self.friction, self.mass = f, m
        # Per-task copies of only the fields that change: [num_tasks, ...].
        self._table = {
            "geom_friction": f[:, None, None] * np.asarray(sys.geom_friction)[None],
            "body_mass": m[:, None] * np.asarray(sys.body_mass)[None],
            "body_inertia": m[:, None, None] * np.asarray(sys.body_inertia)[None],
            "link_mass": m[:, None] * np.asarray(sys.link.inertia.mass)[None],
            "link_i": m[:, None, None, None] * np.asarray(sys.link.inertia.i)[None],
        }
        self.spec = env.spec._replace(
            name=f"{env.spec.name}/dynamics_shift",
            num_tasks=schedule.num_tasks,
            steps_per_task=schedule.steps_per_task,
        )

    def sys_for(self, task: jax.Array) -> Any:
        """The Brax ``System`` of task ``task`` (a traced int32 scalar)."""
        t = {name: jnp.asarray(v)[task] for name, v in self._table.items()}
        sys = self._env.sys
        inertia = sys.link.inertia.replace(mass=t["link_mass"], i=t["link_i"])
        return sys.replace(
            geom_friction=t["geom_friction"],
            body_mass=t["body_mass"],
            body_inertia=t["body_inertia"],
            link=sys.link.replace(inertia=inertia),
        )

    def reset(self, key: jax.Array) -> tuple[jax.Array, DynamicsShiftState]:
        count = jnp.zeros((), jnp.int32)
        obs, inner = self._env.reset_with(key, self.sys_for(self._schedule.task_of(count)))
        return obs, DynamicsShiftState(inner, count)

    def step(self, key: jax.Array, state: DynamicsShiftState, action: jax.Array):
        count = state.step_count
        task = self._schedule.task_of(count)
        step_key, reset_key = jax.random.split(key)
        obs, inner, reward, terminated, truncated, info = self._env.step_with(
            step_key, state.inner, action, self.sys_for(task)
        )
        if self._reset_on_switch:
            ends = self._schedule.ends_task(count)
            next_obs, fresh = self._env.reset_with(
                reset_key, self.sys_for(self._schedule.task_of(count + 1))
            )
            fresh = fresh._replace(stats=inner.stats)
            cut = jnp.full(self.spec.num_envs, ends)
            obs = tree_where(cut, next_obs, obs)
            inner = tree_where(cut, fresh, inner)
            newly_cut = cut & ~terminated & ~truncated
            truncated = truncated | newly_cut
            stats, ep_ret, ep_len = state.inner.stats.update(reward, terminated | truncated)
            inner = inner._replace(stats=stats)
            info = info._replace(episode_return=ep_ret, episode_length=ep_len)
        n = self.spec.num_envs
        info = info._replace(
            task_id=jnp.full(n, task, jnp.int32),
            task_switched=jnp.full(n, self._schedule.switched(count)),
            extras={
                **info.extras,
                "friction_scale": jnp.full(n, jnp.asarray(self.friction)[task]),
                "mass_scale": jnp.full(n, jnp.asarray(self.mass)[task]),
            },
        )
        return obs, DynamicsShiftState(inner, count + 1), reward, terminated, truncated, info
