"""Advantage estimation, written once for every agent.

rlax style: functions over one unbatched trajectory ``[T]``, shapes asserted on entry;
callers ``vmap`` over environments. Time subscripts: ``v_t`` is the value of the state at
which action ``a_t`` was taken, ``v_tp1`` the value used to bootstrap after it.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = jax.Array


def truncated_gae(
    r_t: Array,
    discount_t: Array,
    v_t: Array,
    v_tp1: Array,
    cut_t: Array,
    lambda_: Array | float,
) -> Array:
    """Generalised advantage estimation (Schulman et al. 2016) with episode boundaries.

    ``delta_t = r_t + discount_t * v_tp1[t] - v_t[t]`` and
    ``A_t = delta_t + discount_t' * lambda * (1 - cut_t) * A_{t+1}`` computed backwards,
    where the trace is cut at every episode boundary. ``discount_t`` is ``gamma`` for
    non-terminal steps and 0 at termination; at a time-limit truncation it stays ``gamma``
    and ``v_tp1`` holds the value of the final (pre-reset) observation, so the value
    bootstraps through the time limit.

    Args:
      r_t: rewards ``[T]``.
      discount_t: ``gamma * (1 - terminated_t)`` ``[T]``.
      v_t: values of the states acted in ``[T]``.
      v_tp1: bootstrap values of the following states ``[T]``.
      cut_t: 1.0 where an episode ended (terminated or truncated) at step t ``[T]``.
      lambda_: the GAE lambda (scalar, may be traced).

    Returns:
      Advantages ``[T]``.
    """
    chex.assert_rank([r_t, discount_t, v_t, v_tp1, cut_t], 1)
    chex.assert_equal_shape([r_t, discount_t, v_t, v_tp1, cut_t])
    delta_t = r_t + discount_t * v_tp1 - v_t
    # The gamma inside the trace is the same discount; at a cut the trace stops anyway.
    trace_t = discount_t * lambda_ * (1.0 - cut_t)

    def step(acc, xs):
        delta, trace = xs
        acc = delta + trace * acc
        return acc, acc

    _, adv = jax.lax.scan(step, jnp.zeros((), r_t.dtype), (delta_t, trace_t), reverse=True)
    return adv


def lambda_returns(
    r_t: Array,
    discount_t: Array,
    v_t: Array,
    v_tp1: Array,
    cut_t: Array,
    lambda_: Array | float,
) -> Array:
    """TD(lambda) returns ``G_t = A_t + v_t`` with the same boundary handling as GAE."""
    return truncated_gae(r_t, discount_t, v_t, v_tp1, cut_t, lambda_) + v_t


def categorical_projection(z_t: Array, p_t: Array, support: Array) -> Array:
    """Projects the distribution with atoms ``z_t`` and probabilities ``p_t`` onto the fixed
    ``support`` (Bellemare et al. 2017, Algorithm 1; CleanRL ``c51.py``).

    Each atom, clipped to ``[support[0], support[-1]]``, splits its mass between its two
    neighbouring support atoms in proportion to closeness:
    ``m_j = sum_i p_i * clip(1 - |b_i - j|, 0, 1)`` with ``b_i = (z_i - v_min) / dz``, which is
    CleanRL's ``(u - b)`` / ``(b - l)`` scatter, an atom landing exactly on ``j`` giving all
    its mass to ``j``.

    Args:
      z_t: target atoms ``[Z']`` (e.g. ``r + gamma^n (1 - d) z``).
      p_t: their probabilities ``[Z']``.
      support: the evenly spaced support ``[Z]``.

    Returns:
      Probabilities ``[Z]`` on ``support``, summing to ``sum(p_t)``.
    """
    chex.assert_rank([z_t, p_t, support], 1)
    chex.assert_equal_shape([z_t, p_t])
    v_min, v_max = support[0], support[-1]
    dz = (v_max - v_min) / (support.shape[0] - 1)
    b = (jnp.clip(z_t, v_min, v_max) - v_min) / dz
    j = jnp.arange(support.shape[0], dtype=b.dtype)
    weight = jnp.clip(1.0 - jnp.abs(b[:, None] - j[None, :]), 0.0, 1.0)
    return (p_t[:, None] * weight).sum(0)
