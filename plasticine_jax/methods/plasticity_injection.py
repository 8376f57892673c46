"""Plasticity injection (Nikishin et al. 2023): add fresh capacity without changing outputs.

At injection the head ``h_old`` becomes

    h(x) = h_old(x) + h_a(x) - h_b(x),   h_a = h_b = a fresh initialisation,

with ``h_old`` and ``h_b`` frozen and ``h_a`` trainable, so the output is unchanged at the
moment of injection and the number of trainable head parameters is unchanged. Freezing is
on the *parameters* (as the paper and Plasticine's ``requires_grad = False``): the encoder
still receives the gradient of the whole output through all three heads.

Design (static shapes, traced switch). The network edit (``NetworkSpec`` option
``"injection"``) makes ``ActorCritic`` build each chosen head as
``networks.heads.InjectableDense``: it holds, from the start,
the usual ``kernel``/``bias`` (``h_old``; the same names and initialisation as ``nn.Dense``,
so other methods see an ordinary head), ``kernel_a``/``bias_a`` (``h_a``),
``kernel_b``/``bias_b`` (``h_b``, read through ``stop_gradient``) and a scalar flag
``injected``. The flag is read as ``stop_gradient(injected > 0.5)``, so no optimizer or decay
can flip it, and its gradient is zero:

* before injection (flag 0) the layer is exactly ``nn.Dense``; ``h_a`` gets zero gradient;
* the intervention sets ``h_a = h_b = fresh``, the flag to 1, and zeroes the optimizer
  statistics of the head, so that under Adam the now gradient-free ``h_old`` gets exactly
  zero updates (with stale moments it would keep drifting) and ``h_a`` starts fresh;
* a later injection first folds ``h_old <- h_old + h_a - h_b`` (output unchanged up to
  rounding), then injects again.

Decoupled weight decay from another method still shrinks the frozen weights; Plasticine
uses plain Adam. A reset of the head (``layer_reset``) also clears the flag.

Options:
  heads: which heads to inject (default both, ``("actor_head", "critic_head")``).
  schedule: a ``methods.schedules`` name or list (default ``at_task_switch``; Plasticine's
    standard setting injects once, e.g. ``at_task_fraction`` on a single long task).
  keep_trainable: the paper's variant that keeps ``h_old`` trainable too (default False).
  zero_moments: zero the head's optimizer statistics at injection (default True; needed for
    an exact freeze under Adam).

Hyperparameters: those of the schedule.

Registry name: ``plasticity_injection``.

References:
  Nikishin, Oh, Ostrovski, Lyle, Pascanu, Dabney, Barreto. "Deep Reinforcement Learning
  with Plasticity Injection." NeurIPS 2023, arXiv 2305.15555. Plasticine, arXiv 2504.17490.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from plasticine_jax.methods import _surgery
from plasticine_jax.methods.base import HP, Events, Intervention, LearnerState, Method, ModelContext
from plasticine_jax.methods.schedules import make_schedule
from plasticine_jax.networks.heads import INJECTION, InjectableDense, head_module
from plasticine_jax.networks.spec import NetworkSpec

Array = jax.Array

NAME = "plasticity_injection"
OPTION = INJECTION
__all__ = ["InjectableDense", "NAME", "OPTION", "head_module", "inject", "plasticity_injection"]


def inject(head: dict, fresh_head: dict) -> dict:
    """Injects into one ``InjectableDense`` parameter dict (folding any earlier injection)."""
    on = head["injected"] > 0.5
    fold = lambda old, a, b: jnp.where(on, old + a - b, old)  # noqa: E731
    return {
        **head,
        "kernel": fold(head["kernel"], head["kernel_a"], head["kernel_b"]),
        "bias": fold(head["bias"], head["bias_a"], head["bias_b"]),
        "kernel_a": fresh_head["kernel"],
        "bias_a": fresh_head["bias"],
        "kernel_b": fresh_head["kernel"],
        "bias_b": fresh_head["bias"],
        "injected": jnp.ones_like(head["injected"]),
    }


def plasticity_injection(
    heads: Sequence[str] = ("actor_head", "critic_head"),
    schedule: str | Sequence[str] = "at_task_switch",
    keep_trainable: bool = False,
    zero_moments: bool = True,
) -> Method:
    """Plasticity injection as a ``Method`` (see the module docstring)."""
    heads = tuple(heads)
    sched, sched_hp = make_schedule(schedule)

    def network(spec: NetworkSpec) -> NetworkSpec:
        return spec.with_option(OPTION, (heads, keep_trainable))

    def apply(
        learner: LearnerState, probe_obs: Array, key: Array, hp: HP, events: Events,
        ctx: ModelContext,
    ) -> LearnerState:
        del probe_obs, hp, events
        p = dict(learner.params["params"])
        fresh = ctx.init(key)["params"]
        for h in heads:
            if "injected" not in p.get(h, {}):
                raise ValueError(
                    f"{NAME}: head {h!r} is not an InjectableDense; the network must build "
                    f"heads with the NetworkSpec option {OPTION!r}"
                )
            p[h] = inject(p[h], fresh[h])
        params = {**learner.params, "params": p}
        opt_state = learner.opt_state
        if zero_moments:
            mask = {**_surgery.false_like(learner.params),
                    "params": _surgery.select_subtrees(p, heads)}
            opt_state = _surgery.zero_moments(opt_state, params, mask)
        return learner._replace(params=params, opt_state=opt_state)

    return Method(
        name=NAME,
        hp=sched_hp,
        network=network,
        intervention=Intervention(schedule=sched, apply=apply),
    )
