"""A worked example of a user-defined method: an optax transform named by import path.

In a config::

    methods:
      - name: "tests.user_methods:scaled_sign"
        hp: {scale: 1.0e-3}          # traced: sweepable in one compiled program
        options: {chain: after}      # static: where to chain it (after the agent's optimizer)

``scale`` has a numeric default, so it is a traced hyperparameter; nothing in the library
changes. ``scaled_sign.identity_hp`` is optional; it tells the planner which value makes the
transform a no-op so that it can share a program with plain members (here none does, so it
is left out; ``gradient_noise`` below has one).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def scaled_sign(scale: float = 1e-3) -> optax.GradientTransformation:
    """Sign descent: every update becomes ``scale · sign(update)`` (signSGD-style steps)."""

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: scale * jnp.sign(u), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def gradient_noise(std: float = 0.0) -> optax.GradientTransformationExtraArgs:
    """Adds N(0, std²) noise to the gradients, drawn from the run's per-step ``key``."""

    def update_fn(updates, state, params=None, *, key=None, **extra):
        del params, extra
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(key, len(leaves))
        noisy = [
            u + std * jax.random.normal(k, u.shape, u.dtype)
            for u, k in zip(leaves, keys, strict=True)
        ]
        return jax.tree.unflatten(treedef, noisy), state

    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update_fn)


gradient_noise.identity_hp = {"std": 0.0}


def nan_at(step: float = -1.0) -> optax.GradientTransformation:
    """Leaves updates unchanged, except that from optimizer step ``step`` on (0-based, when
    ``step >= 0``) they become NaN: a member forced to diverge at a known update."""

    def update_fn(updates, state, params=None):
        del params
        poison = (step >= 0) & (state.count >= step)
        updates = jax.tree.map(lambda u: jnp.where(poison, jnp.nan, u), updates)
        return updates, optax.ScaleByScheduleState(count=state.count + 1)

    return optax.GradientTransformation(
        lambda params: optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32)), update_fn
    )


nan_at.identity_hp = {"step": -1.0}
