"""Named activations. Some widen their input (CReLU, Fourier features double it).

``ACTIVATIONS[name] = (fn, width_multiplier)``; a layer with ``units`` outputs produces
``units * width_multiplier`` features after the activation.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def crelu(x: jax.Array) -> jax.Array:
    """Concatenated ReLU, [relu(x), relu(-x)] (Shang et al. 2016; Abbas et al. 2023)."""
    return jnp.concatenate([jax.nn.relu(x), jax.nn.relu(-x)], axis=-1)


def fourier(x: jax.Array) -> jax.Array:
    """Deep Fourier features, [sin(x), cos(x)] (Lewandowski et al. 2024)."""
    return jnp.concatenate([jnp.sin(x), jnp.cos(x)], axis=-1)


ACTIVATIONS: dict[str, tuple[Callable[[jax.Array], jax.Array], int]] = {
    "relu": (jax.nn.relu, 1),
    "tanh": (jnp.tanh, 1),
    "sigmoid": (jax.nn.sigmoid, 1),
    "gelu": (jax.nn.gelu, 1),
    "silu": (jax.nn.silu, 1),
    "leaky_relu": (jax.nn.leaky_relu, 1),
    "identity": (lambda x: x, 1),
    "crelu": (crelu, 2),
    "fourier": (fourier, 2),
}


def get_activation(name: str) -> tuple[Callable[[jax.Array], jax.Array], int]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]
