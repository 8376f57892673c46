"""Name -> method factory. Adding a method: one new file and one line here."""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from plasticine_jax.methods.base import Method

# factory(options: dict) -> Method. ``options`` are the method's static settings.
REGISTRY: dict[str, Callable[..., Method]] = {}


def _freeze(x: Any) -> Any:
    """Options as hashable values: lists -> tuples, dicts -> sorted item tuples."""
    if isinstance(x, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
    if isinstance(x, list | tuple):
        return tuple(_freeze(v) for v in x)
    return x


def make_method(name: str, options: Mapping[str, Any] | None = None) -> Method:
    """Builds a method from its registry name, or from an import path ``"module:attr"``.

    Raises:
      ValueError: unknown name, bad import path, or options the factory does not take.
    """
    opts = dict(options or {})
    if ":" in name:
        from plasticine_jax.methods.user import from_import_path

        method = from_import_path(name, opts)
    elif name not in REGISTRY:
        raise ValueError(
            f"unknown method {name!r}{_did_you_mean(name, REGISTRY)}; registered methods: "
            f"{sorted(REGISTRY)} (or name your own as 'package.module:factory')"
        )
    else:
        _check_options(name, REGISTRY[name], opts)
        try:
            method = REGISTRY[name](**opts)
        except TypeError as e:
            raise ValueError(f"method {name!r}: bad options {sorted(opts)}: {e}") from None
    return dataclasses.replace(method, options=_freeze(opts))


def _check_options(name: str, factory: Callable[..., Method], opts: Mapping[str, Any]) -> None:
    """Option names against the factory's parameters and values against their type hints
    (a string where a list of layers is expected would be read letter by letter)."""
    params = inspect.signature(factory).parameters
    allowed = list(params)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    try:
        hints = typing.get_type_hints(factory)
    except (NameError, TypeError):  # an annotation that does not resolve: names only
        hints = {}
    for key, value in opts.items():
        if key not in allowed:
            if takes_any:
                continue
            raise ValueError(
                f"method {name!r}: unknown option {key!r}{_did_you_mean(key, allowed)}; "
                f"its options are {allowed or 'none'}"
            )
        if key in hints and not _matches(value, hints[key]):
            raise ValueError(
                f"method {name!r}: option {key}={value!r} must be {_describe(hints[key])}"
            )


_SCALARS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            type(None): "null"}
_PLURALS = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits ``hint`` (scalars, ``Sequence[X]``, unions); other hints
    are not checked."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_matches(value, a) for a in args)
    if hint is bool or hint is type(None):
        return isinstance(value, hint)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence):
        return isinstance(value, list | tuple) and all(_matches(v, args[0]) for v in value)
    return True


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence):
        return f"a list of {_PLURALS.get(args[0], 'items') if args else 'items'}"
    return _SCALARS.get(hint, str(hint))


def _did_you_mean(value: str, names: Any) -> str:
    near = difflib.get_close_matches(str(value), list(names), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _register_builtin() -> None:
    from plasticine_jax.methods.crelu import crelu
    from plasticine_jax.methods.fourier import fourier
    from plasticine_jax.methods.kron import kron
    from plasticine_jax.methods.l2 import l2
    from plasticine_jax.methods.l2_init import l2_init
    from plasticine_jax.methods.layer_norm import layer_norm
    from plasticine_jax.methods.nap import nap
    from plasticine_jax.methods.parseval import parseval
    from plasticine_jax.methods.sam import sam
    from plasticine_jax.methods.shrink_perturb import shrink_perturb
    from plasticine_jax.methods.trac import trac
    from plasticine_jax.methods.weight_clipping import weight_clipping

    REGISTRY["shrink_perturb"] = shrink_perturb
    REGISTRY["layer_norm"] = layer_norm
    REGISTRY["nap"] = nap
    REGISTRY["l2"] = l2
    REGISTRY["l2_init"] = l2_init
    REGISTRY["parseval"] = parseval
    REGISTRY["crelu"] = crelu
    REGISTRY["fourier"] = fourier
    REGISTRY["trac"] = trac
    REGISTRY["kron"] = kron
    REGISTRY["sam"] = sam
    REGISTRY["weight_clipping"] = weight_clipping

    # Scheduled interventions and the HL-Gauss critic.
    from plasticine_jax.methods.continual_backprop import continual_backprop
    from plasticine_jax.methods.hare_tortoise import hare_tortoise
    from plasticine_jax.methods.hl_gauss import hl_gauss
    from plasticine_jax.methods.layer_reset import layer_reset
    from plasticine_jax.methods.neuroplastic_expansion import neuroplastic_expansion
    from plasticine_jax.methods.opt_reset import opt_reset
    from plasticine_jax.methods.plasticity_injection import plasticity_injection
    from plasticine_jax.methods.redo import redo

    REGISTRY["redo"] = redo
    REGISTRY["layer_reset"] = layer_reset
    REGISTRY["plasticity_injection"] = plasticity_injection
    REGISTRY["continual_backprop"] = continual_backprop
    REGISTRY["neuroplastic_expansion"] = neuroplastic_expansion
    REGISTRY["hare_tortoise"] = hare_tortoise
    REGISTRY["opt_reset"] = opt_reset
    REGISTRY["hl_gauss"] = hl_gauss


_register_builtin()
