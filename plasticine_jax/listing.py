"""What ``plasticine-jax list`` prints: every registered name, from the registries."""

from __future__ import annotations


def _envs() -> list[str]:
    from plasticine_jax.envs import registry

    if hasattr(registry, "list_envs"):
        return [str(e) for e in registry.list_envs()]
    return [f"{b}" for b in registry.BACKENDS]


def listing() -> str:
    from plasticine_jax.methods.registry import REGISTRY
    from plasticine_jax.metrics import METRICS

    sections = {
        "environments": _envs(),
        "agents": ["ppo: PPO (CleanRL/Plasticine), discrete and continuous actions"],
        "methods": sorted(REGISTRY),
        "metrics": [f"{k}: {v}" for k, v in METRICS.items()],
    }
    out = []
    for title, items in sections.items():
        out.append(f"{title}:")
        out += [f"  {x}" for x in items] or ["  (none)"]
    return "\n".join(out)
