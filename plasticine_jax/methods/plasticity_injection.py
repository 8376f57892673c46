"""Plasticity injection (Nikishin et al. 2023): add fresh capacity without changing outputs.

At injection the head ``h_old`` becomes

    h(x) = h_old(x) + h_a(x) - h_b(x),   h_a = h_b = a fresh initialisation,

with ``h_old`` and ``h_b`` frozen and ``h_a`` trainable, so the output is unchanged at the
moment of injection and the number of trainable head parameters is unchanged. The encoder
still receives the gradient of the whole output (``h_b`` is read through
``stop_gradient``, which stops its parameters, not the path to ``x``).

Design: a static network, a switch in the optimizer state.

* Network (``NetworkSpec`` option ``"injection"``): each chosen head is a
  ``networks.heads.InjectableDense``, holding from the start ``kernel``/``bias`` (``h_old``,
  named and initialised as ``nn.Dense``) and ``kernel_a``/``bias_a``, ``kernel_b``/``bias_b``
  (zero), and computing ``x @ kernel + bias + x @ (kernel_a - sg(kernel_b)) +
  (bias_a - sg(bias_b))``. It has no flag: while ``h_a == h_b`` the extra term is exactly
  zero, values and input gradient included.
* Optimizer (``optimizer`` hook, :func:`injection_tx`): the per-head flag ``injected`` lives
  in the wrapper's state (``InjectionState``), never in the parameters, so no penalty (L2,
  L2-to-init), decay, clipping or perturbation can reach it. The wrapper zeroes the
  gradient of every frozen leaf before the optimizer it wraps, and that optimizer's update
  of it after: before injection ``h_a`` and ``h_b`` are frozen (so the head is exactly
  ``nn.Dense``, global-norm clipping included); after it ``h_old`` and ``h_b`` are.
* Intervention: folds ``h_old <- h_old + (h_a - h_b)`` (exactly ``h_old`` before the first
  injection; output-preserving up to rounding after), sets ``h_a = h_b = fresh``, sets the
  flag in the optimizer state and zeroes the head's optimizer statistics.

What freezing covers: the base optimizer, the loss penalties and every optimizer wrapper
*inside* this one (methods listed before ``plasticity_injection``). A wrapper listed after
it acts on its output: one that replaces the update (``kron``) or rewrites parameters
(``shrink_perturb``, ``weight_clipping``, ``trac``, decoupled ``l2``) moves frozen leaves
too; list ``plasticity_injection`` last to freeze against everything. Whatever the order,
the output is ``h_old(x) + h_a(x) - h_b(x)`` of the current values, since no switch can be
moved. The raw loss gradient (PPO's logged ``grad_norm``, ``last_grads``) still contains
the frozen leaves' gradients; only what the optimizer applies is masked. A reset of the
head (``layer_reset``) zeroes ``h_a`` and ``h_b``; the flag stays, so the fresh ``h_old``
is then frozen and the head trains through ``h_a`` (from zero: the same gradient steps).

Plasticine (RLE-Foundation/Plasticine) does something else in both of its trees. Current
tree (``plasticine/ppo_continual_procgen_base.py``, ``ppo_continual_dmc_base.py``,
``c51_atari_base.py``: ``plasticine_plasticity_injection``): each head is wrapped in an
``Injector`` computing ``original(x) + new_a(x) - new_b(x).detach()``, ``new_a`` a fresh
``nn.Linear`` (PyTorch's default init), ``new_b`` its deepcopy. Nothing sets
``requires_grad=False``; instead the Adam optimizer is built once, over the parameters
that exist before training, and never rebuilt, so ``new_a`` and ``new_b`` never enter it:
``new_a`` is never updated (the output stays ``original(x)``) while ``original`` keeps
training with its Adam moments. ``.detach()`` also stops the encoder's gradient through
``new_b``. The continual Procgen script injects in the middle of each task and after each
task (DMC: every ``plasticine_frequency`` updates and after each task; C51 Atari: once, at
half the steps); a second injection wraps the ``Injector`` in another. 2025 tree
(``plasticine/standard/ppo_procgen_pi.py`` and siblings, as of June 2025, commit 326b810;
removed in January 2026): the same ``Injector`` and the same single optimizer, fired when
``iteration % (num_iterations // 2) == 0`` (the middle and the last update); its April 2025
versions folded an earlier ``Injector`` into a new ``nn.Linear``, outside the optimizer as
well, which froze the heads at a second injection. So in Plasticine ``h_a`` never trains
and the outputs stay ``h_old``'s, with one side effect: ``new_a``'s gradient, which
``optimizer.zero_grad()`` never clears, accumulates and enters
``clip_grad_norm_(agent.parameters())``, shrinking the clipped gradient of the rest. Ours
follows the paper (``h_a`` trains, ``h_old`` is frozen; ``keep_trainable`` keeps
``h_old`` training too). Our default schedule, ``at_task_switch``, follows the current
tree's injection at task boundaries (fired after the first update of the new task) without
its mid-task injection; add ``at_task_fraction`` (``task_fraction`` 0.5) for that, or use
``every_k_updates`` with ``period = num_updates // 2`` for the 2025 single-task setting.

Options:
  heads: which heads to inject: ``"heads"`` (the default: every head of the network, PPO's
    ``actor_head`` and ``critic_head``, a Q-network's ``q_head`` and dueling
    ``value_head``) or named heads. On an agent with a target network the injected head
    is copied into the target (``agents.dqn``): the target's output is unchanged too.
  schedule: a ``methods.schedules`` name or list (default ``at_task_switch``).
  keep_trainable: the paper's variant that keeps ``h_old`` trainable too (default False).
  zero_moments: zero the head's optimizer statistics at injection (default True: ``h_a``
    and a trainable ``h_old`` start from fresh moments).

Hyperparameters: those of the schedule.

Registry name: ``plasticity_injection``.

References:
  Nikishin, Oh, Ostrovski, Lyle, Pascanu, Dabney, Barreto. "Deep Reinforcement Learning
  with Plasticity Injection." NeurIPS 2023, arXiv 2305.15555. Plasticine, arXiv 2504.17490.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.methods import _surgery, compose
from plasticine_jax.methods.base import HP, Events, Intervention, LearnerState, Method, ModelContext
from plasticine_jax.methods.schedules import make_schedule
from plasticine_jax.networks.heads import INJECTION, InjectableDense, head_module
from plasticine_jax.networks.spec import NetworkSpec

Array = jax.Array

NAME = "plasticity_injection"
OPTION = INJECTION
OLD, NEW, COPY = ("kernel", "bias"), ("kernel_a", "bias_a"), ("kernel_b", "bias_b")
__all__ = [
    "InjectableDense", "InjectionState", "NAME", "OPTION", "head_module", "inject",
    "injected_flags", "injection_tx", "plasticity_injection",
]


class InjectionState(NamedTuple):
    """State of :func:`injection_tx`: the wrapped optimizer's and the switch.

    Attributes:
      inner: the wrapped optimizer's state.
      injected: head name -> bool scalar, the head has been injected.
    """

    inner: optax.OptState
    injected: dict[str, Array]

    # The switch, not a statistic: optimizer-state resets keep it.
    persist_fields = ("injected",)


def _frozen(injected: Array, leaf: str, keep_trainable: bool) -> Array:
    """Whether a head's ``leaf`` may not move, given its flag."""
    if leaf in NEW:
        return ~injected
    if leaf in COPY:
        return jnp.ones((), bool)
    return injected & (not keep_trainable)


