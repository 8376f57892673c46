"""Plasticity metrics: pure, jit- and vmap-safe functions over features, activations,
parameters and gradients. Each docstring states its formula and source.

``METRICS`` maps each scalar metric to a one-line description (``python -m
plasticine_jax.metrics`` prints it; the ``list`` CLI command reads it).
"""

from plasticine_jax.metrics.activity import ACTIVE_RULES, active_fraction, fraction_active_units
from plasticine_jax.metrics.dormant import dormant_mask, dormant_ratio, dormant_scores
from plasticine_jax.metrics.entropy import categorical_entropy, gaussian_entropy
from plasticine_jax.metrics.plasticity import plasticity_metrics
from plasticine_jax.metrics.rank import effective_rank, stable_rank
from plasticine_jax.metrics.stats import (
    feature_norm,
    feature_variance,
    global_norm,
    weight_change,
    weight_magnitude,
)

METRICS: dict[str, str] = {
    "dormant_ratio": "fraction of units whose normalised mean |activation| is <= tau "
    "(Sokar et al. 2023), mean over layers",
    "active_fraction": "fraction of feature entries not dead/saturated, rule per activation",
    "fraction_active_units": "FAU: fraction of active units over all hidden layers of a "
    "network together, as the neuroplastic-expansion reference logs it (SAC, TD3: "
    "actor/fau, critic/fau)",
    "stable_rank": "singular directions covering 99% of the spectrum (Kumar et al. 2021)",
    "effective_rank": "exp of the entropy of normalised singular values (Roy & Vetterli 2007)",
    "feature_norm": "mean over the batch of the L2 norm of each feature vector",
    "feature_variance": "mean over the batch of each sample's variance over its features "
    "(ddof 1, Plasticine); or, with metrics.feature_variance_over=batch, mean over dims of "
    "the variance over the batch",
    "weight_magnitude": "root mean square of all parameter entries",
    "weight_change": "root mean square of the parameter change over an update",
    "global_norm": "L2 norm over all leaves (gradient norm)",
    "categorical_entropy": "mean entropy of a categorical policy",
    "gaussian_entropy": "entropy of a diagonal Gaussian policy",
}

__all__ = [
    "ACTIVE_RULES",
    "METRICS",
    "active_fraction",
    "categorical_entropy",
    "dormant_mask",
    "dormant_ratio",
    "dormant_scores",
    "effective_rank",
    "feature_norm",
    "feature_variance",
    "fraction_active_units",
    "gaussian_entropy",
    "global_norm",
    "plasticity_metrics",
    "stable_rank",
    "weight_change",
    "weight_magnitude",
]
