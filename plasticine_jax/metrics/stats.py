"""Feature, weight and gradient statistics.

References:
    Plasticine, arXiv 2504.17490 (feature norm, feature variance, weight magnitude, weight
    change, gradient norm). Lyle et al. "Disentangling the causes of plasticity loss in
    neural networks." arXiv 2402.18762 (parameter and feature norm growth).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array


def feature_norm(features: Array) -> Array:
    """Mean over the batch of each row's L2 norm: ``mean_b ||f_b||_2``.

    Args:
        features: ``[B, D]``.

    Returns:
        float32 scalar.
    """
    f = features.astype(jnp.float32)
    return jnp.mean(jnp.linalg.norm(f, axis=-1))


VARIANCE_OVER = ("features", "batch")


def feature_variance(features: Array, over: str = "features") -> Array:
    """Feature variance, in one of two conventions that give different numbers.

    * ``over="features"`` (default, Plasticine's ``compute_feature_variance``): the unbiased
      variance of each sample's ``D`` features, averaged over the batch,
      ``mean_b (1/(D-1)) sum_d (f_bd - mean_d f_bd)^2`` (``torch.var(f, dim=1)``, ddof 1).
      It is 0 when every sample's features are equal to each other (a constant vector),
      even if samples differ. ``D = 1`` gives 0 rather than NaN.
    * ``over="batch"``: the population variance of each feature dim over the batch,
      averaged over dims, ``mean_d (1/B) sum_b (f_bd - mean_b f_bd)^2`` (ddof 0). It is 0
      for collapsed features, where every input maps to the same vector.

    Args:
        features: ``[B, D]``.
        over: ``"features"`` or ``"batch"`` (static).

    Returns:
        float32 scalar.

    References:
        Plasticine, arXiv 2504.17490; code ``plasticine/metrics.py`` (2025 tree), kept
        commented out in ``plasticine_metrics/metrics.py`` of the current tree.
    """
    if over not in VARIANCE_OVER:
        raise ValueError(f"feature_variance: over must be one of {VARIANCE_OVER}, got {over!r}")
    f = features.astype(jnp.float32)
    if over == "batch":
        return jnp.mean(jnp.var(f, axis=0))
    ddof = 1 if f.shape[-1] > 1 else 0
    return jnp.mean(jnp.var(f, axis=-1, ddof=ddof))


def _sum_squares_and_count(tree: Any) -> tuple[Array, int]:
    leaves = jax.tree.leaves(tree)
    total = sum(
        (jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))) for x in leaves),
        start=jnp.zeros((), jnp.float32),
    )
    return total, sum(int(jnp.size(x)) for x in leaves)


def weight_magnitude(params: Any) -> Array:
    """Root mean square of every parameter entry: ``sqrt(sum_j w_j^2 / N)``.

    ``N`` counts elements over the whole pytree, so large kernels weigh more than biases. An
    empty pytree gives 0.

    Args:
        params: pytree of arrays.

    Returns:
        float32 scalar.
    """
    total, count = _sum_squares_and_count(params)
    return jnp.sqrt(total / max(count, 1))


def weight_change(params_before: Any, params_after: Any) -> Array:
    """Root mean square of the elementwise difference: ``sqrt(sum_j (w'_j - w_j)^2 / N)``.

    Args:
        params_before: pytree of arrays.
        params_after: pytree with the same structure and shapes.

    Returns:
        float32 scalar.
    """
    diff = jax.tree.map(
        lambda a, b: jnp.asarray(b, jnp.float32) - jnp.asarray(a, jnp.float32),
        params_before,
        params_after,
    )
    return weight_magnitude(diff)


def global_norm(tree: Any) -> Array:
    """L2 norm of all leaves taken as one vector: ``sqrt(sum_j g_j^2)``.

    Used for the gradient norm; the caller averages it over minibatches.

    Args:
        tree: pytree of arrays.

    Returns:
        float32 scalar.
    """
    total, _ = _sum_squares_and_count(tree)
    return jnp.sqrt(total)
