"""Build a batched ``Environment`` from its static config, and list the named ones.

``make_env`` checks that the backend's optional extra is installed *before* importing or
compiling anything, and raises ``MissingExtraError`` naming the ``pip install`` line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from plasticine_jax.envs.continual import check_no_unknown, schedule_from_options
from plasticine_jax.envs.core import Environment
from plasticine_jax.envs.normalize import normalize_env

if TYPE_CHECKING:
    from plasticine_jax.config.schema import NormalizeConfig

BACKENDS = ("gymnax", "craftax", "brax", "envpool")
SCENARIOS = (
    "none",
    "permuted_obs",
    "game_sequence",
    "dynamics_shift",
    "procgen_levels",
    "dmc_sequence",
)
# backend -> (extra name, modules it needs)
_EXTRAS = {
    "craftax": ("craftax", ("craftax",)),
    "brax": ("brax", ("brax",)),
    "envpool": ("envpool", ("envpool",)),
}
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "envs"


class MissingExtraError(ImportError):
    """An environment backend whose optional dependency is not installed."""


def extra_of(backend: str) -> str:
    """The optional extra ``backend`` needs (``pip install 'plasticine-jax[<extra>]'``), or
    ``""`` for a backend that ships with the core install (gymnax)."""
    return _EXTRAS[backend][0] if backend in _EXTRAS else ""


def _extra_installed(backend: str) -> bool:
    if backend not in _EXTRAS:
        return True
    _, modules = _EXTRAS[backend]
    return all(importlib.util.find_spec(m) is not None for m in modules)


def require_backend(backend: str) -> None:
    """Raises ``MissingExtraError`` with the install command if ``backend`` is missing."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown env backend {backend!r}; choose one of {list(BACKENDS)}")
    if not _extra_installed(backend):
        from plasticine_jax.system import QT5_PACKAGES, install_hint

        extra, modules = _EXTRAS[backend]
        hint = ""
        if backend == "envpool":
            hint = (
                " Procgen through envpool also needs Debian's Qt 5 runtime: "
                f"`apt-get install -y {' '.join(QT5_PACKAGES)}`."
            )
        raise MissingExtraError(
            f"the {backend!r} environment backend needs {', '.join(modules)}, which is not "
            f"installed: run {install_hint(extra)}.{hint}"
        )


def _make_base(backend: str, env_id: str, num_envs: int, options: dict[str, Any]):
    if backend == "gymnax":
        from plasticine_jax.envs.gymnax_env import GymnaxEnv

        return GymnaxEnv(env_id, num_envs, **options)
    if backend == "craftax":
        from plasticine_jax.envs.craftax_env import CraftaxEnv

        return CraftaxEnv(env_id, num_envs, **options)
    if backend == "brax":
        from plasticine_jax.envs.brax_env import BraxEnv

        return BraxEnv(env_id, num_envs, **options)
    from plasticine_jax.envs.envpool_env import EnvpoolEnv

    return EnvpoolEnv(env_id, num_envs, **options)


def _permuted_obs(backend, env_id, num_envs, options, sopts) -> Environment:
    from plasticine_jax.envs.permuted import PermutedObs

    schedule = schedule_from_options(sopts, 10, num_envs)
    kwargs = {k: sopts.pop(k) for k in ("seed", "mode", "patch_size") if k in sopts}
    check_no_unknown(sopts, "permuted_obs")
    return PermutedObs(_make_base(backend, env_id, num_envs, options), schedule, **kwargs)


def _game_sequence(backend, env_id, num_envs, options, sopts) -> Environment:
    from plasticine_jax.envs.game_sequence import MINATAR_GAMES, MinAtarGameSequence

    if backend != "gymnax":
        raise ValueError("scenario 'game_sequence' runs on the gymnax backend (MinAtar games)")
    if options:
        raise ValueError(f"game_sequence takes no env options, got {sorted(options)}")
    games = tuple(sopts.pop("games", MINATAR_GAMES))
    schedule = schedule_from_options(sopts, len(games), num_envs)
    channels = sopts.pop("channels", "padded")
    check_no_unknown(sopts, "game_sequence")
    return MinAtarGameSequence(games, num_envs, schedule, channels)


