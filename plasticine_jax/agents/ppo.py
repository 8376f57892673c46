"""PPO (Schulman et al. 2017) as in CleanRL / Plasticine, with methods and in-step metrics.

One member (a seed with its hyperparameters) is a ``TrainState``; the runner vmaps
``update`` over members and scans it over updates. The update counter is passed in
*unbatched*, so ``lax.cond`` on "is this a metrics update?" stays a real branch under
``vmap`` and metrics cost nothing on the other updates.

Loss (CleanRL ``ppo.py``): clipped surrogate ``max(-A r, -A clip(r, 1±eps))``, optional
value clipping ``0.5 max((v-G)^2, (v_old + clip(v - v_old, ±eps) - G)^2)``, entropy bonus,
per-minibatch advantage normalisation, global grad-norm clipping, Adam (eps 1e-5) with
optional linear learning-rate annealing. Time-limit truncations bootstrap from the value of
the final observation (CleanRL treats them as terminations; we do not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.agents import distributions as D
from plasticine_jax.agents.common import (
    Agent,
    eval_key,
    gradient_clip,
    minibatch_epochs,
    probe_index,
)
from plasticine_jax.agents.returns import truncated_gae
from plasticine_jax.config.schema import ExperimentConfig
from plasticine_jax.envs.core import Environment
from plasticine_jax.methods import compose
from plasticine_jax.methods import hl_gauss as hlg
from plasticine_jax.methods.base import LearnerState, Method, ModelContext
from plasticine_jax.networks import ActorCritic
from plasticine_jax.networks.heads import critic_width

Array = jax.Array
HP = dict[str, Any]


class Transition(NamedTuple):
    """One rollout step for all envs of a member; every field ``[N, ...]``."""

    obs: Array
    action: Array
    log_prob: Array
    value: Array
    reward: Array
    terminated: Array
    truncated: Array
    final_value: Array
    episode_return: Array
    episode_length: Array
    task_id: Array
    task_switched: Array
    episode_metrics: dict[str, Array]
    valid: Array | None  # False where the env ignored the action; None: always valid


class TrainState(NamedTuple):
    """Everything one member carries between updates."""

    learner: LearnerState
    env_state: Any
    obs: Array
    key: Array
    hp: HP


class PPO(Agent):
    """Builds the pure functions of PPO for one static configuration.

    Args:
      cfg: the experiment config (only its static fields shape the program).
      env: the batched environment.
      methods: the mitigation methods, in application order.
      eval_env: a separate copy of the env for greedy evaluation (``eval.every``).
    """

    name = "ppo"
    networks = ("actor", "critic")
    # The scalars of ``update`` that must stay finite: the runner freezes a member whose
    # loss terms or trained parameters turn non-finite (``runner.program.guard_update``).
    loss_keys = ("pg_loss", "v_loss", "entropy", "penalty", "approx_kl", "grad_norm")

    def __init__(
        self,
        cfg: ExperimentConfig,
        env: Environment,
        methods: Sequence[Method] = (),
        eval_env: Environment | None = None,
    ):
        super().__init__(cfg, env, methods, eval_env)
        self.network = ActorCritic(self.spec, env.spec.action_space)
        # A categorical critic (HL-Gauss): values from bin logits, cross-entropy value loss.
        width = critic_width(self.spec)
        self.value_bins = width if width > 1 else 0  # 0: a scalar critic
        if self.value_bins and not any(m.name == hlg.NAME for m in self.methods):
            raise ValueError(
                f"the network has {self.value_bins} value bins but no {hlg.NAME!r} method "
                "holds their support (v_min, v_max); add the method or drop the option"
            )
        self.batch_size = self.steps_per_update
        self.minibatch_size = self.batch_size // cfg.agent.num_minibatches
        self.ctx = ModelContext(
            apply=self.network.apply, init=self.init_params, spec=self.spec,
            parts=self.network_parts(),
        )  # fmt: skip

    def network_parts(self) -> dict[str, tuple[str, ...]]:
        """The actor owns its torso, ``actor_head`` and ``log_std``; the critic its torso and
        ``critic_head``; a shared torso belongs to both."""
        own = ("shared",) if self.spec.shared_torso else None
        return {
            "actor": (*(own or ("actor",)), "actor_head", "log_std"),
            "critic": (*(own or ("critic",)), "critic_head"),
        }

    # ------------------------------------------------------------------ construction

    def optimizer(self, hp: HP) -> optax.GradientTransformationExtraArgs:
        """Adam behind the gradient clip (``grad_clip``: the global norm by default), wrapped
        by the methods. Built inside the trace.

        Adam keeps a step count per entry (``adam_gnt``, same updates) when a method's
        intervention restarts Adam on the entries it rewrites (``needs_element_counts``).
        """
        a = hp["agent"]
        per_update = self.cfg.agent.update_epochs * self.cfg.agent.num_minibatches
        if self.cfg.agent.anneal_lr:

            def lr(count):
                return a["lr"] * (1.0 - (count // per_update) / self.num_updates)

        else:
            lr = a["lr"]
        adam = self.adam()
        base = optax.chain(
            gradient_clip(self.cfg.agent.grad_clip, a["max_grad_norm"]),
            optax.inject_hyperparams(adam)(learning_rate=lr, eps=a["adam_eps"]),
        )
        return compose.wrap_optimizer(base, self.methods, hp["methods"])

    def init(self, key: Array, hp: HP) -> TrainState:
        """A fresh member: parameters, optimizer and method states, environments."""
        k_params, k_env, k_methods, k_run = jax.random.split(key, 4)
        learner = self.fresh_learner(k_params, k_methods, hp)
        obs, env_state = self.env.reset(k_env)
        return TrainState(learner, env_state, obs, k_run, hp)

    # ------------------------------------------------------------------ acting

    def _value(self, out, hp: HP) -> Array:
        """The critic's value ``[B]``: the scalar head, or the mean of the HL-Gauss bins."""
        if not self.value_bins:
            return out.value
        h = hp["methods"][hlg.NAME]
        return hlg.hl_gauss_value(out.value_logits, h["v_min"], h["v_max"])

    def _policy(self, out, key: Array) -> tuple[Array, Array]:
        if self.continuous:
            action = D.gaussian_sample(key, out.policy, out.log_std)
            return action, D.gaussian_log_prob(out.policy, out.log_std, action)
        action = D.categorical_sample(key, out.policy)
        return action, D.categorical_log_prob(out.policy, action)

    def act_greedy(self, params: Any, obs: Array, hp: HP) -> Array:
        """The policy's mode: the most likely action, or the Gaussian's mean (clipped)."""
        out = self.network.apply(params, obs)
        if self.continuous:
            return self.env_action(out.policy)
        return jnp.argmax(out.policy, axis=-1)

    def _rollout(self, state: TrainState) -> tuple[TrainState, Transition]:
        params, hp = state.learner.params, state.hp

        def step(carry, _):
            env_state, obs, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            out = self.network.apply(params, obs)
            action, log_prob = self._policy(out, k_act)
            next_obs, env_state, reward, term, trunc, info = self.env.step(
                k_env, env_state, self.env_action(action)
            )
            final_value = self._value(self.network.apply(params, info.final_obs), hp)
            tr = Transition(
                obs, action, log_prob, self._value(out, hp), reward, term, trunc,
                final_value, info.episode_return, info.episode_length,
                info.task_id, info.task_switched, self.env.episode_metrics(info),
                None if info.action_ignored is None else ~info.action_ignored,
            )  # fmt: skip
            return (env_state, next_obs, key), tr

        (env_state, obs, key), traj = jax.lax.scan(
            step, (state.env_state, state.obs, state.key), None, self.cfg.agent.num_steps
        )
        return state._replace(env_state=env_state, obs=obs, key=key), traj

    # ------------------------------------------------------------------ learning

    def _advantages(self, traj: Transition, last_value: Array, hp: HP) -> tuple[Array, Array]:
        a = hp["agent"]
        term = traj.terminated.astype(jnp.float32)
        trunc = traj.truncated.astype(jnp.float32)
        v_next = jnp.concatenate([traj.value[1:], last_value[None]], axis=0)
        # After a truncation the next stored value belongs to a fresh episode: bootstrap
        # from the final observation's value instead.
        v_tp1 = jnp.where(traj.truncated, traj.final_value, v_next)
        discount_t = a["gamma"] * (1.0 - term)
        cut_t = jnp.maximum(term, trunc)
        gae = jax.vmap(truncated_gae, in_axes=(1, 1, 1, 1, 1, None), out_axes=1)
        adv = gae(traj.reward, discount_t, traj.value, v_tp1, cut_t, a["gae_lambda"])
        return adv, adv + traj.value

    def loss(self, params: Any, batch: Mapping[str, Array], hp: HP, anchor: Any):
        """PPO loss on a minibatch ``[B]`` plus the methods' penalties.

        ``batch`` holds ``obs``, ``action``, ``log_prob``, ``value``, ``advantage``,
        ``return`` and, for envs that mark ignored actions, ``valid`` (0/1): every mean,
        advantage normalisation included, then runs over the valid rows only.

        Returns:
          ``(loss, aux)`` with aux the scalar loss terms.
        """
        a, c = hp["agent"], self.cfg.agent
        mean = _masked_mean(batch.get("valid"))
        out = self.network.apply(params, batch["obs"])
        if self.continuous:
            new_logp = D.gaussian_log_prob(out.policy, out.log_std, batch["action"])
            entropy = mean(D.gaussian_entropy(out.policy, out.log_std))
        else:
            new_logp = D.categorical_log_prob(out.policy, batch["action"])
            entropy = mean(D.categorical_entropy(out.policy))
        logratio = new_logp - batch["log_prob"]
        ratio = jnp.exp(logratio)
        adv = batch["advantage"]
        if c.norm_adv:
            adv_mean = mean(adv)
            adv = (adv - adv_mean) / (jnp.sqrt(mean((adv - adv_mean) ** 2)) + 1e-8)
        eps = a["clip_eps"]
        pg_loss = mean(jnp.maximum(-adv * ratio, -adv * jnp.clip(ratio, 1 - eps, 1 + eps)))
        value = self._value(out, hp)
        v_err = (value - batch["return"]) ** 2
        if self.value_bins:
            # HL-Gauss: cross-entropy to the Gaussian histogram of the return; no clipping.
            hl = hp["methods"][hlg.NAME]
            v_loss = mean(hlg.hl_gauss_cross_entropy(out.value_logits, batch["return"], hl))
            # Returns outside the support are clipped to its edge bins: never silently.
            outside = (batch["return"] < hl["v_min"]) | (batch["return"] > hl["v_max"])
            clipped = {"hl_gauss/return_outside_support": mean(outside.astype(jnp.float32))}
        elif c.clip_vloss:
            clipped = {}
            v_clipped = batch["value"] + jnp.clip(value - batch["value"], -eps, eps)
            v_loss = 0.5 * mean(jnp.maximum(v_err, (v_clipped - batch["return"]) ** 2))
        else:
            clipped = {}
            v_loss = 0.5 * mean(v_err)
        penalty = compose.total_penalty(
            self.methods, params, anchor, hp["methods"], self.ctx.parts
        )
        loss = pg_loss - a["ent_coef"] * entropy + a["vf_coef"] * v_loss + penalty
        aux = {
            "pg_loss": pg_loss,
            "v_loss": v_loss,
            "entropy": entropy,
            "penalty": penalty,
            "approx_kl": mean((ratio - 1) - logratio),
            "clipfrac": mean((jnp.abs(ratio - 1) > eps).astype(jnp.float32)),
            **clipped,
        }
        return loss, aux

    def _learn(self, learner: LearnerState, batch: dict, hp: HP, key: Array):
        c = self.cfg.agent
        return minibatch_epochs(
            learner, batch, self.optimizer(hp), lambda p, mb: self.loss(p, mb, hp,
            learner.init_params), key, c.update_epochs, c.num_minibatches,
            hp["agent"]["max_grad_norm"],
        )  # fmt: skip

    def update(self, state: TrainState, update_step: Array) -> tuple[TrainState, dict[str, Array]]:
        """One PPO update: rollout, GAE, epochs of minibatch SGD, interventions, metrics.

        Args:
          state: one member.
          update_step: int32 scalar, index of this update (0-based), *unbatched*.

        Returns:
          The new state and a flat dict of float32 scalars.
        """
        hp = state.hp
        state, traj = self._rollout(state)
        last_value = self._value(self.network.apply(state.learner.params, state.obs), hp)
        adv, ret = self._advantages(traj, last_value, hp)
        flat = lambda x: x.reshape((self.batch_size, *x.shape[2:]))  # noqa: E731
        batch = {
            "obs": flat(traj.obs),
            "action": flat(traj.action),
            "log_prob": flat(traj.log_prob),
            "value": flat(traj.value),
            "advantage": flat(adv),
            "return": flat(ret),
        }
        if traj.valid is not None:  # steps whose action the env ignored drop out of the loss
            batch["valid"] = flat(traj.valid).astype(jnp.float32)
        key, k_learn, k_iv = jax.random.split(state.key, 3)
        params_before = state.learner.params
        learner, aux = self._learn(state.learner, batch, hp, k_learn)

        probe_obs = batch["obs"][probe_index(self.cfg.metrics.probe_size, self.batch_size)]
        events = self.events(traj.task_id, traj.task_switched, update_step)
        learner = compose.apply_interventions(
            self.methods, learner, probe_obs, k_iv, hp["methods"], events, self.ctx
        )
        state = state._replace(learner=learner, key=key)
        out = {
            **aux,
            **self.episode_scalars(
                traj.episode_return, traj.episode_length, traj.episode_metrics, events
            ),
        }
        out.update(self.plasticity(learner.params, params_before, probe_obs, update_step))
        out.update(self.evaluation(learner.params, hp, eval_key(key, update_step), update_step))
        return state, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), out)

    def extra_metrics(self, out) -> dict[str, Array]:
        if self.continuous:
            entropy = D.gaussian_entropy(out.policy, out.log_std).mean()
        else:
            entropy = D.categorical_entropy(out.policy).mean()
        return {"policy_entropy": entropy}


def _masked_mean(weights: Array | None):
    """``jnp.mean``, or the mean over the entries where ``weights`` (0/1, ``[B]``) is 1."""
    if weights is None:
        return jnp.mean

    def mean(x: Array) -> Array:
        return jnp.sum(weights * x) / jnp.maximum(jnp.sum(weights), 1.0)

    return mean
