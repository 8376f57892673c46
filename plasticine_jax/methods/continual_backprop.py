"""Continual backpropagation (Dohare et al. 2024): replace mature, low-utility units.

For every hidden unit ``i`` of every layer, at each firing (after every update by default):

* ``age_i <- age_i + 1``;
* contribution utility ``u_i <- eta * u_i + (1 - eta) * mean_x |h_i(x)| * sum_k |w_ik|``
  (``h`` on the probe batch, averaged over positions for a conv channel; ``w_ik`` the unit's
  outgoing weights, every position for a conv -> flatten -> dense link);
* running mean activation ``f_i <- eta * f_i + (1 - eta) * mean_x h_i(x)``.

Then, among the eligible units (``age_i > maturity``), ``n_l`` = ``rho * #eligible`` is added to
an accumulator per layer; ``floor(acc)`` units with the lowest bias-corrected utility
``u_i / (1 - eta^age_i)`` are replaced and ``acc`` keeps the fractional rest, so no layer ever
replaces more than ``rho * sum_t #eligible_t`` units in total (at most one unit ahead of the
rate at any time). A replaced unit gets fresh incoming weights (and bias, LayerNorm
parameters) from the network's initialiser and zero outgoing weights; the reader's bias
gains ``sum_i w_ik * f_i / (1 - eta^age_i)`` (the unit's mean contribution, so the output
barely moves; exact for dense readers, positions summed for conv readers); its age,
utility and mean return to zero.

Activations: any. Unlike ReDo's dormancy score, the contribution utility does not read a
small ``|h|`` as "dead": it measures how much the unit adds to the next layer, ``|h|·Σ|w|``,
which is what removing it costs under any activation (and the bias correction absorbs the
mean ``f_i`` the unit leaves behind, whatever its sign). The authors' generate-and-test code
(``lop/algos/gnt.py``) applies the same utility whatever the hidden activation; only the
initialisation bound depends on it. So it requires only ``activation_width`` features a unit.

Defaults (Dohare et al. 2024, RL experiments): ``replacement_rate = 1e-4``,
``maturity = 1e4``, ``decay = 0.99``. Their counts are in SGD steps; ours are in firings
(one per PPO update by default, i.e. ``epochs * minibatches`` SGD steps): scale
``replacement_rate`` up and ``maturity`` down by that factor to match per step.

Options:
  schedule: a ``methods.schedules`` name or list (default ``every_update``).
  zero_moments: zero the optimizer statistics of rewritten weights and restart their Adam
    step counts (default True, as their ``AdamGnT``: ``lop/algos/gnt.py`` zeroes
    ``exp_avg``, ``exp_avg_sq`` and the per-entry ``step`` of a replaced unit's incoming and
    outgoing weights and its bias). The agent's base Adam then counts steps per entry
    (``methods.adam_gnt``), so a replaced weight's first step is Adam's first, about ``lr``,
    rather than the ~2.5·lr that zeroed moments under a shared late step count give.
    The readers' biases, shifted by the bias correction, keep their statistics (as there).
  bias_correction: add the replaced units' mean contribution to the readers' biases
    (default True).
  activation_width: features per unit of the network's activation (2 for CReLU / Fourier).

State (``method_state["continual_backprop"]``), per ``"{torso}/layer_i"``: ``age [units]``,
``util [units]``, ``mean [features]``, ``acc []``.

Target networks (DQN, C51): the replaced units' weights are copied into the target
network too (``agents.dqn.mirror_interventions``).

Registry name: ``continual_backprop``.

References:
  Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood, Sutton. "Loss of plasticity in deep
  continual learning." Nature 632, 2024. https://doi.org/10.1038/s41586-024-07711-7
  Code: https://github.com/shibhansh/loss-of-plasticity (``lop/algos/gnt.py``,
  ``lop/utils/AdamGnT.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from plasticine_jax.methods import _surgery
from plasticine_jax.methods.base import HP, Events, Intervention, LearnerState, Method, ModelContext
from plasticine_jax.methods.schedules import make_schedule
from plasticine_jax.networks.activations import ACTIVATIONS

Array = jax.Array

NAME = "continual_backprop"


def _layers(params: Any) -> list[tuple[str, int]]:
    p = params["params"]
    return [
        (torso, i)
        for torso in _surgery.TORSOS
        if torso in p
        for i in _surgery.hidden_layers(p, torso)
    ]


def init_cbp_state(params: Any, activation_width: int = 1) -> dict[str, dict[str, Array]]:
    """Zero ages, utilities, means and accumulators for every hidden layer."""
    state = {}
    for torso, i in _layers(params):
        units = params["params"][torso][f"layer_{i}"]["kernel"].shape[-1]
        state[f"{torso}/layer_{i}"] = {
            "age": jnp.zeros((units,), jnp.int32),
            "util": jnp.zeros((units,), jnp.float32),
            "mean": jnp.zeros((units * activation_width,), jnp.float32),
            "acc": jnp.zeros((), jnp.float32),
        }
    return state


def select_replacements(
    util_bc: Array, eligible: Array, acc: Array, rate: Array
) -> tuple[Array, Array]:
    """Which units to replace and the accumulator's new value.

    Args:
      util_bc: ``[units]`` bias-corrected utilities.
      eligible: ``[units]`` bool, mature units.
      acc: ``[]`` accumulated fractional count.
      rate: replacement rate ``rho``.

    Returns:
      ``(mask [units] bool, acc')``: the ``floor(acc + rho * #eligible)`` eligible units with
      the lowest utility, and the fractional remainder.
    """
    acc = acc + rate * jnp.sum(eligible)
    n = jnp.floor(acc)
    score = jnp.where(eligible, util_bc, jnp.inf)
    rank = jnp.argsort(jnp.argsort(score))
    mask = eligible & (rank < n)
    return mask, acc - jnp.sum(mask)


def cbp_step(
    params: Any, state: dict, activations: dict[str, Array], fresh: Any, hp: HP,
    bias_correction: bool = True,
) -> tuple[Any, dict, Any, dict[str, Array]]:
    """One generate-and-test step over every hidden layer.

    Returns:
      ``(params, state, touched, replaced)``; ``replaced[name]`` is the ``[units]`` mask.
    """
    eta = jnp.asarray(hp["decay"], jnp.float32)
    p, f = params["params"], fresh["params"]
    touched = _surgery.false_like(p)
    state = dict(state)
    replaced = {}
    for torso, i in _layers(params):
        name = f"{torso}/layer_{i}"
        s = state[name]
        act = activations[name].astype(jnp.float32)
        units = p[torso][f"layer_{i}"]["kernel"].shape[-1]
        features = act.shape[-1]
        if features != s["mean"].shape[0]:
            raise ValueError(
                f"{NAME}: layer {name} has {features} features for {units} units; set the "
                f"option activation_width={features // units}"
            )
        axes = tuple(range(act.ndim - 1))
        mag = _surgery.outgoing_magnitude(p, torso, i, features)
        contrib = jnp.mean(jnp.abs(act), axis=axes) * mag  # [features]
        contrib = jnp.sum(contrib.reshape(features // units, units), axis=0)
        age = s["age"] + 1
        util = eta * s["util"] + (1.0 - eta) * contrib
        mean = eta * s["mean"] + (1.0 - eta) * jnp.mean(act, axis=axes)
        unit_bc = 1.0 - eta ** age.astype(jnp.float32)
        eligible = age > jnp.asarray(hp["maturity"])
        mask, acc = select_replacements(util / unit_bc, eligible, s["acc"], hp["replacement_rate"])
        feature_mask = jnp.tile(mask, features // units)
        if bias_correction:
            feature_bc = jnp.tile(unit_bc, features // units)
            values = jnp.where(feature_mask, mean / feature_bc, 0.0)
            # The reader's bias absorbs the mean contribution; its optimizer moments stay.
            p = _surgery.copy_tree(p)
            for path, shift in _surgery.outgoing_bias_shift(p, torso, i, values).items():
                _surgery.set_path(p, path, _surgery.get_path(p, path) + shift)
        p, touched = _surgery.recycle_units(p, f, touched, torso, i, mask, features)
        state[name] = {
            "age": jnp.where(mask, 0, age),
            "util": jnp.where(mask, 0.0, util),
            "mean": jnp.where(feature_mask, 0.0, mean),
            "acc": acc,
        }
        replaced[name] = mask
    return {**params, "params": p}, state, {"params": touched}, replaced


def continual_backprop(
    schedule: str | Sequence[str] = "every_update",
    zero_moments: bool = True,
    bias_correction: bool = True,
    activation_width: int = 1,
) -> Method:
    """Continual backprop as a ``Method`` (see the module docstring)."""
    sched, sched_hp = make_schedule(schedule)

    def init_state(params: Any, key: Array) -> dict:
        del key
        return init_cbp_state(params, activation_width)

    def apply(
        learner: LearnerState, probe_obs: Array, key: Array, hp: HP, events: Events,
        ctx: ModelContext,
    ) -> LearnerState:
        del events
        acts = ctx.apply(learner.params, probe_obs).activations
        params, state, touched, _ = cbp_step(
            learner.params, learner.method_state[NAME], acts, ctx.init(key), hp, bias_correction
        )
        opt_state = learner.opt_state
        if zero_moments:
            opt_state = _surgery.zero_moments(opt_state, params, touched)
        return learner._replace(
            params=params, opt_state=opt_state, method_state={**learner.method_state, NAME: state}
        )

    return Method(
        name=NAME,
        hp={"replacement_rate": 1e-4, "maturity": 1e4, "decay": 0.99, **sched_hp},
        intervention=Intervention(schedule=sched, apply=apply, init_state=init_state),
        needs_element_counts=zero_moments,
        requires={
            "activation": tuple(a for a, f in ACTIVATIONS.items() if f[1] == activation_width)
        },
    )
