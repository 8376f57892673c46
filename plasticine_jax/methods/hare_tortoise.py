"""Hare & Tortoise (Lee et al. 2024): a slow EMA network, and a fast one reset to it.

The agent trains the *hare* (``learner.params``) as usual. After every update the *tortoise*
(``method_state["hare_tortoise"]["tortoise"]``) follows it slowly,
``theta_T <- alpha * theta_T + (1 - alpha) * theta_H``, and every ``period`` updates the hare
is reset to the tortoise, ``theta_H <- theta_T``: the hare regains plasticity without losing
what the tortoise consolidated. The tortoise starts equal to the initial parameters.

Defaults: ``alpha = 0.999`` (the paper's EMA momentum), ``period = 1000`` updates (the paper
resets every few thousand steps; its counts are SGD steps, ours are PPO updates). Plasticine
has no such method.

Options:
  reset_schedule: a ``methods.schedules`` name or list for the hare's reset (default
    ``every_k_updates``; ``at_task_switch`` suits continual settings).
  reset_opt_state: also restart the optimizer statistics at a reset (default False).

The agent acts with the hare. To evaluate with the tortoise, read it from the method state.

Target networks (DQN, C51): the hare's reset to the tortoise is copied into the target
network too (``agents.dqn.mirror_interventions``).

Registry name: ``hare_tortoise``.

References:
  Lee, Cho, Kim, Kim, Min, Choo, Lyle. "Slow and Steady Wins the Race: Maintaining
  Plasticity with Hare and Tortoise Networks." ICML 2024, arXiv 2406.02596.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from plasticine_jax.methods import _surgery
from plasticine_jax.methods.base import HP, Events, Intervention, LearnerState, Method, ModelContext
from plasticine_jax.methods.schedules import every_update, make_schedule

Array = jax.Array

NAME = "hare_tortoise"


def hare_tortoise(
    reset_schedule: str | Sequence[str] = "every_k_updates", reset_opt_state: bool = False
) -> Method:
    """Hare & Tortoise as a ``Method`` (see the module docstring)."""
    reset_sched, sched_hp = make_schedule(reset_schedule, {"period": 1000.0})

    def init_state(params: Any, key: Array) -> dict:
        del key
        return {"tortoise": jax.tree.map(jnp.asarray, params)}

    def apply(
        learner: LearnerState, probe_obs: Array, key: Array, hp: HP, events: Events,
        ctx: ModelContext,
    ) -> LearnerState:
        del probe_obs, key, ctx
        alpha = jnp.asarray(hp["alpha"], jnp.float32)
        tortoise = jax.tree.map(
            lambda t, h: (alpha * t + (1.0 - alpha) * h).astype(t.dtype),
            learner.method_state[NAME]["tortoise"],
            learner.params,
        )
        reset = jnp.asarray(reset_sched(events, hp), bool)
        params = jax.tree.map(lambda t, h: jnp.where(reset, t, h), tortoise, learner.params)
        opt_state = learner.opt_state
        if reset_opt_state:
            fresh = _surgery.reset_opt_state(opt_state, params)
            opt_state = jax.tree.map(lambda n, o: jnp.where(reset, n, o), fresh, opt_state)
        return learner._replace(
            params=params,
            opt_state=opt_state,
            method_state={**learner.method_state, NAME: {"tortoise": tortoise}},
        )

    return Method(
        name=NAME,
        hp={"alpha": 0.999, **sched_hp},
        intervention=Intervention(schedule=every_update(), apply=apply, init_state=init_state),
    )
