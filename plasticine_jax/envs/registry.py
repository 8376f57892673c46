"""Build a batched ``Environment`` from its static config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plasticine_jax.envs.core import Environment

BACKENDS = ("gymnax",)


def make_env(
    backend: str,
    env_id: str,
    num_envs: int,
    options: Mapping[str, Any] | None = None,
    scenario: str = "none",
    scenario_options: Mapping[str, Any] | None = None,
) -> Environment:
    """Returns ``num_envs`` copies of ``env_id`` from ``backend``, wrapped by ``scenario``."""
    options = dict(options or {})
    if backend == "gymnax":
        from plasticine_jax.envs.gymnax_env import GymnaxEnv

        env = GymnaxEnv(env_id, num_envs, **options)
    else:
        raise ValueError(f"unknown env backend {backend!r}; choose one of {list(BACKENDS)}")
    if scenario != "none":
        raise ValueError(f"unknown scenario {scenario!r}; choose 'none'")
    return env
