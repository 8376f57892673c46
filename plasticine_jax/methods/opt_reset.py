"""Optimizer-state reset (Asadi et al. 2023): restart Adam's statistics on a schedule.

At each firing the optimizer state returns to its initial value for the Adam family:
``m <- 0``, ``v <- 0``, ``t <- 0`` (so bias correction starts over), leaving the parameters
alone. Asadi et al. reset whenever the target network changes; in continual settings the
natural moment is each task switch (the default here). Injected hyperparameters (a swept
learning rate) and schedule counters outside the statistics' state are kept. Statistics of
other optimizers (any parameter-shaped subtree of the state) are zeroed, which is their
initial value for SGD momentum, RMSProp and Adam-like methods; check a custom optimizer's
``init`` before relying on it.

Options:
  schedule: a ``methods.schedules`` name or list (default ``at_task_switch``).
  reset_count: also zero the step count of the statistics (default True, as a fresh Adam).

Hyperparameters: those of the schedule.

Registry name: ``opt_reset``.

References:
  Asadi, Fakoor, Sabach. "Resetting the Optimizer in Deep RL: An Empirical Study."
  NeurIPS 2023, arXiv 2306.17833.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax

from plasticine_jax.methods import _surgery
from plasticine_jax.methods.base import HP, Events, Intervention, LearnerState, Method, ModelContext
from plasticine_jax.methods.schedules import make_schedule

Array = jax.Array


def opt_reset(
    schedule: str | Sequence[str] = "at_task_switch", reset_count: bool = True
) -> Method:
    """Optimizer-state reset as a ``Method`` (see the module docstring)."""
    sched, sched_hp = make_schedule(schedule)

    def apply(
        learner: LearnerState, probe_obs: Array, key: Array, hp: HP, events: Events,
        ctx: ModelContext,
    ) -> LearnerState:
        del probe_obs, key, hp, events, ctx
        opt_state = _surgery.reset_opt_state(learner.opt_state, learner.params, reset_count)
        return learner._replace(opt_state=opt_state)

    return Method(
        name="opt_reset", hp=sched_hp, intervention=Intervention(schedule=sched, apply=apply)
    )
