"""Name -> method factory. Adding a method: one new file and one line here."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
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
        params = inspect.signature(REGISTRY[name]).parameters
        allowed = list(params)
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for key in opts:
            if key not in allowed and not takes_any:
                raise ValueError(
                    f"method {name!r}: unknown option {key!r}{_did_you_mean(key, allowed)}; "
                    f"its options are {allowed or 'none'}"
                )
        try:
            method = REGISTRY[name](**opts)
        except TypeError as e:
            raise ValueError(f"method {name!r}: bad options {sorted(opts)}: {e}") from None
    return dataclasses.replace(method, options=_freeze(opts))


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
