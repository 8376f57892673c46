"""Name -> method factory. Adding a method: one new file and one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from plasticine_jax.methods.base import Method

# factory(options: dict) -> Method. ``options`` are the method's static settings.
REGISTRY: dict[str, Callable[..., Method]] = {}


def make_method(name: str, options: Mapping[str, Any] | None = None) -> Method:
    if name not in REGISTRY:
        raise ValueError(
            f"unknown method {name!r}; registered methods: {sorted(REGISTRY)}"
        )
    return REGISTRY[name](**dict(options or {}))
