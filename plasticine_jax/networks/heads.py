"""Output heads, and the per-head edits methods may ask for through ``NetworkSpec`` options.

``ActorCritic`` builds both heads with :func:`head_module`, so a method edits a head by
setting an option, never by replacing the network:

* ``"injection"`` = ``(head names, keep_trainable)``: the named heads are
  :class:`InjectableDense` (plasticity injection, ``methods/plasticity_injection.py``);
* ``"value_bins"`` = ``n``: the critic head has ``n`` outputs, the logits of a categorical
  value (HL-Gauss, ``methods/hl_gauss.py``); see :func:`critic_width`.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from plasticine_jax.networks.spec import NetworkSpec

Array = jax.Array

INJECTION = "injection"
VALUE_BINS = "value_bins"


class InjectableDense(nn.Module):
    """A dense head that can take a plasticity injection (Nikishin et al. 2023).

    It holds, from the start, the usual ``kernel``/``bias`` (``h_old``: the same names and
    initialisation as ``nn.Dense``, so other methods see an ordinary head),
    ``kernel_a``/``bias_a`` (``h_a``), ``kernel_b``/``bias_b`` (``h_b``, read through
    ``stop_gradient``) and a scalar flag ``injected``, read as
    ``stop_gradient(injected > 0.5)``. With the flag off the layer is exactly ``nn.Dense``
    (``h_a`` gets zero gradient); with it on the output is
    ``h_old(x) + h_a(x) - stop_gradient(h_b(x))`` with ``h_old`` frozen unless
    ``keep_trainable``. ``methods.plasticity_injection.inject`` flips the flag.

    Attributes:
      features: output width.
      kernel_init: initialiser of ``kernel``.
      keep_trainable: keep ``h_old`` trainable after injection.
    """

    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()
    keep_trainable: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        shape = (x.shape[-1], self.features)
        zeros = nn.initializers.zeros
        kernel = self.param("kernel", self.kernel_init, shape)
        bias = self.param("bias", zeros, (self.features,))
        kernel_a = self.param("kernel_a", zeros, shape)
        bias_a = self.param("bias_a", zeros, (self.features,))
        kernel_b = self.param("kernel_b", zeros, shape)
        bias_b = self.param("bias_b", zeros, (self.features,))
        injected = self.param("injected", zeros, ())
        on = jax.lax.stop_gradient(injected > 0.5)
        if not self.keep_trainable:
            kernel = jnp.where(on, jax.lax.stop_gradient(kernel), kernel)
            bias = jnp.where(on, jax.lax.stop_gradient(bias), bias)
        y = x @ kernel + bias
        delta = (x @ kernel_a + bias_a) - (
            x @ jax.lax.stop_gradient(kernel_b) + jax.lax.stop_gradient(bias_b)
        )
        return y + jnp.where(on, delta, jnp.zeros_like(delta))


def head_module(spec: NetworkSpec, name: str, features: int, kernel_init: Callable) -> nn.Module:
    """The head to build for ``name``: ``InjectableDense`` when ``spec``'s ``"injection"``
    option names it, else ``nn.Dense``."""
    opt = spec.option(INJECTION)
    if opt is not None and name in opt[0]:
        return InjectableDense(features, kernel_init, keep_trainable=opt[1], name=name)
    return nn.Dense(features, kernel_init=kernel_init, name=name)


def critic_width(spec: NetworkSpec) -> int:
    """Outputs of the critic head: 1 (a scalar value) or the ``"value_bins"`` option."""
    return int(spec.option(VALUE_BINS) or 1)
