"""Off-policy actor-critics from an on-device replay buffer: SAC (Haarnoja et al. 2018) and
TD3 (Fujimoto et al. 2018), as CleanRL's ``sac_continuous_action.py`` and
``td3_continuous_action.py`` run them, at any update-to-data ratio.

One member's update (``agent.num_steps`` steps of every env, then ``G = replay_ratio *
num_steps * num_envs`` critic gradient steps, inside the scan):

1. act: TD3 ``clip(mu(s) + N(0, (exploration_noise * scale)^2), low, high)``; SAC a sample of
   its tanh-squashed Gaussian (discrete SAC: of its categorical policy). The prefill
   (``learning_starts`` uniformly random env steps per member) runs inside ``init``;
2. store the rollout in the member's buffer (``agents.replay``: each observation once);
3. ``G`` critic steps, each on a fresh uniform sample. Critic step ``c`` (counted over the
   whole run from 0, ``c = update * G + g``) is followed, when ``c % policy_frequency ==
   0``, by TD3's actor step and the Polyak update of every target network, or by SAC's
   ``policy_frequency`` actor (and temperature) steps on the same batch (CleanRL's
   compensation for the delay); SAC's target critics move when ``c %
   target_network_frequency == 0``; each target update is followed by the methods'
   ``after_target_update`` hooks (neuroplastic expansion's target masking). The count is
   unbatched (the runner passes the update index unbatched), so the actor step is a real
   ``lax.cond`` branch under ``vmap``;
4. interventions on each network, the target networks kept consistent, metrics.

Critic ensemble: ``num_critics`` critics (2: the twin critics) whose parameters carry a
leading ensemble axis; every critic computation is ``jax.vmap`` over it, never a loop. Each
critic regresses on the shared target ``y`` (``min`` over the target ensemble), so
``vmap``ping the per-critic gradient step is CleanRL's one Adam over ``qf1`` and ``qf2``
together: Adam is elementwise, and the gradient of ``qf1_loss + qf2_loss`` with respect to
each critic is that of its own loss.

Targets (``d`` = termination; a time-limit truncation never counts as one, see
``agents.replay``): TD3 ``y = r + gamma (1 - d) min_i Q'_i(s', clip(mu'(s') + clip(eps,
-noise_clip, noise_clip) scale, low, high))``, ``eps ~ N(0, (policy_noise)^2)`` (the
noise and its clip are in units of the action scale, as CleanRL multiplies by
``action_scale``); SAC ``y = r + gamma (1 - d) (min_i Q'_i(s', a') - alpha log pi(a'|s'))``,
``a' ~ pi(.|s')``; discrete SAC the expectation over ``pi(.|s')``. Losses: each critic's
``mean (Q_i(s, a) - y)^2``; TD3's actor ``-mean Q_1(s, mu(s))`` (CleanRL's ``qf1``); SAC's
``mean (alpha log pi(a|s) - min_i Q_i(s, a))``, ``a ~ pi(.|s)`` reparameterised; the
temperature ``mean(-exp(log_alpha) (log pi(a|s) + H_target))`` with ``H_target =
-action_dim`` (CleanRL's current form, on ``exp(log_alpha)``; discrete: ``H_target =
target_entropy_scale * log n``, the expectation over the policy). n-step targets
(``agent.n_step``) replace ``r`` and ``gamma`` with their n-step sums.

Methods: the actor and the critic are separate networks, each with its own optimizer (the
critics' Adam at ``q_lr``, the actor's at ``policy_lr``). Every method applies to both unless
its ``networks:`` option names one: network edits, optimizer wrappers, penalties and
interventions alike. Interventions on the critic run on each ensemble member (``vmap``, each
with its own key). After them every parameter entry an intervention changed is copied into
the corresponding target network (``dqn.mirror_interventions``), as Nikishin et al. 2022
reset the targets with the networks.

Metrics: the whole-model metrics cover the actor and the first critic (CleanRL's ``qf1``,
the one TD3's actor follows), per network as ``actor/...`` and ``critic/...``, with the
neuroplastic-expansion reference's fraction of active units (``actor/fau``,
``critic/fau``: ``metrics.fraction_active_units``); the critic's activations are taken at
the probe's replay actions, as the reference's ``forward_with_FAU(state, action)`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from plasticine_jax import metrics as pm
from plasticine_jax.agents import replay as rb
from plasticine_jax.agents.common import ReplayAgent, eval_key, optimizer_step
from plasticine_jax.agents.dqn import integer_observations, mirror_interventions
from plasticine_jax.config.load import gradient_steps
from plasticine_jax.config.schema import ExperimentConfig
from plasticine_jax.envs.core import Environment
from plasticine_jax.methods import compose
from plasticine_jax.methods.base import LearnerState, Method, ModelContext
from plasticine_jax.networks.actor_critic import Actor, Critic, action_dim, critic_input
from plasticine_jax.networks.spec import spec_from_config

Array = jax.Array
HP = dict[str, Any]


def _module_field(x: float | np.ndarray) -> float | tuple[float, ...]:
    """A float, or an array as a tuple: flax module fields must stay hashable."""
    return x if isinstance(x, float) else tuple(float(v) for v in np.reshape(x, -1))


class OffPolicyState(NamedTuple):
    """Everything one member carries between updates.

    Attributes:
      actor / critic: the two learners; every leaf of ``critic`` has a leading ensemble axis.
      actor_target / critic_target: target parameters (TD3's actor target; SAC's is unused,
        a copy of the actor kept so both agents share one state).
      log_alpha / alpha_opt: SAC's temperature and its Adam state (TD3: unused zeros).
    """

    actor: LearnerState
    critic: LearnerState
    actor_target: Any
    critic_target: Any
    log_alpha: Array
    alpha_opt: Any
    buffer: rb.ReplayBuffer
    env_state: Any
    obs: Array
    key: Array
    env_steps: Array  # int32: env steps of this member so far, prefill included
    hp: HP


class OffPolicyActorCritic(ReplayAgent):
    """What SAC and TD3 share; see the module docstring."""

    networks = ("actor", "critic")
    # The actor's loss is NaN on updates without an actor step (``policy_frequency``); its
    # divergence shows in its parameters, which the guard checks too.
    loss_keys = ("critic_loss", "penalty", "grad_norm")
    unsupported_methods = {
        "hl_gauss": "its critic is a scalar regression here; HL-Gauss is for DQN, C51 and PPO",
    }
    # Each network is its own learner, so ``networks:`` may restrict any method.
    separate_learners = True
    actor_kind = "deterministic"

    def __init__(
        self,
        cfg: ExperimentConfig,
        env: Environment,
        methods: Sequence[Method] = (),
        eval_env: Environment | None = None,
    ):
        super().__init__(cfg, env, methods, eval_env)
        a = cfg.agent
        space = env.spec.action_space
        if self.continuous:
            # Floats for one bound, else one per dimension of the actor's flat output.
            low, high = space.bounds()
            self.scale, self.bias = (
                b if isinstance(b, float) else np.reshape(b, -1)
                for b in ((high - low) / 2.0, (high + low) / 2.0)
            )
            out = action_dim(space.shape)
        else:
            if self.actor_kind == "deterministic":
                raise ValueError(
                    f"agent.name={a.name!r} needs continuous actions; {env.spec.name} has "
                    "discrete ones (use sac, dqn, c51, pqn or ppo)"
                )
            self.scale, self.bias, out = 1.0, 0.0, space.n
        self.num_actions = out
        base = spec_from_config(a.network)
        self.methods_of = {
            net: tuple(m for m in self.methods if not m.networks or net in m.networks)
            for net in self.networks
        }
        self.specs = {n: compose.edit_network(base, ms) for n, ms in self.methods_of.items()}
        kind = self.actor_kind if self.continuous else "categorical"
        self.actor_net = Actor(
            self.specs["actor"], kind, out, _module_field(self.scale), _module_field(self.bias)
        )
        self.critic_net = Critic(self.specs["critic"], 1 if self.continuous else out)
        self.spec = self.specs["critic"]
        self.grad_steps = gradient_steps(cfg)
        # Pixels of discrete-action envs (MinAtar, Atari, Procgen: discrete SAC) are stored
        # as uint8; continuous-control observations (DMC through envpool too) as float32.
        self.storage_dtype = rb.obs_storage_dtype(
            jnp.float32, 0, 255, integer_valued=integer_observations(cfg) and not self.continuous
        )
        obs = self._dummy_obs
        act = jnp.zeros((1, out), jnp.float32) if self.continuous else None
        self._dummy_critic_in = critic_input(obs, act)
        # Both contexts name every network: a method restricted to some (``networks:``),
        # or naming some in its options, finds each; a learner holds only its own modules.
        parts = self.network_parts()
        self.ctx = {
            "actor": ModelContext(
                apply=self.actor_net.apply, init=lambda k: self.actor_net.init(k, obs),
                spec=self.specs["actor"], parts=parts,
            ),
            "critic": ModelContext(
                apply=self.critic_net.apply,
                init=lambda k: self.critic_net.init(k, self._dummy_critic_in),
                spec=self.specs["critic"], parts=parts,
            ),
        }  # fmt: skip

    # ------------------------------------------------------------------ networks

    def network_parts(self) -> dict[str, tuple[str, ...]]:
        return {"actor": ("actor", "actor_head", "log_std_head"),
                "critic": ("critic", "critic_head")}  # fmt: skip

    @staticmethod
    def trained_params(state: OffPolicyState) -> Any:
        return {"actor": state.actor.params, "critic": state.critic.params}

    def init_params(self, key: Array) -> Any:
        """``{"actor": params, "critic": params with a leading ensemble axis}``."""
        k_actor, k_critic = jax.random.split(key)
        keys = jax.random.split(k_critic, self.cfg.agent.num_critics)
        return {
            "actor": self.ctx["actor"].init(k_actor),
            "critic": jax.vmap(self.ctx["critic"].init)(keys),
        }

    def q_all(self, critic_params: Any, obs: Array, action: Array | None) -> Array:
        """Every critic's Q ``[E, B]`` (or ``[E, B, n]`` for discrete actions)."""
        x = critic_input(obs, action)
        return jax.vmap(lambda p: self.critic_net.apply(p, x).q)(critic_params)

    def optimizer(self, net: str, hp: HP) -> optax.GradientTransformationExtraArgs:
        """Adam (``policy_lr`` for the actor, ``q_lr`` for the critics; eps ``adam_eps``),
        wrapped by the methods that apply to ``net``."""
        a = hp["agent"]
        lr = a["policy_lr"] if net == "actor" else a["q_lr"]
        opt = optax.inject_hyperparams(self.adam_of(net))(learning_rate=lr, eps=a["adam_eps"])
        return compose.wrap_optimizer(opt, self.methods_of[net], hp["methods"])

    def adam_of(self, net: str):
        from plasticine_jax.methods.adam_gnt import adam_gnt

        return adam_gnt if any(m.needs_element_counts for m in self.methods_of[net]) else optax.adam

    def _learner(self, net: str, params: Any, key: Array, hp: HP) -> LearnerState:
        methods = self.methods_of[net]
        tx = self.optimizer(net, hp)
        keep_grads = any(m.needs_grads for m in methods)

        def one(p, k):
            return LearnerState(
                p, tx.init(p), p, compose.init_method_states(methods, p, k),
                jax.tree.map(jnp.zeros_like, p) if keep_grads else None,
            )

        if net == "actor":
            return one(params, key)
        return jax.vmap(one)(params, jax.random.split(key, self.cfg.agent.num_critics))

    # ------------------------------------------------------------------ init and acting

    def init(self, key: Array, hp: HP) -> OffPolicyState:
        """A fresh member with its buffer prefilled by ``learning_starts`` random steps."""
        k_params, k_env, k_methods, k_fill, k_run = jax.random.split(key, 5)
        params = self.init_params(k_params)
        k_ma, k_mc = jax.random.split(k_methods)
        actor = self._learner("actor", params["actor"], k_ma, hp)
        critic = self._learner("critic", params["critic"], k_mc, hp)
        # CleanRL's autotune starts from log_alpha = 0 (alpha = 1).
        log_alpha = jnp.zeros((), jnp.float32)
        alpha_opt = self._alpha_tx(hp).init(log_alpha)
        obs, env_state = self.env.reset(k_env)
        state = OffPolicyState(
            actor, critic, actor.params, critic.params, log_alpha, alpha_opt,
            self.new_buffer(), env_state, obs, k_run, jnp.zeros((), jnp.int32), hp,
        )  # fmt: skip
        return self.prefill(state, k_fill)

    def _alpha_tx(self, hp: HP) -> optax.GradientTransformation:
        a = hp["agent"]
        return optax.inject_hyperparams(optax.adam)(learning_rate=a["q_lr"], eps=a["adam_eps"])

    def explore(self, state: OffPolicyState, obs: Array, key: Array, random: bool):
        if random:
            return self.random_action(key), {}
        return self.behaviour_action(state.actor.params, obs, state.hp, key), {}

    # ------------------------------------------------------------------ learning

    def critic_target_value(self, state_parts: dict, batch: rb.NStepBatch, hp: HP, key: Array):
        raise NotImplementedError  # pragma: no cover - abstract

    def actor_loss(self, actor_params: Any, critic_params: Any, obs: Array, alpha: Array,
                   hp: HP, key: Array):
        raise NotImplementedError  # pragma: no cover - abstract

    def _critic_step(self, critic: LearnerState, batch: rb.NStepBatch, y: Array, hp: HP, key):
        """One gradient step of every critic on ``mean w (Q_i(s, a) - y)^2`` (vmapped)."""
        w = batch.weight
        tx = self.optimizer("critic", hp)
        methods, parts = self.methods_of["critic"], None
        discrete = not self.continuous
        x = critic_input(batch.obs, None if discrete else batch.action)

        def loss(p, anchor):
            q = self.critic_net.apply(p, x).q
            if discrete:
                q = jnp.take_along_axis(q, batch.action.astype(jnp.int32)[:, None], 1)[:, 0]
            td = jnp.sum(w * (q - y) ** 2) / jnp.maximum(jnp.sum(w), 1.0)
            penalty = compose.total_penalty(methods, p, anchor, hp["methods"], parts)
            return td + penalty, {"critic_loss": td, "penalty": penalty, "q_mean": jnp.mean(q)}

        def one(learner, k):
            return optimizer_step(
                learner, tx, lambda p: loss(p, learner.init_params), k,
                jnp.asarray(jnp.inf, jnp.float32),
            )

        keys = jax.random.split(key, self.cfg.agent.num_critics)
        critic, aux = jax.vmap(one)(critic, keys)
        # The loss is the ensemble's sum (CleanRL: qf1_loss + qf2_loss); the rest are means.
        return critic, {
            "critic_loss": aux["critic_loss"].sum(), "penalty": aux["penalty"].sum(),
            "q_mean": aux["q_mean"].mean(),
            "critic_grad_norm": jnp.sqrt(jnp.sum(aux["grad_norm"] ** 2)),
        }

    def _actor_step(self, actor: LearnerState, critic_params: Any, obs: Array, alpha: Array,
                    hp: HP, key: Array):
        tx = self.optimizer("actor", hp)
        methods = self.methods_of["actor"]

        def loss(p):
            value, aux = self.actor_loss(p, critic_params, obs, alpha, hp, key)
            penalty = compose.total_penalty(methods, p, actor.init_params, hp["methods"])
            return value + penalty, {**aux, "actor_penalty": penalty}

        k_tx = jax.random.fold_in(key, 1)
        return optimizer_step(actor, tx, loss, k_tx, jnp.asarray(jnp.inf, jnp.float32))

    def _actor_phase(self, carry: dict, batch: rb.NStepBatch, key: Array) -> dict:
        """What follows a critic step whose count is a multiple of ``policy_frequency``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _learn(self, state: OffPolicyState, update_step: Array, key: Array):
        """``G`` critic steps, each with its actor phase when due; returns the new parts, the
        mean scalars and the probe (the last step's batch observations and actions)."""
        hp, c = state.hp, self.cfg.agent
        pf, g_steps = c.policy_frequency, self.grad_steps
        actor_names = self.actor_scalar_names()

        def step(carry, g):
            key = carry["key"]
            key, k_sample, k_target, k_critic, k_actor = jax.random.split(key, 5)
            batch = rb.sample(state.buffer, k_sample, c.batch_size, c.n_step, hp["agent"]["gamma"])
            y = jax.lax.stop_gradient(self.critic_target_value(carry, batch, hp, k_target))
            critic, aux = self._critic_step(carry["critic"], batch, y, hp, k_critic)
            carry = {**carry, "critic": critic, "key": key}
            count = update_step * g_steps + g  # critic steps before this one, unbatched
            carry, actor_aux = jax.lax.cond(
                count % pf == 0,
                lambda cr: self._actor_phase(cr, batch, k_actor),
                lambda cr: (cr, {k: jnp.full((), jnp.nan, jnp.float32) for k in actor_names}),
                carry,
            )
            carry = self._target_phase(carry, count)
            probe = (batch.obs[: self.cfg.metrics.probe_size],
                     batch.action[: self.cfg.metrics.probe_size])  # fmt: skip
            return {**carry, "probe": probe}, {**aux, **actor_aux}

        size = min(self.cfg.metrics.probe_size, c.batch_size)
        action = state.buffer.action
        probe = (jnp.zeros((size, *self.env.spec.obs_shape), jnp.float32),
                 jnp.zeros((size, *action.shape[2:]), action.dtype))  # fmt: skip
        carry = {
            "actor": state.actor, "critic": state.critic, "actor_target": state.actor_target,
            "critic_target": state.critic_target, "log_alpha": state.log_alpha,
            "alpha_opt": state.alpha_opt, "key": key, "probe": probe, "hp": hp,
        }  # fmt: skip
        carry, aux = jax.lax.scan(step, carry, jnp.arange(g_steps, dtype=jnp.int32))
        # NaN-aware means: the actor's scalars exist only on its steps.
        return carry, jax.tree.map(jnp.nanmean, aux)

    def _target_phase(self, carry: dict, count: Array) -> dict:
        return carry

    def after_target_update(self, net: str, target: Any, learner: LearnerState, hp: HP,
                            due: Array | None = None) -> Any:
        """The methods' ``after_target_update`` hooks on ``net``'s target, which has just
        moved (where ``due``); on the critic ensemble, per critic with its own optimizer
        state."""
        def one(t, opt_state):
            return compose.after_target_update(self.methods_of[net], t, opt_state,
                                               hp["methods"], due)

        if net == "actor":
            return one(target, learner.opt_state)
        return jax.vmap(one)(target, learner.opt_state)

    def actor_scalar_names(self) -> tuple[str, ...]:
        raise NotImplementedError  # pragma: no cover - abstract

    def update(self, state: OffPolicyState, update_step: Array):
        """One update: rollout, store, ``G`` critic steps with their actor phases,
        interventions on each network (targets mirrored), metrics."""
        hp = state.hp
        key, k_roll, k_learn, k_iv = jax.random.split(state.key, 4)
        state, traj, _ = self.rollout(state, self.cfg.agent.num_steps, k_roll)
        state = state._replace(buffer=self.store(state.buffer, traj))
        before = self.trained_params(state)
        carry, aux = self._learn(state, update_step, k_learn)
        events = self.events(traj["task_id"], traj["task_switched"], update_step)
        probe_obs, probe_action = carry["probe"]
        k_a, k_c = jax.random.split(k_iv)
        actor = compose.apply_interventions(
            self.methods_of["actor"], carry["actor"], probe_obs, k_a, hp["methods"], events,
            self.ctx["actor"],
        )  # fmt: skip
        critic_in = critic_input(probe_obs, probe_action if self.continuous else None)
        critic = jax.vmap(
            lambda learner, k: compose.apply_interventions(
                self.methods_of["critic"], learner, critic_in, k, hp["methods"], events,
                self.ctx["critic"],
            )
        )(carry["critic"], jax.random.split(k_c, self.cfg.agent.num_critics))  # fmt: skip
        actor_target = mirror_interventions(carry["actor"].params, actor.params,
                                            carry["actor_target"])  # fmt: skip
        critic_target = mirror_interventions(carry["critic"].params, critic.params,
                                             carry["critic_target"])  # fmt: skip
        state = state._replace(
            actor=actor, critic=critic, actor_target=actor_target, critic_target=critic_target,
            log_alpha=carry["log_alpha"], alpha_opt=carry["alpha_opt"], key=key,
        )  # fmt: skip
        grad_norm = aux.pop("critic_grad_norm")
        out = {
            **aux,
            "grad_norm": grad_norm,
            **self.episode_scalars(
                traj["episode_return"], traj["episode_length"], traj["episode_metrics"],
                events,
            ),
        }  # fmt: skip
        params = self.trained_params(state)
        out.update(self.plasticity(params, before, (probe_obs, probe_action), update_step))
        out.update(self.evaluation(actor.params, hp, eval_key(key, update_step), update_step))
        return state, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), out)

    # ------------------------------------------------------------------ metrics

    def activation_of(self, net: str) -> str:
        return self.specs[net].activation

    def _first_critic(self, critic_params: Any) -> Any:
        return jax.tree.map(lambda x: x[0], critic_params)

    def compute_plasticity(self, params, params_before, probe) -> dict[str, Array]:
        """Every plasticity metric (see the module docstring: actor and first critic)."""
        m = self.cfg.metrics
        obs, action = probe
        a_out = self.actor_net.apply(params["actor"], obs)
        critic = self._first_critic(params["critic"])
        c_out = self.critic_net.apply(
            critic, critic_input(obs, action if self.continuous else None)
        )
        merged = {"params": {**params["actor"]["params"], **critic["params"]}}
        merged_before = {"params": {
            **params_before["actor"]["params"],
            **self._first_critic(params_before["critic"])["params"],
        }}  # fmt: skip
        activations = {**a_out.activations, **c_out.activations}
        values = pm.plasticity_metrics(
            activations=activations,
            features={**a_out.features, **c_out.features},
            params=merged,
            params_before=merged_before,
            activation=self.specs["critic"].activation,
            tau=m.dormant_tau,
            rank_threshold=m.rank_threshold,
            squared_rank=m.squared_rank,
            variance_over=m.feature_variance_over,
        )
        values.update(self.network_metrics(activations, merged, merged_before, fau=True))
        return {**values, **self.extra_metrics(a_out)}

    def metric_names(self) -> tuple[str, ...]:
        if not self.cfg.metrics.every:
            return ()
        params = self.init_params(jax.random.PRNGKey(0))
        size = self.cfg.metrics.probe_size
        obs = jnp.zeros((size, *self.env.spec.obs_shape))
        space = self.env.spec.action_space
        action = (jnp.zeros((size, *space.shape)) if self.continuous
                  else jnp.zeros((size,), jnp.int32))  # fmt: skip
        return tuple(
            jax.eval_shape(lambda: self.compute_plasticity(params, params, (obs, action)))
        )


