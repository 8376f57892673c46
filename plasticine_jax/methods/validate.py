"""Config-time checks on a list of methods: refuse impossible mixes, naming both sides.

``check_methods`` is called once per grid point on the host, before anything compiles:

* duplicate method names (their hyperparameters would share one key);
* unknown hyperparameter keys (named, with the allowed keys);
* declared conflicts (``Method.conflicts``, either direction);
* two network edits setting the same ``NetworkSpec`` field to different values (two
  activations: CReLU + Fourier), found by applying each edit to the base network;
* a method's ``requires`` on the *final* network (ReDo needs a ReLU-family activation): the
  message names the method and whoever set the field: another method or the network config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from plasticine_jax.methods.base import Method
from plasticine_jax.networks.spec import NetworkSpec


class MethodConflictError(ValueError):
    """An impossible combination of methods (or of a method and the network)."""


def _changed_fields(before: NetworkSpec, after: NetworkSpec) -> dict[str, Any]:
    return {
        f.name: getattr(after, f.name)
        for f in dataclasses.fields(NetworkSpec)
        if getattr(before, f.name) != getattr(after, f.name)
    }


def check_methods(
    methods: Sequence[Method],
    spec: NetworkSpec,
    hp_overrides: Sequence[Mapping[str, Any]] | None = None,
) -> NetworkSpec:
    """Validates a method list against the base network; returns the final network.

    Args:
      methods: the methods, in application order.
      spec: the network as configured (before the methods' edits).
      hp_overrides: per method, the config's ``hp`` mapping (checked for unknown keys).

    Raises:
      MethodConflictError: with a message naming the offending pair (or key).
    """
    names = [m.name for m in methods]
    for i, m in enumerate(methods):
        if m.name in names[:i]:
            raise MethodConflictError(f"method {m.name!r} is listed twice; keep one entry")
    for m, hp in zip(methods, hp_overrides or [{}] * len(methods), strict=True):
        unknown = sorted(set(hp) - set(m.hp))
        if unknown:
            raise MethodConflictError(
                f"method {m.name!r}: unknown hyperparameter(s) {unknown}; it has {sorted(m.hp)}"
            )
    for a in methods:
        for b in methods:
            if a is not b and (b.name in a.conflicts):
                raise MethodConflictError(
                    f"methods {a.name!r} and {b.name!r} cannot be combined; remove one of them"
                )
    # Who sets which network field: the config, then each network edit in order.
    setter: dict[str, str] = {f.name: "the network config" for f in dataclasses.fields(spec)}
    set_by_method: dict[str, tuple[str, Any]] = {}
    final = spec
    for m in methods:
        if m.network is None:
            continue
        alone = _changed_fields(spec, m.network(spec))
        for field, value in alone.items():
            if field in set_by_method and set_by_method[field][1] != value:
                other, other_value = set_by_method[field]
                raise MethodConflictError(
                    f"methods {other!r} and {m.name!r} both set the network's {field} "
                    f"({other_value!r} vs {value!r}); remove one of them"
                )
            set_by_method[field] = (m.name, value)
            setter[field] = f"method {m.name!r}"
        final = m.network(final)
    for m in methods:
        for field, allowed in m.requires.items():
            value = getattr(final, field)
            if not allowed:
                raise MethodConflictError(
                    f"method {m.name!r}: no network {field} suits its options "
                    f"{dict(m.options)}; change them"
                )
            if value not in allowed:
                raise MethodConflictError(
                    f"method {m.name!r} needs the network's {field} in {tuple(allowed)}, but "
                    f"{setter[field]} makes it {value!r}; change one of them"
                )
    return final
