"""A VALID convolution computed as patches @ kernel (im2col), with ``nn.Conv``'s parameters.

Why: PPO's minibatch updates run inside ``lax.scan`` (an XLA while loop). On XLA:CPU a
convolution *and its gradient* inside a while loop run several times slower than the same
ops outside one (measured on the development VM, jax 0.9.2: 16 SGD steps of the MinAtar
torso on 256-sample minibatches took 276 ms scanned against 53 ms unrolled), and the
convolution of a vmapped kernel becomes a grouped convolution, slower still. Extracting
the patches (``lax.conv_general_dilated_patches``, never differentiated: its input is the
observation) and multiplying by the kernel turns the layer into one matmul, which stays
fast inside loops and batches cleanly under ``vmap`` (78 ms for the same 16 steps).

The parameters are exactly ``nn.Conv``'s (``kernel [kh, kw, in, out]``, ``bias [out]``, same
initialisers), so methods that edit conv kernels (ReDo, resets, NaP) see no difference and
the output equals ``nn.Conv``'s up to float rounding (a test checks both torsos).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


class PatchConv(nn.Module):
    """``nn.Conv(features, (k, k), strides=(s, s), padding="VALID")`` on NHWC inputs."""

    features: int
    kernel_size: int
    stride: int = 1
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k, c = self.kernel_size, x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (k, k, c, self.features))
        bias = self.param("bias", self.bias_init, (self.features,))
        patches = jax.lax.conv_general_dilated_patches(
            x,
            (k, k),
            (self.stride, self.stride),
            "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )  # [B, H', W', c * k * k], channel-major: (c, kh, kw)
        w = jnp.transpose(kernel, (2, 0, 1, 3)).reshape((c * k * k, self.features))
        return patches @ w + bias
