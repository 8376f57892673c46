"""YAML + ``key=value`` overrides -> a validated ``ExperimentConfig``, once, at the edge.

Composition: a YAML file may list ``include: [other.yaml, ...]`` (paths relative to it);
included files are merged in order, then the file's own keys win, except ``methods``: the
lists of the included files and the file's own concatenate, in that order. Then command-line
overrides, which replace (``agent.hp.lr=3e-4``, ``sweep.agent.hp.lr=[1e-4,3e-4]``,
``methods=[{name: l2}]``).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from plasticine_jax.config.schema import ExperimentConfig


class ConfigError(ValueError):
    """A configuration problem, raised before anything is compiled."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the numbers people write: YAML 1.1 (PyYAML) reads ``1e-3``,
    ``1E5`` and ``+.5`` as strings; here they are floats, as in YAML 1.2 and Python."""


_FLOAT = re.compile(
    r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?$"
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$|^[-+]\.[0-9_]+$"),
    list("-+0123456789."),
)


def _float_constructor(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = loader.construct_scalar(node)
    if _FLOAT.match(text):
        return float(text.replace("_", ""))
    return yaml.SafeLoader.construct_yaml_float(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:float", _float_constructor)


def yaml_load(text: str) -> Any:
    """Parses YAML text as configs are read: safe, with every common numeric literal
    (``1e-3``, ``1E5``, ``.5``, ``5.``, ``1_000``, ``1.0e-3``) a number."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"include cycle: {' -> '.join(str(p) for p in (*seen, path))}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    includes = data.pop("include", []) or []
    if isinstance(includes, str):
        includes = [includes]
    merged: dict = {}
    methods: list = []
    for inc in includes:
        part = _read_yaml(path.parent / inc, (*seen, path))
        methods += _methods_list(part.pop("methods", []), path.parent / inc)
        merged = deep_merge(merged, part)
    own = _methods_list(data.pop("methods", []), path)
    merged = deep_merge(merged, data)
    if methods or own:
        merged["methods"] = methods + own
    return merged


def _methods_list(value: Any, path: Path) -> list:
    """A file's ``methods``: included fragments' lists concatenate (in include order, then
    the file's own), so ``include: [methods/l2.yaml, methods/crelu.yaml]`` gives both."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{path}: methods must be a list of methods, got {value!r}")
    return value


def deep_merge(base: Mapping, top: Mapping) -> dict:
    """Recursively merges ``top`` into ``base`` (mappings merge, everything else replaces)."""
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and k != "sweep":
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"agent.hp.lr=3e-4"`` -> ``(["agent", "hp", "lr"], 0.0003)``; values are YAML."""
    if "=" not in text:
        raise ConfigError(
            f"override {text!r} is not of the form key=value (e.g. agent.hp.lr=3e-4)"
        )
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {e}") from e
    if key.startswith("sweep."):
        return ["sweep", key[len("sweep.") :]], value
    return key.split("."), value


def apply_override(data: dict, path: Sequence[str], value: Any) -> dict:
    """``data`` with ``value`` at the dotted ``path`` (list items by index), copied on the way;
    a missing section is created, a value that is not a section cannot hold a key."""
    data = dict(data)
    node: Any = data
    for i, part in enumerate(path[:-1]):
        if isinstance(node, list):
            idx = _list_index(part, node, path[: i + 1])
            _check_section(node[idx], path, i)
            node[idx] = dict(node[idx])
            node = node[idx]
            continue
        child = node.get(part)
        if child is not None:
            _check_section(child, path, i)
        child = list(child) if isinstance(child, list) else dict(child or {})
        node[part] = child
        node = child
    last = path[-1]
    if isinstance(node, list):
        node[_list_index(last, node, path)] = value
    else:
        node[last] = value
    return data


def _check_section(child: Any, path: Sequence[str], i: int) -> None:
    """Refuses to descend from ``path[: i + 1]`` into ``path[i + 1]`` through a plain value."""
    if not isinstance(child, Mapping | list):
        raise ConfigError(
            f"key {'.'.join(path)!r}: {'.'.join(path[: i + 1])!r} is {child!r}, not "
            f"a section, so it has no key {path[i + 1]!r}"
        )


