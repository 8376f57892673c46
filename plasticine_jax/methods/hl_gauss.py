"""HL-Gauss (Farebrother et al. 2024): a categorical critic trained by cross-entropy.

The critic head outputs ``n`` logits over bins of width ``w = (v_max - v_min) / n`` with
edges ``e_j = v_min + j w`` (``j = 0..n``) and centres ``c_i = (e_i + e_{i+1}) / 2``. Its value
is ``V(x) = sum_i softmax(z(x))_i c_i``. A scalar target ``y`` (the PPO return), clipped to
``[v_min, v_max]``, becomes the histogram of a Gaussian ``N(y, sigma^2)`` on the bins,

    p_i(y) = (Phi((e_{i+1} - y) / sigma) - Phi((e_i - y) / sigma)) / Z,
    Z = Phi((e_n - y) / sigma) - Phi((e_0 - y) / sigma),

and the value loss is the cross-entropy ``-sum_i p_i(y) log softmax(z)_i`` in place of the
squared error. ``sigma = sigma_ratio * w``; the paper recommends ``sigma_ratio = 0.75``.

The method is a network edit (``NetworkSpec`` option ``"value_bins"``: the critic head gets
``num_bins`` outputs) plus the functions below, which PPO calls for its value (rollout,
bootstrap, GAE) and its value loss whenever the network has value bins; ``v_min``,
``v_max`` and ``sigma_ratio`` are traced (a sweep may vary the
support), ``num_bins`` is static (it is a shape). PPO's value clipping does not apply to a
cross-entropy loss and is skipped.

Defaults: ``num_bins = 51``, ``v_min = -10``, ``v_max = 10`` (returns of normalised or
clipped rewards; set the support to the environment's returns), ``sigma_ratio = 0.75``.

Registry name: ``hl_gauss``.

References:
  Farebrother, Orbay, Vuong, Taiga, Chebotar, Xiao, Irpan, Levine, Castro, Faust, Kumar,
  Agarwal. "Stop Regressing: Training Value Functions via Classification for Scalable Deep
  RL." ICML 2024, arXiv 2403.03950. Imani & White, "Improving Regression Performance with
  Distributional Losses", ICML 2018 (the histogram loss).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from plasticine_jax.methods.base import HP, Method
from plasticine_jax.networks.heads import VALUE_BINS
from plasticine_jax.networks.spec import NetworkSpec

Array = jax.Array

NAME = "hl_gauss"
OPTION = VALUE_BINS


def bin_edges(v_min: Array, v_max: Array, num_bins: int) -> Array:
    """``[num_bins + 1]`` equally spaced edges from ``v_min`` to ``v_max``."""
    v_min = jnp.asarray(v_min, jnp.float32)
    v_max = jnp.asarray(v_max, jnp.float32)
    return v_min + (v_max - v_min) * jnp.arange(num_bins + 1, dtype=jnp.float32) / num_bins


def hl_gauss_target(y: Array, v_min: Array, v_max: Array, num_bins: int,
                    sigma_ratio: Array = 0.75) -> Array:
    """The HL-Gauss histogram of ``y`` ``[...]``: ``[..., num_bins]``, rows summing to 1."""
    edges = bin_edges(v_min, v_max, num_bins)
    sigma = jnp.asarray(sigma_ratio, jnp.float32) * (edges[1] - edges[0])
    y = jnp.clip(jnp.asarray(y, jnp.float32), edges[0], edges[-1])[..., None]
    cdf = jax.scipy.special.ndtr((edges - y) / sigma)
    z = cdf[..., -1:] - cdf[..., :1]
    return (cdf[..., 1:] - cdf[..., :-1]) / jnp.maximum(z, 1e-12)


def hl_gauss_value(logits: Array, v_min: Array, v_max: Array) -> Array:
    """``sum_i softmax(logits)_i c_i``: ``[..., num_bins] -> [...]``."""
    edges = bin_edges(v_min, v_max, logits.shape[-1])
    centres = 0.5 * (edges[1:] + edges[:-1])
    return jnp.sum(jax.nn.softmax(logits, axis=-1) * centres, axis=-1)


def hl_gauss_cross_entropy(logits: Array, y: Array, hp: HP) -> Array:
    """Cross-entropy ``[B]`` between ``logits`` ``[B, n]`` and the HL-Gauss targets of ``y``."""
    target = hl_gauss_target(y, hp["v_min"], hp["v_max"], logits.shape[-1], hp["sigma_ratio"])
    target = jax.lax.stop_gradient(target)
    return -jnp.sum(target * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def hl_gauss_loss(logits: Array, y: Array, hp: HP) -> Array:
    """Mean of ``hl_gauss_cross_entropy`` over the batch."""
    return jnp.mean(hl_gauss_cross_entropy(logits, y, hp))


def hl_gauss(num_bins: int = 51) -> Method:
    """HL-Gauss as a ``Method``: the network edit; the agent uses the functions above."""
    if not 2 <= num_bins <= 10_000:
        raise ValueError(f"{NAME}: num_bins={num_bins}; it needs 2 to 10000 bins")

    def network(spec: NetworkSpec) -> NetworkSpec:
        return spec.with_option(OPTION, num_bins)

    return Method(
        name=NAME,
        hp={"v_min": -10.0, "v_max": 10.0, "sigma_ratio": 0.75},
        network=network,
    )
