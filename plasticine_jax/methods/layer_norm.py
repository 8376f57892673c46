"""LayerNorm before every hidden nonlinearity (Lyle et al. 2024), a network edit.

Each hidden pre-activation ``z`` becomes ``γ ⊙ (z − mean(z)) / sqrt(var(z) + ε) + β`` (flax
``nn.LayerNorm``, ε = 1e-6, γ = 1, β = 0 at init), as Plasticine's ``ln`` scripts do. The
heads are not normalised. No hyperparameters.

Registry name: ``layer_norm``.

References:
  Lyle et al., "Disentangling the causes of plasticity loss in neural networks", 2024.
  https://arxiv.org/abs/2402.18762
"""

from __future__ import annotations

from plasticine_jax.methods.base import Method, set_network_fields

with_layernorm = set_network_fields(norm="layernorm")


def layer_norm() -> Method:
    """Registry factory (no options)."""
    return Method(name="layer_norm", network=with_layernorm, identity_hp={})
