"""Concatenated ReLU (Abbas et al. 2023), a network edit.

Every hidden nonlinearity becomes ``crelu(z) = [relu(z), relu(−z)]``, doubling the width of
each hidden layer's output (the next layer's fan-in doubles; the number of units per
``Dense`` stays ``hidden_sizes``), as in Plasticine's ``ca`` scripts. No hyperparameters.

Registry name: ``crelu``.

References:
  Abbas et al., "Loss of plasticity in continual deep reinforcement learning", CoLLAs 2023.
  https://arxiv.org/abs/2303.07507
"""

from __future__ import annotations

from plasticine_jax.methods.base import Method, set_network_fields


def crelu() -> Method:
    """Registry factory (no options)."""
    return Method(
        name="crelu",
        network=set_network_fields(activation="crelu"),
        identity_hp={},
    )
