"""The static network description that agents build from and methods edit."""

from __future__ import annotations

import dataclasses
from typing import Any

TORSOS = ("mlp", "minatar_cnn", "atari_cnn", "impala_cnn")
NORMS = ("none", "layernorm")

# (features, kernel, stride) per conv layer, before the dense ``hidden_sizes``. The residual
# ``impala_cnn`` (Espeholt et al. 2018) is built by ``networks.impala`` instead.
CONV_LAYERS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "mlp": (),
    "minatar_cnn": ((16, 3, 1),),  # Young & Tian 2019
    "atari_cnn": ((32, 8, 4), (64, 4, 2), (64, 3, 1)),  # Mnih et al. 2015
}


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """Static (hashable) description of an actor-critic network.

    Attributes:
      torso: ``mlp``, ``minatar_cnn`` (one 3x3 conv, 16 channels), ``atari_cnn`` (Nature) or
        ``impala_cnn`` (IMPALA ResNet, ``networks.impala``).
      hidden_sizes: widths of the dense layers after the convolutions.
      activation: a name from ``networks.activations.ACTIVATIONS``.
      norm: ``none`` or ``layernorm`` (applied before each nonlinearity, Lyle et al. 2024).
      shared_torso: one torso feeding both heads (CleanRL Atari) or one torso each.
      options: frozen ``(key, value)`` pairs that methods' network edits may add.
    """

    torso: str = "mlp"
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    norm: str = "none"
    shared_torso: bool = False
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)

    def with_option(self, key: str, value: Any) -> NetworkSpec:
        opts = dict(self.options)
        opts[key] = value
        return dataclasses.replace(self, options=tuple(sorted(opts.items())))


def spec_from_config(net: Any) -> NetworkSpec:
    """The base ``NetworkSpec`` of a ``config.NetworkConfig`` (before methods' edits)."""
    return NetworkSpec(
        torso=net.torso,
        hidden_sizes=tuple(net.hidden_sizes),
        activation=net.activation,
        norm=net.norm,
        shared_torso=net.shared_torso,
    )
