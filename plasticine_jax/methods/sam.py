"""Sharpness-Aware Minimisation (Foret et al. 2021) as an optimizer wrapper.

SAM replaces the gradient g = ∇L(θ) with the gradient at the worst nearby point:

    ε̂  = ρ · g / ‖g‖₂                 (‖·‖ over all parameters)
    g_SAM = ∇L(θ + ε̂)               (same minibatch)

and hands g_SAM to the base optimizer. Default ρ = 0.05 (the paper's usual value).

The second gradient needs the loss, which an optimizer never sees. The design here: the
agent passes ``grad_fn`` as an extra argument, ``tx.update(grads, state, params, key=key,
grad_fn=lambda p: ∇_p L(p, minibatch))``; extra arguments reach every wrapper through
``optax.GradientTransformationExtraArgs``, and transforms that do not ask for ``grad_fn``
ignore it. This is optax's ``contrib.sam`` "opaque mode" with one adversarial step, without
its requirement that the outer and adversarial optimizers be separate objects. An agent that
does not pass ``grad_fn`` gets an error naming the requirement, rather than a silent
first-order fallback. (The alternative, optax's transparent mode, alternates adversarial
and real steps over *different* minibatches and halves the number of real updates.)

ρ = 0 is the identity: ε̂ = 0, so g_SAM = ∇L(θ) = g (it still costs the second gradient).

Hyperparameters: ``rho`` (0.05). No options.

Registry name: ``sam``.

References:
  Foret et al., "Sharpness-aware minimization for efficiently improving generalization",
  ICLR 2021. https://arxiv.org/abs/2010.01412
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.methods.base import HP, Method


def sam_tx(inner: optax.GradientTransformation, hp: HP) -> optax.GradientTransformationExtraArgs:
    """Wraps ``inner``: feeds it ∇L(θ + ρ g/‖g‖) computed with the ``grad_fn`` extra arg."""
    inner = optax.with_extra_args_support(inner)

    def update_fn(grads, state, params=None, *, grad_fn=None, **extra):
        if grad_fn is None:
            raise ValueError(
                "sam needs the agent to pass grad_fn=lambda params: grads on the same minibatch "
                "to tx.update (see plasticine_jax/methods/sam.py)"
            )
        norm = optax.global_norm(grads)
        scale = hp["rho"] / jnp.maximum(norm, 1e-12)
        perturbed = jax.tree.map(lambda p, g: p + scale * g, params, grads)
        sam_grads = grad_fn(perturbed)
        return inner.update(sam_grads, state, params, grad_fn=grad_fn, **extra)

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


def sam() -> Method:
    """Registry factory (no options)."""
    return Method(name="sam", hp={"rho": 0.05}, identity_hp={"rho": 0.0}, optimizer=sam_tx)
