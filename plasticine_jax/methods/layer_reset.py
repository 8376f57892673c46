"""Layer resetting (Nikishin et al. 2022): re-initialise chosen layers on a schedule.

``theta_l <- theta_l^fresh`` for every chosen layer ``l``, where ``theta^fresh = init(key)`` is a
fresh draw of the whole network's initialiser; every other parameter is untouched. The paper
resets the last layers periodically to fight the primacy bias; in continual settings the
natural schedule is each task switch (the default here).

Options:
  layers: paths under ``params["params"]`` to reset, ``/``-separated: ``"actor_head"``,
    ``"critic/layer_1"``, ``"actor"`` (a whole torso), ``"q_head"``; ``"heads"`` selects every
    head of the network. Default ``heads``: PPO's two heads, a Q-network's head(s)
    (Plasticine's "reset last layer"). On an agent with a target network the reset
    entries are copied into the target (``agents.dqn``; SAC and TD3: ``agents.offpolicy``, each
    critic of the ensemble with its own fresh draw), as Nikishin et al. reset both.
  schedule: a ``methods.schedules`` name or list (default ``at_task_switch``).
  reset_opt_state: also zero the optimizer statistics of the reset layers (Adam ``mu``/``nu``);
    default False (Plasticine keeps the optimizer).

Hyperparameters: those of the schedule (e.g. ``period`` for ``every_k_updates``).

Registry name: ``layer_reset``.

References:
  Nikishin, Schwarzer, D'Oro, Bacon, Courville. "The Primacy Bias in Deep Reinforcement
  Learning." ICML 2022, arXiv 2205.07802. Plasticine, arXiv 2504.17490.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from plasticine_jax.methods import _surgery
from plasticine_jax.methods.base import HP, Events, Intervention, LearnerState, Method, ModelContext
from plasticine_jax.methods.schedules import make_schedule

Array = jax.Array


def reset_layers(params: Any, fresh: Any, layers: Sequence[str]) -> tuple[Any, Any]:
    """Returns ``(params with the chosen layers taken from fresh, bool mask of them)``."""
    layers = _surgery.resolve_heads(params["params"], tuple(layers))
    _surgery.check_paths(params["params"], layers, "layer_reset")
    mask = {**jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), bool), params),
            "params": _surgery.select_subtrees(params["params"], tuple(layers))}
    new = jax.tree.map(lambda m, f, p: jnp.where(m, f, p), mask, fresh, params)
    return new, mask


def layer_reset(
    layers: Sequence[str] = (_surgery.ALL_HEADS,),
    schedule: str | Sequence[str] = "at_task_switch",
    reset_opt_state: bool = False,
) -> Method:
    """Layer resetting as a ``Method`` (see the module docstring)."""
    layers = tuple(layers)
    if not layers:
        raise ValueError("layer_reset: `layers` is empty; name at least one, e.g. 'actor_head'")
    sched, sched_hp = make_schedule(schedule)

    def apply(
        learner: LearnerState, probe_obs: Array, key: Array, hp: HP, events: Events,
        ctx: ModelContext,
    ) -> LearnerState:
        del probe_obs, hp, events
        params, mask = reset_layers(learner.params, ctx.init(key), layers)
        opt_state = learner.opt_state
        if reset_opt_state:
            opt_state = _surgery.zero_moments(opt_state, params, mask)
        return learner._replace(params=params, opt_state=opt_state)

    return Method(
        name="layer_reset", hp=sched_hp, intervention=Intervention(schedule=sched, apply=apply)
    )