class TD3(OffPolicyActorCritic):
    """TD3; see the module docstring."""

    name = "td3"
    actor_kind = "deterministic"

    def act_greedy(self, params: Any, obs: Array, hp: HP) -> Array:
        return self.actor_net.apply(params, obs).policy

    def behaviour_action(self, params: Any, obs: Array, hp: HP, key: Array) -> Array:
        mu = self.act_greedy(params, obs, hp)
        noise = jax.random.normal(key, mu.shape) * self.scale * hp["agent"]["exploration_noise"]
        return self.env_action(mu + noise)

    def smoothed_target_action(self, target_params: Any, obs: Array, hp: HP, key: Array):
        """``clip(mu'(s') + clip(N(0, policy_noise^2), -noise_clip, noise_clip) * scale,
        low, high)`` (CleanRL's target policy smoothing)."""
        a = hp["agent"]
        mu = self.act_greedy(target_params, obs, hp)
        noise = jnp.clip(
            jax.random.normal(key, mu.shape) * a["policy_noise"], -a["noise_clip"], a["noise_clip"]
        )
        return self.env_action(mu + noise * self.scale)

    def critic_target_value(self, carry: dict, batch: rb.NStepBatch, hp: HP, key: Array):
        next_a = self.smoothed_target_action(carry["actor_target"], batch.next_obs, hp, key)
        q_next = self.q_all(carry["critic_target"], batch.next_obs, next_a).min(axis=0)
        return batch.reward + batch.discount * q_next

    def actor_loss(self, actor_params, critic_params, obs, alpha, hp, key):
        action = self.act_greedy(actor_params, obs, hp)
        first = self._first_critic(critic_params)
        q = self.critic_net.apply(first, critic_input(obs, action)).q
        loss = -jnp.mean(q)
        return loss, {"actor_loss": loss}

    def actor_scalar_names(self) -> tuple[str, ...]:
        return ("actor_loss", "actor_penalty", "actor_grad_norm")

    def _actor_phase(self, carry: dict, batch: rb.NStepBatch, key: Array):
        hp = carry["hp"]
        critic_params = jax.lax.stop_gradient(carry["critic"].params)
        actor, aux = self._actor_step(carry["actor"], critic_params, batch.obs, 0.0, hp, key)
        tau = hp["agent"]["tau"]
        polyak = lambda t, p: jax.tree.map(lambda x, y: tau * y + (1.0 - tau) * x, t, p)  # noqa: E731
        actor_target = polyak(carry["actor_target"], actor.params)
        critic_target = polyak(carry["critic_target"], carry["critic"].params)
        carry = {
            **carry, "actor": actor,
            "actor_target": self.after_target_update("actor", actor_target, actor, hp),
            "critic_target": self.after_target_update("critic", critic_target,
                                                      carry["critic"], hp),
        }  # fmt: skip
        return carry, {"actor_loss": aux["actor_loss"], "actor_penalty": aux["actor_penalty"],
                       "actor_grad_norm": aux["grad_norm"]}  # fmt: skip


