"""Checks an ``env`` config section before anything is built or compiled.

``check_env`` names the bad key, the bad value and what is allowed, with a did-you-mean:
an unknown backend or scenario, a scenario on the wrong backend, an unknown scenario option,
a scenario option value of the wrong type or range, a missing ``steps_per_task``, a backend
whose extra is not installed, an env id the backend does not have (and, where another
backend has it, which one), unknown MinAtar games of a game sequence, a gymnax
``EnvParams`` option of the wrong type. Other env ``options`` are checked by each adapter
when it is built (``runner.loop.build_programs`` turns those errors into config errors,
still before any compile).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
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
INT32_MAX = 2**31 - 1
FLOAT32_MAX = 3.4028234663852886e38
MAX_TASKS = 10_000  # tables (permutations, level sets, task ids) are built per task up front
# option -> (kind, bounds or choices); ``check_env`` checks every value given.
OPTION_VALUES: dict[str, tuple[str, Any]] = {
    "num_tasks": ("int", (1, MAX_TASKS)),
    "steps_per_task": ("int", (1, INT32_MAX)),
    "seed": ("int", (0, None)),
    "patch_size": ("int", (1, INT32_MAX)),
    "start_level": ("int", (0, INT32_MAX)),
    "level_stride": ("int", (0, INT32_MAX)),
    "num_levels": ("int", (0, INT32_MAX)),
    "mode": ("choice", ("features", "pixels")),
    "channels": ("choice", ("padded", "disjoint")),
    "reset_on_switch": ("bool", None),
    "friction": ("multipliers", None),
    "mass": ("multipliers", None),
    "games": ("names", None),
    "tasks": ("tasks", None),
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
        from plasticine_jax.envs.gymnax_import import import_gymnax

        gymnax = import_gymnax()

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


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_positive_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def check_option_value(key: str, value: Any) -> None:
    """Raises ``EnvConfigError`` for a scenario option value of the wrong type or range."""
    kind, spec = OPTION_VALUES[key]
    where = f"env.scenario_options.{key}"
    if kind == "int":
        lo, hi = spec
        if not _is_int(value):
            raise EnvConfigError(f"{where}: expected an integer, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            raise EnvConfigError(
                f"{where}={value!r} is out of range; allowed: [{lo}, {hi or 'inf'}]"
            )
    elif kind == "choice" and value not in spec:
        raise EnvConfigError(
            f"{where}={value!r} is not allowed{did_you_mean(value, spec)}; choose one of "
            f"{list(spec)}"
        )
    elif kind == "bool" and not isinstance(value, bool):
        raise EnvConfigError(f"{where}: expected true or false, got {value!r}")
    elif kind == "multipliers" and (
        not isinstance(value, list) or not value or not all(map(_is_positive_number, value))
    ):
        raise EnvConfigError(
            f"{where}: expected a non-empty list of positive multipliers (task k uses item "
            f"k mod its length), got {value!r}"
        )
    elif kind == "names" and (
        not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value)
    ):
        raise EnvConfigError(f"{where}: expected a non-empty list of names, got {value!r}")
    elif kind == "tasks" and not isinstance(value, str) and (
        not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value)
    ):
        raise EnvConfigError(
            f"{where}: expected a sequence name or a non-empty list of env ids, got {value!r}"
        )


@functools.cache
def _gymnax_param_types(env_id: str) -> dict[str, type]:
    """The types of a gymnax env's ``EnvParams`` fields (``max_steps_in_episode``: int)."""
    from plasticine_jax.envs.gymnax_import import import_gymnax

    gymnax = import_gymnax()

    _, params = gymnax.make(env_id)
    return {f.name: type(getattr(params, f.name)) for f in dataclasses.fields(params)}


def check_gymnax_options(env_id: str, options: dict) -> None:
    """Raises ``EnvConfigError`` for an ``EnvParams`` option of the wrong type or beyond what
    the traced params hold (int32, float32). Other options go to ``gymnax.make``, which
    refuses the ones it does not take when the env is built."""
    for key, value in options.items():
        tp = _gymnax_param_types(env_id).get(key)
        where = f"env.options.{key}"
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if tp is bool and not isinstance(value, bool):
            raise EnvConfigError(f"{where}: expected true or false, got {value!r}")
        if tp is int and not (_is_int(value) and abs(value) <= INT32_MAX):
            raise EnvConfigError(
                f"{where}: {env_id}'s {key} is an int32; expected an integer of magnitude at "
                f"most {INT32_MAX}, got {value!r}"
            )
        if tp is float and not (number and math.isfinite(value) and abs(value) <= FLOAT32_MAX):
            raise EnvConfigError(
                f"{where}: {env_id}'s {key} is a float32; expected a finite number of "
                f"magnitude at most {FLOAT32_MAX:.4g}, got {value!r}"
            )


def check_env(
    backend: str,
    env_id: str,
    scenario: str,
    scenario_options: dict,
    options: dict | None = None,
) -> None:
    """Raises ``EnvConfigError`` (or ``MissingExtraError``) for a bad env section; with
    ``options``, also a gymnax ``EnvParams`` option of the wrong type."""
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
    for key, value in scenario_options.items():
        check_option_value(key, value)
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
    if options and backend == "gymnax":
        check_gymnax_options(env_id, options)
