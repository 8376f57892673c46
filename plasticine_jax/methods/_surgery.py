"""Unit-level and layer-level surgery on actor-critic parameters (shared by interventions).

Conventions (``networks.torso``): ``params["params"][torso]["layer_i"]`` holds a Dense kernel
``[in, out]`` or a Conv kernel ``[kh, kw, cin, cout]`` plus ``bias [out]``; an optional
``norm_i`` holds LayerNorm ``scale``/``bias`` ``[out]``; the last hidden layer of a torso feeds
its head(s) (``actor_head`` / ``critic_head``; both when the torso is ``shared``).

A *unit* of layer ``i`` is one output channel of its kernel. Its activation may be wider than
the kernel (CReLU and Fourier features concatenate ``m`` transforms, so feature ``j`` belongs
to unit ``j % units``); the *features* are what the next layer reads. A flatten between a
conv and a dense layer reads feature ``c`` at position ``(h, w)`` from row
``((h * W) + w) * C + c``, so the next dense kernel reshaped to ``[H * W, C, out]`` has the
feature on its middle axis.

Optimizer state: ``map_param_like`` finds the subtrees of an optax state shaped like the
parameters (Adam's ``mu`` and ``nu``, momentum traces, ``adam_gnt``'s per-entry step
``count``) and rewrites them; scalar counters and injected hyperparameters are left alone,
and so are the fields that a wrapper's ``NamedTuple`` state declares in ``persist_fields``
(anchors: θ₀, initial norms, bounds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Any

HEADS = {"shared": ("actor_head", "critic_head"), "actor": ("actor_head", "log_std_head"),
         "critic": ("critic_head",), "q": ("q_head", "value_head")}
# Every torso an agent builds: PPO's actor/critic (or one shared), the Q-network's ``q``.
TORSOS = tuple(HEADS)
# The selector for "every head of the network" (``layer_reset``, ``plasticity_injection``).
ALL_HEADS = "heads"


def resolve_heads(p: dict, paths: tuple[str, ...]) -> tuple[str, ...]:
    """``paths`` with the selector ``"heads"`` replaced by every ``*_head`` module in ``p``
    (``params["params"]``), in sorted order."""
    out: list[str] = []
    for path in paths:
        found = sorted(k for k in p if k.endswith("_head")) if path == ALL_HEADS else [path]
        out += [x for x in found if x not in out]
    return tuple(out)
# Head kernels that read the torso's features (``*_a``/``*_b``: plasticity injection).
HEAD_KERNELS = ("kernel", "kernel_a", "kernel_b")


def hidden_layers(p: dict, torso: str) -> list[int]:
    """Indices ``i`` of ``layer_i`` in ``p[torso]``, ascending."""
    return sorted(int(k.split("_")[1]) for k in p[torso] if k.startswith("layer_"))


def parse_activation_key(name: str) -> tuple[str, int]:
    """``"actor/layer_2"`` -> ``("actor", 2)``."""
    torso, layer = name.split("/")
    return torso, int(layer.split("_")[1])


def false_like(tree: Params) -> Params:
    """A bool tree of ``tree``'s structure and shapes, all False."""
    return jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), bool), tree)


def copy_tree(tree: Any) -> Any:
    """A structural copy of nested dicts (leaves shared), so edits do not alias the input."""
    if isinstance(tree, dict):
        return {k: copy_tree(v) for k, v in tree.items()}
    return tree


def unit_mask_from_features(feature_mask: Array, units: int) -> Array:
    """Feature mask ``[m * units]`` -> unit mask ``[units]``: a unit is selected iff all of its
    ``m`` features are."""
    m = feature_mask.shape[-1] // units
    return jnp.all(feature_mask.reshape(m, units), axis=0)


def _where_last(mask: Array, new: Array, old: Array) -> Array:
    """``new`` where ``mask`` (over the last axis) else ``old``."""
    return jnp.where(mask, new, old)


