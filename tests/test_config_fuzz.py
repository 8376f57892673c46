"""Fuzz test of the config layer: mutated shipped configs plan and build, or are refused.

Every example starts from a shipped config (``configs/*.yaml``, ``configs/experiments/*.yaml``,
includes resolved by the loader's own reader) shrunk to a tiny size, then applies a few random
mutations: unknown keys with near-miss spellings, wrong types, out-of-range values, impossible
combinations, random method lists from the registry (with random options and
hyperparameters, duplicates and conflicting pairs) and random sweeps. Each example must load,
plan and build (and, for the cheap gymnax environments, trace the whole update with
``jax.eval_shape``: nothing compiles), or raise ``ConfigError``. Any other exception is a
validation gap: hypothesis shrinks it to a minimal config.

Budget: Brax environments are planned only (building one parses its MJCF model: seconds to
tens of seconds each); Craftax and envpool are built, not traced; gymnax programs are traced,
each distinct program structure once (tracing is deterministic, so a structure that traced
once traces again).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from plasticine_jax.config import ConfigError, load_config
from plasticine_jax.config.load import _read_yaml
from plasticine_jax.config.schema import ExperimentConfig
from plasticine_jax.envs.registry import BACKENDS, SCENARIOS
from plasticine_jax.envs.validate import SCENARIO_BACKEND, SCENARIO_OPTIONS
from plasticine_jax.methods.registry import REGISTRY, make_method
from plasticine_jax.methods.schedules import SCHEDULES
from plasticine_jax.networks.activations import ACTIVATIONS
from plasticine_jax.networks.spec import CONV_LAYERS
from plasticine_jax.runner.loop import build_programs
from plasticine_jax.runner.plan import plan, static_signature

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SHIPPED = sorted(CONFIGS.glob("*.yaml")) + sorted(CONFIGS.glob("experiments/*.yaml"))

NUM_ENVS, NUM_STEPS = 2, 4
BATCH = NUM_ENVS * NUM_STEPS
PREFILL = 2 * NUM_ENVS  # a replay agent's random steps before its first update


def _tiny_env(env: Any) -> Any:
    if not isinstance(env, dict):
        return env
    env = {**env, "num_envs": NUM_ENVS}
    so = env.get("scenario_options")
    if isinstance(so, dict):
        so = dict(so)
        if "steps_per_task" in so:
            so["steps_per_task"] = NUM_STEPS
        if "num_tasks" in so:
            so["num_tasks"] = 2
        if isinstance(so.get("games"), list):
            so["games"] = so["games"][:2]
        env["scenario_options"] = so
    return env


def _tiny(raw: dict) -> dict:
    """A shipped config at a size that plans, builds and traces in about a second."""
    d = copy.deepcopy(raw)
    d["env"] = _tiny_env(d.get("env", {}))
    agent = d.setdefault("agent", {})
    replay = agent.get("name") in ("dqn", "c51", "sac", "td3")
    if replay:  # one gradient step an update on batches of 4, after 2 random steps an env
        agent.update(num_steps=NUM_STEPS, replay_ratio=1 / BATCH, batch_size=4,
                     buffer_size=8 * BATCH, learning_starts=PREFILL)
    else:
        agent.update(num_steps=NUM_STEPS, num_minibatches=2, update_epochs=1)
    agent.setdefault("network", {})["hidden_sizes"] = [4]
    d["metrics"] = {**d.get("metrics", {}), "every": 1, "probe_size": 4}
    d["run"] = {**d.get("run", {}), "total_timesteps": 2 * BATCH + (PREFILL if replay else 0),
                "num_seeds": 1, "chunk_updates": 0, "progress": False, "checkpoint": False}
    if isinstance(d.get("eval"), dict):
        d["eval"] = {**d["eval"], "num_envs": 2, "max_steps": 8}
    return d


SOURCES = {p.relative_to(CONFIGS).as_posix(): _tiny(_read_yaml(p)) for p in SHIPPED}
ENV_SECTIONS = [
    _tiny_env(_read_yaml(p)["env"]) for p in sorted(CONFIGS.glob("envs/*.yaml"))
]
CONTINUAL_GYMNAX = [
    e for e in ENV_SECTIONS if e["backend"] == "gymnax" and e.get("scenario", "none") != "none"
]
METHOD_ENTRIES = [
    m for p in sorted(CONFIGS.glob("methods/*.yaml")) for m in _read_yaml(p)["methods"]
]

# ---------------------------------------------------------------- value pools

NAN, INF = float("nan"), float("inf")
SPECIAL_NUMBERS = [0, -1, 1, 2, 3, 2.5, 0.5, -0.5, 1e-9, 10**6, 2**31, 2**63, 10**30, 10**400,
                   1e300, -1e300, NAN, INF, -INF]
OPTION_WORDS = sorted(
    {*SCHEDULES, "coupled", "decoupled", "unsquared", "squared", "fresh", "init", "zero",
     "lecun", "reference", "dormant", "kron_torch", "psgd_jax", "actor_head", "critic_head",
     "last", "hidden", "heads", "actor/layer_0", "critic/layer_0", "torso/layer_0",
     "actor/layer_9", "actor", "nope", "", "every_k_update", "after", "before"}
)
ENV_IDS = ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCar-v0", "Breakout-MinAtar",
           "Asterix-MinAtar", "MinAtar", "ant", "halfcheetah", "Pong-v5", "Breakout-v5",
           "DogStand-v1", "CoinrunEasy-v0", "Craftax-Classic-Symbolic-v1",
           "Craftax-Symbolic-v1", "cartpole", "CartPole-v0", "Nope-v1"]
METHOD_NAMES = sorted(REGISTRY)
USER_METHODS = ["tests.user_methods:scaled_sign", "tests.user_methods:nope",
                "no_such_module_xyz:factory", "plasticine_jax.methods.l2:l2", ":", "l2:"]
# Methods whose network edits or declared conflicts cannot go together.
CONFLICTS = [("crelu", "fourier"), ("crelu", "redo"), ("layer_norm", "nap"),
             ("fourier", "redo"), ("hl_gauss", "hl_gauss"), ("trac", "kron")]
TRACED_HP = ["agent.hp.lr", "agent.hp.ent_coef", "agent.hp.gamma", "agent.hp.clip_eps",
             "methods.0.hp.coef", "methods.0.hp.period", "methods.1.hp.coef"]
STATIC_KEYS = ["agent.network.hidden_sizes", "env.num_envs", "agent.num_steps",
               "agent.num_minibatches", "env.id", "agent.network.activation", "metrics.every",
               "agent.network.norm", "methods.0.options.schedule", "methods.0.options.variant",
               "env.scenario_options.steps_per_task"]
BAD_SWEEP_KEYS = ["run.seed", "run.total_timesteps", "sweep.agent.hp.lr", "agent.hp.nope",
                  "agent.hp", "agent", "", ".", "agent..hp", "methods.9.hp.coef", "methods.x",
                  "agent.hp.lr.x", "env.id.x", "name", "wandb.mode", 1, None]


def near_misses(word: Any) -> st.SearchStrategy[str]:
    """Spellings one typo away from ``word``."""
    w = str(word) or "x"
    return st.sampled_from(sorted({
        w[:-1], w + w[-1], w + "s", w.upper(), w.capitalize(), w.replace("_", "-"),
        w.replace("_", ""), w[1:] or "y", (w[1] + w[0] + w[2:]) if len(w) > 1 else w + "_",
        f" {w}", f"{w}.", f"{w}_",
    }))


def bad_values() -> st.SearchStrategy[Any]:
    """Values of the wrong type or out of any sensible range."""
    return st.one_of(
        st.sampled_from(SPECIAL_NUMBERS),
        st.text(max_size=6),
        st.sampled_from(["", "abc", "1e-3x", "true", "null", "nan", "relu", "CartPole-v1"]),
        st.lists(st.integers(-2, 8), max_size=3),
        st.lists(st.text(max_size=3), max_size=2),
        st.dictionaries(st.text(max_size=4), st.integers(-2, 8), max_size=2),
        st.none(),
        st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**20), 10**20),
    )


def good_numbers() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from([0, 1, 2, 10, 0.0, 1e-4, 0.01, 0.5, 0.9, 1.0]),
                     st.floats(0.0, 1.0))


# ---------------------------------------------------------------- tree helpers


def _nodes(node: Any, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    out = [(prefix, node)]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _nodes(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _nodes(v, (*prefix, i))
    return out


def _set(raw: dict, path: tuple, value: Any) -> dict:
    """``raw`` with ``value`` at ``path`` (missing mappings created); unchanged when a node on
    the way is neither a mapping nor a list."""
    node: Any = raw
    for part in path[:-1]:
        if isinstance(node, dict):
            if not isinstance(node.get(part), dict | list):
                node[part] = {}
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return raw
    if isinstance(node, dict):
        node[path[-1]] = value
    elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
        node[path[-1]] = value
    return raw


def _schema_fields(cls: type = ExperimentConfig, prefix: tuple = ()) -> list:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += _schema_fields(hints[f.name], (*prefix, f.name))
        else:
            out.append(((*prefix, f.name), hints[f.name], f.metadata))
    return out


SCHEMA_FIELDS = _schema_fields()
BOUNDED_FIELDS = [f for f in SCHEMA_FIELDS if {"range", "choices", "items"} & set(f[2])]

# ---------------------------------------------------------------- method strategies


def _option_values(hint: Any, default: Any, valid: bool) -> st.SearchStrategy[Any]:
    """Values for a method option typed ``hint``: plausible ones (``valid``), else plausible
    ones mixed with values of every wrong type."""
    words = st.sampled_from(OPTION_WORDS)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is types.UnionType:
        good = st.one_of(*(_option_values(a, default, True) for a in args))
    elif hint is bool:
        good = st.booleans()
    elif hint is int:
        good = st.sampled_from(sorted({default, 1, 2} - {None}))
    elif hint is str:
        good = st.one_of(st.just(default), words) if isinstance(default, str) else words
    elif hint is type(None):
        good = st.none()
    elif args and args[0] is float:
        good = st.lists(st.sampled_from([0.9, 0.99, 0.999]), min_size=1, max_size=3)
    else:
        good = st.lists(words, min_size=1, max_size=2)
    if valid:
        return good
    return st.one_of(good, good, words.flatmap(near_misses), bad_values())


def _factory_options(name: str) -> dict[str, tuple[Any, Any]]:
    """``{option: (type hint, default)}`` of a registered method's factory."""
    hints = typing.get_type_hints(REGISTRY[name])
    params = inspect.signature(REGISTRY[name]).parameters.values()
    return {p.name: (hints.get(p.name, Any), p.default) for p in params}


