"""How an agent applies a list of methods. Agents call only these six functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def owned_modules(m: Method, parts: Mapping[str, tuple[str, ...]] | None) -> set[str] | None:
    """The top-level modules of the networks ``m`` is restricted to (``m.networks``), or
    None when it applies to every network."""
    if not m.networks or parts is None:
        return None
    return {mod for n in m.networks for mod in parts[n]}


def restrict(tree: Any, modules: set[str] | None) -> Any:
    """``tree`` (``{"params": {module: ...}}``) with only ``modules`` kept."""
    if modules is None:
        return tree
    return {**tree, "params": {k: v for k, v in tree["params"].items() if k in modules}}


def total_penalty(
    methods: Sequence[Method],
    params: Any,
    anchor_params: Any,
    hps: dict[str, HP],
    parts: Mapping[str, tuple[str, ...]] | None = None,
) -> Array:
    """Sum of the methods' loss penalties (0.0 when none); a method restricted to some
    networks sees only their parameters (``parts``: ``ModelContext.parts``)."""
    total = jnp.zeros((), jnp.float32)
    for m in methods:
        if m.penalty is not None:
            mods = owned_modules(m, parts)
            total = total + m.penalty(
                restrict(params, mods), restrict(anchor_params, mods), hps[m.name]
            )
    return total


def _keep_outside(old: Any, new: Any, modules: set[str] | None, all_modules: set[str]) -> Any:
    """``new``, except the leaves under a module of ``all_modules - modules`` (found as the
    key after a ``"params"`` key in the leaf's path: parameters, and the optimizer state's
    parameter-shaped trees), which keep their ``old`` value."""
    if modules is None:
        return new
    outside = all_modules - modules

    def pick(path, o, n):
        keys = [getattr(k, "key", None) for k in path]
        for i, k in enumerate(keys[:-1]):
            if k == "params" and keys[i + 1] in outside:
                return o
        return n

    return jax.tree_util.tree_map_with_path(pick, old, new)


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
    """Fires each intervention whose traced schedule says so (``lax.cond``, list order). An
    intervention restricted to some networks (``Method.networks``) changes only their
    parameters and optimizer statistics; its own method state is kept whole."""
    all_modules = set(learner.params["params"])
    for m, k in zip(methods, jax.random.split(key, max(len(methods), 1)), strict=False):
        if m.intervention is None:
            continue
        iv, hp = m.intervention, hps[m.name]
        mods = owned_modules(m, ctx.parts)

        def apply(s, iv=iv, hp=hp, k=k, mods=mods):
            new = iv.apply(s, probe_obs, k, hp, events, ctx)
            return new._replace(
                params=_keep_outside(s.params, new.params, mods, all_modules),
                opt_state=_keep_outside(s.opt_state, new.opt_state, mods, all_modules),
            )

        fire = jnp.asarray(iv.schedule(events, hp), bool)
        learner = jax.lax.cond(fire, apply, lambda s: s, learner)
    return learner


def after_target_update(
    methods: Sequence[Method],
    target_params: Any,
    online_opt_state: optax.OptState,
    hps: dict[str, HP],
    due: Array | None = None,
    parts: Mapping[str, tuple[str, ...]] | None = None,
) -> Any:
    """Applies each method's ``after_target_update`` hook (list order) to a target network
    that has just moved, given the optimizer state of the online network it follows.

    Args:
      methods: the methods of the online network.
      target_params: the target network's parameters after its update.
      online_opt_state: the online network's optimizer state (one ensemble member's).
      hps: per method name, its traced hyperparameters.
      due: bool scalar, whether the target update happened (agents whose update is gated:
        DQN's ``target_every``, SAC's ``target_network_frequency``); where false,
        ``target_params`` comes back unchanged. ``None``: it happened.
      parts: ``ModelContext.parts``; a method restricted to some networks changes only
        their modules.

    Returns:
      The target parameters, like ``target_params``.
    """
    hooked = [m for m in methods if m.after_target_update is not None]
    if not hooked:
        return target_params
    new = target_params
    all_modules = set(target_params["params"])
    for m in hooked:
        out = m.after_target_update(new, online_opt_state, hps[m.name])
        new = _keep_outside(new, out, owned_modules(m, parts), all_modules)
    if due is None:
        return new
    return jax.tree.map(lambda n, t: jnp.where(due, n, t), new, target_params)
