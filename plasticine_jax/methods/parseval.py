"""Parseval regularisation (Chung et al. 2024).

For each chosen layer with weight matrix ``W`` (rows = output units; flax kernels are
``[fan_in, fan_out]`` so ``W = Kᵀ``, convolution kernels flattened to ``[k·k·c_in, c_out]``):

    penalty = λ · Σ_layers ‖W Wᵀ − s·I‖²_F

Defaults: λ = 1e-3 (``coef``), s = 1 (``scale``), on each torso's last hidden layer
(Plasticine's "encoder's last dense layer"; option ``layers``, see
``_paths.select_modules``: ``"last"``, ``"hidden"``, ``"heads"`` or module paths such as
``"actor/layer_0"``). The paper regularises every layer but the last; pass
``layers: [hidden]`` for that. λ = 0 is the identity.

Registry name: ``parseval``.

References:
  Chung et al., "Parseval regularization for continual reinforcement learning", NeurIPS
  2024. https://arxiv.org/abs/2412.07224
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from plasticine_jax.methods import _paths
from plasticine_jax.methods.base import HP, Method


def parseval_term(kernel: jax.Array, scale: jax.Array) -> jax.Array:
    """``‖W Wᵀ − s I‖²_F`` for a kernel ``[..., fan_out]`` (W = kernelᵀ, flattened)."""
    k = kernel.reshape((-1, kernel.shape[-1]))
    gram = k.T @ k  # W Wᵀ, [fan_out, fan_out]
    return jnp.sum(jnp.square(gram - scale * jnp.eye(gram.shape[0], dtype=gram.dtype)))


def parseval(layers: Sequence[str] = ("last",)) -> Method:
    """Registry factory. Options: ``layers`` (selectors; default ``("last",)``)."""
    layers = tuple(layers)

    def penalty(params: Any, anchor: Any, hp: HP) -> jax.Array:
        del anchor
        mods = set(_paths.select_modules(params, layers))
        total = jnp.zeros((), jnp.float32)
        for p, x in jax.tree_util.tree_leaves_with_path(params):
            s = _paths.leaf_path(p)
            if _paths.is_kernel(s) and _paths.module_of(s) in mods:
                total = total + parseval_term(x, hp["scale"])
        return hp["coef"] * total

    return Method(
        name="parseval",
        hp={"coef": 1e-3, "scale": 1.0},
        identity_hp={"coef": 0.0, "scale": 1.0},
        penalty=penalty,
    )
