"""Normalize-and-Project (Lyle et al. 2024): LayerNorm plus norm-preserving projection.

Network edit: LayerNorm before every hidden nonlinearity (as ``layer_norm``).
Optimizer wrapper: after each step, with θ' = θ + u the inner optimizer's result,

* every weight matrix (each ``kernel``, hidden layers and heads, convolutions included) is
  projected back to its initial Frobenius norm: ``W ← W · ‖W₀‖ / ‖W'‖``;
* every normalisation layer's scale and offset are projected *jointly* back to their initial
  norm: ``(γ, β) ← (γ, β) · ‖(γ₀, β₀)‖ / ‖(γ', β')‖``;
* biases of dense layers and ``log_std`` are left free.

The initial norms are stored in the wrapper's state (and survive an optimizer-state reset).

When it projects: ours after every optimizer step (every minibatch, ``update_epochs ×
num_minibatches`` times per PPO update). Plasticine projects less often: its current tree
once per PPO update, after the epochs (``plasticine_normalize_and_project`` in
``ppo_continual_*_plasticine.py``), and its 2025 tree every 10 updates
(``projection_interval = 10`` in the ``*_nap.py`` scripts).

No hyperparameters and no options.

Registry name: ``nap``.

References:
  Lyle et al., "Normalization and effective learning rates in reinforcement learning",
  NeurIPS 2024. https://arxiv.org/abs/2407.01800
  Plasticine, arXiv 2504.17490, https://github.com/RLE-Foundation/Plasticine.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.methods import _paths
from plasticine_jax.methods.base import HP, Method
from plasticine_jax.methods.layer_norm import with_layernorm


class NaPState(NamedTuple):
    inner: optax.OptState
    target_norms: Any  # per leaf: its group's initial norm (0 where the leaf is not projected)

    # Anchors, kept by optimizer-state resets: zeroed norms would project every weight to 0.
    persist_fields = ("target_norms",)


def _group(path: str) -> str | None:
    """The projection group of a leaf: itself for kernels, its module for norm layers."""
    if _paths.is_kernel(path):
        return path
    if _paths.is_norm(path):
        return _paths.module_of(path)
    return None


def _group_norms(params: Any) -> Any:
    """Per leaf, the norm of its projection group (0.0 for free leaves)."""
    sq: dict[str, jax.Array] = {}
    for p, x in jax.tree_util.tree_leaves_with_path(params):
        g = _group(_paths.leaf_path(p))
        if g is not None:
            sq[g] = sq.get(g, 0.0) + jnp.sum(jnp.square(x))
    return _paths.map_with_path(
        lambda s, x: jnp.sqrt(sq[_group(s)]) if _group(s) is not None else jnp.zeros((), x.dtype),
        params,
    )


def project(params: Any, target_norms: Any) -> Any:
    """Rescales each projection group of ``params`` to its target norm."""
    norms = _group_norms(params)
    return _paths.map_with_path(
        lambda s, x, n, t: x * (t / jnp.maximum(n, 1e-12)) if _group(s) is not None else x,
        params,
        norms,
        target_norms,
    )


def nap_tx(inner: optax.GradientTransformation, hp: HP) -> optax.GradientTransformationExtraArgs:
    """Wraps ``inner``: projects weights and norm layers to their initial norms after it."""
    del hp
    inner = optax.with_extra_args_support(inner)

    def init_fn(params):
        return NaPState(inner.init(params), _group_norms(params))

    def update_fn(updates, state, params=None, **extra):
        if params is None:
            raise ValueError("nap needs params")
        u, inner_state = inner.update(updates, state.inner, params, **extra)
        new_params = optax.apply_updates(params, u)
        projected = project(new_params, state.target_norms)
        new_u = jax.tree.map(lambda q, p: q - p, projected, params)
        return new_u, NaPState(inner_state, state.target_norms)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def nap() -> Method:
    """Registry factory (no options, no hyperparameters)."""
    return Method(name="nap", network=with_layernorm, optimizer=nap_tx)