DEFAULT_HP = {name: dict(make_method(name).hp) for name in METHOD_NAMES}


@st.composite
def method_entries(draw: Any, names: st.SearchStrategy[str] | None = None,
                   valid: bool = False) -> Any:
    """One ``methods`` entry: a shipped fragment's or a random one; unless ``valid``, also
    malformed entries, wrong option values and unknown option or hyperparameter names."""
    kinds = ["registry"] * 3 + ["fragment"] + ([] if valid else ["odd"])
    kind = draw(st.sampled_from(kinds))
    if kind == "fragment" and names is None:
        return copy.deepcopy(draw(st.sampled_from(METHOD_ENTRIES)))
    if kind == "odd":
        return draw(st.one_of(
            st.sampled_from(METHOD_NAMES),  # a bare name instead of a mapping
            st.builds(lambda n: {"name": n}, st.sampled_from(USER_METHODS)),
            st.builds(lambda n: {"name": n}, st.sampled_from(METHOD_NAMES).flatmap(near_misses)),
            st.builds(lambda v: {"name": v}, bad_values()),
            st.just({}),
            st.builds(lambda n, v: {"name": n, "hp": v}, st.sampled_from(METHOD_NAMES),
                      bad_values()),
            st.builds(lambda n, v: {"name": n, "options": v}, st.sampled_from(METHOD_NAMES),
                      bad_values()),
        ))
    name = draw(names if names is not None else st.sampled_from(METHOD_NAMES))
    entry: dict[str, Any] = {"name": name}
    options = _factory_options(name)
    if options and draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(sorted(options)), max_size=2, unique=True))
        entry["options"] = {k: draw(_option_values(*options[k], valid)) for k in keys}
        if not valid and draw(st.integers(0, 5)) == 0:
            entry["options"][draw(near_misses(keys[0] if keys else "schedule"))] = 1
    hp = DEFAULT_HP[name]
    if name == "hl_gauss" or draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(sorted(hp) or ["coef"]), max_size=2, unique=True))
        if name == "hl_gauss" and draw(st.integers(0, 3)):  # its support must be given
            keys = sorted({*keys, "v_min", "v_max"})
        values = good_numbers() if valid else st.one_of(good_numbers(), bad_values())
        entry["hp"] = {k: draw(values) for k in keys}
        if not valid and draw(st.integers(0, 5)) == 0:
            entry["hp"][draw(near_misses(keys[0] if keys else "coef"))] = 0.1
    return entry


