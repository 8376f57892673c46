"""What ``plasticine-jax list`` prints: every registered name, from the registries."""

from __future__ import annotations


def _envs() -> list[str]:
    """One line per named environment (``configs/envs/*.yaml``): name, backend and id, the
    continual scenario, and the optional extra it needs with whether it is installed."""
    from plasticine_jax.envs.registry import list_envs

    entries = list_envs()
    width = max((len(e.name) for e in entries), default=0)
    lines = []
    for e in entries:
        what = f"{e.backend} {e.env_id}"
        if e.scenario != "none":
            what += f" + {e.scenario}"
        if not e.extra:
            status = "core install"
        elif e.installed:
            status = f"extra [{e.extra}], installed"
        else:
            status = f"extra [{e.extra}], NOT installed: pip install 'plasticine-jax[{e.extra}]'"
        lines.append(f"{e.name:<{width}}  {what}  ({status})")
    return lines


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
