"""Methods named by import path: "your own method is an optax transform".

A config entry ``{name: "my_pkg.my_module:my_transform", options: {...}, hp: {...}}`` names a
callable. If calling it with the ``options`` returns a ``Method``, that is the method. If it
returns an ``optax.GradientTransformation``, it becomes a method whose optimizer hook chains
it with the agent's optimizer, rebuilding it inside the compiled program as
``my_transform(**options, **hp)`` with ``hp`` traced arrays:

* its traced hyperparameters are the callable's keyword parameters that have a numeric
  default and are not given in ``options`` (the config's ``hp`` may override them);
* the reserved option ``chain`` says where it goes: ``"after"`` (default) transforms the
  agent optimizer's *updates* (``optax.chain(agent_tx, yours)``), ``"before"`` transforms the
  *gradients* before the agent's optimizer sees them (``optax.chain(yours, agent_tx)``);
* an ``identity_hp`` attribute on the callable (a dict) marks values that make it a no-op,
  so it can share a compiled program with plain members.

Extra arguments (``key``, ``grad_fn``) reach it when it is a
``GradientTransformationExtraArgs``. See ``tests/user_methods.py`` for a worked example.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import optax

from plasticine_jax.methods.base import HP, Method

CHAIN = ("after", "before")


def resolve(path: str) -> Callable[..., Any]:
    """``"pkg.module:attr"`` -> the attribute (``attr`` may be dotted)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"method import path must look like 'package.module:name', got {path!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"method {path!r}: cannot import module {module_name!r} ({e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"method {path!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"method {path!r} is not callable")
    return obj


def traced_defaults(fn: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, float]:
    """Numeric keyword defaults of ``fn`` not fixed by ``options``."""
    out = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name in options or p.default is inspect.Parameter.empty:
            continue
        if isinstance(p.default, int | float) and not isinstance(p.default, bool):
            out[p.name] = float(p.default)
    return out


def from_import_path(path: str, options: Mapping[str, Any] | None = None) -> Method:
    """Builds the ``Method`` that the import path names (see the module docstring)."""
    fn = resolve(path)
    opts = dict(options or {})
    chain = opts.pop("chain", "after")
    if chain not in CHAIN:
        raise ValueError(f"method {path!r}: option chain must be one of {CHAIN}, got {chain!r}")
    hp = traced_defaults(fn, opts)
    try:
        probe = fn(**opts, **hp)
    except TypeError as e:
        raise ValueError(f"method {path!r}: calling it with options {opts} failed: {e}") from None
    if isinstance(probe, Method):
        return probe
    if not isinstance(probe, optax.GradientTransformation | optax.GradientTransformationExtraArgs):
        raise ValueError(
            f"method {path!r} returned {type(probe).__name__}; expected an optax "
            "GradientTransformation or a plasticine_jax Method"
        )
    identity = getattr(fn, "identity_hp", None)

    def hook(tx: optax.GradientTransformation, hp: HP) -> optax.GradientTransformation:
        yours = fn(**opts, **hp)
        return optax.chain(tx, yours) if chain == "after" else optax.chain(yours, tx)

    return Method(
        name=path,
        hp=hp,
        optimizer=hook,
        identity_hp=dict(identity) if identity is not None else None,
    )
