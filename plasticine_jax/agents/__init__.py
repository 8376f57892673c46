"""The agents, one family behind one contract (``agents.common.Agent``).

``AGENTS`` maps ``agent.name`` to the agent's class, imported on first use; every agent
class takes ``(cfg, env, methods, eval_env)``.
"""

from __future__ import annotations

import importlib
from typing import Any

AGENTS = {
    "ppo": ("plasticine_jax.agents.ppo", "PPO"),
    "dqn": ("plasticine_jax.agents.dqn", "DQN"),
    "c51": ("plasticine_jax.agents.dqn", "C51"),
    "pqn": ("plasticine_jax.agents.pqn", "PQN"),
    "sac": ("plasticine_jax.agents.offpolicy", "SAC"),
    "td3": ("plasticine_jax.agents.offpolicy", "TD3"),
}

DESCRIPTIONS = {
    "ppo": "PPO (Schulman et al. 2017; CleanRL/Plasticine), discrete and continuous actions",
    "dqn": "DQN (Mnih et al. 2015; CleanRL), replay, double and dueling options, n-step",
    "c51": "C51 (Bellemare et al. 2017; CleanRL/Plasticine), categorical DQN",
    "pqn": "PQN (Gallici et al. 2024; purejaxql), Q(lambda) without replay or target",
    "sac": "SAC (Haarnoja et al. 2018; CleanRL), twin critics, auto temperature, discrete option",
    "td3": "TD3 (Fujimoto et al. 2018; CleanRL), twin critics, target smoothing, delayed actor",
}


def agent_class(name: str) -> Any:
    """The class of agent ``name`` (a key of ``AGENTS``)."""
    module, cls = AGENTS[name]
    return getattr(importlib.import_module(module), cls)


def make_agent(cfg: Any, env: Any, methods: Any = (), eval_env: Any = None) -> Any:
    """The agent ``cfg.agent.name`` built for ``env`` and ``methods``."""
    return agent_class(cfg.agent.name)(cfg, env, methods, eval_env)
