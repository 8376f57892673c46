"""All plasticity metrics for one probe batch, as a flat dict of float32 scalars."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from plasticine_jax.metrics.activity import active_fraction
from plasticine_jax.metrics.dormant import dormant_ratio
from plasticine_jax.metrics.rank import (
    effective_rank_of_spectrum,
    singular_values,
    stable_rank_of_spectrum,
)
from plasticine_jax.metrics.stats import (
    feature_norm,
    feature_variance,
    weight_change,
    weight_magnitude,
)

Array = jax.Array


def plasticity_metrics(
    *,
    activations: Mapping[str, Array],
    features: Mapping[str, Array],
    params: Any,
    params_before: Any,
    activation: str,
    tau: float | Array,
    rank_threshold: float = 0.99,
    squared_rank: bool = False,
    variance_over: str = "features",
) -> dict[str, Array]:
    """Dormant ratio, feature and weight statistics in one flat dict.

    Keys: ``dormant_ratio``; ``dormant/<layer>`` for each layer of ``activations``; for each
    key ``k`` of ``features``: ``active_fraction/<k>``, ``stable_rank/<k>``,
    ``effective_rank/<k>``, ``feature_norm/<k>``, ``feature_variance/<k>``; and
    ``weight_magnitude``, ``weight_change`` (``params_before`` -> ``params``). Every value
    is a float32 scalar, so the dict stacks in a ``lax.scan``.

    Args:
        activations: layer name -> ``[B, units]`` or ``[B, H, W, units]``.
        features: e.g. ``{"actor": [B, D], "critic": [B, D]}`` or ``{"shared": [B, D]}``.
        params: current parameters (pytree).
        params_before: parameters before the update (same structure).
        activation: the network's activation name (static), see ``active_fraction``.
        tau: dormant threshold, float or traced.
        rank_threshold: ``stable_rank`` threshold.
        squared_rank: ``stable_rank`` on squared singular values (static).
        variance_over: ``feature_variance`` convention, ``"features"`` (Plasticine's) or
            ``"batch"`` (static).

    Returns:
        dict of float32 scalars.

    References:
        Plasticine, arXiv 2504.17490.
    """
    ratio, per_layer = dormant_ratio(activations, tau)
    out: dict[str, Array] = {"dormant_ratio": ratio}
    out.update({f"dormant/{name}": value for name, value in per_layer.items()})
    for k, f in features.items():
        out[f"active_fraction/{k}"] = active_fraction(f, activation)
        spectrum = singular_values(f)  # one SVD for both rank measures
        out[f"stable_rank/{k}"] = stable_rank_of_spectrum(spectrum, rank_threshold, squared_rank)
        out[f"effective_rank/{k}"] = effective_rank_of_spectrum(spectrum)
        out[f"feature_norm/{k}"] = feature_norm(f)
        out[f"feature_variance/{k}"] = feature_variance(f, variance_over)
    out["weight_magnitude"] = weight_magnitude(params)
    out["weight_change"] = weight_change(params_before, params)
    return {k: jnp.asarray(v, jnp.float32) for k, v in out.items()}
