"""What ``plasticine-jax list`` prints: every registered name, from the registries."""

from __future__ import annotations


def _envs() -> list[str]:
    """One line per named environment (``configs/envs/*.yaml``): name, backend and id, the
    continual scenario, and the optional extra it needs with whether it is installed (and,
    for envpool's Procgen, whether the Qt 5 runtime it loads is there)."""
    from plasticine_jax import system
    from plasticine_jax.envs.registry import list_envs

    entries = list_envs()
    width = max((len(e.name) for e in entries), default=0)
    qt_missing: tuple[str, ...] | None = None  # probed once, and only if a Procgen env needs it
    lines = []
    for e in entries:
        what = f"{e.backend} {e.env_id}"
        if e.scenario != "none":
            what += f" + {e.scenario}"
        if not e.extra:
            status = "core install"
        elif not e.installed:
            status = f"extra [{e.extra}], NOT installed: {system.install_hint(e.extra)}"
        else:
            status = f"extra [{e.extra}], installed"
            if system.needs_qt5(e.backend, e.env_id, e.scenario):
                if qt_missing is None:
                    qt_missing = system.missing_qt5_libraries()
                if qt_missing:
                    status += f", NOT usable: Qt 5 runtime missing; run {system.qt5_fix()}"
        lines.append(f"{e.name:<{width}}  {what}  ({status})")
    return lines


def _agents() -> list[str]:
    """One line per agent: what it is, the networks it trains (every method applies to each
    of them) and the methods that do not apply to it."""
    from plasticine_jax.agents import AGENTS, DESCRIPTIONS, agent_class

    lines = []
    for name in AGENTS:
        cls = agent_class(name)
        not_for = cls.unsupported_methods
        methods = "every method" + (
            f" except {', '.join(sorted(not_for))}" if not_for else ""
        )
        lines.append(
            f"{name}: {DESCRIPTIONS[name]}; networks {', '.join(cls.networks)}; {methods}"
        )
    return lines


def listing() -> str:
    from plasticine_jax.methods.registry import REGISTRY
    from plasticine_jax.metrics import METRICS

    sections = {
        "environments": _envs(),
        "agents": _agents(),
        "methods": sorted(REGISTRY),
        "metrics": [f"{k}: {v}" for k, v in METRICS.items()],
    }
    out = []
    for title, items in sections.items():
        out.append(f"{title}:")
        out += [f"  {x}" for x in items] or ["  (none)"]
    return "\n".join(out)
