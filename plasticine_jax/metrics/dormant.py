"""Dormant units: units whose normalised mean activation is at or below a threshold.

References:
    Sokar, Agarwal, Castro, Evci. "The Dormant Neuron Phenomenon in Deep Reinforcement
    Learning." ICML 2023, arXiv 2302.12902 (the tau-dormant definition, ReDo).
    Plasticine, arXiv 2504.17490 (reports the ratio of dormant units with the same score).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

Array = jax.Array

# Added to the layer's mean score so an all-zero layer gives scores of 0, not NaN.
SCORE_EPS = 1e-9
# With tau == 0 a unit is dormant when its score is zero up to this tolerance.
ZERO_TOL = 1e-9


def dormant_scores(activation: Array) -> Array:
    """Normalised activity score of each unit of one layer.

    ``s_i = mean_x |a_i(x)| / (mean_k mean_x |a_k(x)| + 1e-9)``, where the mean over ``x``
    runs over the batch and, for convolutional layers, over the spatial positions (a channel
    is one unit). A layer whose units are all equally active scores 1 everywhere; an all-zero
    layer scores 0 everywhere.

    Args:
        activation: ``[B, units]`` or ``[B, H, W, units]``: a layer's post-activation output,
            units on the last axis.

    Returns:
        ``[units]`` float32 scores.

    References:
        Sokar et al. 2023, arXiv 2302.12902, Definition 3.1; Plasticine, arXiv 2504.17490.
    """
    if activation.ndim < 2:
        raise ValueError(
            f"activation must be [B, ..., units] with a batch axis, got shape {activation.shape}"
        )
    a = jnp.abs(activation.astype(jnp.float32))
    per_unit = jnp.mean(a, axis=tuple(range(a.ndim - 1)))
    return per_unit / (jnp.mean(per_unit) + SCORE_EPS)


def dormant_mask(activation: Array, tau: float | Array) -> Array:
    """Which units of one layer are tau-dormant.

    A unit is dormant when ``s_i <= tau`` (``s_i`` from ``dormant_scores``). With
    ``tau == 0`` this means ``s_i <= 1e-9``, i.e. the unit is exactly silent on the batch up
    to float error. Both cases are one expression, ``s_i <= max(tau, 1e-9)``, so ``tau`` may
    be traced (no Python branch on its value).

    Args:
        activation: ``[B, units]`` or ``[B, H, W, units]``.
        tau: threshold, a Python float or a traced scalar.

    Returns:
        ``[units]`` bool mask, True where the unit is dormant.

    References:
        Sokar et al. 2023, arXiv 2302.12902; Plasticine, arXiv 2504.17490.
    """
    tau = jnp.asarray(tau, jnp.float32)
    return dormant_scores(activation) <= jnp.maximum(tau, ZERO_TOL)


def dormant_ratio(
    activations: Mapping[str, Array], tau: float | Array = 0.025
) -> tuple[Array, dict[str, Array]]:
    """Fraction of tau-dormant units, per layer and averaged over layers.

    ``ratio_l = mean_i [s_i^l <= tau]`` for each layer ``l``; the overall ratio is the
    unweighted mean of ``ratio_l`` over layers (each layer counts once, whatever its width).
    An empty mapping gives 0.

    Args:
        activations: layer name -> ``[B, units]`` or ``[B, H, W, units]``.
        tau: threshold (Plasticine's default is 0.025), float or traced scalar.

    Returns:
        ``(ratio, {layer: ratio_l})``, float32 scalars.

    References:
        Sokar et al. 2023, arXiv 2302.12902; Plasticine, arXiv 2504.17490.
    """
    per_layer = {
        name: jnp.mean(dormant_mask(a, tau).astype(jnp.float32)) for name, a in activations.items()
    }
    if not per_layer:
        return jnp.zeros((), jnp.float32), per_layer
    return jnp.mean(jnp.stack(list(per_layer.values()))), per_layer
