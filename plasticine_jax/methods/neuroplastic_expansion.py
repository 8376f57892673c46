"""Neuroplastic expansion (Liu et al. ICLR 2025): grow a sparse network, prune dormant units.

Every hidden-layer kernel ``W_l`` carries a fixed-shape boolean mask ``M_l`` in the method
state; after every update ``W_l <- W_l * M_l``, so masked connections stay exactly zero.
Every ``period`` (the paper's Delta) updates the topology changes:

1. *Dormant pruning*: among the active incoming connections of the layer's tau-dormant units
   (``metrics.dormant_mask`` on the probe batch), the ones with the smallest ``|w|`` are
   switched off, at most ``floor(zeta * #active)`` per layer.
2. *Elastic growth*: the inactive connections with the largest potential gradient ``|g|``
   are switched on until the layer's density is the target ``1 - s(t)``, where
   ``s(t) = s_T + (s_0 - s_T) * max(0, 1 - t / T)`` goes linearly from ``initial_sparsity``
   to ``final_sparsity`` over ``grow_until`` (T) updates. Connections just pruned are grown
   again only when nothing else is left. Grown weights start at zero (the paper's choice) or
   from a LeCun normal draw; the optimizer statistics of pruned and grown weights are
   zeroed.

So after every topology update each layer's sparsity is exactly ``s(t)`` (to one
connection). The initial masks are drawn uniformly at density ``1 - s(1)`` at the first
firing (the method state cannot see ``hp`` at initialisation), so the very first update is
dense.

Gradients: the method sets ``needs_grads``, so the agent keeps the loss gradient of each
update's last minibatch in ``learner.last_grads`` and growth ranks inactive connections by
its magnitude, as the paper does (a masked weight is zero, but its gradient is not). Only
when a caller provides no ``last_grads`` (e.g. a learner built by hand) does it fall back to
the gradient of the loss-agnostic sensitivity
``0.5 * mean_x (||policy(x)||^2 + value(x)^2)`` on the probe batch (as in connection-sensitivity
pruning), which ranks connections by how strongly they would move the outputs.

Activations: dormant pruning uses ReDo's score, so the method requires a ReLU-family
activation like ReDo (``redo.RELU_FAMILY``; see ``methods/redo.py`` for why a near-zero
output does not mark a stuck unit under tanh, sigmoid, identity or Fourier features).

The paper's third component, experience review (a consolidation phase replaying early
data), needs the agent's buffer and is not part of this intervention.

Defaults (ours; the paper tunes per environment): ``initial_sparsity = 0.75``,
``final_sparsity = 0.0``, ``grow_until = 1000`` updates, ``period = 25``, ``zeta = 0.05``,
``tau = 0.025``.

Options:
  grow_init: ``"zero"`` (default) or ``"lecun"``.
  topology_schedule: a ``methods.schedules`` name or list (default ``every_k_updates``).

State (``method_state["neuroplastic_expansion"]``): ``masks`` (``"{torso}/layer_i"`` -> bool
like the kernel), ``started``, ``key``.

Registry name: ``neuroplastic_expansion``.

References:
  Liu, Obando-Ceron, Courville, Pan. "Neuroplastic Expansion in Deep Reinforcement
  Learning." ICLR 2025, arXiv 2410.07994.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from plasticine_jax.methods import _surgery
from plasticine_jax.methods.base import HP, Events, Intervention, LearnerState, Method, ModelContext
from plasticine_jax.methods.redo import RELU_FAMILY
from plasticine_jax.methods.schedules import every_update, make_schedule
from plasticine_jax.metrics.dormant import dormant_mask

Array = jax.Array

NAME = "neuroplastic_expansion"
GROW_INITS = ("zero", "lecun")


def _layer_paths(params: Any) -> list[tuple[str, str]]:
    p = params["params"]
    return [
        (torso, f"layer_{i}")
        for torso in ("shared", "actor", "critic")
        if torso in p
        for i in _surgery.hidden_layers(p, torso)
    ]


def target_sparsity(step: Array, hp: HP) -> Array:
    """``s(t) = s_T + (s_0 - s_T) * max(0, 1 - t / T)``."""
    t = jnp.asarray(step, jnp.float32)
    T = jnp.maximum(jnp.asarray(hp["grow_until"], jnp.float32), 1.0)
    s0 = jnp.asarray(hp["initial_sparsity"], jnp.float32)
    s1 = jnp.asarray(hp["final_sparsity"], jnp.float32)
    return s1 + (s0 - s1) * jnp.maximum(0.0, 1.0 - t / T)


def active_target(sparsity: Array, size: int) -> Array:
    """Number of active connections of a layer of ``size`` at ``sparsity``."""
    return jnp.round((1.0 - sparsity) * size).astype(jnp.int32)


def _top_n(score: Array, n: Array) -> Array:
    """Bool mask of the ``n`` largest entries of ``score`` (any shape, ``n`` traced)."""
    flat = score.reshape(-1)
    rank = jnp.argsort(jnp.argsort(-flat))
    return (rank < n).reshape(score.shape)


def random_mask(key: Array, shape: tuple[int, ...], sparsity: Array) -> Array:
    """A uniformly random mask with exactly ``round((1 - sparsity) * size)`` True entries."""
    return _top_n(jax.random.uniform(key, shape), active_target(sparsity, math.prod(shape)))


def sensitivity_grads(apply, params: Any, probe_obs: Array) -> Any:
    """Gradient of ``0.5 * mean_x (||policy(x)||^2 + value(x)^2)`` (the fallback potential)."""

    def f(p):
        out = apply(p, probe_obs)
        pol = out.policy.reshape(out.policy.shape[0], -1)
        return 0.5 * jnp.mean(jnp.sum(pol**2, axis=-1) + out.value**2)

    return jax.grad(f)(params)


def update_topology(
    kernel: Array, mask: Array, grad: Array, dormant_units: Array, sparsity: Array, zeta: Array,
    fresh: Array,
) -> tuple[Array, Array, Array]:
    """Prune the dormant units' weakest connections, then grow to the target density.

    Args:
      kernel: ``[..., units]`` current weights (zero where masked).
      mask: bool like ``kernel``.
      grad: potential gradient like ``kernel``.
      dormant_units: ``[units]`` bool.
      sparsity: target sparsity after this update.
      zeta: cap on the pruned fraction of active connections.
      fresh: values for grown weights (zeros or a LeCun draw), like ``kernel``.

    Returns:
      ``(kernel, mask, changed)``; ``changed`` marks pruned and grown entries.
    """
    n_active = jnp.sum(mask)
    cap = jnp.floor(zeta * n_active).astype(jnp.int32)
    prunable = mask & jnp.broadcast_to(dormant_units, mask.shape)
    pruned = _top_n(jnp.where(prunable, -jnp.abs(kernel), -jnp.inf), cap) & prunable
    mask = mask & ~pruned
    n_grow = jnp.maximum(active_target(sparsity, mask.size) - jnp.sum(mask), 0)
    # Active: never; just pruned: only if nothing else is left; others: by |g|.
    score = jnp.where(mask, -jnp.inf, jnp.where(pruned, -1.0, jnp.abs(grad)))
    grown = _top_n(score, n_grow) & ~mask
    mask = mask | grown
    kernel = jnp.where(grown, fresh, jnp.where(mask, kernel, 0.0))
    return kernel, mask, pruned | grown


def neuroplastic_expansion(
    grow_init: str = "zero",
    topology_schedule: str | Sequence[str] = "every_k_updates",
) -> Method:
    """Neuroplastic expansion as a ``Method`` (see the module docstring)."""
    if grow_init not in GROW_INITS:
        raise ValueError(f"{NAME}: grow_init={grow_init!r}; choose one of {GROW_INITS}")
    topo_sched, sched_hp = make_schedule(topology_schedule, {"period": 25.0})

    def init_state(params: Any, key: Array) -> dict:
        masks = {
            f"{t}/{layer}": jnp.ones(params["params"][t][layer]["kernel"].shape, bool)
            for t, layer in _layer_paths(params)
        }
        return {"masks": masks, "started": jnp.zeros((), bool), "key": key}

    def topology(learner, probe_obs, key, hp, events, ctx, masks):
        params = learner.params
        grads = getattr(learner, "last_grads", None)
        if grads is None:
            grads = sensitivity_grads(ctx.apply, params, probe_obs)
        acts = ctx.apply(params, probe_obs).activations
        sparsity = target_sparsity(events.update_step, hp)
        p = _surgery.copy_tree(params["params"])
        touched = _surgery.false_like(p)
        new_masks = {}
        for (t, layer), k in zip(
            _layer_paths(params), jax.random.split(key, len(masks)), strict=True
        ):
            name = f"{t}/{layer}"
            kernel = p[t][layer]["kernel"]
            units = kernel.shape[-1]
            dormant = _surgery.unit_mask_from_features(dormant_mask(acts[name], hp["tau"]), units)
            if grow_init == "zero":
                fresh = jnp.zeros_like(kernel)
            else:
                fan_in = math.prod(kernel.shape[:-1])
                fresh = jax.random.normal(k, kernel.shape, kernel.dtype) / jnp.sqrt(fan_in)
            kernel, mask, changed = update_topology(
                kernel, masks[name], grads["params"][t][layer]["kernel"], dormant, sparsity,
                jnp.asarray(hp["zeta"], jnp.float32), fresh,
            )
            p[t][layer]["kernel"] = kernel
            touched[t][layer]["kernel"] = changed
            new_masks[name] = mask
        params = {**params, "params": p}
        opt_state = _surgery.zero_moments(learner.opt_state, params, {"params": touched})
        return params, opt_state, new_masks

    def apply(
        learner: LearnerState, probe_obs: Array, key: Array, hp: HP, events: Events,
        ctx: ModelContext,
    ) -> LearnerState:
        state = learner.method_state[NAME]
        k_init, k_topo = jax.random.split(jax.random.fold_in(state["key"], events.update_step))
        del key  # the state's own stream keeps masks independent of the other methods' order
        s_first = target_sparsity(events.update_step, hp)
        first = {
            name: random_mask(k, m.shape, s_first)
            for (name, m), k in zip(
                state["masks"].items(), jax.random.split(k_init, len(state["masks"])), strict=True
            )
        }
        masks = jax.tree.map(lambda a, b: jnp.where(state["started"], a, b), state["masks"], first)
        params = _apply_masks(learner.params, masks)
        learner = learner._replace(params=params)
        fire = jnp.asarray(topo_sched(events, hp), bool) & state["started"]
        params, opt_state, masks = jax.lax.cond(
            fire,
            lambda: topology(learner, probe_obs, k_topo, hp, events, ctx, masks),
            lambda: (learner.params, learner.opt_state, masks),
        )
        new_state = {**state, "masks": masks, "started": jnp.ones((), bool)}
        return learner._replace(
            params=params, opt_state=opt_state,
            method_state={**learner.method_state, NAME: new_state},
        )

    return Method(
        name=NAME,
        hp={
            "initial_sparsity": 0.75,
            "final_sparsity": 0.0,
            "grow_until": 1000.0,
            "zeta": 0.05,
            "tau": 0.025,
            **sched_hp,
        },
        intervention=Intervention(schedule=every_update(), apply=apply, init_state=init_state),
        requires={"activation": RELU_FAMILY},
        needs_grads=True,
    )


def _apply_masks(params: Any, masks: dict[str, Array]) -> Any:
    p = _surgery.copy_tree(params["params"])
    for name, m in masks.items():
        t, layer = name.split("/")
        p[t][layer]["kernel"] = jnp.where(m, p[t][layer]["kernel"], 0.0)
    return {**params, "params": p}


def sparsity_of(masks: dict[str, Array]) -> dict[str, Array]:
    """Per-layer sparsity ``1 - mean(mask)``."""
    return {k: 1.0 - jnp.mean(m.astype(jnp.float32)) for k, m in masks.items()}