class SAC(OffPolicyActorCritic):
    """SAC, continuous or discrete; see the module docstring."""

    name = "sac"
    actor_kind = "gaussian"

    def target_entropy(self, hp: HP) -> Array:
        """``-action_dim`` (continuous), ``target_entropy_scale * log n`` (discrete)."""
        if self.continuous:
            return jnp.asarray(-float(self.num_actions), jnp.float32)
        return hp["agent"]["target_entropy_scale"] * jnp.log(float(self.num_actions))

    def alpha(self, log_alpha: Array, hp: HP) -> Array:
        return jnp.exp(log_alpha) if self.cfg.agent.autotune else hp["agent"]["alpha"]

    def policy_sample(self, params: Any, obs: Array, key: Array):
        """Continuous: a reparameterised action and its log-probability ``[B]`` (CleanRL's
        ``get_action``: ``tanh`` change of variables with its ``1e-6``). Discrete: the
        probabilities and log-probabilities ``[B, n]``."""
        out = self.actor_net.apply(params, obs)
        if not self.continuous:
            logp = jax.nn.log_softmax(out.policy, axis=-1)
            return jnp.exp(logp), logp
        mean, log_std = out.policy, out.log_std
        std = jnp.exp(log_std)
        x = mean + std * jax.random.normal(key, mean.shape)
        y = jnp.tanh(x)
        action = y * self.scale + self.bias
        normal_logp = -0.5 * ((x - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        logp = normal_logp - jnp.log(self.scale * (1.0 - y**2) + 1e-6)
        return action, logp.reshape(logp.shape[0], -1).sum(-1)

    def act_greedy(self, params: Any, obs: Array, hp: HP) -> Array:
        out = self.actor_net.apply(params, obs)
        if not self.continuous:
            return jnp.argmax(out.policy, axis=-1)
        return jnp.tanh(out.policy) * self.scale + self.bias

    def behaviour_action(self, params: Any, obs: Array, hp: HP, key: Array) -> Array:
        if not self.continuous:
            logits = self.actor_net.apply(params, obs).policy
            return jax.random.categorical(key, logits, axis=-1)
        return self.policy_sample(params, obs, key)[0]

    def critic_target_value(self, carry: dict, batch: rb.NStepBatch, hp: HP, key: Array):
        alpha = self.alpha(carry["log_alpha"], hp)
        if self.continuous:
            next_a, next_logp = self.policy_sample(carry["actor"].params, batch.next_obs, key)
            q_next = self.q_all(carry["critic_target"], batch.next_obs, next_a).min(axis=0)
            v_next = q_next - alpha * next_logp
        else:
            p, logp = self.policy_sample(carry["actor"].params, batch.next_obs, key)
            q_next = self.q_all(carry["critic_target"], batch.next_obs, None).min(axis=0)
            v_next = jnp.sum(p * (q_next - alpha * logp), axis=-1)
        return batch.reward + batch.discount * v_next

    def actor_loss(self, actor_params, critic_params, obs, alpha, hp, key):
        if self.continuous:
            action, logp = self.policy_sample(actor_params, obs, key)
            q = self.q_all(critic_params, obs, action).min(axis=0)
            loss = jnp.mean(alpha * logp - q)
            return loss, {"actor_loss": loss}
        p, logp = self.policy_sample(actor_params, obs, key)
        q = self.q_all(critic_params, obs, None).min(axis=0)
        # CleanRL sac_atari.py averages over the actions too: a constant 1/n Adam removes.
        loss = jnp.mean(jnp.sum(p * (alpha * logp - q), axis=-1))
        return loss, {"actor_loss": loss}

    def expected_logp(self, params: Any, obs: Array, key: Array) -> Array:
        """``log pi(a|s)`` ``[B]`` of a fresh sample (continuous), or its expectation over
        the policy, ``-entropy`` (discrete); no gradient."""
        if self.continuous:
            logp = self.policy_sample(params, obs, key)[1]
        else:
            p, logp = self.policy_sample(params, obs, key)
            logp = jnp.sum(p * logp, axis=-1)
        return jax.lax.stop_gradient(logp)

    def alpha_loss(self, log_alpha: Array, logp: Array, hp: HP) -> Array:
        """``mean(-exp(log_alpha) (log pi + H_target))`` (CleanRL's current form). For
        discrete actions ``logp`` is ``-entropy``, the expectation of ``log pi`` over the
        policy (CleanRL ``sac_atari.py`` takes the same expectation, then also averages over
        the actions: a constant ``1/n`` that Adam removes)."""
        return jnp.mean(-jnp.exp(log_alpha) * (logp + self.target_entropy(hp)))

    def actor_scalar_names(self) -> tuple[str, ...]:
        return ("actor_loss", "actor_penalty", "actor_grad_norm", "alpha", "alpha_loss",
                "entropy")  # fmt: skip

    def _actor_phase(self, carry: dict, batch: rb.NStepBatch, key: Array):
        hp = carry["hp"]
        critic_params = jax.lax.stop_gradient(carry["critic"].params)
        tx_alpha = self._alpha_tx(hp)

        def one(c, k):
            k_actor, k_alpha = jax.random.split(k)
            alpha = self.alpha(c["log_alpha"], hp)
            actor, aux = self._actor_step(c["actor"], critic_params, batch.obs, alpha, hp, k_actor)
            c = {**c, "actor": actor}
            # CleanRL's temperature step: log pi of a fresh sample of the updated actor.
            logp = self.expected_logp(actor.params, batch.obs, k_alpha)
            a_loss = self.alpha_loss(c["log_alpha"], logp, hp)
            if self.cfg.agent.autotune:
                grad = jax.grad(self.alpha_loss)(c["log_alpha"], logp, hp)
                upd, alpha_opt = tx_alpha.update(grad, c["alpha_opt"], c["log_alpha"])
                c = {**c, "log_alpha": optax.apply_updates(c["log_alpha"], upd),
                     "alpha_opt": alpha_opt}  # fmt: skip
            return c, {"actor_loss": aux["actor_loss"], "actor_penalty": aux["actor_penalty"],
                       "actor_grad_norm": aux["grad_norm"], "alpha": alpha,
                       "alpha_loss": a_loss, "entropy": -jnp.mean(logp)}  # fmt: skip

        keys = jax.random.split(key, self.cfg.agent.policy_frequency)
        carry, aux = jax.lax.scan(one, carry, keys)
        return carry, jax.tree.map(jnp.mean, aux)

    def _target_phase(self, carry: dict, count: Array) -> dict:
        hp = carry["hp"]
        tau = hp["agent"]["tau"]
        due = count % self.cfg.agent.target_network_frequency == 0
        tau = jnp.where(due, tau, 0.0)
        target = jax.tree.map(
            lambda t, p: tau * p + (1.0 - tau) * t, carry["critic_target"], carry["critic"].params
        )
        target = self.after_target_update("critic", target, carry["critic"], hp, due)
        return {**carry, "critic_target": target}

