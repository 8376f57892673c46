"""The method contract: traced hyperparameters plus up to five pure hooks.

A ``Method`` is built once, on the host, from its config entry (name, static options,
traced hyperparameter defaults). Inside the compiled program it is only ever *called*:
its numbers arrive as traced arrays in ``hp`` (this method's own dict), never closed over.

Hooks (all optional):

* ``network(spec) -> spec``: a static edit of the ``NetworkSpec`` (CReLU, LayerNorm, ...).
* ``optimizer(tx, hp) -> tx``: wraps the agent's ``GradientTransformation`` (TRAC, SAM, ...).
  The wrapped transform is called as ``tx.update(grads, state, params, key=key)``; use
  ``optax.GradientTransformationExtraArgs`` to receive the per-step PRNG ``key``.
  Extra arguments the agent passes reach every wrapper: ``key`` (per-step PRNG key, distinct
  per vmapped seed), ``grad_fn`` (``params -> grads`` on the current minibatch; SAM needs
  it) and ``max_grad_norm`` (the agent's clip threshold, applied inside the base optimizer;
  TRAC clips with it, by the global norm, the gradient it reads: ``reads_max_grad_norm``).
  A wrapper's ``NamedTuple`` state may list ``persist_fields``: fields an optimizer-state
  reset must keep (anchors such as θ₀, initial norms, clipping bounds).
* ``penalty(params, anchor_params, hp) -> scalar``: added to the loss; ``anchor_params``
  are the parameters at initialisation (L2-to-init, Parseval, ...).
* ``intervention``: an ``Intervention`` fired by a traced schedule between updates
  (ReDo, resets, injection, continual backprop, ...).
* ``after_target_update(target_params, online_opt_state, hp) -> target_params``: applied to
  a target network right after each of its target updates (hard copy or Polyak step), with
  the optimizer state of the online network it follows (neuroplastic expansion multiplies
  the target's kernels by the masks kept there). Agents with target networks call it
  through ``compose.after_target_update``; on an ensemble, once per member with that
  member's own optimizer state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import optax

from plasticine_jax.networks.spec import NetworkSpec

Array = jax.Array
Params = Any
HP = Mapping[str, Array]


class Events(NamedTuple):
    """What schedules may look at; all traced scalars.

    Attributes:
      update_step: int32, number of updates completed *including* the current one.
      task_id: int32, task of the most recent environment step (env 0).
      task_switched: bool, a task switch happened during the current update's rollout.
      task_step: int32, env steps (per env) since the current task began.
      steps_per_task: int32, env steps per task (0 when the scenario has a single task).
      rollout_steps: int32, env steps per env in one update's rollout (``agent.num_steps``).
    """

    update_step: Array
    task_id: Array
    task_switched: Array
    task_step: Array
    steps_per_task: Array
    rollout_steps: Array


class LearnerState(NamedTuple):
    """The part of the agent's state that interventions may rewrite.

    Attributes:
      params / opt_state / init_params: the network, its optimizer state, its
        initialisation (the anchor of L2-to-init, S&P, ...).
      method_state: per method name, the intervention's own state.
      last_grads: the loss gradient of the update's last minibatch (like ``params``), kept
        only when a method sets ``needs_grads`` (neuroplastic expansion grows connections
        by it); ``None`` otherwise, so other runs carry no extra copy of the parameters.
    """

    params: Params
    opt_state: optax.OptState
    init_params: Params
    method_state: dict[str, Any]
    last_grads: Params = None


class ModelContext(NamedTuple):
    """Static helpers interventions need to look at or rebuild the network.

    Attributes:
      apply: ``apply(params, obs [B, ...]) -> ACOutput`` (features and activations).
      init: ``init(key) -> params``, a fresh initialisation of the whole network.
      spec: the network's final ``NetworkSpec`` (after all network edits).
      parts: agent network name -> the top-level modules of ``params["params"]`` it owns
        (PPO: ``actor`` -> ``("actor", "actor_head", "log_std")``); a shared torso belongs
        to every network that reads it. ``None``: one network owning everything. An agent
        whose networks are separate learners (SAC, TD3) gives each learner's context the
        whole mapping; a learner holds only its own network's modules.
    """

    apply: Callable[[Params, Array], Any]
    init: Callable[[Array], Params]
    spec: NetworkSpec
    parts: Mapping[str, tuple[str, ...]] | None = None


class Intervention(NamedTuple):
    """A scheduled, pure rewrite of the learner state.

    Attributes:
      schedule: ``(events, hp) -> bool`` scalar; traced, so its period may be a hyperparameter.
      apply: ``(learner, probe_obs [P, ...], key, hp, events, ctx) -> learner``.
      init_state: ``(params, key) -> pytree`` stored at ``learner.method_state[name]``.
    """

    schedule: Callable[[Events, HP], Array]
    apply: Callable[..., LearnerState]
    init_state: Callable[[Params, Array], Any] | None = None


@dataclasses.dataclass(frozen=True)
class Method:
    """A named mitigation method. See the module docstring for the hooks' contracts.

    Attributes:
      name: registry name, also the key of its hyperparameters in ``hp.methods``.
      hp: traced hyperparameter defaults (floats); the config may override and sweep them.
      network / optimizer / penalty / intervention: the hooks, ``None`` when unused.
      conflicts: names of methods this one cannot be combined with.
      identity_hp: hyperparameter values at which the method's optimizer and penalty hooks
        are exact no-ops (``None``: it cannot be switched off). Methods with such values and
        no intervention or target hook can share one compiled program with members that
        lack them (``methods.plan``).
      requires: ``NetworkSpec`` field -> allowed values, checked on the final network at
        config time (e.g. ReDo: ``{"activation": ("relu", ...)}``).
      options: the static options it was built with, as sorted ``(key, value)`` pairs; with
        ``name`` they identify the method's structure (set by ``make_method``).
      needs_grads: the intervention reads ``learner.last_grads`` (the agent then keeps it).
      needs_element_counts: the intervention restarts Adam on the entries it rewrites, so
        the agent's base Adam keeps a step count per entry (``methods.adam_gnt``), which
        moment zeroing resets with the moments (continual backprop; ReDo with
        ``zero_moments``).
      networks: the agent networks the method is restricted to (config ``networks:``);
        empty for every network. Only penalties, interventions and target hooks can be
        restricted (``compose.total_penalty``, ``compose.apply_interventions``,
        ``compose.after_target_update``).
      uses_networks: option name -> the agent networks that option names (neuroplastic
        expansion's ``static_networks``); the config checks, before anything compiles, that
        each is a network of the agent and one the entry's ``networks:`` keeps.
      reads_max_grad_norm: the optimizer hook clips, by the global norm, the gradient it
        reads with the extra argument ``max_grad_norm`` (TRAC, Kron's ``kron_torch``), so
        the config refuses it beside ``agent.grad_clip: elementwise``, whose base
        optimizer sees a differently clipped gradient.
    """

    name: str
    hp: Mapping[str, float] = dataclasses.field(default_factory=dict)
    network: Callable[[NetworkSpec], NetworkSpec] | None = None
    optimizer: Callable[[optax.GradientTransformation, HP], optax.GradientTransformation] | None = (
        None
    )
    penalty: Callable[[Params, Params, HP], Array] | None = None
    intervention: Intervention | None = None
    after_target_update: Callable[[Params, optax.OptState, HP], Params] | None = None
    conflicts: tuple[str, ...] = ()
    identity_hp: Mapping[str, float] | None = None
    requires: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    options: tuple[tuple[str, Any], ...] = ()
    needs_grads: bool = False
    needs_element_counts: bool = False
    networks: tuple[str, ...] = ()
    uses_networks: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    reads_max_grad_norm: bool = False

    @property
    def key(self) -> tuple[Any, ...]:
        """Structural identity: two methods with equal keys build the same program."""
        return (self.name, self.options, self.networks)


def set_network_fields(**fields: Any) -> Callable[[NetworkSpec], NetworkSpec]:
    """A ``network`` hook that sets ``NetworkSpec`` fields (CReLU, Fourier, LayerNorm)."""
    return lambda spec: dataclasses.replace(spec, **fields)
