"""The plan: a grid of (settings × seeds) split into compile groups.

Every grid point is resolved into a full ``ExperimentConfig``. Points whose *static* part
agrees share one program: their traced hyperparameters (``agent.hp.*`` and each method's
``hp``) are stacked along one member axis together with the seeds. A sweep over a static
key (a width, an env id) yields one group per distinct value; a sweep over the method list
is grouped by the methods' structure (``methods.plan``): batchable methods share a program.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from plasticine_jax.config.load import (
    ConfigError,
    apply_override,
    as_float,
    check_grad_clip,
    from_dict,
    to_dict,
    validate,
)
from plasticine_jax.config.schema import ExperimentConfig, MethodConfig
from plasticine_jax.methods.base import Method
from plasticine_jax.methods.plan import group_method_lists
from plasticine_jax.methods.registry import make_method
from plasticine_jax.methods.validate import MethodConflictError, check_methods
from plasticine_jax.networks.spec import spec_from_config


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
    """Instantiates the configured methods and checks them against the network.

    Refused (``ConfigError``, before anything compiles): an unknown method or option, an
    unknown hyperparameter or a value that is not a finite float32 number, a method listed
    twice, declared conflicts, two network edits that disagree, and a method whose
    ``requires`` the final network does not meet; each message names both sides
    (``methods.validate.check_methods``).
    """
    methods = []
    for i, mc in enumerate(cfg.methods):
        try:
            m = make_method(mc.name, mc.options)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"methods.{i} ({mc.name}): {e}") from None
        unknown = set(mc.hp) - set(m.hp)
        if unknown:
            raise ConfigError(
                f"methods.{i}.hp: unknown hyperparameter(s) {sorted(unknown, key=str)} for "
                f"method {mc.name!r}; it has {sorted(m.hp)}"
            )
        for k, v in mc.hp.items():
            as_float(v, f"methods.{i}.hp.{k}")
        check_grad_clip(cfg, i, m)
        if mc.networks:
            m = dataclasses.replace(m, networks=tuple(mc.networks))
        methods.append(m)
    try:
        check_methods(methods, spec_from_config(cfg.agent.network))
    except MethodConflictError as e:
        raise ConfigError(f"methods: {e}") from None
    return tuple(methods)


def method_label(methods: Sequence[MethodConfig]) -> str:
    """A short name for a method list, e.g. ``l2(coef=0.01)+trac``; ``vanilla`` when empty."""
    if not methods:
        return "vanilla"
    parts = []
    for mc in methods:
        args = [f"{k}={v}" for k, v in sorted(mc.options.items())]
        args += [f"{k}={v}" for k, v in sorted(mc.hp.items())]
        on = f"[{','.join(mc.networks)}]" if mc.networks else ""
        parts.append(mc.name + on + (f"({','.join(args)})" if args else ""))
    return "+".join(parts)


def agent_hp(cfg: ExperimentConfig) -> dict[str, float]:
    """The agent's traced hyperparameters (``agent.hp``) of one grid point."""
    return {k: float(v) for k, v in dataclasses.asdict(cfg.agent.hp).items()}


def traced_hp(cfg: ExperimentConfig, methods: Sequence[Method]) -> dict[str, Any]:
    """The traced hyperparameters of one grid point, as a float32 pytree."""
    per_method = {}
    for m, mc in zip(methods, cfg.methods, strict=True):
        per_method[m.name] = {k: float(mc.hp.get(k, v)) for k, v in m.hp.items()}
    return {"agent": agent_hp(cfg), "methods": per_method}


def static_signature(cfg: ExperimentConfig, with_methods: bool = True) -> str:
    """Everything that decides the program: the config without traced values, seeds or sweep
    (and, with ``with_methods=False``, without the method list, which ``plan`` groups by
    structure instead)."""
    d = to_dict(cfg)
    d.pop("sweep")
    d["agent"].pop("hp")
    d["run"] = {k: d["run"][k] for k in ("total_timesteps", "chunk_updates")}
    d.pop("wandb")
    d.pop("name")
    for m in d["methods"]:
        m.pop("hp")
    if not with_methods:
        d.pop("methods")
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
    """Splits ``cfg``'s sweep × seeds into compile groups (validated, nothing compiled).

    Grid points are bucketed by everything static except their methods; within a bucket,
    ``methods.plan.group_method_lists`` merges method lists whose programs agree (methods
    that only wrap the optimizer or add a penalty, at their identity values for the members
    that lack them; network edits by the network they produce), so a sweep over vanilla,
    L2, L2-to-init, S&P, TRAC, ... is one program while CReLU or ReDo get their own.
    """
    buckets: dict[str, list[tuple[int, dict, ExperimentConfig, tuple[Method, ...]]]] = {}
    for setting, (values, point) in enumerate(grid_points(cfg)):
        methods = build_methods(point)
        if "methods" in values:
            values = {**values, "methods": method_label(point.methods)}
        sig = static_signature(point, with_methods=False)
        buckets.setdefault(sig, []).append((setting, values, point, methods))

    groups: list[CompileGroup] = []
    for entries in buckets.values():
        spec = spec_from_config(entries[0][2].agent.network)
        hps = [
            {m.name: dict(mc.hp) for m, mc in zip(methods, point.methods, strict=True)}
            for _, _, point, methods in entries
        ]
        for mg in group_method_lists([e[3] for e in entries], hps, spec):
            # The group's config: its first point with the union of the method lists.
            configs: dict[Any, MethodConfig] = {}
            for i in mg.members:
                for m, mc in zip(entries[i][3], entries[i][2].methods, strict=True):
                    configs.setdefault(m.key, dataclasses.replace(mc, hp={}))
            first = entries[mg.members[0]][2]
            group_cfg = dataclasses.replace(
                first, methods=tuple(configs[m.key] for m in mg.methods)
            )
            members, member_hps = [], []
            for i, method_hp in zip(mg.members, mg.member_hps, strict=True):
                setting, values, point, _ = entries[i]
                agent = agent_hp(point)
                for s in range(cfg.run.num_seeds):
                    members.append(Member(len(members), setting, cfg.run.seed + s, values))
                    member_hps.append({"agent": agent, "methods": method_hp})
            hp = jax.tree.map(lambda *xs: jnp.asarray(xs, jnp.float32), *member_hps)
            groups.append(CompileGroup(len(groups), group_cfg, mg.methods, members, hp))
    return groups
