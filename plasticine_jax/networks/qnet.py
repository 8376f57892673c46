"""The Q-network of the value-based agents (DQN, C51, PQN), on the shared torsos.

One torso named ``q`` (so its layers are ``q/layer_i`` for metrics and interventions) and
heads from ``networks.heads.head_module``, so methods edit them as they edit PPO's:

* ``q_head``: ``num_actions * atoms`` outputs (the Q-values, or per action the logits of
  ``atoms`` return atoms: C51's distribution, HL-Gauss's bins);
* with ``dueling`` (Wang et al. 2016) also ``value_head`` (``atoms`` outputs) and
  ``Q = V + A - mean_a A`` (on the logits when ``atoms > 1``, as Dopamine's Rainbow does).

Initialisation: the torso's orthogonal sqrt(2) (as PPO's), heads orthogonal with gain 1.
CleanRL's DQN uses torch's default (Kaiming-uniform) and purejaxql's PQN He-normal; the
initialiser is not yet an option.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax

from plasticine_jax.networks.heads import head_module
from plasticine_jax.networks.init import orthogonal
from plasticine_jax.networks.spec import NetworkSpec
from plasticine_jax.networks.torso import Torso

Array = jax.Array


class QOutput(NamedTuple):
    """Q-network output for a batch ``[B]``.

    Attributes:
      q: ``[B, A]`` Q-values (``atoms == 1``) or ``[B, A, atoms]`` logits.
      features: ``{"q": [B, D]}``, the torso's last hidden layer.
      activations: every hidden layer, keyed ``"q/layer_i"``.
    """

    q: Array
    features: dict[str, Array]
    activations: dict[str, Array]


class QNetwork(nn.Module):
    """Torso ``q`` and a Q head (optionally dueling), see the module docstring."""

    spec: NetworkSpec
    num_actions: int
    atoms: int = 1
    dueling: bool = False

    @nn.compact
    def __call__(self, obs: Array) -> QOutput:
        f, acts = Torso(self.spec, name="q")(obs)
        b, a, z = obs.shape[0], self.num_actions, self.atoms
        adv = head_module(self.spec, "q_head", a * z, orthogonal(1.0))(f).reshape(b, a, z)
        if self.dueling:
            v = head_module(self.spec, "value_head", z, orthogonal(1.0))(f).reshape(b, 1, z)
            adv = v + adv - adv.mean(axis=1, keepdims=True)
        q = adv[..., 0] if z == 1 else adv
        return QOutput(q, {"q": f}, {f"q/{k}": x for k, x in acts.items()})


def q_values(q: Array, support: Array | None) -> Array:
    """Q-values ``[B, A]``: ``q`` itself, or the mean of the atoms' softmax over ``support``."""
    if support is None:
        return q
    return (jax.nn.softmax(q, axis=-1) * support).sum(-1)


__all__ = ["QNetwork", "QOutput", "q_values"]
