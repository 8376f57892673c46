"""Torsos (MLP, MinAtar CNN, Nature CNN, IMPALA ResNet) and the actor-critic built on them.

Every hidden layer is named ``layer_{i}`` (its optional norm ``norm_{i}``), and its output
after the nonlinearity is returned under the same name, so metrics and interventions can
pair a unit's activations with its incoming kernel ``layer_{i}`` and its outgoing kernel
``layer_{i+1}`` (or the head).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from plasticine_jax.envs.core import ActionSpace, ContinuousActions
from plasticine_jax.networks.activations import get_activation
from plasticine_jax.networks.conv import PatchConv
from plasticine_jax.networks.heads import critic_width, head_module
from plasticine_jax.networks.impala import impala_torso
from plasticine_jax.networks.init import orthogonal
from plasticine_jax.networks.spec import CONV_LAYERS, NetworkSpec

Array = jax.Array


class Torso(nn.Module):
    """Maps observations ``[B, *obs_shape]`` to ``(features [B, D], activations)``."""

    spec: NetworkSpec

    @nn.compact
    def __call__(self, x: Array) -> tuple[Array, dict[str, Array]]:
        act_fn, _ = get_activation(self.spec.activation)
        gain = math.sqrt(2.0)
        if self.spec.torso == "impala_cnn":  # residual: not a plain chain of CONV_LAYERS
            return impala_torso(x, self.spec, act_fn, self._norm_act)
        activations: dict[str, Array] = {}
        i = 0
        convs = CONV_LAYERS[self.spec.torso]
        if not convs:
            x = x.reshape((x.shape[0], -1))
        for features, kernel, stride in convs:
            x = PatchConv(
                features, kernel, stride, kernel_init=orthogonal(gain), name=f"layer_{i}"
            )(x)
            x = self._norm_act(x, i, act_fn)
            activations[f"layer_{i}"] = x
            i += 1
        x = x.reshape((x.shape[0], -1))
        for width in self.spec.hidden_sizes:
            x = nn.Dense(width, kernel_init=orthogonal(gain), name=f"layer_{i}")(x)
            x = self._norm_act(x, i, act_fn)
            activations[f"layer_{i}"] = x
            i += 1
        return x, activations

    def _norm_act(self, x: Array, i: int, act_fn) -> Array:
        if self.spec.norm == "layernorm":
            x = nn.LayerNorm(name=f"norm_{i}")(x)
        return act_fn(x)


class ACOutput(NamedTuple):
    """Actor-critic output for a batch ``[B]``.

    Attributes:
      policy: logits ``[B, n]`` (discrete) or Gaussian mean ``[B, *action_shape]``.
      log_std: ``[*action_shape]`` for continuous actions, else an empty array.
      value: ``[B]``; NaN when the critic is categorical (``value_bins``): the agent
        turns ``value_logits`` into a value with the support it holds as hyperparameters.
      value_logits: the critic head's raw output ``[B, n]`` (``n = 1`` for a scalar critic).
      features: last hidden layer per torso, ``{"actor": [B, D], "critic": [B, D]}`` (one
        ``"shared"`` entry when the torso is shared).
      activations: every hidden layer, keyed ``"{torso}/layer_{i}"``.
    """

    policy: Array
    log_std: Array
    value: Array
    features: dict[str, Array]
    activations: dict[str, Array]
    value_logits: Array | None = None


class ActorCritic(nn.Module):
    """CleanRL-style actor-critic: orthogonal init, gains sqrt(2) / 0.01 (actor) / 1 (critic).

    Heads come from ``networks.heads.head_module``, so methods edit them through
    ``NetworkSpec`` options (plasticity injection, HL-Gauss value bins).
    """

    spec: NetworkSpec
    action_space: ActionSpace

    @nn.compact
    def __call__(self, obs: Array) -> ACOutput:
        continuous = isinstance(self.action_space, ContinuousActions)
        out_dim = (
            math.prod(self.action_space.shape) if continuous else self.action_space.n
        )
        if self.spec.shared_torso:
            f, acts = Torso(self.spec, name="shared")(obs)
            features = {"shared": f}
            activations = {f"shared/{k}": v for k, v in acts.items()}
            f_actor = f_critic = f
        else:
            f_actor, acts_a = Torso(self.spec, name="actor")(obs)
            f_critic, acts_c = Torso(self.spec, name="critic")(obs)
            features = {"actor": f_actor, "critic": f_critic}
            activations = {
                **{f"actor/{k}": v for k, v in acts_a.items()},
                **{f"critic/{k}": v for k, v in acts_c.items()},
            }
        policy = head_module(self.spec, "actor_head", out_dim, orthogonal(0.01))(f_actor)
        n_value = critic_width(self.spec)
        value_logits = head_module(self.spec, "critic_head", n_value, orthogonal(1.0))(f_critic)
        value = value_logits[:, 0] if n_value == 1 else jnp.full(obs.shape[:1], jnp.nan)
        if continuous:
            policy = policy.reshape((obs.shape[0], *self.action_space.shape))
            log_std = self.param("log_std", nn.initializers.zeros, self.action_space.shape)
        else:
            log_std = jnp.zeros((0,), jnp.float32)
        return ACOutput(policy, log_std, value, features, activations, value_logits)
