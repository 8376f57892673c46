"""Methods named by import path: "your own method is an optax transform".

A config entry ``{name: "my_pkg.my_module:my_transform", options: {...}, hp: {...}}`` names a
callable; its module is imported from the Python path, or else from the current directory
(as ``python -m`` would), so ``my_methods.py`` beside you needs no ``PYTHONPATH``. If calling
it with the ``options`` returns a ``Method``, that is the method. If it returns an
``optax.GradientTransformation``, it becomes a method whose optimizer hook chains it with the
agent's optimizer, rebuilding it inside the compiled program as
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
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import optax

from plasticine_jax.methods.base import HP, Method

CHAIN = ("after", "before")


def _not_found(error: ModuleNotFoundError, module_name: str) -> bool:
    """Whether ``error`` says ``module_name`` itself (or a parent package) does not exist, as
    opposed to a module it imports."""
    return error.name is not None and (module_name + ".").startswith(error.name + ".")


def _import(module_name: str, path: str) -> Any:
    """Imports ``module_name``, looking in the current directory last if nothing else has it.

    ``python -m`` puts the current directory on the import path; a console script does not,
    so ``my_methods:scaled_sign`` run from the folder holding ``my_methods.py`` would need
    ``PYTHONPATH=.``. The directory goes at the end of ``sys.path``: an importable module
    (numpy, optax, ...) is never shadowed by a same-named file there.
    """
    cwd = os.getcwd()
    for attempt in ("path", "cwd"):
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if not _not_found(e, module_name):
                raise ValueError(
                    f"method {path!r}: importing module {module_name!r} failed: {e}"
                ) from None
            if attempt == "cwd" or cwd in sys.path or "" in sys.path:
                break
            sys.path.append(cwd)
            importlib.invalidate_caches()
        except Exception as e:  # the user's module raised while importing (SyntaxError, ...)
            raise ValueError(
                f"method {path!r}: importing module {module_name!r} raised "
                f"{type(e).__name__}: {e}"
            ) from None
    file = module_name.replace(".", os.sep) + ".py"
    raise ValueError(
        f"method {path!r}: no module named {module_name!r} on the Python path or in the "
        f"current directory {cwd}; run from the folder that holds {file}, or add its folder "
        "to PYTHONPATH (PYTHONPATH=/path/to/folder plasticine-jax run ...)"
    )


def resolve(path: str) -> Callable[..., Any]:
    """``"pkg.module:attr"`` -> the attribute (``attr`` may be dotted).

    The module is imported from the Python path, else from the current directory.

    Raises:
      ValueError: a malformed path, a module that cannot be found or fails to import (the
        message names the module, the current directory and the fix), a missing attribute.
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"method import path must look like 'package.module:name', got {path!r}")
    obj: Any = _import(module_name, path)
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
