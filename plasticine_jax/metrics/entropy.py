"""Policy entropies (a policy that stops exploring is a common symptom of plasticity loss).

References:
    Plasticine, arXiv 2504.17490 (policy entropy is logged for every agent).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array

_HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)


def categorical_entropy(logits: Array) -> Array:
    """Mean entropy of categorical distributions given by logits.

    ``H = -sum_a p_a log p_a`` with ``p = softmax(logits)`` and ``0 log 0 = 0`` (so masked
    ``-inf`` logits are allowed), averaged over every leading axis.

    Args:
        logits: ``[B, n]``.

    Returns:
        float32 scalar; ``log n`` for uniform logits.
    """
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    p = jnp.exp(log_p)
    plogp = jnp.where(p > 0, p * jnp.where(p > 0, log_p, 0.0), 0.0)
    return jnp.mean(-jnp.sum(plogp, axis=-1))


def gaussian_entropy(log_std: Array) -> Array:
    """Entropy of a diagonal Gaussian: ``sum_i (0.5 log(2 pi e) + log sigma_i)``.

    The sum runs over every axis of ``log_std`` (all are action dims); vmap for a batch.

    Args:
        log_std: ``[*A]`` log standard deviations.

    Returns:
        float32 scalar.
    """
    return jnp.sum(_HALF_LOG_2PI_E + log_std.astype(jnp.float32))
