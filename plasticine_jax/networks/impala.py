"""The IMPALA ResNet torso (Espeholt et al. 2018) of CleanRL's and Plasticine's Procgen PPO.

Three conv sequences of ``(16, 32, 32)`` channels. Each is a 3x3 conv (stride 1, padding 1),
a 3x3 max pool (stride 2, padding 1: ``H -> (H + 1) // 2``) and two residual blocks
``x + conv(relu(conv(relu(x))))``; then ``relu``, flatten, and the dense ``hidden_sizes``
(256 in the references), each followed by the activation::

    64x64x3 -> 32x32x16 -> 16x16x32 -> 8x8x32 -> relu, flatten (2048) -> dense 256 -> relu

Parameters follow ``networks.torso``'s convention: the 15 convs and the dense layers are
``layer_0 .. layer_{14 + len(hidden_sizes)}`` in the order data flows through them, and the
activation reported under ``layer_i`` is what ``layer_{i+1}`` (or the heads) reads. This is
the chain along which Plasticine's Procgen ReDo links its layers (``plasticine_redo`` in
``plasticine/ppo_continual_procgen_base.py``): a sequence's conv and each block's second
conv feed the residual stream, and the next layer reads ``relu(stream)`` (the raw stream
where the next layer is the following sequence's conv; Plasticine leaves those two links
out, here they are kept). Methods that pair a unit's incoming and outgoing weights (ReDo,
continual backprop) therefore treat a stream channel as a unit of the layer that last wrote
to it and leave the skip path alone, as Plasticine does.

``spec.norm="layernorm"`` adds a LayerNorm before the activation of the dense layers only,
as Plasticine's Procgen ``use_layer_norm`` encoder does; the convolutions have none. Every
kernel is initialised as in the other torsos (orthogonal, gain sqrt 2, zero bias); CleanRL's
and Plasticine's Procgen torsos keep PyTorch's default (Kaiming-uniform) init there and use
CleanRL's orthogonal init only for the heads.

Convolutions are ``conv.PatchConv`` (patches @ kernel, fast inside XLA:CPU loops) on the
input padded by one zero pixel per side, which equals PyTorch's ``padding=1``. The max pool
pads with ``-inf`` (PyTorch's ``max_pool2d(padding=1)``) and takes the maximum of nine
strided slices, whose gradient is a select, not XLA's ``select_and_scatter``.

References:
  Espeholt et al. (2018), "IMPALA", https://arxiv.org/abs/1802.01561; CleanRL
  ``cleanrl/ppo_procgen.py`` (``ConvSequence``, ``ResidualBlock``, ``Agent``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from plasticine_jax.networks.conv import PatchConv
from plasticine_jax.networks.init import orthogonal
from plasticine_jax.networks.spec import NetworkSpec

Array = jax.Array

IMPALA_CHANNELS = (16, 32, 32)
RESIDUAL_BLOCKS = 2  # per conv sequence


def max_pool_3x3_s2(x: Array) -> Array:
    """3x3 max pool, stride 2, padding 1 (padded with -inf): ``[B, H, W, C] -> [B, (H + 1) // 2,
    (W + 1) // 2, C]``, PyTorch's ``max_pool2d(x, 3, 2, padding=1)``."""
    _, h, w, _ = x.shape
    ho, wo = (h + 1) // 2, (w + 1) // 2
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
    slices = [
        xp[:, dy : dy + 2 * ho - 1 : 2, dx : dx + 2 * wo - 1 : 2, :]
        for dy in range(3)
        for dx in range(3)
    ]
    return jnp.max(jnp.stack(slices), axis=0)


def conv3x3_same(features: int, name: str) -> Callable[[Array], Array]:
    """A 3x3, stride-1 conv with one pixel of zero padding (PyTorch's ``padding=1``)."""
    conv = PatchConv(features, 3, 1, kernel_init=orthogonal(math.sqrt(2.0)), name=name)

    def apply(x: Array) -> Array:
        return conv(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))

    return apply


def impala_torso(
    x: Array, spec: NetworkSpec, act_fn: Callable[[Array], Array], dense_norm_act: Callable
) -> tuple[Array, dict[str, Array]]:
    """The IMPALA torso's layers, created in the calling module's scope (``Torso``).

    Args:
      x: observations ``[B, H, W, C]``.
      spec: the network description (``hidden_sizes``, ``activation``, ``norm``).
      act_fn: the activation (ReLU in the references).
      dense_norm_act: ``(x, i, act_fn) -> x``, the torso's norm-then-activation, applied to
        the dense layers.

    Returns:
      ``(features [B, hidden_sizes[-1]], {"layer_i": what layer i + 1 reads})``.
    """
    activations: dict[str, Array] = {}
    i = 0
    for s, channels in enumerate(IMPALA_CHANNELS):
        stream = max_pool_3x3_s2(conv3x3_same(channels, f"layer_{i}")(x))
        activations[f"layer_{i}"] = act_fn(stream)
        i += 1
        for b in range(RESIDUAL_BLOCKS):
            h = conv3x3_same(channels, f"layer_{i}")(act_fn(stream))
            activations[f"layer_{i}"] = h = act_fn(h)
            i += 1
            stream = stream + conv3x3_same(channels, f"layer_{i}")(h)
            last = s == len(IMPALA_CHANNELS) - 1 and b == RESIDUAL_BLOCKS - 1
            # The next sequence's conv reads the raw stream; the next block and the dense
            # layer read relu(stream).
            ends_sequence = b == RESIDUAL_BLOCKS - 1
            activations[f"layer_{i}"] = act_fn(stream) if last or not ends_sequence else stream
            i += 1
        x = stream
    x = act_fn(x).reshape((x.shape[0], -1))
    for width in spec.hidden_sizes:
        x = nn.Dense(width, kernel_init=orthogonal(math.sqrt(2.0)), name=f"layer_{i}")(x)
        x = dense_norm_act(x, i, act_fn)
        activations[f"layer_{i}"] = x
        i += 1
    return x, activations
