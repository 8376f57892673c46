"""Neuroplastic expansion (Liu et al. ICLR 2025): grow a sparse network, prune weak weights.

Every masked kernel ``W_l`` carries a fixed-shape boolean mask ``M_l``. Three hooks:

* masking, every optimizer step (``optimizer``, :func:`sparse_mask_tx`): masked gradients
  are zeroed before the wrapped optimizer and the update is rewritten so that
  ``W_l <- (W_l + u) * M_l``, as the reference's gradient hook (``grad * mask``) and
  optimizer-step wrapper (``apply_mask_to_weights``) do;
* topology (``intervention``, between updates): prune and grow connections;
* target masking (``after_target_update``, option ``mask_targets``): ``W'_l <- W'_l * M_l``
  on the target network after each of its updates, as the reference's TD3 does.

The masks live in the wrapper's optimizer state (``SparseMaskState``), the one place both
hooks read: an optimizer sees only its own state, an intervention may rewrite
``learner.opt_state``. They survive optimizer resets. ``method_state`` keeps a PRNG key and
the optimizer step count at the last topology check.

Rule ``"reference"`` (default): the authors' ``STL_Scheduler`` (torressliu/
neuroplastic-expansion, ``NE/STL_Scheduler.py``, small-to-large mode).

* Masked: every weight layer, heads included (its ``get_W``), except ``InjectableDense``
  heads (plasticity injection rewrites those).
* Initial masks, at optimizer init: per network (a torso and the heads it feeds),
  Erdős–Rényi sparsities ``S_l`` at ``initial_stl_sparsity`` (:func:`erdos_renyi`); a layer
  keeps its ``n - floor(S_l n)`` largest ``|w|``.
* Every ``delta`` optimizer steps, while the network's sparsity ``1 - sum M / sum n`` is above
  ``sparsity``, each layer with ``n_1`` active connections (:func:`reference_topology`):

      free_0 = initial_stl_sparsity * n - n_1(0)        (fixed at initialisation)
      n_grow = max(0, int(zeta * free_0)),  n_prune = int(0.4 * n_grow)
      keep   = the n_1 - n_prune largest |w| among the active connections
      grow   = the n_grow largest |g| outside keep     (g: the last minibatch's gradient)
      M <- keep | grow

  New connections start at zero (or a LeCun draw); a pruned connection grown back keeps
  its weight; optimizer statistics are not touched (masked gradients let them decay).

Where we differ from the reference: it skips the optimizer step of a topology step; its
STL branch grows ``int(0.008 free_0)`` (``uniform_annealing`` returns that constant and
ignores ``zeta``; its README documents ``zeta = 0.0008``, our default: set 0.008 to match
its code); for a negative ``free_0`` (a layer denser than ``1 - initial_stl_sparsity``) its
``int()`` arithmetic re-activates zero weights, we grow nothing; it measures sparsity on
the weights' zeros, we on the masks; once at the target it keeps a RigL-style topology
(prune ``int(n_1 * 0.1 (1 + cos(pi t / T)))``, regrow as many), we freeze it. ``delta``
counts optimizer steps as its scheduler does; the intervention fires on the first update
after the count crosses a multiple. Defaults: ``sparsity = 0.25``,
``initial_stl_sparsity = 0.8`` (its ``train.py``), ``zeta = 0.0008``, ``delta = 10000``
(its README).

Rule ``"dormant"`` (ours): hidden layers only; initial masks by magnitude at the uniform
sparsity ``initial_sparsity``; every ``period`` updates, with
``s(t) = s_T + (s_0 - s_T) max(0, 1 - t / T)`` (``initial_sparsity`` to ``final_sparsity``
over ``grow_until`` updates; :func:`update_topology`):

1. of the active incoming connections of the tau-dormant units (ReDo's score on the probe
   batch), at most ``floor(zeta * #active)`` with the smallest ``|w|`` are pruned;
2. the inactive connections with the largest ``|g|`` are grown to density ``1 - s(t)``
   (just-pruned ones only when nothing else is left); the optimizer statistics of pruned
   and grown weights are zeroed.

It needs a ReLU-family activation (``redo.RELU_FAMILY``). Defaults: ``initial_sparsity =
0.75``, ``final_sparsity = 0``, ``grow_until = 1000``, ``period = 25``, ``zeta = 0.05``,
``tau = 0.025``.

Both rules grow by ``learner.last_grads`` (``needs_grads``; the reference uses the unmasked
gradient of the step before its topology update) or, without it, by the gradient of
``0.5 mean_x (||policy(x)||^2 + value(x)^2)`` on the probe batch.

Order and timing: a wrapper listed after this method acts on its output, so one that
rewrites parameters (``shrink_perturb``'s perturbation) makes masked weights nonzero; list
``neuroplastic_expansion`` after it. The first rollout runs the dense initial network (the
masks apply from the first optimizer step). The paper's experience review needs the
agent's buffer and is not part of this method.

Options:
  rule: ``"reference"`` (default) or ``"dormant"``.
  init_method: new connections' weights, ``"zero"`` (default) or ``"lecun"`` (truncated
    normal, std ``sqrt(1 / fan_in)``, what the reference's ``_lecun_init`` computes; there it
    is called with a weight tensor and reads ``.weight`` off it, and its TD3 never sets
    ``init_method``, so the reference's runs use zero).
  topology_schedule: rule ``"dormant"`` only, a ``methods.schedules`` name or list
    (default ``every_k_updates``).
  mask_targets: after every target update (DQN's and C51's hard copy or Polyak step, SAC's
    and TD3's Polyak steps), multiply each masked kernel of the target network by the
    online network's mask (the ``after_target_update`` hook), as the reference's TD3 does
    (``w.data *= mask`` after its Polyak steps, ``stl/TD3.py``); on an ensemble each target
    critic by its own critic's masks. Default ``true`` for rule ``"reference"``, ``false``
    for ``"dormant"``. This default changes what existing ``reference`` runs compute: their
    targets used not to be masked (an entry masked out of the dense initial target decayed
    by ``1 - tau`` a Polyak step; now it is zero from the first target update on); set
    ``mask_targets: false`` to repeat them.
  static_networks: names of the agent's networks (``[actor]``) whose topology stays fixed:
    their masks keep the initial sparsity (Erdős–Rényi at ``initial_stl_sparsity`` for
    ``"reference"``) and are still applied on every optimizer step (and to the targets),
    while the other networks grow: the reference's ``--static_actor`` next to a growing
    critic. A static network must be one the agent trains and the entry's ``networks:``
    keeps (refused at config time), with no torso shared with a growing network (PPO's
    ``network.shared_torso``: refused when the program is traced). Default: none.

Target networks (DQN, C51, SAC, TD3): the weights the topology change grows or prunes are
copied into the target network too (``agents.dqn.mirror_interventions``), and with
``mask_targets`` every target update is followed by the masking above, so a pruned
weight's target value is zero from its pruning on (the reference's target keeps it until
its next Polyak step, then masks it). On SAC and TD3 the method masks the actor and every
critic of the ensemble, each with masks of its own (``networks: [critic]``: a dense actor).

The reference's switches (``stl/train.py`` with ``stl/TD3.py``): a network is sparse when
its ``--actor_sparsity`` / ``--critic_sparsity`` (our ``sparsity``; 0.25 for both by
default there) is above 0. ``stl/TD3.py`` builds its ``STL_Scheduler`` without the ``stl``
argument, which defaults to true, so every sparse network starts at
``initial_stl_sparsity`` and grows; ``--stl_actor`` / ``--stl_critic`` are parsed but never
read there (``stl/TD3_dmc.py`` passes them to another scheduler). ``--static_actor`` /
``--static_critic`` set ``static_topo``: that scheduler's masks stay at their initial ER
sparsity. On our keys: both networks sparse and growing = the method on both; a dense actor
(``--actor_sparsity 0``) = ``networks: [critic]``; ``--static_actor`` = ``static_networks:
[actor]``. One method entry has one set of hyperparameters for all its networks (the
reference may give the actor and the critic different final sparsities).

Registry name: ``neuroplastic_expansion``.

References:
  Liu, Obando-Ceron, Courville, Pan. "Neuroplastic Expansion in Deep Reinforcement
  Learning." ICLR 2025, arXiv 2410.07994. https://github.com/torressliu/neuroplastic-expansion
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.methods import _surgery, compose
from plasticine_jax.methods.base import HP, Events, Intervention, LearnerState, Method, ModelContext
from plasticine_jax.methods.redo import RELU_FAMILY
from plasticine_jax.methods.schedules import every_update, make_schedule
from plasticine_jax.metrics.dormant import dormant_mask

Array = jax.Array

NAME = "neuroplastic_expansion"
RULES = ("reference", "dormant")
INIT_METHODS = ("zero", "lecun")


class SparseMaskState(NamedTuple):
    """State of :func:`sparse_mask_tx`.

    Attributes:
      inner: the wrapped optimizer's state.
      masks: module path (``"actor/layer_0"``, ``"critic_head"``) -> bool like its kernel.
      free0: module path -> float32, the reference's initial growth space ``free_0``.
      steps: int32, optimizer steps taken.
    """

    inner: optax.OptState
    masks: dict[str, Array]
    free0: dict[str, Array]
    steps: Array

    # Topology and counters, not statistics: optimizer-state resets keep them.
    persist_fields = ("masks", "free0", "steps")


# ----------------------------------------------------------------------------- layers


def masked_networks(params: Any, rule: str, skip: set[str] | None = None) -> list[list[str]]:
    """Module paths of the masked kernels, grouped by network (a torso and its heads); the
    torsos in ``skip`` are left out with their heads."""
    p = params["params"]
    nets = []
    for torso in _surgery.TORSOS:
        if torso not in p or torso in (skip or ()):
            continue
        mods = [f"{torso}/layer_{i}" for i in _surgery.hidden_layers(p, torso)]
        if rule == "reference":
            mods += [h for h in _surgery.HEADS[torso] if h in p and "kernel_a" not in p[h]]
        nets.append(mods)
    return nets


def _kernel(p: dict, module: str) -> Array:
    return _surgery.get_path(p, (*module.split("/"), "kernel"))


def _set_kernel(p: dict, module: str, value: Array) -> None:
    _surgery.set_path(p, (*module.split("/"), "kernel"), value)


def _top_n(score: Array, n: Array) -> Array:
    """Bool mask of the ``n`` largest entries of ``score`` (any shape, ``n`` traced; ties by
    position)."""
    flat = score.reshape(-1)
    rank = jnp.argsort(jnp.argsort(-flat, stable=True), stable=True)
    return (rank < n).reshape(score.shape)


def erdos_renyi(shapes: Sequence[tuple[int, ...]], sparsity: Array) -> Array:
    """Erdős–Rényi layer sparsities ``[L]`` of one network at overall ``sparsity``.

    ``1 - S_l = eps * sum(shape_l) / prod(shape_l)``, with ``eps`` such that the network keeps
    ``(1 - sparsity) * sum_l n_l`` weights; while the densest layer would exceed density 1,
    the layers with the largest ratio are made dense (``S_l = 0``) and ``eps`` is solved
    again over the others (the reference's ``sparse_set``, from In-Time
    Over-Parameterization's ``sparselearning/core.py``).
    """
    n = jnp.asarray([math.prod(s) for s in shapes], jnp.float32)
    raw = jnp.asarray([sum(s) / math.prod(s) for s in shapes], jnp.float32)
    s = jnp.asarray(sparsity, jnp.float32)
    dense = jnp.zeros(len(shapes), bool)

    def solve(dense):
        rhs = jnp.sum(jnp.where(dense, -n * s, n * (1.0 - s)))
        divisor = jnp.sum(jnp.where(dense, 0.0, raw * n))
        return rhs / jnp.where(divisor > 0, divisor, 1.0)

    for _ in range(len(shapes)):
        eps = solve(dense)
        largest = jnp.max(jnp.where(dense, -jnp.inf, raw))
        dense = dense | ((largest * eps > 1.0) & ~dense & (raw == largest))
    return jnp.where(dense, 0.0, jnp.clip(1.0 - raw * solve(dense), 0.0, 1.0))


def magnitude_mask(kernel: Array, sparsity: Array) -> Array:
    """Keeps the ``n - floor(sparsity * n)`` largest ``|w|`` of ``kernel``."""
    drop = jnp.floor(jnp.asarray(sparsity, jnp.float32) * kernel.size).astype(jnp.int32)
    return _top_n(jnp.abs(kernel), kernel.size - drop)


# ----------------------------------------------------------------------------- rules


def reference_topology(
    kernel: Array, mask: Array, grad: Array, free0: Array, zeta: Array, fresh: Array
) -> tuple[Array, Array]:
    """One topology update of the reference rule on one layer (module docstring).

    Args:
      kernel: current weights (zero where masked); mask: bool like it; grad: the loss
        gradient like it; free0: the layer's initial growth space; zeta: growth fraction;
      fresh: values of new connections, like ``kernel``.

    Returns:
      ``(kernel, mask)``.
    """
    n_grow = jnp.floor(jnp.maximum(free0 * zeta, 0.0)).astype(jnp.int32)
    n_prune = (2 * n_grow) // 5  # int(0.4 * n_grow), exactly
    n_keep = jnp.maximum(jnp.sum(mask) - n_prune, 0)
    keep = _top_n(jnp.where(mask, jnp.abs(kernel), -jnp.inf), n_keep) & mask
    grow = _top_n(jnp.where(keep, -jnp.inf, jnp.abs(grad)), n_grow) & ~keep
    new_mask = keep | grow
    kernel = jnp.where(grow & ~mask, fresh, jnp.where(new_mask, kernel, 0.0))
    return kernel, new_mask


def target_sparsity(step: Array, hp: HP) -> Array:
    """Rule ``"dormant"``: ``s(t) = s_T + (s_0 - s_T) * max(0, 1 - t / T)``."""
    t = jnp.asarray(step, jnp.float32)
    T = jnp.maximum(jnp.asarray(hp["grow_until"], jnp.float32), 1.0)
    s0 = jnp.asarray(hp["initial_sparsity"], jnp.float32)
    s1 = jnp.asarray(hp["final_sparsity"], jnp.float32)
    return s1 + (s0 - s1) * jnp.maximum(0.0, 1.0 - t / T)


def active_target(sparsity: Array, size: int) -> Array:
    """Number of active connections of a layer of ``size`` at ``sparsity``."""
    return jnp.round((1.0 - sparsity) * size).astype(jnp.int32)


def update_topology(
    kernel: Array, mask: Array, grad: Array, dormant_units: Array, sparsity: Array, zeta: Array,
    fresh: Array,
) -> tuple[Array, Array, Array]:
    """Rule ``"dormant"``: prune the dormant units' weakest connections, grow to the target.

    Args:
      kernel: ``[..., units]`` current weights (zero where masked); mask: bool like it;
      grad: potential gradient like it; dormant_units: ``[units]`` bool; sparsity: target
        after this update; zeta: cap on the pruned fraction of active connections;
      fresh: values for grown weights, like ``kernel``.

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


def initial_masks(params: Any, rule: str, hp: HP) -> tuple[dict, dict]:
    """``(masks, free0)`` at initialisation (magnitude masks; module docstring)."""
    p = params["params"]
    masks, free0 = {}, {}
    for mods in masked_networks(params, rule):
        kernels = [_kernel(p, m) for m in mods]
        if rule == "reference":
            s_init = hp["initial_stl_sparsity"]
            layer_s = erdos_renyi([k.shape for k in kernels], s_init)
        else:
            s_init = target_sparsity(0, hp)
            layer_s = jnp.full(len(mods), s_init)
        for i, (m, k) in enumerate(zip(mods, kernels, strict=True)):
            masks[m] = magnitude_mask(k, layer_s[i])
            free0[m] = s_init * k.size - jnp.sum(masks[m]).astype(jnp.float32)
    return masks, free0


# ----------------------------------------------------------------------------- optimizer


def apply_masks(tree: Any, masks: dict[str, Array], fill: Any = None) -> Any:
    """``tree`` (like the parameters) with masked kernel entries set to ``fill`` (0, or the
    entries of a tree like it)."""
    p = _surgery.copy_tree(tree["params"])
    for m, mask in masks.items():
        other = 0.0 if fill is None else _kernel(fill["params"], m)
        _set_kernel(p, m, jnp.where(mask, _kernel(p, m), other))
    return {**tree, "params": p}


def sparse_mask_tx(
    inner: optax.GradientTransformation, hp: HP, rule: str = "reference"
) -> optax.GradientTransformationExtraArgs:
    """Wraps ``inner``: masked gradients in, and ``θ + u`` exactly zero where masked out."""
    inner = optax.with_extra_args_support(inner)

    def init_fn(params):
        masks, free0 = initial_masks(params, rule, hp)
        return SparseMaskState(inner.init(params), masks, free0, jnp.zeros((), jnp.int32))

    def update_fn(updates, state, params=None, **extra):
        if params is None:
            raise ValueError(f"{NAME} needs params")
        u, inner_state = inner.update(apply_masks(updates, state.masks), state.inner, params,
                                      **extra)
        minus_params = jax.tree.map(jnp.negative, params)
        u = apply_masks(u, state.masks, minus_params)  # p + (-p) == 0 exactly
        return u, state._replace(inner=inner_state, steps=state.steps + 1)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _is_state(x: Any) -> bool:
    return isinstance(x, SparseMaskState)


def mask_state(opt_state: Any) -> SparseMaskState:
    """The ``SparseMaskState`` inside ``opt_state`` (raises if there is none)."""
    return compose.find_wrapper_state(opt_state, SparseMaskState, NAME)


def masks_of(opt_state: Any) -> dict[str, Array]:
    """The current masks (module path -> bool like its kernel)."""
    return mask_state(opt_state).masks


def _set_masks(opt_state: Any, masks: dict[str, Array]) -> Any:
    return jax.tree.map(lambda s: s._replace(masks=masks) if _is_state(s) else s, opt_state,
                        is_leaf=_is_state)


def sparsity_of(masks: dict[str, Array]) -> dict[str, Array]:
    """Per-layer sparsity ``1 - mean(mask)``."""
    return {k: 1.0 - jnp.mean(m.astype(jnp.float32)) for k, m in masks.items()}


# ----------------------------------------------------------------------------- method


def sensitivity_grads(apply, params: Any, probe_obs: Array) -> Any:
    """Gradient of ``0.5 * mean_x (||policy(x)||^2 + value(x)^2)`` (the fallback potential)."""

    def f(p):
        out = apply(p, probe_obs)
        pol = out.policy.reshape(out.policy.shape[0], -1)
        return 0.5 * jnp.mean(jnp.sum(pol**2, axis=-1) + out.value**2)

    return jax.grad(f)(params)


def _fresh(init_method: str, key: Array, kernel: Array) -> Array:
    if init_method == "zero":
        return jnp.zeros_like(kernel)
    return jax.nn.initializers.lecun_normal()(key, kernel.shape, kernel.dtype)


def static_modules(
    parts: Mapping[str, tuple[str, ...]] | None, static_networks: Sequence[str]
) -> set[str]:
    """The top-level modules whose topology ``static_networks`` fixes.

    Raises:
      ValueError: the agent does not name its networks (``parts`` is None) or lacks one
        named, or a static network shares a module (a shared torso) with a growing one.
    """
    if not static_networks:
        return set()
    if parts is None:
        raise ValueError(
            f"{NAME}: static_networks={list(static_networks)} needs an agent that names its "
            "networks (ModelContext.parts); drop static_networks"
        )
    unknown = [n for n in static_networks if n not in parts]
    if unknown:
        raise ValueError(
            f"{NAME}: static_networks names {unknown}, not networks of this agent; it has "
            f"{sorted(parts)}"
        )
    static = {mod for n in static_networks for mod in parts[n]}
    growing = {mod for n, mods in parts.items() if n not in static_networks for mod in mods}
    shared = sorted(static & growing)
    if shared:
        raise ValueError(
            f"{NAME}: static_networks={list(static_networks)} share {shared} with a network "
            "that grows; give the networks separate torsos (network.shared_torso: false) or "
            "make both static"
        )
    return static


def neuroplastic_expansion(
    rule: str = "reference",
    init_method: str = "zero",
    topology_schedule: str | Sequence[str] = "every_k_updates",
    mask_targets: bool | None = None,
    static_networks: Sequence[str] = (),
) -> Method:
    """Neuroplastic expansion as a ``Method`` (see the module docstring)."""
    if rule not in RULES:
        raise ValueError(f"{NAME}: rule={rule!r}; choose one of {RULES}")
    if init_method not in INIT_METHODS:
        raise ValueError(f"{NAME}: init_method={init_method!r}; choose one of {INIT_METHODS}")
    static_networks = tuple(static_networks)
    repeated = sorted({n for n in static_networks if static_networks.count(n) > 1})
    if repeated:
        raise ValueError(f"{NAME}: static_networks lists {repeated} more than once; list each once")
    if mask_targets is None:
        mask_targets = rule == "reference"  # the reference's TD3 masks its targets
    if rule == "reference":
        hp = {"sparsity": 0.25, "initial_stl_sparsity": 0.8, "zeta": 0.0008, "delta": 10000.0}
        topo_sched = None
    else:
        topo_sched, sched_hp = make_schedule(topology_schedule, {"period": 25.0})
        hp = {"initial_sparsity": 0.75, "final_sparsity": 0.0, "grow_until": 1000.0,
              "zeta": 0.05, "tau": 0.025, **sched_hp}

    def init_state(params: Any, key: Array) -> dict:
        del params
        return {"key": key, "last_steps": jnp.zeros((), jnp.int32)}

    def topology(learner, probe_obs, key, hp, events, ctx, st):
        params = learner.params
        grads = learner.last_grads
        if grads is None:
            grads = sensitivity_grads(ctx.apply, params, probe_obs)
        p, g = _surgery.copy_tree(params["params"]), grads["params"]
        masks, touched = dict(st.masks), _surgery.false_like(p)
        nets = growing_networks(params, ctx)
        keys = iter(jax.random.split(key, sum(len(mods) for mods in nets)))
        if rule == "dormant":
            acts = ctx.apply(params, probe_obs).activations
            sparsity = target_sparsity(events.update_step, hp)
            zeta = jnp.asarray(hp["zeta"], jnp.float32)
        for mods in nets:
            if rule == "reference":  # grows while the network is sparser than the target
                active = sum(jnp.sum(masks[m]) for m in mods)
                size = sum(masks[m].size for m in mods)
                zeta = jnp.where(active < (1.0 - hp["sparsity"]) * size, hp["zeta"], 0.0)
            for m in mods:
                kernel = _kernel(p, m)
                fresh = _fresh(init_method, next(keys), kernel)
                if rule == "reference":
                    kernel, masks[m] = reference_topology(
                        kernel, masks[m], _kernel(g, m), st.free0[m], zeta, fresh)
                else:
                    units = kernel.shape[-1]
                    dormant = _surgery.unit_mask_from_features(
                        dormant_mask(acts[m], hp["tau"]), units)
                    kernel, masks[m], changed = update_topology(
                        kernel, masks[m], _kernel(g, m), dormant, sparsity, zeta, fresh)
                    _set_kernel(touched, m, changed)
                _set_kernel(p, m, kernel)
        params = {**params, "params": p}
        opt_state = _set_masks(learner.opt_state, masks)
        if rule == "dormant":
            opt_state = _surgery.zero_moments(opt_state, params, {"params": touched})
        return params, opt_state

    def growing_networks(params: Any, ctx: ModelContext) -> list[list[str]]:
        return masked_networks(params, rule, static_modules(ctx.parts, static_networks))

    def apply(
        learner: LearnerState, probe_obs: Array, key: Array, hp: HP, events: Events,
        ctx: ModelContext,
    ) -> LearnerState:
        del key  # the state's own stream keeps topologies independent of the other methods
        state = learner.method_state[NAME]
        st = mask_state(learner.opt_state)
        if not growing_networks(learner.params, ctx):  # every network here is static
            new_state = {**state, "last_steps": st.steps}
            return learner._replace(method_state={**learner.method_state, NAME: new_state})
        if rule == "reference":
            delta = jnp.maximum(jnp.asarray(hp["delta"]).astype(jnp.int32), 1)
            fire = (hp["delta"] > 0) & (st.steps // delta > state["last_steps"] // delta)
        else:
            fire = jnp.asarray(topo_sched(events, hp), bool)
        k = jax.random.fold_in(state["key"], events.update_step)
        params, opt_state = jax.lax.cond(
            fire,
            lambda: topology(learner, probe_obs, k, hp, events, ctx, st),
            lambda: (learner.params, learner.opt_state),
        )
        new_state = {**state, "last_steps": st.steps}
        return learner._replace(
            params=params, opt_state=opt_state,
            method_state={**learner.method_state, NAME: new_state},
        )

    def mask_target(target: Any, online_opt_state: Any, hp: HP) -> Any:
        del hp
        return apply_masks(target, masks_of(online_opt_state))

    return Method(
        name=NAME,
        hp=hp,
        optimizer=lambda tx, hp: sparse_mask_tx(tx, hp, rule),
        intervention=Intervention(schedule=every_update(), apply=apply, init_state=init_state),
        after_target_update=mask_target if mask_targets else None,
        requires={"activation": RELU_FAMILY} if rule == "dormant" else {},
        needs_grads=True,
        uses_networks={"static_networks": static_networks} if static_networks else {},
    )
