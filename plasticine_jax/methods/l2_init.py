"""Regenerative regularisation, L2-to-init (Kumar et al. 2023).

Option ``variant``:

* ``"unsquared"`` (default, Plasticine's ``rr`` scripts): ``λ·‖θ − θ₀‖₂`` with the norm over
  all parameters together; λ = 0.01.
* ``"squared"`` (the paper): ``λ·‖θ − θ₀‖₂²``; its gradient is ``2λ(θ − θ₀)``.

θ₀ are the parameters at initialisation (the agent's ``init_params`` anchor). The unsquared
norm's gradient ``λ(θ − θ₀)/‖θ − θ₀‖`` is undefined at θ = θ₀; we take it as 0 there (a safe
norm), so the first step from initialisation is finite. λ = 0 is the identity.

Registry name: ``l2_init``.

References:
  Kumar, Marklund & Van Roy, "Maintaining plasticity in continual learning via regenerative
  regularization", CoLLAs 2024. https://arxiv.org/abs/2308.11958
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from plasticine_jax.methods.base import HP, Method

VARIANTS = ("unsquared", "squared")


def squared_distance(params: Any, anchor: Any) -> jax.Array:
    return sum(
        jnp.sum(jnp.square(p - a))
        for p, a in zip(jax.tree.leaves(params), jax.tree.leaves(anchor), strict=True)
    )


def safe_norm(sq: jax.Array) -> jax.Array:
    """``sqrt(sq)`` with gradient 0 (not NaN) at ``sq = 0``."""
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def l2_init(variant: str = "unsquared") -> Method:
    """Registry factory. Options: ``variant`` in ``("unsquared", "squared")``."""
    if variant not in VARIANTS:
        raise ValueError(f"l2_init: variant must be one of {VARIANTS}, got {variant!r}")

    def penalty(params: Any, anchor: Any, hp: HP) -> jax.Array:
        sq = squared_distance(params, anchor)
        return hp["coef"] * (sq if variant == "squared" else safe_norm(sq))

    return Method(name="l2_init", hp={"coef": 0.01}, identity_hp={"coef": 0.0}, penalty=penalty)
