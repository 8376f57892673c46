"""Network descriptions, torsos and initialisers."""

from plasticine_jax.networks.activations import ACTIVATIONS, get_activation
from plasticine_jax.networks.init import orthogonal
from plasticine_jax.networks.spec import NORMS, TORSOS, NetworkSpec
from plasticine_jax.networks.torso import ACOutput, ActorCritic, Torso

__all__ = [
    "ACTIVATIONS",
    "ACOutput",
    "ActorCritic",
    "NORMS",
    "NetworkSpec",
    "TORSOS",
    "Torso",
    "get_activation",
    "orthogonal",
]
