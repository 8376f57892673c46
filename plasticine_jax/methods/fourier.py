"""Deep Fourier Features (Lewandowski et al. 2024), a network edit.

Every hidden nonlinearity becomes ``[sin(z), cos(z)]``, doubling each hidden layer's output
width, as in Plasticine's ``dff`` scripts. No hyperparameters.

Registry name: ``fourier``.

References:
  Lewandowski et al., "Plastic learning with deep Fourier features", ICLR 2025.
  https://arxiv.org/abs/2410.20634
"""

from __future__ import annotations

from plasticine_jax.methods.base import Method, set_network_fields


def fourier() -> Method:
    """Registry factory (no options)."""
    return Method(
        name="fourier",
        network=set_network_fields(activation="fourier"),
        identity_hp={},
    )
