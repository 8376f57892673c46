"""The two policy distributions PPO needs, as small pure functions."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array


def categorical_sample(key: Array, logits: Array) -> Array:
    """Samples ``[B]`` int32 actions from logits ``[B, n]``."""
    return jax.random.categorical(key, logits).astype(jnp.int32)


def categorical_log_prob(logits: Array, action: Array) -> Array:
    """log pi(a) ``[B]`` for logits ``[B, n]`` and actions ``[B]``."""
    logp = jax.nn.log_softmax(logits)
    return jnp.take_along_axis(logp, action[:, None].astype(jnp.int32), axis=-1)[:, 0]


def categorical_entropy(logits: Array) -> Array:
    """Entropy ``[B]`` of categorical distributions with logits ``[B, n]``."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def gaussian_sample(key: Array, mean: Array, log_std: Array) -> Array:
    """Samples from N(mean, exp(log_std)^2); mean ``[B, *A]``, log_std ``[*A]``."""
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)


def gaussian_log_prob(mean: Array, log_std: Array, action: Array) -> Array:
    """Diagonal-Gaussian log density ``[B]``, summed over action dimensions."""
    z = (action - mean) * jnp.exp(-log_std)
    per_dim = -0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)
    return per_dim.reshape(per_dim.shape[0], -1).sum(-1)


def gaussian_entropy(mean: Array, log_std: Array) -> Array:
    """Entropy ``[B]`` of N(mean, exp(log_std)^2), summed over action dimensions."""
    per_dim = 0.5 + 0.5 * math.log(2 * math.pi) + log_std
    return jnp.broadcast_to(per_dim.sum(), mean.shape[:1])
