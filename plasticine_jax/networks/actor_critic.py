"""The separate actor and critic networks of the off-policy actor-critics (SAC, TD3).

Each is its own flax module with its own parameters (and, in the agent, its own optimizer),
built on the shared ``Torso`` so methods see the usual layer names:

* ``Actor``: torso ``actor`` (layers ``actor/layer_i``) and ``actor_head``: TD3's
  deterministic action, ``tanh(head) * scale + bias`` (CleanRL ``td3_continuous_action.py``);
  SAC's Gaussian mean, with ``log_std_head`` squashed into ``[LOG_STD_MIN, LOG_STD_MAX]``
  as CleanRL's ``sac_continuous_action.py`` does; discrete SAC's logits (CleanRL
  ``sac_atari.py``).
* ``Critic``: torso ``critic`` over ``concat(obs, action)`` (continuous) or ``obs``
  (discrete SAC) and ``critic_head``: one Q-value, or one per action. The agent vmaps it
  over a leading ensemble axis of its parameters (twin critics), never a Python loop.

Initialisation: the torso's orthogonal ``sqrt(2)`` (as PPO's) and heads orthogonal with
gain 1 (critic) and 0.01 (actor: the first policy is near the action box's centre). CleanRL
uses torch's default (Kaiming-uniform) initialiser; the initialiser is not an option yet.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from plasticine_jax.networks.heads import head_module
from plasticine_jax.networks.init import orthogonal
from plasticine_jax.networks.spec import NetworkSpec
from plasticine_jax.networks.torso import Torso

Array = jax.Array

# CleanRL ``sac_continuous_action.py``'s bounds on the Gaussian's log standard deviation.
LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0


class ActorOutput(NamedTuple):
    """Actor output for a batch ``[B]``.

    Attributes:
      policy: ``[B, *action_shape]`` (TD3: the action; SAC: the Gaussian's pre-tanh mean)
        or ``[B, n]`` logits (discrete SAC).
      log_std: ``[B, *action_shape]`` (SAC, continuous), else an empty array.
      features: ``{"actor": [B, D]}``.
      activations: ``"actor/layer_i" -> [B, units]``.
    """

    policy: Array
    log_std: Array
    features: dict[str, Array]
    activations: dict[str, Array]


class CriticOutput(NamedTuple):
    """Critic output for a batch ``[B]``: ``q`` ``[B]`` (continuous) or ``[B, n]``."""

    q: Array
    features: dict[str, Array]
    activations: dict[str, Array]


class Actor(nn.Module):
    """See the module docstring. ``kind``: ``deterministic`` (TD3), ``gaussian`` (SAC) or
    ``categorical`` (discrete SAC); ``out`` the action dimension or the number of actions;
    ``scale``/``bias`` map ``tanh`` onto the action box."""

    spec: NetworkSpec
    kind: str
    out: int
    scale: float | tuple[float, ...] = 1.0  # a tuple: one per action dimension
    bias: float | tuple[float, ...] = 0.0

    @nn.compact
    def __call__(self, obs: Array) -> ActorOutput:
        f, acts = Torso(self.spec, name="actor")(obs)
        head = head_module(self.spec, "actor_head", self.out, orthogonal(0.01))(f)
        log_std = jnp.zeros((0,), jnp.float32)
        if self.kind == "deterministic":
            scale, bias = (jnp.asarray(x, jnp.float32) for x in (self.scale, self.bias))
            head = jnp.tanh(head) * scale + bias
        elif self.kind == "gaussian":
            raw = jnp.tanh(head_module(self.spec, "log_std_head", self.out, orthogonal(0.01))(f))
            log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (raw + 1.0)
        return ActorOutput(head, log_std, {"actor": f}, {f"actor/{k}": v for k, v in acts.items()})


class Critic(nn.Module):
    """One critic; ``out`` = 1 (``Q(s, a)`` from ``concat(obs, action)``) or the number of
    actions (``Q(s, .)`` from ``obs``). Called as ``apply(params, inputs)``, where ``inputs``
    is ``critic_input(obs, action)``."""

    spec: NetworkSpec
    out: int = 1

    @nn.compact
    def __call__(self, inputs: Array) -> CriticOutput:
        f, acts = Torso(self.spec, name="critic")(inputs)
        q = head_module(self.spec, "critic_head", self.out, orthogonal(1.0))(f)
        q = q[:, 0] if self.out == 1 else q
        return CriticOutput(q, {"critic": f}, {f"critic/{k}": v for k, v in acts.items()})


def critic_input(obs: Array, action: Array | None) -> Array:
    """The critic's input: ``concat(flatten(obs), flatten(action))`` ``[B, D]``, or the
    observations alone (``action`` None: a critic with one Q-value per discrete action)."""
    if action is None:
        return obs
    b = obs.shape[0]
    return jnp.concatenate([obs.reshape(b, -1), action.reshape(b, -1)], axis=-1)


def action_dim(shape: tuple[int, ...]) -> int:
    """Flat action dimension of a continuous action space."""
    return math.prod(shape)


__all__ = ["Actor", "ActorOutput", "Critic", "CriticOutput", "critic_input", "LOG_STD_MAX",
           "LOG_STD_MIN", "action_dim"]  # fmt: skip
