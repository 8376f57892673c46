"""Typed configuration: YAML at the edge, dataclasses everywhere else."""

from plasticine_jax.config.load import (
    ConfigError,
    chunk_updates,
    load_config,
    num_updates,
    to_dict,
)
from plasticine_jax.config.schema import (
    AgentConfig,
    EnvConfig,
    ExperimentConfig,
    MethodConfig,
    MetricsConfig,
    NetworkConfig,
    PPOHyperparams,
    RunConfig,
    WandbConfig,
)

__all__ = [
    "AgentConfig",
    "ConfigError",
    "EnvConfig",
    "ExperimentConfig",
    "MethodConfig",
    "MetricsConfig",
    "NetworkConfig",
    "PPOHyperparams",
    "RunConfig",
    "WandbConfig",
    "chunk_updates",
    "load_config",
    "num_updates",
    "to_dict",
]
