"""Addressing parameters by name: ``"actor/layer_1/kernel"``, ``"critic_head/bias"``.

Parameter trees are ``{"params": {torso: {"layer_i" | "norm_i": {...}}, head: {...}}}``
(see ``networks.torso``). Methods that act on some layers, or on a layer's kernel and bias
together, use these helpers instead of walking the tree by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jax

Params = Any


def leaf_path(path: tuple[Any, ...]) -> str:
    """``("params", "actor", "layer_0", "kernel")`` keys -> ``"actor/layer_0/kernel"``."""
    names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
    if names and names[0] == "params":
        names = names[1:]
    return "/".join(names)


def map_with_path(fn: Callable[[str, Any], Any], tree: Params, *rest: Params) -> Params:
    """``jax.tree.map`` whose function also receives the leaf's path string."""
    return jax.tree_util.tree_map_with_path(lambda p, x, *r: fn(leaf_path(p), x, *r), tree, *rest)


def module_of(path: str) -> str:
    """``"actor/layer_0/kernel"`` -> ``"actor/layer_0"``."""
    return path.rsplit("/", 1)[0] if "/" in path else path


def is_kernel(path: str) -> bool:
    return path.endswith("/kernel")


def is_norm(path: str) -> bool:
    return re.search(r"(^|/)norm_\d+/", path) is not None


def hidden_layers(params: Params) -> list[str]:
    """Module paths of every hidden (torso) layer, e.g. ``["actor/layer_0", ...]``."""
    mods = set()
    for p, _ in jax.tree_util.tree_leaves_with_path(params):
        s = leaf_path(p)
        if re.search(r"(^|/)layer_\d+/kernel$", s):
            mods.add(module_of(s))
    return sorted(mods, key=lambda m: (m.rsplit("/", 1)[0], int(m.rsplit("_", 1)[1])))


def last_hidden_layers(params: Params) -> list[str]:
    """The last hidden layer of each torso (Plasticine's "encoder's last dense layer")."""
    last: dict[str, str] = {}
    for m in hidden_layers(params):
        last[m.rsplit("/", 1)[0] if "/" in m else ""] = m
    return sorted(last.values())


def select_modules(params: Params, layers: tuple[str, ...]) -> list[str]:
    """Resolves layer selectors to module paths.

    Selectors: ``"last"`` (each torso's last hidden layer), ``"hidden"`` (all hidden layers),
    ``"heads"`` (``actor_head``, ``critic_head``), or an explicit module path such as
    ``"actor/layer_1"`` or ``"critic_head"``.
    """
    mods: list[str] = []
    all_modules = sorted(
        {module_of(leaf_path(p)) for p, _ in jax.tree_util.tree_leaves_with_path(params)}
    )
    for sel in layers:
        if sel == "last":
            found = last_hidden_layers(params)
        elif sel == "hidden":
            found = hidden_layers(params)
        elif sel == "heads":
            found = [m for m in all_modules if m.endswith("_head")]
        else:
            found = [m for m in all_modules if m == sel]
            if not found:
                raise ValueError(f"layer {sel!r} not found; modules are {all_modules}")
        mods.extend(m for m in found if m not in mods)
    return mods