def _dynamics_shift(backend, env_id, num_envs, options, sopts) -> Environment:
    if backend != "brax":
        raise ValueError("scenario 'dynamics_shift' runs on the brax backend")
    from plasticine_jax.envs.dynamics_shift import DynamicsShift

    friction = tuple(float(x) for x in sopts.pop("friction", (1.0,)))
    mass = tuple(float(x) for x in sopts.pop("mass", (1.0,)))
    schedule = schedule_from_options(sopts, max(len(friction), len(mass)), num_envs)
    reset_on_switch = bool(sopts.pop("reset_on_switch", False))
    check_no_unknown(sopts, "dynamics_shift")
    base = _make_base(backend, env_id, num_envs, options)
    return DynamicsShift(base, schedule, friction, mass, reset_on_switch)


def _envpool_tasks(scenario: str) -> Callable[..., Environment]:
    def build(backend, env_id, num_envs, options, sopts) -> Environment:
        if backend != "envpool":
            raise ValueError(f"scenario {scenario!r} runs on the envpool backend")
        from plasticine_jax.envs.envpool_env import make_envpool_sequence

        return make_envpool_sequence(scenario, env_id, num_envs, options, sopts)

    return build


_SCENARIO_BUILDERS: dict[str, Callable[..., Environment]] = {
    "permuted_obs": _permuted_obs,
    "game_sequence": _game_sequence,
    "dynamics_shift": _dynamics_shift,
    "procgen_levels": _envpool_tasks("procgen_levels"),
    "dmc_sequence": _envpool_tasks("dmc_sequence"),
}


def make_env(
    backend: str,
    env_id: str,
    num_envs: int,
    options: Mapping[str, Any] | None = None,
    scenario: str = "none",
    scenario_options: Mapping[str, Any] | None = None,
    normalize: NormalizeConfig | None = None,
) -> Environment:
    """Returns ``num_envs`` copies of ``env_id`` from ``backend``, wrapped by ``scenario``,
    then by the observation / reward normalisation ``normalize`` asks for.

    Args:
      backend: one of ``BACKENDS``.
      env_id: the backend's id (``"CartPole-v1"``, ``"Craftax-Symbolic-v1"``, ``"ant"``,
        ``"Pong-v5"``).
      num_envs: batch size (per agent seed).
      options: backend options (see each adapter's docstring).
      scenario: one of ``SCENARIOS``.
      scenario_options: the scenario's options; ``steps_per_task`` is required for all but
        ``"none"``. Unknown keys are an error.
      normalize: running-statistics normalisation (``envs.normalize``); None or all off for
        none. It wraps the scenario, so the scenario's tasks are what it normalises.

    Raises:
      MissingExtraError: the backend's extra is not installed (before anything compiles).
      ValueError: unknown backend, scenario or option.
    """
    require_backend(backend)
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    options = dict(options or {})
    sopts = dict(scenario_options or {})
    if scenario == "none":
        check_no_unknown(sopts, "none")
        env = _make_base(backend, env_id, num_envs, options)
    elif scenario not in _SCENARIO_BUILDERS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {list(SCENARIOS)}")
    else:
        env = _SCENARIO_BUILDERS[scenario](backend, env_id, num_envs, options, sopts)
    return normalize_env(env, normalize)


class EnvEntry(NamedTuple):
    """One named environment from ``configs/envs/*.yaml``."""

    name: str
    backend: str
    env_id: str
    scenario: str
    installed: bool  # whether the backend's extra is importable here
    path: str
    extra: str = ""  # the optional extra the backend needs; "" for the core install


def list_envs(config_dir: str | Path | None = None) -> list[EnvEntry]:
    """Lists the named environments (one YAML each), sorted by name.

    Args:
      config_dir: directory of ``*.yaml`` files with a top-level ``env:`` mapping; defaults
        to the repository's ``configs/envs``.
    """
    import yaml

    root = Path(config_dir) if config_dir is not None else CONFIG_DIR
    entries = []
    for path in sorted(root.glob("*.yaml")):
        with open(path) as f:
            env = (yaml.safe_load(f) or {}).get("env")
        if not isinstance(env, dict) or "backend" not in env or "id" not in env:
            raise ValueError(f"{path}: expected a top-level 'env:' mapping with backend and id")
        backend = str(env["backend"])
        entries.append(
            EnvEntry(
                name=path.stem,
                backend=backend,
                env_id=str(env["id"]),
                scenario=str(env.get("scenario", "none")),
                installed=backend in BACKENDS and _extra_installed(backend),
                path=str(path),
                extra=extra_of(backend),
            )
        )
    return entries