@st.composite
def method_lists(draw: Any, max_size: int = 3, valid: bool = False) -> list:
    """0 to ``max_size`` methods, or a conflicting pair, or a list with a duplicate."""
    kind = draw(st.sampled_from(["random", "random", "conflict", "duplicate"]))
    if kind == "conflict":
        a, b = draw(st.sampled_from(CONFLICTS))
        return [draw(method_entries(st.just(a), valid)), draw(method_entries(st.just(b), valid))]
    methods = draw(st.lists(method_entries(valid=valid), max_size=max_size))
    if kind == "duplicate" and methods:
        methods.append(copy.deepcopy(methods[0]))
    return methods


# ---------------------------------------------------------------- mutations


def unknown_key(draw: Any, raw: dict) -> dict:
    """A key no section has, spelled one typo away from a real one (or not at all)."""
    path, node = draw(st.sampled_from([n for n in _nodes(raw) if isinstance(n[1], dict)]))
    real = sorted(map(str, node)) or ["name"]
    key = draw(st.one_of(st.sampled_from(real).flatmap(near_misses),
                         st.sampled_from(["foo", "include", "hp", "options", "seed"]),
                         st.sampled_from([1, None, True, 2.5])))
    node[key] = draw(st.one_of(good_numbers(), bad_values()))
    return raw