def _input_mask(kernel: Array, feature_mask: Array) -> Array:
    """Broadcast a feature mask ``[C]`` onto the input axis of the kernel that reads them."""
    C = feature_mask.shape[0]
    if kernel.ndim == 4:  # conv reads channels on axis 2
        return jnp.broadcast_to(feature_mask[None, None, :, None], kernel.shape)
    rows, out = kernel.shape
    # A flatten before a dense layer puts the channel last: row = pos * C + c.
    m = jnp.broadcast_to(feature_mask[None, :, None], (rows // C, C, out))
    return m.reshape(rows, out)


def outgoing(p: dict, torso: str, i: int) -> list[tuple[str, ...]]:
    """Paths (within ``p``) of the kernels that read layer ``i``'s features."""
    layers = hidden_layers(p, torso)
    if i != layers[-1]:
        return [(torso, f"layer_{i + 1}", "kernel")]
    return [(h, k) for h in HEADS[torso] if h in p for k in HEAD_KERNELS if k in p[h]]


def get_path(tree: dict, path: tuple[str, ...]) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def set_path(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for k in path[:-1]:
        tree = tree[k]
    tree[path[-1]] = value


def recycle_units(
    p: dict,
    fresh: dict,
    touched: dict,
    torso: str,
    i: int,
    unit_mask: Array,
    features: int,
) -> tuple[dict, dict]:
    """Re-initialises the incoming weights of the selected units of layer ``i`` and zeroes
    their outgoing weights.

    Args:
      p: ``params["params"]`` (nested dicts; not modified, a copy is returned).
      fresh: a fresh initialisation of the same tree (``ctx.init(key)["params"]``).
      touched: bool tree like ``p``; entries rewritten here are set True.
      torso: ``"actor"``, ``"critic"`` or ``"shared"``.
      i: layer index.
      unit_mask: ``[units]`` bool, the units to recycle.
      features: width of layer ``i``'s activation (``m * units``).

    Returns:
      ``(p, touched)``, new trees.
    """
    p, touched = copy_tree(p), copy_tree(touched)
    units = unit_mask.shape[0]
    feature_mask = jnp.tile(unit_mask, features // units)
    layer, norm = f"layer_{i}", f"norm_{i}"
    for scope in (layer, norm):
        if scope not in p[torso]:
            continue
        for name, old in p[torso][scope].items():
            new = fresh[torso][scope][name]
            mask = jnp.broadcast_to(unit_mask, old.shape)
            p[torso][scope][name] = _where_last(mask, new, old)
            touched[torso][scope][name] = touched[torso][scope][name] | mask
    for path in outgoing(p, torso, i):
        kernel = get_path(p, path)
        mask = _input_mask(kernel, feature_mask)
        set_path(p, path, jnp.where(mask, jnp.zeros_like(kernel), kernel))
        set_path(touched, path, get_path(touched, path) | mask)
    return p, touched


def _is_state_tuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def persist_fields(x: Any) -> tuple[str, ...]:
    """The fields an optimizer-state reset must keep, for a wrapper's ``NamedTuple`` state.

    A wrapper declares them as a class attribute, ``persist_fields = ("init_params",)``
    (``methods.base``): anchors such as θ₀, initial norms or clipping bounds, which are not
    statistics and whose initial value is not zero. Anything else has none.
    """
    if _is_state_tuple(x):
        return tuple(getattr(type(x), "persist_fields", ()))
    return ()


def _walk_state(
    opt_state: Any, params: Params, on_stats: Callable[[Params], Params],
    on_tuple: Callable[[Any, dict[str, Any], list[str]], dict[str, Any]] | None = None,
) -> Any:
    """Rewrites every parameter-shaped subtree of ``opt_state`` with ``on_stats``, except
    under ``persist_fields``. ``on_tuple(old, new_fields, stats) -> new_fields`` may further
    edit each state ``NamedTuple``; ``stats`` names its rewritten parameter-shaped fields
    (``reset_opt_state`` zeroes the ``count`` of tuples that have some)."""
    treedef = jax.tree.structure(params)

    def is_param_like(x: Any) -> bool:
        return jax.tree.structure(x) == treedef

    def visit(x: Any) -> Any:
        if is_param_like(x):
            return on_stats(x)
        if not _is_state_tuple(x):
            return x
        keep = persist_fields(x)
        fields = {k: v if k in keep else walk(v) for k, v in zip(x._fields, x, strict=True)}
        if on_tuple is not None:
            stats = [k for k, v in zip(x._fields, x, strict=True)
                     if k not in keep and is_param_like(v)]
            fields = on_tuple(x, fields, stats)
        return type(x)(**fields)

    def walk(tree: Any) -> Any:
        return jax.tree.map(visit, tree, is_leaf=lambda y: is_param_like(y) or _is_state_tuple(y))

    return walk(opt_state)


def map_param_like(opt_state: Any, params: Params, fn: Callable[[Params], Params]) -> Any:
    """Applies ``fn`` to every subtree of ``opt_state`` structured like ``params``, except
    those under a state's ``persist_fields``."""
    return _walk_state(opt_state, params, fn)


def zero_moments(opt_state: Any, params: Params, touched: Params) -> Any:
    """Zeroes the optimizer statistics (Adam's ``mu``/``nu``, ...) where ``touched``.

    Only parameter-shaped statistics whose leaves have the parameters' shapes are edited;
    ``persist_fields`` (anchors) and per-leaf summaries (one norm per kernel) are kept.
    ``optax.adam``'s step count is one scalar and stays; ``adam_gnt``'s count is per entry
    and is zeroed with the moments, so the touched entries restart Adam's bias correction
    (AdamGnT, Dohare et al. 2024) while the others step on unchanged.
    """

    def zero(x: Array, m: Array) -> Array:
        if jnp.shape(x) != jnp.shape(m):
            return x
        return jnp.where(m, jnp.zeros_like(x), x)

    return map_param_like(opt_state, params, lambda s: jax.tree.map(zero, s, touched))


def reset_opt_state(opt_state: Any, params: Params, reset_count: bool = True) -> Any:
    """Returns an optimizer state as at initialisation, for the optax Adam family.

    Every parameter-shaped statistic is zeroed; with ``reset_count``, the ``count`` field of
    every state tuple that holds such statistics (Adam's bias-correction step, a scalar, or
    ``adam_gnt``'s per-entry counts) is zeroed too, and without it kept. Other fields
    (injected hyperparameters, schedule counters) are kept, so a swept learning rate
    survives the reset, and so are the fields a wrapper's state lists in
    ``persist_fields`` (S&P's θ₀, NaP's initial norms, weight clipping's bounds, TRAC's
    reference point): a tuple whose only parameter-shaped fields persist keeps its ``count``.
    """

    def count(x: Any, fields: dict[str, Any], stats: list[str]) -> dict[str, Any]:
        if stats and "count" in fields and "count" not in persist_fields(x):
            fields["count"] = jax.tree.map(jnp.zeros_like, x.count) if reset_count else x.count
        return fields

    return _walk_state(opt_state, params, lambda s: jax.tree.map(jnp.zeros_like, s), count)


def select_subtrees(tree: dict, paths: tuple[str, ...]) -> dict:
    """Bool tree like ``tree``: True on every leaf under one of ``paths``.

    A path is ``/``-separated from ``params["params"]``: ``"actor_head"``,
    ``"critic/layer_1"``, ``"actor"`` (a whole torso).
    """
    wanted = [tuple(p.split("/")) for p in paths]

    def mark(path, x):
        keys = tuple(getattr(k, "key", str(k)) for k in path)
        hit = any(keys[: len(w)] == w for w in wanted)
        return jnp.full(jnp.shape(x), hit, bool)

    return jax.tree_util.tree_map_with_path(mark, tree)


def check_paths(tree: dict, paths: tuple[str, ...], method: str) -> None:
    """Raises a ValueError naming ``method`` if a path is not in ``tree`` (static check)."""
    for path in paths:
        node = tree
        for k in path.split("/"):
            if not isinstance(node, dict) or k not in node:
                raise ValueError(
                    f"{method}: no parameters at {path!r}; top-level scopes are {sorted(tree)}"
                )
            node = node[k]


def _per_input(kernel: Array, values: Array, features: int) -> Array:
    """Sums ``values`` (shaped like ``kernel``) per input feature: ``[features]``."""
    if kernel.ndim == 4:
        return jnp.sum(values, axis=(0, 1, 3))
    rows, out = kernel.shape
    return jnp.sum(values.reshape(rows // features, features, out), axis=(0, 2))


def outgoing_magnitude(p: dict, torso: str, i: int, features: int) -> Array:
    """``sum_k |w_jk|`` over every outgoing weight of each feature ``j`` of layer ``i``."""
    total = jnp.zeros((features,), jnp.float32)
    for path in outgoing(p, torso, i):
        kernel = get_path(p, path)
        total = total + _per_input(kernel, jnp.abs(kernel), features)
    return total


def outgoing_bias_shift(p: dict, torso: str, i: int, feature_values: Array) -> dict:
    """``{bias path: sum_j w_jk * v_j}``: what each reader's bias must gain to absorb a
    constant output ``v_j`` of every feature ``j`` (summed over positions for convolutions)."""
    shifts = {}
    C = feature_values.shape[0]
    for path in outgoing(p, torso, i):
        kernel = get_path(p, path)
        if kernel.ndim == 4:
            shift = jnp.einsum("hwco,c->o", kernel, feature_values)
        else:
            rows, out = kernel.shape
            shift = jnp.einsum("pco,c->o", kernel.reshape(rows // C, C, out), feature_values)
        bias_path = (*path[:-1], "bias" + path[-1][len("kernel"):])
        shifts[bias_path] = shift
    return shifts
