"""Checks an ``env`` config section before anything is built or compiled.

``check_env`` names the bad key, the bad value and what is allowed, with a did-you-mean:
an unknown backend or scenario, a scenario on the wrong backend, an unknown scenario option
or a missing ``steps_per_task``, a backend whose extra is not installed, an env id the
backend does not have (and, where another backend has it, which one), unknown MinAtar games
of a game sequence. Env ``options`` are checked by each adapter when it is built
(``runner.loop.build_programs`` turns those errors into config errors, still before any
compile).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from plasticine_jax.envs.registry import BACKENDS, SCENARIOS, MissingExtraError, require_backend

SCHEDULE_OPTIONS = ("num_tasks", "steps_per_task")
SCENARIO_OPTIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    "permuted_obs": (*SCHEDULE_OPTIONS, "seed", "mode", "patch_size"),
    "game_sequence": (*SCHEDULE_OPTIONS, "games", "channels"),
    "dynamics_shift": (*SCHEDULE_OPTIONS, "friction", "mass", "reset_on_switch"),
    "procgen_levels": (*SCHEDULE_OPTIONS, "start_level", "level_stride", "num_levels"),
    "dmc_sequence": (*SCHEDULE_OPTIONS, "tasks"),
}
SCENARIO_BACKEND = {
    "game_sequence": "gymnax",
    "dynamics_shift": "brax",
    "procgen_levels": "envpool",
    "dmc_sequence": "envpool",
}


class EnvConfigError(ValueError):
    """A bad ``env`` section (the config loader re-raises it as a ``ConfigError``)."""


def did_you_mean(value: Any, allowed: Iterable[str]) -> str:
    near = difflib.get_close_matches(str(value), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def known_ids(backend: str) -> set[str]:
    """Every env id ``backend`` can build (its extra must be installed)."""
    if backend == "gymnax":
        import gymnax

        return set(gymnax.registered_envs)
    if backend == "craftax":
        from plasticine_jax.envs.craftax_env import CRAFTAX_IDS

        return set(CRAFTAX_IDS) | set(CRAFTAX_IDS.values())
    if backend == "brax":
        from brax import envs

        return set(envs._envs)
    import envpool

    return set(envpool.list_all_envs())


def _other_backends_with(env_id: str, backend: str) -> list[str]:
    found = []
    for other in BACKENDS:
        if other == backend:
            continue
        try:
            require_backend(other)
            if env_id in known_ids(other):
                found.append(other)
        except (MissingExtraError, ImportError):
            continue
    return found


def _choices(names: Iterable[str], limit: int = 30) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all; plasticine-jax list)" if len(names) > limit
                    else "")


def check_env(backend: str, env_id: str, scenario: str, scenario_options: dict) -> None:
    """Raises ``EnvConfigError`` (or ``MissingExtraError``) for a bad env section."""
    if backend not in BACKENDS:
        raise EnvConfigError(
            f"env.backend={backend!r} is unknown{did_you_mean(backend, BACKENDS)}; choose one "
            f"of {list(BACKENDS)}"
        )
    if scenario not in SCENARIOS:
        raise EnvConfigError(
            f"env.scenario={scenario!r} is unknown{did_you_mean(scenario, SCENARIOS)}; choose "
            f"one of {list(SCENARIOS)}"
        )
    needs = SCENARIO_BACKEND.get(scenario)
    if needs and backend != needs:
        raise EnvConfigError(
            f"env.scenario={scenario!r} runs on the {needs!r} backend, not env.backend="
            f"{backend!r}; set env.backend={needs}"
        )
    allowed = SCENARIO_OPTIONS[scenario]
    for key in scenario_options:
        if key not in allowed:
            raise EnvConfigError(
                f"env.scenario_options.{key} is not an option of scenario {scenario!r}"
                f"{did_you_mean(key, allowed)}; its options are {list(allowed) or 'none'}"
            )
    if scenario != "none" and "steps_per_task" not in scenario_options:
        raise EnvConfigError(
            f"env.scenario_options.steps_per_task is required for scenario {scenario!r} "
            f"(how long each task lasts)"
        )
    require_backend(backend)
    if scenario == "game_sequence":
        from plasticine_jax.envs.game_sequence import MINATAR_GAMES

        for i, game in enumerate(scenario_options.get("games", MINATAR_GAMES)):
            if game not in MINATAR_GAMES:
                raise EnvConfigError(
                    f"env.scenario_options.games.{i}={game!r} is not a MinAtar game"
                    f"{did_you_mean(game, MINATAR_GAMES)}; choose from {list(MINATAR_GAMES)}"
                )
        return  # the games name the envs; env.id is not used
    if scenario == "dmc_sequence" and "tasks" in scenario_options:
        return  # the tasks name the envs (the adapter checks each)
    ids = known_ids(backend)
    if env_id not in ids:
        others = _other_backends_with(env_id, backend)
        where = (
            f"; backend {' and '.join(repr(o) for o in others)} has it: set env.backend="
            f"{others[0]}" if others else f"; choose one of: {_choices(ids)}"
        )
        raise EnvConfigError(
            f"env.id={env_id!r} is not a {backend} environment{did_you_mean(env_id, ids)}"
            f"{where}"
        )