def wrong_type(draw: Any, raw: dict) -> dict:
    path, _ = draw(st.sampled_from([n for n in _nodes(raw) if n[0]]))
    return _set(raw, path, draw(bad_values()))


def out_of_range(draw: Any, raw: dict) -> dict:
    path, tp, meta = draw(st.sampled_from(BOUNDED_FIELDS))
    if "items" in meta:  # a list field: one item out of its range
        lo, _ = meta["items"]["range"]
        return _set(raw, path, [4, lo - draw(st.sampled_from([1, 5]))])
    if "choices" in meta:
        value = draw(st.one_of(st.sampled_from(meta["choices"]).flatmap(near_misses),
                               st.sampled_from(OPTION_WORDS)))
    else:
        lo, hi = meta["range"]
        step = 1 if tp is int else draw(st.sampled_from([1e-6, 0.5, 1.0]))
        value = draw(st.sampled_from([v for v in (
            None if lo is None else lo - step, None if hi is None else hi + step,
            2**63 if tp is int else 1e308,
        ) if v is not None]))
    return _set(raw, path, value)


def impossible_combination(draw: Any, raw: dict) -> dict:
    kind = draw(st.sampled_from([
        "minibatches", "probe", "scenario_backend", "env_id", "scenario_option", "env_section",
        "torso", "timesteps", "backend", "scenario_values", "activation", "norm_method",
    ]))
    env = raw.setdefault("env", {}) if isinstance(raw.get("env"), dict) else None
    if env is None:
        return raw
    if kind == "minibatches":
        return _set(raw, ("agent", "num_minibatches"), draw(st.sampled_from([3, 5, 7, 16, 9])))
    if kind == "probe":
        raw = _set(raw, ("metrics", "every"), 1)
        return _set(raw, ("metrics", "probe_size"), draw(st.sampled_from([BATCH + 1, 10**6])))
    if kind == "timesteps":
        return _set(raw, ("run", "total_timesteps"), draw(st.integers(1, BATCH - 1)))
    if kind == "scenario_backend":
        scenario = draw(st.sampled_from(sorted(SCENARIO_BACKEND)))
        env.update(scenario=scenario, backend=draw(st.sampled_from(BACKENDS)),
                   scenario_options={"steps_per_task": NUM_STEPS})
    elif kind == "env_id":
        env["id"] = draw(st.sampled_from(ENV_IDS))
    elif kind == "backend":
        env["backend"] = draw(st.one_of(st.sampled_from(BACKENDS),
                                        st.sampled_from(BACKENDS).flatmap(near_misses)))
    elif kind == "scenario_option":
        scenario = draw(st.sampled_from(SCENARIOS))
        allowed = SCENARIO_OPTIONS[scenario] or ("steps_per_task",)
        env["scenario"] = scenario
        opts = env.get("scenario_options") if isinstance(env.get("scenario_options"), dict) else {}
        other = sorted({o for opts_ in SCENARIO_OPTIONS.values() for o in opts_})
        key = draw(st.one_of(st.sampled_from(allowed).flatmap(near_misses),
                             st.sampled_from(other)))
        env["scenario_options"] = {**opts, key: draw(st.one_of(good_numbers(), bad_values()))}
    elif kind == "scenario_values":
        scenario = draw(st.sampled_from(SCENARIOS[1:]))
        env["scenario"] = scenario
        options = {"steps_per_task": NUM_STEPS}
        for key in draw(st.lists(st.sampled_from(SCENARIO_OPTIONS[scenario]), max_size=3)):
            options[key] = draw(st.one_of(
                good_numbers(), bad_values(), st.sampled_from(OPTION_WORDS),
                st.lists(st.sampled_from(["Breakout", "Asterix", "Pong", "walker"]), max_size=3),
                st.lists(st.floats(-1.0, 3.0), max_size=3),
            ))
        env["scenario_options"] = options
    elif kind == "env_section":
        raw["env"] = copy.deepcopy(draw(st.sampled_from(ENV_SECTIONS)))
    elif kind == "torso":
        raw = _set(raw, ("agent", "network", "torso"),
                   draw(st.sampled_from(["mlp", "minatar_cnn", "atari_cnn"])))
    elif kind == "activation":
        raw = _set(raw, ("agent", "network", "activation"), draw(st.one_of(
            st.sampled_from(sorted(ACTIVATIONS)), st.sampled_from(sorted(ACTIVATIONS)).flatmap(
                near_misses))))
    elif kind == "norm_method":
        raw = _set(raw, ("agent", "network", "norm"), "layernorm")
        raw["methods"] = [{"name": draw(st.sampled_from(["layer_norm", "nap", "crelu"]))}]
    return raw