def _list_index(part: str, node: list, path: Sequence[str]) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(
            f"override key {'.'.join(path)!r}: {part!r} must be an index below {len(node)}"
        )
    return int(part)


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    data: Mapping | None = None,
) -> ExperimentConfig:
    """Reads ``path`` (or ``data``), applies ``overrides``, validates, returns the config."""
    raw: dict = {}
    if path is not None:
        raw = _read_yaml(Path(path))
    if data is not None:
        raw = deep_merge(raw, data)
    for text in overrides:
        key, value = parse_override(text)
        raw = apply_override(raw, key, value)
    cfg = from_dict(ExperimentConfig, raw)
    validate(cfg)
    return cfg


def to_dict(cfg: Any) -> Any:
    """The config as plain YAML-able data (tuples become lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (tuple, list)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, Mapping):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


# ---------------------------------------------------------------- typed construction


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Builds dataclass ``cls`` from ``data``, naming the key of the first problem found."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            near = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(
                f"unknown key {_join(where, key)!r}{hint}; allowed keys"
                f"{' under ' + repr(where) if where else ''}: {sorted(fields)}"
            )
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            value = data[name]
            if f.default_factory is not dataclasses.MISSING and isinstance(value, Mapping):
                # A partial mapping overrides the field's own default (PQN's ReLU+LayerNorm
                # network), not the generic class defaults of the field's type.
                value = _over_default(to_dict(f.default_factory()), value)
            kwargs[name] = _coerce(hints[name], value, _join(where, name), f.metadata)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {_join(where, name)!r}")
    return cls(**kwargs)


def _over_default(default: Any, value: Mapping) -> Any:
    """``value`` merged over ``default``, mapping by mapping, where both are mappings of the
    same kind: a mapping whose ``name`` differs from the default's is another class of a tagged
    union and replaces the default whole."""
    if not isinstance(default, Mapping):
        return value
    if "name" in value and "name" in default and value["name"] != default["name"]:
        return value
    out = dict(default)
    for k, v in value.items():
        out[k] = _over_default(out[k], v) if isinstance(v, Mapping) and k in out else v
    return out


def _tagged(classes: list[type], value: Any, where: str) -> Any:
    """A union of dataclasses told apart by their ``name`` field (``agent: {name: dqn}``):
    the class whose ``name`` default is ``value["name"]``; the first class when absent."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    names = {c.__dataclass_fields__["name"].default: c for c in classes}
    name = value.get("name", next(iter(names)))
    if name not in names:
        near = difflib.get_close_matches(str(name), [str(n) for n in names], n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(f"{where}.name={name!r} is unknown{hint}; choose one of {list(names)}")
    return from_dict(names[name], value, where)


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _coerce(tp: Any, value: Any, where: str, meta: Mapping) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) > 1:
            return _tagged(inner, value, where)
        return _coerce(inner[0], value, where, meta)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        elem = args[0]
        items = meta.get("items", {})
        return tuple(_coerce(elem, v, f"{where}.{i}", items) for i, v in enumerate(value))
    if tp is dict or origin is dict:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _check_names(value, where)
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not integral:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        value = int(value)
    elif tp is float:
        value = as_float(value, where)
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
    _check_meta(value, where, meta)
    return value


def _check_names(value: Any, where: str) -> None:
    """Mapping keys, at any depth, are names (options become keyword arguments, hp keys
    pytree keys, sweep keys dotted paths): a YAML ``1:`` or ``null:`` key is refused."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{where}: key {k!r} is not a name (a string)")
            _check_names(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_names(v, f"{where}.{i}")


FLOAT32_MAX = 3.4028234663852886e38
INT32_MAX = 2**31 - 1
MAX_SEED = 2**63 - 1  # jax.random.PRNGKey takes a signed 64-bit seed


def as_float(value: Any, where: str) -> float:
    """A traced number (every float field and method hyperparameter becomes a float32):
    ints or floats, not booleans, finite and within float32's range; else ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if abs(value) > FLOAT32_MAX:
        raise ConfigError(
            f"{where}={value!r} does not fit a float32 (traced values are float32); use a "
            f"magnitude of at most {FLOAT32_MAX:.4g}"
        )
    return float(value)


