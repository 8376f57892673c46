"""L2 regularisation / weight decay.

Two named variants (option ``variant``):

* ``"coupled"`` (default, Plasticine's ``l2n``: ``torch.optim.Adam(weight_decay=λ)``, which
  adds λθ to the gradient before Adam): a loss penalty ``(λ/2)·Σ θ²`` over every parameter,
  whose gradient is exactly ``λθ``. One difference: PyTorch adds λθ *after* the global-norm
  clip, while a loss penalty is clipped with the rest of the gradient.
* ``"decoupled"`` (Loshchilov & Hutter 2019, AdamW-style): after the optimizer step,
  ``θ ← θ − λθ``, i.e. the update gains ``−λθ``. Not multiplied by the learning rate (the
  wrapper does not know it), so λ here is a per-step decay factor.

Default λ = 1e-3 (``coef``, Plasticine's ``weight_decay``); λ = 0 is the identity.

Registry name: ``l2``.

References:
  Krogh & Hertz, "A simple weight decay can improve generalization", NeurIPS 1991.
  Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.methods.base import HP, Method

VARIANTS = ("coupled", "decoupled")


def l2_penalty(params: Any, anchor: Any, hp: HP) -> jax.Array:
    """``(λ/2) Σ θ²`` over all parameters."""
    del anchor
    sq = sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(params))
    return 0.5 * hp["coef"] * sq


def decoupled_decay_tx(
    inner: optax.GradientTransformation, hp: HP
) -> optax.GradientTransformationExtraArgs:
    """Wraps ``inner``: adds ``−λθ`` to its update."""
    inner = optax.with_extra_args_support(inner)

    def update_fn(updates, state, params=None, **extra):
        u, state = inner.update(updates, state, params, **extra)
        return jax.tree.map(lambda ui, p: ui - hp["coef"] * p, u, params), state

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


def l2(variant: str = "coupled") -> Method:
    """Registry factory. Options: ``variant`` in ``("coupled", "decoupled")``."""
    if variant not in VARIANTS:
        raise ValueError(f"l2: variant must be one of {VARIANTS}, got {variant!r}")
    hooks: dict[str, Any] = (
        {"penalty": l2_penalty} if variant == "coupled" else {"optimizer": decoupled_decay_tx}
    )
    return Method(name="l2", hp={"coef": 1e-3}, identity_hp={"coef": 0.0}, **hooks)
