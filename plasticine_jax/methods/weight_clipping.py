"""Weight clipping (Elsayed, Lan, Lyle & Mahmood 2024) as an optimizer wrapper.

After every optimizer step each weight is clipped to ``[−κ·b_l, κ·b_l]``, where ``b_l`` is
the bound of layer l's initialisation distribution. The paper uses uniform initialisers,
whose bound is explicit; our networks are initialised orthogonally (unbounded in
principle), so ``b_l`` is the largest initial magnitude in the layer, ``max |θ₀|`` over its
kernel (the empirical support of its init), stored in the wrapper's state. A layer's bias
shares its kernel's bound (as in PyTorch, where both are drawn from the same uniform);
LayerNorm scales and offsets are bounded by their own ``max |θ₀|`` (κ·1 for scales);
leaves whose module is all zero at init (e.g. ``log_std``) are not clipped.

Default κ = 2 (``kappa``; the paper's default); κ = inf is the identity (written so the
unclipped update passes through bit for bit).

Registry name: ``weight_clipping``.

References:
  Elsayed et al., "Weight clipping for deep continual and reinforcement learning", RLC 2024.
  https://arxiv.org/abs/2407.01704
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.methods import _paths
from plasticine_jax.methods.base import HP, Method


class WeightClipState(NamedTuple):
    inner: optax.OptState
    bounds: Any  # per leaf: b_l (inf where unclipped)

    # Anchors, kept by optimizer-state resets: zeroed bounds would clip every weight to 0.
    persist_fields = ("bounds",)


def init_bounds(params: Any) -> Any:
    """Per leaf, its module's bound ``max |θ₀|`` (kernel's when it has one); inf when 0."""
    per_module: dict[str, jax.Array] = {}
    kernels: dict[str, jax.Array] = {}
    for p, x in jax.tree_util.tree_leaves_with_path(params):
        s = _paths.leaf_path(p)
        m = _paths.module_of(s)
        b = jnp.max(jnp.abs(x)) if x.size else jnp.zeros((), x.dtype)
        per_module[m] = jnp.maximum(per_module.get(m, 0.0), b)
        if _paths.is_kernel(s):
            kernels[m] = b

    def bound(s: str, x: jax.Array) -> jax.Array:
        m = _paths.module_of(s)
        b = kernels.get(m, per_module[m])
        return jnp.where(b > 0, b, jnp.inf).astype(x.dtype)

    return _paths.map_with_path(bound, params)


def weight_clipping_tx(
    inner: optax.GradientTransformation, hp: HP
) -> optax.GradientTransformationExtraArgs:
    """Wraps ``inner``: clips θ + u to ``[−κ b, κ b]`` per leaf."""
    inner = optax.with_extra_args_support(inner)

    def init_fn(params):
        return WeightClipState(inner.init(params), init_bounds(params))

    def update_fn(updates, state, params=None, **extra):
        if params is None:
            raise ValueError("weight_clipping needs params")
        u, inner_state = inner.update(updates, state.inner, params, **extra)

        def clip(ui, p, b):
            new = p + ui
            lim = hp["kappa"] * b
            return ui + (jnp.clip(new, -lim, lim) - new)

        new_u = jax.tree.map(clip, u, params, state.bounds)
        return new_u, WeightClipState(inner_state, state.bounds)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def weight_clipping() -> Method:
    """Registry factory (no options)."""
    return Method(
        name="weight_clipping",
        hp={"kappa": 2.0},
        identity_hp={"kappa": float("inf")},
        optimizer=weight_clipping_tx,
    )