ENV_OPTIONS = ["max_steps_in_episode", "gravity", "max_speed", "use_minimal_action_set",
               "pixels", "reset_ratio", "pool_size", "max_timesteps", "interface", "seed",
               "episodic_life", "stack_num", "backend", "episode_length", "foo"]


def env_options(draw: Any, raw: dict) -> dict:
    """Backend options (gymnax ``EnvParams`` fields, others' keyword arguments), good or bad."""
    keys = draw(st.lists(st.one_of(st.sampled_from(ENV_OPTIONS),
                                   st.sampled_from(ENV_OPTIONS).flatmap(near_misses)),
                         min_size=1, max_size=2, unique=True))
    values = st.one_of(st.sampled_from([1, 10, 9.8, True, False, "xla", "callback"]),
                       bad_values())
    return _set(raw, ("env", "options"), {k: draw(values) for k in keys})


def odd_network(draw: Any, raw: dict) -> dict:
    """Any torso, widths (none, zero, negative), norm, activation and torso sharing."""
    net = {
        "torso": draw(st.sampled_from(["mlp", "mlp", "minatar_cnn", "atari_cnn", "impala_cnn"])),
        "hidden_sizes": draw(st.lists(st.integers(-1, 4), max_size=2)),
        "norm": draw(st.sampled_from(["none", "layernorm"])),
        "activation": draw(st.sampled_from(sorted(ACTIVATIONS))),
        "shared_torso": draw(st.booleans()),
    }
    keys = draw(st.lists(st.sampled_from(sorted(net)), min_size=1, unique=True))
    for k in keys:
        raw = _set(raw, ("agent", "network", k), net[k])
    return raw


