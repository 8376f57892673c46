"""Checks that a run can do what its config asks for in time: continual runs that never
reach their second task, and methods whose schedule can never fire.

Both used to pass silently: a shipped continual experiment whose tasks never switched gave
vanilla, ``layer_reset`` and ``opt_reset`` bit-identical results, since both methods waited
for a switch that never came.
"""

from __future__ import annotations

import inspect
from typing import Any

TASK_SCHEDULES = ("at_task_switch", "at_task_fraction")


def _schedules(name: str, options: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """The schedule options of a registered method (``schedule``, ``reset_schedule``, ...),
    as configured or defaulted by its factory: ``{option: (schedule names)}``."""
    from plasticine_jax.methods.registry import REGISTRY

    factory = REGISTRY.get(name)
    if factory is None:  # a user method: its schedules are its own business
        return {}
    out = {}
    for pname, param in inspect.signature(factory).parameters.items():
        if not pname.endswith("schedule"):
            continue
        value = options.get(pname, param.default)
        if value is inspect.Parameter.empty:
            continue
        out[pname] = (value,) if isinstance(value, str) else tuple(value)
    return out


def check_feasible(cfg: Any) -> str | None:
    """The first problem of ``cfg`` (an ``ExperimentConfig``) as a message, or None.

    * A continual scenario whose run ends before its second task begins
      (``run.total_timesteps <= steps_per_task``, both env steps per member).
    * An HL-Gauss critic without an explicit support (``v_min``, ``v_max``): returns outside
      it would be clipped; a default support cannot know the environment's returns.
    * A method whose every schedule waits for tasks (``at_task_switch``,
      ``at_task_fraction``) on a single-task environment, where neither ever fires.
    """
    e, total = cfg.env, cfg.run.total_timesteps
    single = e.scenario == "none" or int(e.scenario_options.get("num_tasks", 2)) == 1
    spt = e.scenario_options.get("steps_per_task")
    unreached = not single and isinstance(spt, int | float) and total <= spt
    if unreached:
        return (
            f"run.total_timesteps={total} never reaches the second task of scenario "
            f"{e.scenario!r}: env.scenario_options.steps_per_task={spt} (both count env "
            f"steps per member, summed over its envs); raise total_timesteps above {spt} or "
            f"lower steps_per_task to at most {total // 2} for two tasks"
        )
    for i, mc in enumerate(cfg.methods):
        missing = [k for k in ("v_min", "v_max") if mc.name == "hl_gauss" and k not in mc.hp]
        if missing:
            return (
                f"methods.{i} (hl_gauss): set hp {missing}, the support of the categorical "
                f"critic, to the range of this environment's returns: HL-Gauss clips returns "
                f"outside it to the edge bins (e.g. CartPole-v1's discounted returns at "
                f"gamma 0.99 lie in [0, 100]). Training logs the clipped fraction as "
                f"hl_gauss/return_outside_support"
            )
    if not single:
        return None  # the tasks switch (a run that never reaches one was refused above)
    for i, mc in enumerate(cfg.methods):
        for option, names in _schedules(mc.name, dict(mc.options)).items():
            if names and all(n in TASK_SCHEDULES for n in names):
                return (
                    f"methods.{i} ({mc.name}): {option}={list(names)} can never fire: "
                    f"env.scenario={e.scenario!r} has a single task. Use options: "
                    f"{{{option}: every_k_updates}} with hp {{period: <updates>}}, or a "
                    f"continual env.scenario"
                )
    return None
