"""Output heads, and the per-head edits methods may ask for through ``NetworkSpec`` options.

``ActorCritic`` builds both heads with :func:`head_module`, so a method edits a head by
setting an option, never by replacing the network:

* ``"injection"`` = head names: the named heads (``"heads"``: every head) are
  :class:`InjectableDense` (plasticity injection, ``methods/plasticity_injection.py``);
* ``"value_bins"`` = ``n``: the critic head has ``n`` outputs, the logits of a categorical
  value (HL-Gauss, ``methods/hl_gauss.py``); see :func:`critic_width`.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax

from plasticine_jax.networks.spec import NetworkSpec

Array = jax.Array

INJECTION = "injection"
VALUE_BINS = "value_bins"


class InjectableDense(nn.Module):
    """A dense head that can take a plasticity injection (Nikishin et al. 2023).

    It holds, from the start, the usual ``kernel``/``bias`` (``h_old``: the same names and
    initialisation as ``nn.Dense``, so other methods see an ordinary head), and
    ``kernel_a``/``bias_a`` (``h_a``) and ``kernel_b``/``bias_b`` (``h_b``), zero at
    initialisation. Its output is always

        y = x @ kernel + bias + x @ (kernel_a - sg(kernel_b)) + (bias_a - sg(bias_b)),

    ``sg`` = ``stop_gradient``. The layer holds no switch: while ``h_a == h_b`` (zero before
    the first injection, a common fresh draw right after one) the difference is exactly zero,
    so values *and* the gradient reaching ``x`` are those of ``nn.Dense``; once ``h_a`` has
    trained, the output is ``h_old(x) + h_a(x) - h_b(x)`` and ``x`` receives the gradient of
    that whole output. Which of the three heads may *move* is decided by the optimizer
    (``methods.plasticity_injection``), whose state holds the injected flag: the flag is
    never a parameter, so no penalty, decay, clipping or perturbation can reach it.

    Attributes:
      features: output width.
      kernel_init: initialiser of ``kernel``.
    """

    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: Array) -> Array:
        shape = (x.shape[-1], self.features)
        zeros = nn.initializers.zeros
        kernel = self.param("kernel", self.kernel_init, shape)
        bias = self.param("bias", zeros, (self.features,))
        kernel_a = self.param("kernel_a", zeros, shape)
        bias_a = self.param("bias_a", zeros, (self.features,))
        kernel_b = jax.lax.stop_gradient(self.param("kernel_b", zeros, shape))
        bias_b = jax.lax.stop_gradient(self.param("bias_b", zeros, (self.features,)))
        # The differences first: a - b is exactly 0 while h_a == h_b, whatever x is.
        return x @ kernel + bias + (x @ (kernel_a - kernel_b) + (bias_a - bias_b))


def head_module(spec: NetworkSpec, name: str, features: int, kernel_init: Callable) -> nn.Module:
    """The head to build for ``name``: ``InjectableDense`` when ``spec``'s ``"injection"``
    option names it, else ``nn.Dense``."""
    heads = spec.option(INJECTION)
    if heads is not None and (name in heads or "heads" in heads):
        return InjectableDense(features, kernel_init, name=name)
    return nn.Dense(features, kernel_init=kernel_init, name=name)


def critic_width(spec: NetworkSpec) -> int:
    """Outputs of the critic head: 1 (a scalar value) or the ``"value_bins"`` option."""
    return int(spec.option(VALUE_BINS) or 1)
