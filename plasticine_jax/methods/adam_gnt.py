"""Adam with a step count per parameter entry (AdamGnT, Dohare et al. 2024).

optax's Adam keeps one step count ``t`` for every entry:

    m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
    u = −lr · (m / (1 − β1^t)) / (√(v / (1 − β2^t) + ε_root) + ε)

An intervention that rewrites weights (continual backprop, ReDo with ``zero_moments``) zeroes
their ``m`` and ``v`` but cannot restart a shared ``t``: the first step on a rewritten entry
is then ``−lr · (1 − β1) g / (√((1 − β2) / (1 − β2^t)) |g| + ε)``, about 2.5·lr at t = 1000
and up to √10 ≈ 3.2·lr for large t, instead of Adam's first step ``−lr · g / (|g| + ε)``
(≈ lr). AdamGnT keeps ``t_j`` per entry and the interventions reset it with ``m_j`` and
``v_j`` (``_surgery.zero_moments`` zeroes every parameter-shaped statistic, this count
included), so a rewritten entry restarts its bias correction. Entries never reset share the
global count and step exactly as ``optax.adam``.

The authors' ``lop/utils/AdamGnT.py`` (github shibhansh/loss-of-plasticity) keeps
``state['step']`` per entry and ``lop/algos/gnt.py`` zeroes it, with ``exp_avg`` and
``exp_avg_sq``, on a replaced unit's incoming and outgoing weights and its bias. Its step as
published computes ``−lr · (1 − β2^t) · m / (√v + ε)``: the line
``bias_correction.sqrt().div_(bias_correction1)`` edits a temporary, so its result is
dropped. We implement the step its docstring ("a modification of Adam") and its commented
``step_size = lr · √(1 − β2^t) / (1 − β1^t)`` describe: Adam, with ``t`` per entry.

The learning rate may be a schedule (``optax.inject_hyperparams`` calls it with its own,
global count, so annealing is unchanged) and ``reset_opt_state`` restarts every count.

References:
  Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood, Sutton. "Loss of plasticity in deep
  continual learning." Nature 632, 2024. https://doi.org/10.1038/s41586-024-07711-7
  Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


class ScaleByAdamGnTState(NamedTuple):
    """``count``: int32 like the parameters, steps taken by each entry; ``mu``, ``nu``: the
    moments. All three are parameter-shaped, so moment zeroing resets them together."""

    count: Any
    mu: Any
    nu: Any


def scale_by_adam_gnt(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: float = 0.0
) -> optax.GradientTransformation:
    """Adam's rescaling with a step count per entry (see the module docstring).

    Args:
      b1, b2: decay rates of the first and second moments.
      eps: added to the denominator, outside the square root (optax's and torch's ``eps``).
      eps_root: added inside the square root.

    Returns:
      A transform whose update is ``(m_j / (1 − β1^t_j)) / (√(v_j / (1 − β2^t_j) + ε_root) + ε)``.
    """

    def init_fn(params):
        return ScaleByAdamGnTState(
            count=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.int32), params),
            mu=jax.tree.map(jnp.zeros_like, params),
            nu=jax.tree.map(jnp.zeros_like, params),
        )

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
        nu = jax.tree.map(lambda g, v: (1 - b2) * jnp.square(g) + b2 * v, updates, state.nu)
        count = jax.tree.map(optax.safe_increment, state.count)

        def step(m: Array, v: Array, t: Array) -> Array:
            m_hat = m / (1 - b1**t).astype(m.dtype)
            v_hat = v / (1 - b2**t).astype(v.dtype)
            return m_hat / (jnp.sqrt(v_hat + eps_root) + eps)

        out = jax.tree.map(step, mu, nu, count)
        return out, ScaleByAdamGnTState(count, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)


def adam_gnt(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
) -> optax.GradientTransformation:
    """``optax.adam`` with a step count per parameter entry (same arguments, same updates
    until an intervention resets some entries' counts)."""
    return optax.chain(
        scale_by_adam_gnt(b1=b1, b2=b2, eps=eps, eps_root=eps_root),
        optax.scale_by_learning_rate(learning_rate),
    )