def _check_meta(value: Any, where: str, meta: Mapping) -> None:
    if "choices" in meta and value not in meta["choices"]:
        allowed = list(meta["choices"])
        raise ConfigError(f"{where}={value!r} is not allowed; choose one of {allowed}")
    if "range" in meta:
        lo, hi = meta["range"]
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
            raise ConfigError(f"{where}={value!r} is out of range; allowed: {bounds}")


# ---------------------------------------------------------------- cross-field checks


def prefill_steps(cfg: ExperimentConfig) -> int:
    """Env steps per member taken before the first update (a replay agent's
    ``learning_starts``, rounded up to whole steps of every env); 0 for on-policy agents."""
    starts = getattr(cfg.agent, "learning_starts", 0)
    return -(-starts // cfg.env.num_envs) * cfg.env.num_envs


def steps_per_update(cfg: ExperimentConfig) -> int:
    """Env steps per member in one update: ``env.num_envs * agent.num_steps``."""
    return cfg.env.num_envs * cfg.agent.num_steps


def num_updates(cfg: ExperimentConfig) -> int:
    """Updates in the run: what remains of ``run.total_timesteps`` after the prefill, in
    whole updates."""
    return (cfg.run.total_timesteps - prefill_steps(cfg)) // steps_per_update(cfg)


# A chunk sized by time (run.chunk_updates = 0) has at most this many updates, and its
# metrics buffer at most AUTO_CHUNK_ROWS (update, member) rows: 64 MiB at 64 float32 scalars.
AUTO_CHUNK_MAX = 1024
AUTO_CHUNK_ROWS = 1 << 18


def chunk_updates(cfg: ExperimentConfig, members: int = 1) -> int:
    """The most updates one chunk of a program of ``members`` members runs: the configured
    ``run.chunk_updates`` (at most the run's updates), or, when that is 0 and chunks are
    sized by time (``run.chunk_seconds``), ``AUTO_CHUNK_MAX`` updates or ``AUTO_CHUNK_ROWS``
    rows of metrics, whichever is fewer. A chunk length need not divide the run: the last
    chunk is shorter, and the same compiled program runs it."""
    n = num_updates(cfg)
    if cfg.run.chunk_updates:
        return min(cfg.run.chunk_updates, n)
    return max(1, min(n, AUTO_CHUNK_MAX, AUTO_CHUNK_ROWS // max(members, 1)))


def validate(cfg: ExperimentConfig) -> None:
    """Checks that need several fields at once. Raises ``ConfigError``."""
    a, e, r = cfg.agent, cfg.env, cfg.run
    batch = steps_per_update(cfg)
    prefill = prefill_steps(cfg)
    if batch > INT32_MAX:
        raise ConfigError(
            f"env.num_envs * agent.num_steps = {e.num_envs} * {a.num_steps} = {batch} "
            f"observations per rollout; batch indices are int32, so at most {INT32_MAX}"
        )
    if r.total_timesteps < prefill + batch:
        before = f"agent.learning_starts={prefill} + " if prefill else ""
        raise ConfigError(
            f"run.total_timesteps={r.total_timesteps} is less than {before}one update "
            f"(env.num_envs * agent.num_steps = {batch}); raise it to at least "
            f"{prefill + batch}"
        )
    if num_updates(cfg) > INT32_MAX:
        raise ConfigError(
            f"run.total_timesteps={r.total_timesteps} makes {num_updates(cfg)} updates of "
            f"{batch} steps; update counters are int32, so at most {INT32_MAX} updates: lower "
            f"it to at most {INT32_MAX * batch}"
        )
    if r.seed + r.num_seeds - 1 > MAX_SEED:
        raise ConfigError(
            f"run.seed={r.seed} with run.num_seeds={r.num_seeds}: the last member's seed "
            f"{r.seed + r.num_seeds - 1} exceeds the largest PRNG seed {MAX_SEED}"
        )
    _AGENT_CHECKS[a.name](cfg)
    limit, source = probe_limit(cfg)
    if cfg.metrics.every and cfg.metrics.probe_size > limit:
        raise ConfigError(
            f"metrics.probe_size={cfg.metrics.probe_size} exceeds the {source} ({limit} "
            f"observations); use at most {limit}"
        )
    _validate_eval(cfg)
    from plasticine_jax.networks.activations import ACTIVATIONS

    if a.network.activation not in ACTIVATIONS:
        raise ConfigError(
            f"agent.network.activation={a.network.activation!r} is unknown; choose one of "
            f"{sorted(ACTIVATIONS)}"
        )
    _validate_env(cfg)
    _validate_method_options(cfg)
    from plasticine_jax.config.feasibility import check_feasible

    problem = check_feasible(cfg)
    if problem:
        raise ConfigError(problem)
    names = [m.name for m in cfg.methods]
    dup = {x for x in names if names.count(x) > 1}
    if dup:
        raise ConfigError(f"methods: {sorted(dup)} listed more than once; list each method once")
    _validate_sweep(cfg)


def probe_limit(cfg: ExperimentConfig) -> tuple[int, str]:
    """How many observations the agent can probe metrics with, and where they come from:
    the rollout batch (on-policy agents) or the replay batch (``agent.batch_size``)."""
    if hasattr(cfg.agent, "batch_size"):
        return cfg.agent.batch_size, "replay batch (agent.batch_size)"
    return steps_per_update(cfg), "rollout batch"


def _check_minibatches(cfg: ExperimentConfig) -> None:
    a, e = cfg.agent, cfg.env
    batch = steps_per_update(cfg)
    if batch % a.num_minibatches:
        raise ConfigError(
            f"env.num_envs * agent.num_steps = {e.num_envs} * {a.num_steps} = {batch} is not "
            f"divisible by agent.num_minibatches={a.num_minibatches}; pick num_minibatches "
            f"from the divisors of {batch}, e.g. {_divisors(batch)}"
        )


def gradient_steps(cfg: ExperimentConfig) -> int:
    """A replay agent's gradient steps per update: ``replay_ratio`` times the update's env
    steps (``env.num_envs * agent.num_steps``), which must be a whole number."""
    return round(cfg.agent.replay_ratio * steps_per_update(cfg))


def _check_replay(cfg: ExperimentConfig) -> None:
    a, e = cfg.agent, cfg.env
    batch = steps_per_update(cfg)
    g = a.replay_ratio * batch
    if g < 1 or abs(g - round(g)) > 1e-6:
        raise ConfigError(
            f"agent.replay_ratio={a.replay_ratio} x (env.num_envs * agent.num_steps = "
            f"{e.num_envs} * {a.num_steps} = {batch}) = {g:g} gradient steps per update; it "
            f"must be a whole number >= 1: pick replay_ratio as k / {batch} (e.g. "
            f"{1 / batch:g} for one gradient step per update) or change agent.num_steps"
        )
    if a.buffer_size % e.num_envs:
        raise ConfigError(
            f"agent.buffer_size={a.buffer_size} is not a multiple of env.num_envs="
            f"{e.num_envs} (the buffer holds one column per env); use "
            f"{a.buffer_size - a.buffer_size % e.num_envs or e.num_envs}"
        )
    rows = a.buffer_size // e.num_envs
    if rows <= a.n_step:
        raise ConfigError(
            f"agent.buffer_size={a.buffer_size} holds {rows} steps per env, not more than "
            f"agent.n_step={a.n_step}; raise buffer_size above {a.n_step * e.num_envs}"
        )
    start = prefill_steps(cfg) // e.num_envs
    if start <= a.n_step:
        raise ConfigError(
            f"agent.learning_starts={a.learning_starts} gives {start} prefill steps per env; "
            f"sampling {a.n_step}-step targets needs more than {a.n_step}: raise "
            f"learning_starts to at least {(a.n_step + 1) * e.num_envs}"
        )
    if prefill_steps(cfg) > a.buffer_size:
        raise ConfigError(
            f"agent.learning_starts={a.learning_starts} exceeds agent.buffer_size="
            f"{a.buffer_size}: the prefill would overwrite itself; lower it or raise the buffer"
        )
    if hasattr(a.hp, "eps_end") and a.hp.eps_end > a.hp.eps_start:
        raise ConfigError(
            f"agent.hp.eps_end={a.hp.eps_end} exceeds agent.hp.eps_start={a.hp.eps_start}; "
            "epsilon decays from start to end"
        )
    if getattr(a.hp, "v_min", 0.0) >= getattr(a.hp, "v_max", 1.0):
        raise ConfigError(
            f"agent.hp.v_min={a.hp.v_min} must be below agent.hp.v_max={a.hp.v_max}"
        )


def _check_pqn(cfg: ExperimentConfig) -> None:
    _check_minibatches(cfg)
    if cfg.agent.optimizer != "adam":
        from plasticine_jax.methods.registry import REGISTRY, make_method

        for i, mc in enumerate(cfg.methods):
            try:
                restarts = mc.name in REGISTRY and make_method(
                    mc.name, mc.options
                ).needs_element_counts
            except (TypeError, ValueError):
                continue  # a bad option: named by the method checks that follow
            if restarts:
                raise ConfigError(
                    f"methods.{i} ({mc.name}) restarts Adam on the entries it rewrites, "
                    f"which needs Adam's per-entry step counts; agent.optimizer="
                    f"{cfg.agent.optimizer!r} has none: set agent.optimizer=adam"
                )
    if cfg.agent.hp.eps_end > cfg.agent.hp.eps_start:
        raise ConfigError(
            f"agent.hp.eps_end={cfg.agent.hp.eps_end} exceeds agent.hp.eps_start="
            f"{cfg.agent.hp.eps_start}; epsilon decays from start to end"
        )


_AGENT_CHECKS = {
    "ppo": _check_minibatches,
    "pqn": _check_pqn,
    "dqn": _check_replay,
    "c51": _check_replay,
    "sac": _check_replay,
    "td3": _check_replay,
}


def _validate_eval(cfg: ExperimentConfig) -> None:
    ev = cfg.eval
    if not ev.every:
        return
    if cfg.env.scenario != "none":
        raise ConfigError(
            f"eval.every={ev.every} with env.scenario={cfg.env.scenario!r}: evaluation on a "
            "separate env copy would not follow the training env's task; evaluation of "
            "continual runs is not supported yet: set eval.every=0"
        )
    if cfg.env.backend == "envpool":
        raise ConfigError(
            f"eval.every={ev.every} with env.backend='envpool': a second pool inside the "
            "program is not supported yet; set eval.every=0"
        )


def _validate_env(cfg: ExperimentConfig) -> None:
    from plasticine_jax.envs.registry import MissingExtraError
    from plasticine_jax.envs.validate import EnvConfigError, check_env

    e = cfg.env
    try:
        check_env(e.backend, e.id, e.scenario, dict(e.scenario_options), dict(e.options))
    except EnvConfigError as err:
        raise ConfigError(str(err)) from None
    except MissingExtraError as err:
        raise ConfigError(f"env.backend={e.backend!r}: {err}") from None


def _validate_method_options(cfg: ExperimentConfig) -> None:
    """Builds every registered method once, so that a bad option (a schedule that is not a
    name, an unknown option) is refused before later checks read the options. Methods named
    by import path are imported and checked by the planner (``runner.plan.build_methods``)."""
    from plasticine_jax.agents import agent_class
    from plasticine_jax.methods.registry import REGISTRY, make_method

    unsupported = agent_class(cfg.agent.name).unsupported_methods
    for i, mc in enumerate(cfg.methods):
        if mc.name in unsupported:
            raise ConfigError(
                f"methods.{i} ({mc.name}) does not apply to agent.name={cfg.agent.name!r}: "
                f"{unsupported[mc.name]}; drop the method or choose another agent"
            )
        if mc.name in REGISTRY:
            try:
                m = make_method(mc.name, mc.options)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"methods.{i} ({mc.name}): {e}") from None
            if mc.networks:
                _check_networks(cfg, i, m, mc.networks)
            _check_uses_networks(cfg, i, m, mc.networks)
            check_grad_clip(cfg, i, m)


def check_grad_clip(cfg: ExperimentConfig, i: int, m: Any) -> None:
    """A method that re-clips the gradient it reads by the global norm (TRAC, Kron's
    ``kron_torch``: ``Method.reads_max_grad_norm``) runs only beside the agent's global-norm
    clip, so that it reads the gradient the base optimizer is given. Registered methods are
    checked when the config loads, a user's (an import path) when the planner builds it."""
    a = cfg.agent
    clips = getattr(a, "clip_grad_norm", True)
    if m.reads_max_grad_norm and clips and getattr(a, "grad_clip", "global_norm") != "global_norm":
        raise ConfigError(
            f"methods.{i} ({m.name}) clips the gradient it reads by the global norm "
            f"(max_grad_norm), but agent.grad_clip={a.grad_clip!r}: set "
            "agent.grad_clip=global_norm, or drop the method"
        )


def _check_uses_networks(cfg: ExperimentConfig, i: int, m: Any, networks: tuple[str, ...]) -> None:
    """The networks a method's options name (``Method.uses_networks``: neuroplastic
    expansion's ``static_networks``) are networks of the agent that the entry's
    ``networks:`` keeps."""
    from plasticine_jax.agents import agent_class

    have = agent_class(cfg.agent.name).networks
    for option, named in m.uses_networks.items():
        unknown = [n for n in named if n not in have]
        if unknown:
            raise ConfigError(
                f"methods.{i} ({m.name}): options.{option} names {unknown}, not networks of "
                f"agent.name={cfg.agent.name!r}; it trains {list(have)}: name those"
            )
        left_out = [n for n in named if networks and n not in networks]
        if left_out:
            raise ConfigError(
                f"methods.{i} ({m.name}): options.{option} names {left_out}, which the entry's "
                f"networks: {list(networks)} leaves out; add them to networks: or drop them "
                f"from options.{option}"
            )


def _check_networks(cfg: ExperimentConfig, i: int, m: Any, networks: tuple[str, ...]) -> None:
    """``networks:`` names networks of the agent, and the method can be restricted: its
    penalty sees only their parameters, its intervention changes only them. A network edit
    or an optimizer wrapper acts on the whole model and cannot, except on agents whose
    networks are separate learners with their own optimizers (SAC, TD3)."""
    from plasticine_jax.agents import agent_class

    have = agent_class(cfg.agent.name).networks
    unknown = [n for n in networks if n not in have]
    if unknown:
        raise ConfigError(
            f"methods.{i}.networks: {unknown} not networks of agent.name="
            f"{cfg.agent.name!r}; it trains {list(have)}"
        )
    if getattr(agent_class(cfg.agent.name), "separate_learners", False):
        return  # each network has its own learner: any hook can be restricted
    if m.network is not None or m.optimizer is not None:
        hook = "edits the network" if m.network is not None else "wraps the optimizer"
        raise ConfigError(
            f"methods.{i} ({m.name}) {hook}, which acts on every network; `networks:` "
            "restricts only penalties and interventions: drop it"
        )


def _divisors(n: int, count: int = 8, search: int = 100_000) -> list[int]:
    """The ``count`` smallest divisors of ``n`` below ``search`` (a batch may be huge)."""
    return list(itertools.islice((d for d in range(1, min(n, search) + 1) if n % d == 0), count))


def _validate_sweep(cfg: ExperimentConfig) -> None:
    base = to_dict(cfg)
    for key, values in cfg.sweep.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(
                f"sweep: key {key!r} is not a dotted config key (e.g. agent.hp.lr or methods)"
            )
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.{key}: expected a non-empty list of values, got {values!r}")
        if key.startswith("sweep") or key.startswith("run."):
            raise ConfigError(f"sweep.{key}: run settings and sweeps cannot be swept")
        if key in ("agent", "agent.name"):
            raise ConfigError(
                f"sweep.{key}: agents have different settings and cannot be swept in one "
                "config; write one config per agent (configs/agents/ has presets)"
            )
        for v in values:
            try:
                trial = apply_override({**base, "sweep": {}}, key.split("."), v)
                c = from_dict(ExperimentConfig, trial)
                validate(c)
            except ConfigError as err:
                raise ConfigError(f"sweep.{key} value {v!r}: {err}") from None
