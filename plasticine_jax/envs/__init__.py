"""Environments: one batched protocol over gymnax, Craftax, Brax and envpool, plus continual
scenarios. Backends import lazily, so importing this package needs none of the extras."""

from plasticine_jax.envs.core import (
    ContinuousActions,
    DiscreteActions,
    Environment,
    EnvSpec,
    EpisodeStats,
    StepInfo,
    Wrapper,
)
from plasticine_jax.envs.craftax_score import achievement_success_rates, craftax_score
from plasticine_jax.envs.registry import (
    BACKENDS,
    SCENARIOS,
    EnvEntry,
    MissingExtraError,
    list_envs,
    make_env,
)

__all__ = [
    "BACKENDS",
    "SCENARIOS",
    "ContinuousActions",
    "DiscreteActions",
    "EnvEntry",
    "EnvSpec",
    "Environment",
    "EpisodeStats",
    "MissingExtraError",
    "StepInfo",
    "Wrapper",
    "achievement_success_rates",
    "craftax_score",
    "list_envs",
    "make_env",
]
