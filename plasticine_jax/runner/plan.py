"""The plan: a grid of (settings × seeds) split into compile groups.

Every grid point is resolved into a full ``ExperimentConfig``. Points whose *static* part
agrees share one program: their traced hyperparameters (``agent.hp.*`` and each method's
``hp``) are stacked along one member axis together with the seeds. A sweep over a static
key (a width, an env id, the method list) yields one group per distinct value.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from plasticine_jax.config.load import ConfigError, apply_override, from_dict, to_dict, validate
from plasticine_jax.config.schema import ExperimentConfig
from plasticine_jax.methods.base import Method
from plasticine_jax.methods.registry import make_method


@dataclasses.dataclass(frozen=True)
class Member:
    """One vmapped lane: a hyperparameter setting and a seed."""

    index: int
    setting: int
    seed: int
    values: dict[str, Any]


@dataclasses.dataclass
class CompileGroup:
    """Members that share one static structure, hence one compiled program."""

    index: int
    cfg: ExperimentConfig
    methods: tuple[Method, ...]
    members: list[Member]
    hp: dict[str, Any]  # traced pytree, leaves float32 [num_members]


def build_methods(cfg: ExperimentConfig) -> tuple[Method, ...]:
    """Instantiates the configured methods, checking hyperparameter names and conflicts."""
    methods = []
    for i, mc in enumerate(cfg.methods):
        try:
            m = make_method(mc.name, mc.options)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"methods.{i} ({mc.name}): {e}") from None
        unknown = set(mc.hp) - set(m.hp)
        if unknown:
            raise ConfigError(
                f"methods.{i}.hp: unknown hyperparameter(s) {sorted(unknown)} for method "
                f"{mc.name!r}; it has {sorted(m.hp)}"
            )
        methods.append(m)
    for a in methods:
        for b in methods:
            if b.name in a.conflicts:
                raise ConfigError(
                    f"methods {a.name!r} and {b.name!r} cannot be combined; remove one of them"
                )
    return tuple(methods)


def traced_hp(cfg: ExperimentConfig, methods: Sequence[Method]) -> dict[str, Any]:
    """The traced hyperparameters of one grid point, as a float32 pytree."""
    agent = {k: float(v) for k, v in dataclasses.asdict(cfg.agent.hp).items()}
    per_method = {}
    for m, mc in zip(methods, cfg.methods, strict=True):
        per_method[m.name] = {k: float(mc.hp.get(k, v)) for k, v in m.hp.items()}
    return {"agent": agent, "methods": per_method}


def static_signature(cfg: ExperimentConfig) -> str:
    """Everything that decides the program: the config without traced values, seeds or sweep."""
    d = to_dict(cfg)
    d.pop("sweep")
    d["agent"].pop("hp")
    d["run"] = {k: d["run"][k] for k in ("total_timesteps", "chunk_updates")}
    d.pop("wandb")
    d.pop("name")
    for m in d["methods"]:
        m.pop("hp")
    return json.dumps(d, sort_keys=True, default=str)


def grid_points(cfg: ExperimentConfig) -> list[tuple[dict[str, Any], ExperimentConfig]]:
    """The sweep's cartesian product, each point resolved into a validated config."""
    keys = list(cfg.sweep)
    base = to_dict(cfg)
    base["sweep"] = {}
    points = []
    for combo in itertools.product(*(cfg.sweep[k] for k in keys)):
        data = base
        for k, v in zip(keys, combo, strict=True):
            data = apply_override(data, k.split("."), v)
        point = from_dict(ExperimentConfig, data)
        validate(point)
        points.append((dict(zip(keys, combo, strict=True)), point))
    return points


def plan(cfg: ExperimentConfig) -> list[CompileGroup]:
    """Splits ``cfg``'s sweep × seeds into compile groups (validated, nothing compiled)."""
    groups: dict[str, CompileGroup] = {}
    setting_hps: dict[str, list[dict]] = {}
    for setting, (values, point) in enumerate(grid_points(cfg)):
        methods = build_methods(point)
        sig = static_signature(point)
        if sig not in groups:
            groups[sig] = CompileGroup(len(groups), point, methods, [], {})
            setting_hps[sig] = []
        g = groups[sig]
        hp = traced_hp(point, methods)
        for s in range(cfg.run.num_seeds):
            g.members.append(Member(len(g.members), setting, cfg.run.seed + s, values))
            setting_hps[sig].append(hp)
    for sig, g in groups.items():
        g.hp = jax.tree.map(lambda *xs: jnp.asarray(xs, jnp.float32), *setting_hps[sig])
    return list(groups.values())
