"""How an agent applies a list of methods. Agents call only these five functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.methods.base import HP, Events, LearnerState, Method, ModelContext
from plasticine_jax.networks.spec import NetworkSpec

Array = jax.Array


def edit_network(spec: NetworkSpec, methods: Sequence[Method]) -> NetworkSpec:
    """Applies every method's network edit, in list order."""
    for m in methods:
        if m.network is not None:
            spec = m.network(spec)
    return spec


def wrap_optimizer(
    tx: optax.GradientTransformation, methods: Sequence[Method], hps: dict[str, HP]
) -> optax.GradientTransformationExtraArgs:
    """Wraps ``tx`` with each method's optimizer hook, first method innermost."""
    tx = optax.with_extra_args_support(tx)
    for m in methods:
        if m.optimizer is not None:
            tx = optax.with_extra_args_support(m.optimizer(tx, hps[m.name]))
    return tx


def find_wrapper_state(opt_state: Any, state_type: type, method: str) -> Any:
    """The first ``state_type`` inside ``opt_state``: the state a method's optimizer hook
    keeps (injection's switch, neuroplastic expansion's masks) for its intervention to read.

    Raises:
      ValueError: there is none, so the optimizer was not wrapped by the method's hook.
    """

    def is_state(x: Any) -> bool:
        return isinstance(x, state_type)

    found = [s for s in jax.tree.leaves(opt_state, is_leaf=is_state) if is_state(s)]
    if not found:
        raise ValueError(
            f"{method}: the optimizer state holds no {state_type.__name__}; build the optimizer "
            "with compose.wrap_optimizer(tx, methods, hps) so that the method's optimizer hook "
            "wraps it"
        )
    return found[0]


def total_penalty(
    methods: Sequence[Method], params: Any, anchor_params: Any, hps: dict[str, HP]
) -> Array:
    """Sum of the methods' loss penalties (0.0 when none)."""
    total = jnp.zeros((), jnp.float32)
    for m in methods:
        if m.penalty is not None:
            total = total + m.penalty(params, anchor_params, hps[m.name])
    return total


def init_method_states(methods: Sequence[Method], params: Any, key: Array) -> dict[str, Any]:
    """Initial ``method_state`` for the methods whose intervention keeps state."""
    states = {}
    for m, k in zip(methods, jax.random.split(key, max(len(methods), 1)), strict=False):
        if m.intervention is not None and m.intervention.init_state is not None:
            states[m.name] = m.intervention.init_state(params, k)
    return states


def apply_interventions(
    methods: Sequence[Method],
    learner: LearnerState,
    probe_obs: Array,
    key: Array,
    hps: dict[str, HP],
    events: Events,
    ctx: ModelContext,
) -> LearnerState:
    """Fires each intervention whose traced schedule says so (``lax.cond``, list order)."""
    for m, k in zip(methods, jax.random.split(key, max(len(methods), 1)), strict=False):
        if m.intervention is None:
            continue
        iv, hp = m.intervention, hps[m.name]
        fire = jnp.asarray(iv.schedule(events, hp), bool)
        learner = jax.lax.cond(
            fire,
            lambda s, iv=iv, hp=hp, k=k: iv.apply(s, probe_obs, k, hp, events, ctx),
            lambda s: s,
            learner,
        )
    return learner
