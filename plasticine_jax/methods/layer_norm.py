"""LayerNorm before the hidden nonlinearities (Lyle et al. 2024), a network edit.

Each normalised pre-activation ``z`` becomes ``γ ⊙ (z − mean(z)) / sqrt(var(z) + ε) + β`` (flax
``nn.LayerNorm``, ε = 1e-6, γ = 1, β = 0 at init). The heads are not normalised. No
hyperparameters.

Where ours places it (``networks.torso.Torso._norm_act``: ``norm_{i}`` between ``layer_{i}``
and its nonlinearity, in both torsos when they are not shared):

* ``mlp``: every hidden dense layer, normalised over its units.
* ``minatar_cnn``, ``atari_cnn``: every conv layer too, normalised over the channels of each
  pixel (γ, β of shape ``[C]``), then every dense layer.
* ``impala_cnn``: the dense layer(s) only; the residual conv stream is not normalised
  (``networks.impala`` applies the norm to the dense layers alone).

Where Plasticine (RLE-Foundation/Plasticine) places it, per environment. "Current tree" is
commit aa00b4b (2026-02-09), "2025 tree" commit 78ea347 (2025-06-18, the last before the
2026-01-19 rewrite); both use torch's ``nn.LayerNorm`` (ε = 1e-5, not our 1e-6):

* Atari, current tree (``plasticine/c51_atari_base.py``, ``use_layer_norm``): after each of
  the three Nature convs, normalised jointly over ``[C, H, W]`` of each sample (γ, β of shape
  ``[C, H, W]``), before its ReLU; then ``LayerNorm(512)`` after the dense layer with the
  ReLU after it *dropped* (the encoder ends at the norm). 2025 tree
  (``plasticine/standard/pqn_atari_ln.py``): the same conv norms, and the dense layer keeps
  its ReLU after ``LayerNorm(512)``. Ours normalises each conv per pixel over channels only.
* Procgen (IMPALA ResNet), current tree (``plasticine/ppo_continual_procgen_base.py``): only
  ``LayerNorm(256)`` between the dense layer and its ReLU; the convs are not normalised.
  This is ours. 2025 tree (``plasticine/standard/ppo_procgen_ln.py`` and
  ``plasticine/continual/ppo_procgen_ln.py``): the dense layer is *not* normalised; instead
  a per-pixel ``LayerNorm(channels)`` follows each sequence's max-pool, and each residual
  block normalises after each of its ReLUs, before the conv (ReLU → LN → conv, twice).
* DMC, current tree (``plasticine/ppo_continual_dmc_base.py``, PPO): once, after the actor
  encoder's *last* ReLU (``LayerNorm(256, elementwise_affine=False)``: no γ, β); the critic
  is not normalised. 2025 tree (``plasticine/standard/td3_dmc_ln.py``,
  ``plasticine/continual/td3_dmc_ln.py``, TD3): before the ReLU of both hidden layers of the
  actor and the critic. Ours is the 2025 tree's placement.
* Craftax, 2025 tree only (``plasticine/open/ppo_craftax_ln.py``; the current tree has no
  Craftax): ``LayerNorm(512)`` before the tanh of each of the three hidden layers of both
  encoders. This is ours.

So ours follows Plasticine's 2025 tree for MLPs (DMC, Craftax), its current tree for the
IMPALA torso, and neither tree for the Nature CNN's convs (per-pixel over channels, where
both normalise over ``[C, H, W]``). Plasticine's per-environment placements are not offered
as an option: the trees disagree with each other on Atari's dense layer, Procgen and DMC.

Registry name: ``layer_norm``.

References:
  Lyle et al., "Disentangling the causes of plasticity loss in neural networks", 2024.
  https://arxiv.org/abs/2402.18762
  Plasticine: https://github.com/RLE-Foundation/Plasticine (arXiv 2504.17490).
"""

from __future__ import annotations

from plasticine_jax.methods.base import Method, set_network_fields

with_layernorm = set_network_fields(norm="layernorm")


def layer_norm() -> Method:
    """Registry factory (no options)."""
    return Method(name="layer_norm", network=with_layernorm, identity_hp={})
