"""Fraction of active (non-saturated) feature entries, with a rule per activation.

References:
    Plasticine, arXiv 2504.17490 (active units per activation function).
    Lyle et al. "Understanding plasticity in neural networks." ICML 2023, arXiv 2303.01486
    (dead ReLU units); Lewandowski et al. 2024, arXiv 2410.20634 (deep Fourier features).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

SATURATION = 0.99  # tanh / fourier: |f| above this is saturated
SIGMOID_LOW, SIGMOID_HIGH = 0.01, 0.99


def _positive(f: Array) -> Array:
    return f > 0


def _nonzero(f: Array) -> Array:
    return f != 0


def _unsaturated(f: Array) -> Array:
    return jnp.abs(f) <= SATURATION


def _sigmoid_unsaturated(f: Array) -> Array:
    return (f >= SIGMOID_LOW) & (f <= SIGMOID_HIGH)


# activation -> elementwise "is active" predicate.
ACTIVE_RULES: dict[str, Callable[[Array], Array]] = {
    "relu": _positive,
    "crelu": _positive,
    "leaky_relu": _positive,
    "gelu": _positive,
    "silu": _positive,
    "tanh": _unsaturated,
    "fourier": _unsaturated,
    "sigmoid": _sigmoid_unsaturated,
    "identity": _nonzero,
}


def active_fraction(features: Array, activation: str) -> Array:
    """Fraction of feature entries that are active under the activation's rule.

    The mean runs over every entry (batch and feature dims):

    * ``relu``, ``crelu``: ``1 - mean(f == 0)``, computed as ``mean(f > 0)`` (equal, since
      the outputs are non-negative).
    * ``leaky_relu``, ``gelu``, ``silu``: ``mean(f > 0)``: the negative side is the
      low-gradient regime that corresponds to a dead ReLU.
    * ``tanh``: ``1 - mean(|f| > 0.99)`` (saturated units have near-zero gradient).
    * ``fourier`` (``[sin, cos]`` features): the tanh rule, ``1 - mean(|f| > 0.99)``: at
      ``|sin x| > 0.99`` its derivative ``|cos x|`` is below 0.15.
    * ``sigmoid``: ``1 - mean(f < 0.01 or f > 0.99)``.
    * ``identity``: ``1 - mean(f == 0)`` (a linear unit never saturates; only exact zeros
      count as inactive).

    Args:
        features: ``[B, D]`` post-activation features (any shape works; all entries count).
        activation: one of ``ACTIVE_RULES``; static (a Python string).

    Returns:
        float32 scalar in ``[0, 1]``.

    Raises:
        ValueError: ``activation`` has no rule.

    References:
        Plasticine, arXiv 2504.17490; Lyle et al. 2023, arXiv 2303.01486.
    """
    if activation not in ACTIVE_RULES:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVE_RULES)}")
    return jnp.mean(ACTIVE_RULES[activation](features).astype(jnp.float32))


def fraction_active_units(activations: dict[str, Array], activation: str) -> Array:
    """FAU, the fraction of active units over every hidden layer of a network together, as
    the neuroplastic-expansion reference logs it (``forward_with_FAU``: the count of entries
    ``> 0`` in all hidden layers over the batch, divided by their total number of entries).
    Layers of different widths weigh by their size, unlike the mean over layers of
    :func:`active_fraction`. ``activation`` picks the active rule (``ACTIVE_RULES``; the
    reference's ReLU: ``> 0``).

    Args:
        activations: layer name -> post-activation ``[B, ...]`` of one network.
        activation: one of ``ACTIVE_RULES`` (static).

    Returns:
        float32 scalar in ``[0, 1]`` (NaN without layers).

    References:
        Liu et al. "Neuroplastic Expansion in Deep Reinforcement Learning." ICLR 2025;
        torressliu/neuroplastic-expansion ``stl/modules_TD3.py``.
    """
    if activation not in ACTIVE_RULES:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVE_RULES)}")
    if not activations:
        return jnp.full((), jnp.nan, jnp.float32)
    rule = ACTIVE_RULES[activation]
    active = sum(jnp.sum(rule(a)).astype(jnp.float32) for a in activations.values())
    total = sum(a.size for a in activations.values())
    return active / total