def random_methods(draw: Any, raw: dict, valid: bool = False) -> dict:
    if draw(st.booleans()):
        raw = _set(raw, ("agent", "network", "activation"), "relu")
    if draw(st.booleans()):  # schedules that wait for tasks need a continual scenario
        raw["env"] = copy.deepcopy(draw(st.sampled_from(CONTINUAL_GYMNAX)))
    raw["methods"] = draw(method_lists(valid=valid))
    return raw


def plausible_methods(draw: Any, raw: dict) -> dict:
    """Random method lists with plausible options and hyperparameters, so that more of
    them reach the trace."""
    return random_methods(draw, raw, valid=True)


def _sweep_values(draw: Any, key: Any) -> Any:
    if draw(st.integers(0, 5)) == 0:
        return draw(st.one_of(bad_values(), st.just([])))  # not a non-empty list
    if key == "methods":
        return draw(st.lists(method_lists(max_size=2), min_size=1, max_size=3))
    if key == "agent.network.hidden_sizes":
        good = st.lists(st.integers(1, 6), min_size=1, max_size=2)
    elif key in ("env.num_envs", "agent.num_steps", "agent.num_minibatches", "metrics.every",
                 "env.scenario_options.steps_per_task"):
        good = st.integers(0, 6)
    elif key == "env.id":
        good = st.sampled_from(ENV_IDS)
    elif isinstance(key, str) and key.startswith("methods.0.options"):
        good = st.sampled_from(OPTION_WORDS)
    elif key == "agent.network.activation":
        good = st.sampled_from(sorted(ACTIVATIONS))
    elif key == "agent.network.norm":
        good = st.sampled_from(["none", "layernorm"])
    else:
        good = good_numbers()
    return draw(st.lists(st.one_of(good, good, good, bad_values()), min_size=1, max_size=3))


def random_sweep(draw: Any, raw: dict) -> dict:
    keys = draw(st.lists(
        st.one_of(st.sampled_from(TRACED_HP), st.sampled_from(STATIC_KEYS),
                  st.just("methods"), st.sampled_from(BAD_SWEEP_KEYS)),
        min_size=1, max_size=2, unique=True,
    ))
    sweep = raw.get("sweep") if isinstance(raw.get("sweep"), dict) else {}
    raw["sweep"] = {**sweep, **{k: _sweep_values(draw, k) for k in keys}}
    return raw


MUTATIONS = [unknown_key, wrong_type, out_of_range, impossible_combination, random_methods,
             random_sweep, odd_network, env_options]
TRACE_MUTATIONS = [plausible_methods, plausible_methods, random_methods, odd_network,
                   impossible_combination, random_sweep, wrong_type, env_options]


@st.composite
def mutated_configs(draw: Any, sources: list[str] | None = None, mutations: list | None = None,
                    max_mutations: int = 3, max_sweep_values: int = 3) -> dict:
    """A shipped config, shrunk, after up to ``max_mutations`` random mutations."""
    raw = copy.deepcopy(SOURCES[draw(st.sampled_from(sources or sorted(SOURCES)))])
    if isinstance(raw.get("sweep"), dict):  # a random part of the shipped sweep
        raw["sweep"] = {
            k: [v[i] for i in draw(st.lists(st.integers(0, len(v) - 1), min_size=1,
                                            max_size=max_sweep_values, unique=True))]
            for k, v in raw["sweep"].items()
        }
    for _ in range(draw(st.integers(0, max_mutations))):
        raw = draw(st.sampled_from(mutations or MUTATIONS))(draw, raw)
    return raw


