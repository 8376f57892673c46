"""Task schedules shared by every continual scenario.

A scenario keeps one int32 step counter in its state. The step taken when the counter reads
``c`` belongs to task ``task_of(c) = min(c // steps_per_task, num_tasks - 1)``: the final task
runs on until the run ends. Because the counter lives in the state, the schedule is part of
the compiled program and a vmapped seed keeps its own (identical) clock.

Boundary convention, used by every scenario: the step that *ends* a task (``c`` with
``task_of(c + 1) != task_of(c)``) already returns the first observation of the next task, so
the agent's next action is taken in the new task, and that next step is the one reported
with ``task_switched=True``. Scenarios that cannot carry an episode across a switch (a new
game, a new level) end it there with ``truncated=True`` and ``final_obs`` from the old task.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class TaskSchedule(NamedTuple):
    """``num_tasks`` tasks of ``steps_per_task`` steps of *each env*. (Configs count env
    steps per member, summed over its envs; ``schedule_from_options`` divides by
    ``num_envs``.)"""

    num_tasks: int
    steps_per_task: int

    def task_of(self, count: Array) -> Array:
        """Task index of the step taken at counter value ``count`` (int32)."""
        return jnp.minimum(count // self.steps_per_task, self.num_tasks - 1).astype(jnp.int32)

    def switched(self, count: Array) -> Array:
        """True iff the step at ``count`` is the first step of a task other than the first."""
        return (count > 0) & (self.task_of(count) != self.task_of(count - 1))

    def ends_task(self, count: Array) -> Array:
        """True iff the step at ``count`` is the last step of its task."""
        return self.task_of(count + 1) != self.task_of(count)


def schedule_from_options(
    options: dict[str, Any], default_tasks: int, num_envs: int
) -> TaskSchedule:
    """Reads ``num_tasks`` and ``steps_per_task`` from scenario options, validating them.

    ``steps_per_task`` counts env steps per member summed over its ``num_envs`` envs, as
    Plasticine's ``task_timesteps`` does (its global step counts every env's step): with 16
    envs, ``steps_per_task: 100000`` switches after 6,250 steps of each env. It must be a
    multiple of ``num_envs``, so that every env switches at the same step.
    """
    num_tasks = int(options.pop("num_tasks", default_tasks))
    if "steps_per_task" not in options:
        raise ValueError(
            "scenario_options.steps_per_task is required (env steps per member per task, "
            "summed over its envs)"
        )
    total = int(options.pop("steps_per_task"))
    if num_tasks < 1 or total < 1:
        raise ValueError(f"num_tasks ({num_tasks}) and steps_per_task ({total}) must be >= 1")
    if total % num_envs:
        lo, hi = total // num_envs * num_envs, (total // num_envs + 1) * num_envs
        raise ValueError(
            f"scenario_options.steps_per_task={total} (env steps per member, summed over its "
            f"envs) is not a multiple of env.num_envs={num_envs}; use "
            f"{lo if lo else hi} or {hi}"
        )
    return TaskSchedule(num_tasks, total // num_envs)


def check_no_unknown(options: dict[str, Any], scenario: str) -> None:
    """Raises on scenario options that nobody consumed (typos must not pass silently)."""
    if options:
        raise ValueError(f"unknown scenario_options for {scenario!r}: {sorted(options)}")


def broadcast_where(cond: Array, x: Array, y: Array) -> Array:
    """``jnp.where`` with ``cond [N]`` broadcast over the trailing axes of ``x``/``y``."""
    cond = jnp.reshape(cond, cond.shape + (1,) * (x.ndim - cond.ndim))
    return jnp.where(cond, x, y)


def tree_where(cond: Array, x: Any, y: Any) -> Any:
    """``broadcast_where`` over matching pytrees (leaves with a leading ``[N]`` axis)."""
    return jax.tree.map(lambda a, b: broadcast_where(cond, a, b), x, y)
