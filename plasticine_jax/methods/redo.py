"""ReDo: recycle dormant units (Sokar et al. 2023).

Every ``period`` updates, the probe batch goes through the network and each hidden unit gets
the normalised score ``s_i = mean_x |a_i(x)| / mean_k mean_x |a_k(x)|`` (per layer; a conv
channel is one unit, averaged over positions; ``metrics.dormant_scores``). Units with
``s_i <= tau`` are recycled: their incoming weights (kernel column, bias, LayerNorm
scale/offset) are set to a fresh initialisation of the network, their outgoing weights
(the next layer's rows, or the head's) are set to zero, so the recycled unit does not change
the network's output until it learns. Conv -> flatten -> dense links are followed (the
dense rows ``((h * W) + w) * C + c`` of channel ``c``). Every layer's scores come from one
forward pass. A weight from a recycled unit of layer ``i`` to a recycled unit of layer
``i + 1`` is both outgoing (zero) and incoming (fresh); option ``dormant_to_dormant`` picks:

* ``"fresh"`` (default): freshly initialised, as Plasticine's current tree
  (``plasticine_redo``: link by link in ascending order, each layer's incoming rows
  re-initialised after the previous link zeroed their columns, so incoming wins). Its 2025
  tree (``redo_reset``) never zeroes outgoing weights: it does so only when the next module
  has the current one's type, and the next module it passes is the ReLU.
* ``"zero"``: zero, as Dopamine's ``NeuronRecycler`` (the ReDo authors' code:
  ``recycle_dead_neurons`` re-initialises every incoming mask, then zeroes every outgoing
  mask, so outgoing wins).

With a widening activation (CReLU, Fourier) a unit is recycled iff all its features are
dormant.

Defaults: ``tau = 0.025`` and every 10 updates (Plasticine's 2025 tree,
``standard/ppo_procgen_redo.py``; its current tree fires 10 times per task), no moment
zeroing (Plasticine, both trees), dormant-to-dormant weights fresh (Plasticine's current
tree). Plasticine re-initialises with PyTorch's Kaiming-uniform default; we use the
network's own initialiser.

Activations: ReDo requires a ReLU-family activation (``RELU_FAMILY``: relu, leaky_relu, gelu,
silu, crelu; refused at config time otherwise). The score is computable for any activation,
but it only finds *dead* units where a near-zero output means the unit sits in the flat part
of its nonlinearity, so it gets (almost) no gradient and cannot recover alone. That holds for
ReLU and its smooth or leaky variants (output and slope both vanish for z << 0) and for CReLU
(each half is a ReLU; a unit is recycled only when both halves are dormant). It fails for
``tanh`` and ``identity``: a near-zero output is their linear regime, where the slope is
largest, so ReDo would recycle the units most able to learn while the stuck ones (tanh
saturated at ±1) score as the most active. ``sigmoid`` is stuck at 0 *and* at 1, and the
score sees only the first; ``fourier`` units are never silent (sin² + cos² = 1).

Options:
  schedule: a ``methods.schedules`` name or list (default ``every_k_updates``).
  zero_moments: also zero the optimizer statistics of every rewritten weight (Dopamine does;
    Plasticine does not, the default).
  reset_counts: with ``zero_moments``, also restart the rewritten weights' Adam step counts
    (default True): the agent's base Adam counts steps per entry (``methods.adam_gnt``, as
    continual backprop's AdamGnT), so a recycled weight's first step is Adam's first, about
    ``lr``. False is Dopamine's: it zeroes ``mu`` and ``nu`` but keeps Adam's one global
    ``count``, so that first step is about 2.5·lr late in training.
  dormant_to_dormant: ``"fresh"`` (default, Plasticine's current tree) or ``"zero"``
    (Dopamine), see above.
  torsos: restrict to these torsos (``"actor"``, ``"critic"``, ``"shared"``); default all.

Hyperparameters: ``tau`` (0.025), ``period`` (10).

Target networks (DQN, C51): the recycled units' rewritten weights are copied into the
target network too (``agents.dqn.mirror_interventions``), so online and target agree on them
(Dopamine's recycler rewrites the online network and lets the next target sync copy it).

Registry name: ``redo``.

References:
  Sokar, Agarwal, Castro, Evci. "The Dormant Neuron Phenomenon in Deep Reinforcement
  Learning." ICML 2023, arXiv 2302.12902. Code: https://github.com/google/dopamine
  (``dopamine/labs/redo/weight_recyclers.py``). Plasticine, arXiv 2504.17490,
  https://github.com/RLE-Foundation/Plasticine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from plasticine_jax.methods import _surgery
from plasticine_jax.methods.base import HP, Events, Intervention, LearnerState, Method, ModelContext
from plasticine_jax.methods.schedules import make_schedule
from plasticine_jax.metrics.dormant import dormant_mask

Array = jax.Array

# Activations whose near-zero outputs mark units that cannot recover (see the docstring).
RELU_FAMILY = ("relu", "leaky_relu", "gelu", "silu", "crelu")
DORMANT_TO_DORMANT = ("zero", "fresh")


def redo_params(
    params: Any, activations: dict[str, Array], fresh: Any, tau: Array,
    torsos: Sequence[str] | None = None, dormant_to_dormant: str = "fresh",
) -> tuple[Any, Any, dict[str, Array]]:
    """Recycles the tau-dormant units of every hidden layer.

    Args:
      params: the network's variables ``{"params": ...}``.
      activations: ``"{torso}/layer_i" -> [P, ..., features]`` from ``params`` on the probe.
      fresh: a fresh initialisation of the same variables.
      tau: dormancy threshold (traced).
      torsos: torsos to treat; None for all.
      dormant_to_dormant: ``"fresh"`` (Plasticine) or ``"zero"`` (Dopamine): what a weight
        between two recycled units becomes.

    Returns:
      ``(params, touched, recycled)``: new variables, a bool tree marking rewritten entries,
      and ``{"{torso}/layer_i": [units] bool}`` the recycled units.
    """
    if dormant_to_dormant not in DORMANT_TO_DORMANT:
        raise ValueError(
            f"redo: dormant_to_dormant must be one of {DORMANT_TO_DORMANT}, "
            f"got {dormant_to_dormant!r}"
        )
    p, f = params["params"], fresh["params"]
    touched = _surgery.false_like(p)
    recycled = {}
    # Each layer rewrites its incoming weights, then zeroes its outgoing ones: in descending
    # order a layer's zeros land last on the weights it shares with the next (outgoing wins).
    names = sorted(activations, key=lambda n: _surgery.parse_activation_key(n)[::-1],
                   reverse=dormant_to_dormant == "zero")
    for name in names:
        torso, i = _surgery.parse_activation_key(name)
        if torsos is not None and torso not in torsos:
            continue
        act = activations[name]
        units = p[torso][f"layer_{i}"]["kernel"].shape[-1]
        unit_mask = _surgery.unit_mask_from_features(dormant_mask(act, tau), units)
        p, touched = _surgery.recycle_units(p, f, touched, torso, i, unit_mask, act.shape[-1])
        recycled[name] = unit_mask
    return {**params, "params": p}, {"params": touched}, recycled


def redo(
    schedule: str | Sequence[str] = "every_k_updates",
    zero_moments: bool = False,
    reset_counts: bool = True,
    dormant_to_dormant: str = "fresh",
    torsos: Sequence[str] | None = None,
) -> Method:
    """ReDo as a ``Method`` (see the module docstring)."""
    sched, sched_hp = make_schedule(schedule, {"period": 10.0})
    torsos = None if torsos is None else tuple(torsos)
    if dormant_to_dormant not in DORMANT_TO_DORMANT:
        raise ValueError(
            f"redo: dormant_to_dormant must be one of {DORMANT_TO_DORMANT}, "
            f"got {dormant_to_dormant!r}"
        )

    def apply(
        learner: LearnerState, probe_obs: Array, key: Array, hp: HP, events: Events,
        ctx: ModelContext,
    ) -> LearnerState:
        del events
        acts = ctx.apply(learner.params, probe_obs).activations
        params, touched, _ = redo_params(
            learner.params, acts, ctx.init(key), hp["tau"], torsos, dormant_to_dormant
        )
        opt_state = learner.opt_state
        if zero_moments:
            opt_state = _surgery.zero_moments(opt_state, params, touched)
        return learner._replace(params=params, opt_state=opt_state)

    return Method(
        name="redo",
        hp={"tau": 0.025, **sched_hp},
        intervention=Intervention(schedule=sched, apply=apply),
        requires={"activation": RELU_FAMILY},
        needs_element_counts=zero_moments and reset_counts,
    )