# ---------------------------------------------------------------- the property

_TRACED: set[str] = set()  # structures traced already (tracing is deterministic)


def _torso_fits(torso: str, obs_shape: tuple[int, ...]) -> bool:
    """Whether a convolutional ``torso`` gets images and its VALID convolutions leave at
    least one position of them."""
    if torso == "mlp":
        return True
    if len(obs_shape) != 3:
        return False
    h, w = obs_shape[:2]
    for _, k, stride in CONV_LAYERS.get(torso, ()):
        h, w = (h - k) // stride + 1, (w - k) // stride + 1
    return min(h, w) >= 1


# Known gaps, outside the config layer (see the issue-8 report); examples that hit them are
# left out here, not accepted:
# * a convolutional torso on observations it cannot convolve (CartPole's [4], MinAtar's
#   10x10 under the Atari CNN) builds, then fails while tracing with XLA's shape error. The
#   agent, which knows both the torso and env.spec.obs_shape, should refuse it when built.
# * layer names in method options that the network does not have (layer_reset's ``layers``,
#   parseval's ``layers``) are looked up while tracing, where they raise a ValueError that
#   names the method and the network's layers. They need a check against the parameter tree
#   when the program is built.
KNOWN_TRACE_GAPS = re.compile(
    r"^layer_reset: no parameters at '|^layer '.*' not found; modules are \["
)


def _known_build_gap(program: Any) -> bool:
    return not _torso_fits(program.agent.spec.torso, program.agent.env.spec.obs_shape)


def _trace(program: Any) -> None:
    """``program.metric_names()`` (``jax.eval_shape`` of init and one update), the known
    trace-time gaps left out."""
    try:
        program.metric_names()
    except ValueError as e:
        assume(not KNOWN_TRACE_GAPS.search(str(e)))
        raise


def _plan_build_trace(raw: dict, trace: bool) -> None:
    """Loads, plans, builds and (gymnax) traces ``raw``; only ``ConfigError`` may escape."""
    try:
        cfg = load_config(data=raw)
        groups = plan(cfg)
        if cfg.env.backend == "brax":
            return
        programs = build_programs(groups)
        if not trace or cfg.env.backend != "gymnax":
            return
        assume(not any(_known_build_gap(p) for p in programs))
        for program in programs:
            sig = static_signature(program.group.cfg) + repr([m.key for m in
                                                              program.group.methods])
            if sig not in _TRACED:
                _trace(program)
                _TRACED.add(sig)
    except ConfigError:
        pass


COMMON = dict(deadline=None, derandomize=True, database=None, print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=400, **COMMON)
@given(mutated_configs())
def test_mutated_configs_plan_and_build_or_raise_config_error(raw):
    """Every shipped config under every kind of mutation: load, plan, build (~15 s)."""
    _plan_build_trace(raw, trace=False)


GYMNAX_SOURCES = sorted(
    k for k, v in SOURCES.items() if v.get("env", {}).get("backend", "gymnax") == "gymnax"
)


@settings(max_examples=16, **COMMON)
@given(mutated_configs(GYMNAX_SOURCES, TRACE_MUTATIONS, max_mutations=2, max_sweep_values=2))
def test_mutated_configs_trace_or_raise_config_error(raw):
    """The gymnax configs under mutations that change the program (methods, network, env
    options, sweeps), traced through the whole update (a few seconds per new structure)."""
    _plan_build_trace(raw, trace=True)


def test_the_fuzzer_starts_from_every_shipped_config():
    assert len(SOURCES) == len(SHIPPED) >= 7
    for name, raw in SOURCES.items():
        cfg = load_config(data=raw)
        assert cfg.env.num_envs * cfg.agent.num_steps == BATCH, name
        assert math.prod(cfg.agent.network.hidden_sizes) == 4, name