def freeze(tree: Any, injected: dict[str, Array], keep_trainable: bool) -> Any:
    """``tree`` (like the parameters) with the frozen leaves of the injected heads zeroed."""
    p = dict(tree["params"])
    for h, on in injected.items():
        p[h] = {
            k: jnp.where(_frozen(on, k, keep_trainable), jnp.zeros_like(v), v)
            for k, v in p[h].items()
        }
    return {**tree, "params": p}


def check_heads(params: Any, heads: tuple[str, ...]) -> None:
    """Raises a ValueError unless every head in ``heads`` is an ``InjectableDense``."""
    p = params["params"]
    for h in heads:
        if "kernel_a" not in p.get(h, {}):
            raise ValueError(
                f"{NAME}: head {h!r} is not an InjectableDense; the network must build "
                f"heads with the NetworkSpec option {OPTION!r}"
            )


def injection_tx(
    inner: optax.GradientTransformation, heads: Sequence[str], keep_trainable: bool = False
) -> optax.GradientTransformationExtraArgs:
    """Wraps ``inner``: the frozen leaves of the heads get zero gradient in and zero update out.

    Args:
      inner: the optimizer to wrap.
      heads: the ``InjectableDense`` heads.
      keep_trainable: ``h_old`` stays trainable after injection.

    Returns:
      A transform whose state is an ``InjectionState`` (flags False until an injection).
    """
    heads = tuple(heads)
    inner = optax.with_extra_args_support(inner)

    def init_fn(params):
        names = _surgery.resolve_heads(params["params"], heads)
        check_heads(params, names)
        return InjectionState(inner.init(params), {h: jnp.zeros((), bool) for h in names})

    def update_fn(updates, state, params=None, **extra):
        grads = freeze(updates, state.injected, keep_trainable)
        u, inner_state = inner.update(grads, state.inner, params, **extra)
        return freeze(u, state.injected, keep_trainable), state._replace(inner=inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _is_state(x: Any) -> bool:
    return isinstance(x, InjectionState)


def injected_flags(opt_state: Any) -> dict[str, Array]:
    """The ``injected`` flags held in ``opt_state`` (raises if it holds no ``InjectionState``)."""
    return compose.find_wrapper_state(opt_state, InjectionState, NAME).injected


def set_injected(opt_state: Any, heads: Sequence[str]) -> Any:
    """``opt_state`` with the flags of ``heads`` set."""
    injected_flags(opt_state)  # raises when absent

    def visit(s):
        if not _is_state(s):
            return s
        flags = {h: v | (h in heads) for h, v in s.injected.items()}
        return s._replace(injected=flags)

    return jax.tree.map(visit, opt_state, is_leaf=_is_state)


def inject(head: dict, fresh_head: dict) -> dict:
    """Injects into one ``InjectableDense`` parameter dict, folding any earlier injection.

    ``h_old <- h_old + (h_a - h_b)`` (exactly ``h_old`` while ``h_a == h_b``), then
    ``h_a = h_b = fresh``.
    """
    out = dict(head)
    for old, a, b in zip(OLD, NEW, COPY, strict=True):
        out[old] = head[old] + (head[a] - head[b])
        out[a] = out[b] = fresh_head[old]
    return out


def plasticity_injection(
    heads: Sequence[str] = (_surgery.ALL_HEADS,),
    schedule: str | Sequence[str] = "at_task_switch",
    keep_trainable: bool = False,
    zero_moments: bool = True,
) -> Method:
    """Plasticity injection as a ``Method`` (see the module docstring)."""
    heads = tuple(heads)
    allowed = {_surgery.ALL_HEADS, *(h for hs in _surgery.HEADS.values() for h in hs)}
    if not heads or not set(heads) <= allowed:
        raise ValueError(
            f"{NAME}: heads={list(heads)}; name 'heads' (all of them) or some of "
            f"{sorted(allowed - {_surgery.ALL_HEADS})}"
        )
    sched, sched_hp = make_schedule(schedule)

    def network(spec: NetworkSpec) -> NetworkSpec:
        return spec.with_option(OPTION, heads)

    def optimizer(tx: optax.GradientTransformation, hp: HP) -> optax.GradientTransformation:
        del hp
        return injection_tx(tx, heads, keep_trainable)

    def apply(
        learner: LearnerState, probe_obs: Array, key: Array, hp: HP, events: Events,
        ctx: ModelContext,
    ) -> LearnerState:
        del probe_obs, hp, events
        names = _surgery.resolve_heads(learner.params["params"], heads)
        check_heads(learner.params, names)
        p = dict(learner.params["params"])
        fresh = ctx.init(key)["params"]
        for h in names:
            p[h] = inject(p[h], fresh[h])
        params = {**learner.params, "params": p}
        opt_state = set_injected(learner.opt_state, names)
        if zero_moments:
            mask = {**_surgery.false_like(learner.params),
                    "params": _surgery.select_subtrees(p, names)}
            opt_state = _surgery.zero_moments(opt_state, params, mask)
        return learner._replace(params=params, opt_state=opt_state)

    return Method(
        name=NAME,
        hp=sched_hp,
        network=network,
        optimizer=optimizer,
        intervention=Intervention(schedule=sched, apply=apply),
    )
