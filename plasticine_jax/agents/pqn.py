"""PQN (Gallici et al. 2024, "Simplifying Deep Temporal Difference Learning"), as purejaxql.

No replay buffer and no target network: a LayerNorm Q-network (``agent.network.norm:
layernorm`` by default) acts epsilon-greedily in many envs for ``num_steps`` steps, then
learns from that rollout as PPO does, ``update_epochs`` passes of ``num_minibatches``
minibatches, on the loss ``0.5 (Q(s, a) - G^lambda)^2``.

The targets are Q(lambda) returns computed backwards over the rollout, with the Q-values
the acting network gave (purejaxql stores them in the rollout):
``G_t = r_t + gamma (1 - term_t) [lambda G_{t+1} + (1 - lambda) max_a Q(s_{t+1}, a)]``,
with ``G_T`` bootstrapping from ``max_a Q(s_T, a)`` of the state after the rollout. These are
``agents.returns.lambda_returns`` with values ``max_a Q``. purejaxql ends the lambda trace and
stops bootstrapping at every ``done`` (termination or truncation alike); here a time-limit
truncation ends the trace but bootstraps from the final observation's ``max_a Q``.

Schedules (purejaxql): epsilon decays linearly from ``eps_start`` to ``eps_end`` over the
first ``exploration_fraction`` of the updates (constant within an update); the learning rate
(with ``anneal_lr``) decays linearly to 0 over all gradient steps (purejaxql: to 1e-20).
RAdam (``optimizer: radam``) behind a global-norm clip (``grad_clip``; rejax clips
``elementwise``). Rewards are multiplied by ``reward_scale`` (purejaxql ``REW_SCALE``, 0.1
for CartPole; 1 in its MinAtar config). Not reproduced: purejaxql's MinAtar network divides
observations by 255 (0/1 grids there); its He-normal initialisation (ours: the torsos'
orthogonal initialisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.agents.common import (
    Agent,
    epsilon_greedy_choice,
    eval_key,
    gradient_clip,
    linear_schedule,
    minibatch_epochs,
    probe_index,
)
from plasticine_jax.agents.returns import lambda_returns
from plasticine_jax.config.schema import ExperimentConfig
from plasticine_jax.envs.core import Environment
from plasticine_jax.methods import compose
from plasticine_jax.methods.base import LearnerState, Method, ModelContext
from plasticine_jax.networks.heads import critic_width
from plasticine_jax.networks.qnet import QNetwork

Array = jax.Array
HP = dict[str, Any]


class PQNState(NamedTuple):
    """Everything one member carries between updates."""

    learner: LearnerState
    env_state: Any
    obs: Array
    key: Array
    hp: HP


class PQN(Agent):
    """PQN: see the module docstring."""

    name = "pqn"
    networks = ("q",)
    loss_keys = ("td_loss", "penalty", "grad_norm")
    unsupported_methods = {"hl_gauss": "PQN regresses scalar Q(lambda) targets"}

    def __init__(
        self,
        cfg: ExperimentConfig,
        env: Environment,
        methods: Sequence[Method] = (),
        eval_env: Environment | None = None,
    ):
        super().__init__(cfg, env, methods, eval_env)
        if self.continuous:
            raise ValueError(
                f"agent.name='pqn' needs discrete actions; {env.spec.name} has continuous ones"
            )
        if critic_width(self.spec) > 1:
            raise ValueError("pqn has no categorical value head: hl_gauss does not apply")
        self.num_actions = env.spec.action_space.n
        self.network = QNetwork(self.spec, self.num_actions)
        self.batch_size = self.steps_per_update
        self.ctx = ModelContext(
            apply=self.network.apply, init=self.init_params, spec=self.spec,
            parts=self.network_parts(),
        )  # fmt: skip

    def act_greedy(self, params: Any, obs: Array, hp: HP) -> Array:
        return jnp.argmax(self.network.apply(params, obs).q, axis=-1)

    def optimizer(self, hp: HP) -> optax.GradientTransformationExtraArgs:
        a, c = hp["agent"], self.cfg.agent
        total = self.num_updates * c.update_epochs * c.num_minibatches
        if c.anneal_lr:

            def lr(count):
                return a["lr"] * (1.0 - count / total)

        else:
            lr = a["lr"]
        if any(m.needs_element_counts for m in self.methods):
            if c.optimizer != "adam":
                raise ValueError(
                    "a method that restarts Adam per entry (continual_backprop, redo with "
                    "zero_moments) needs agent.optimizer=adam for pqn"
                )
            base = self.adam()
        else:
            base = optax.radam if c.optimizer == "radam" else optax.adam
        tx = optax.chain(
            gradient_clip(c.grad_clip, a["max_grad_norm"]),
            optax.inject_hyperparams(base)(learning_rate=lr, eps=a["adam_eps"]),
        )
        return compose.wrap_optimizer(tx, self.methods, hp["methods"])

    def init(self, key: Array, hp: HP) -> PQNState:
        k_params, k_env, k_methods, k_run = jax.random.split(key, 4)
        learner = self.fresh_learner(k_params, k_methods, hp)
        obs, env_state = self.env.reset(k_env)
        return PQNState(learner, env_state, obs, k_run, hp)

    def epsilon(self, hp: HP, update_step: Array) -> Array:
        a = hp["agent"]
        duration = a["exploration_fraction"] * self.num_updates
        return linear_schedule(a["eps_start"], a["eps_end"], duration, update_step)

    def _rollout(self, state: PQNState, eps: Array):
        params, hp = state.learner.params, state.hp

        def step(carry, _):
            env_state, obs, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            q = self.network.apply(params, obs).q
            action = epsilon_greedy_choice(k_act, jnp.argmax(q, -1), self.num_actions, eps)
            next_obs, env_state, reward, term, trunc, info = self.env.step(k_env, env_state, action)
            q_final = self.network.apply(params, info.final_obs).q.max(-1)
            row = {
                "obs": obs, "action": action, "q_max": q.max(-1), "q_final": q_final,
                "reward": reward * hp["agent"]["reward_scale"], "terminated": term,
                "truncated": trunc,
                "valid": (
                    None if info.action_ignored is None else (~info.action_ignored)
                ),
                "episode_return": info.episode_return, "episode_length": info.episode_length,
                "task_id": info.task_id, "task_switched": info.task_switched,
                "episode_metrics": self.env.episode_metrics(info),
            }  # fmt: skip
            return (env_state, next_obs, key), row

        (env_state, obs, key), traj = jax.lax.scan(
            step, (state.env_state, state.obs, state.key), None, self.cfg.agent.num_steps
        )
        return state._replace(env_state=env_state, obs=obs, key=key), traj

    def targets(self, traj: dict, last_q_max: Array, hp: HP) -> Array:
        """Q(lambda) returns ``[T, N]`` of a rollout (module docstring)."""
        a = hp["agent"]
        term = traj["terminated"].astype(jnp.float32)
        cut = jnp.maximum(term, traj["truncated"].astype(jnp.float32))
        v_next = jnp.concatenate([traj["q_max"][1:], last_q_max[None]], axis=0)
        v_tp1 = jnp.where(traj["truncated"], traj["q_final"], v_next)
        ret = jax.vmap(lambda_returns, in_axes=(1, 1, 1, 1, 1, None), out_axes=1)
        return ret(traj["reward"], a["gamma"] * (1.0 - term), traj["q_max"], v_tp1, cut,
                   a["q_lambda"])

    def loss(self, params: Any, batch: dict, hp: HP, anchor: Any):
        w = batch.get("valid")
        mean = jnp.mean if w is None else (
            lambda x: jnp.sum(w * x) / jnp.maximum(jnp.sum(w), 1.0)
        )  # fmt: skip
        q = self.network.apply(params, batch["obs"]).q
        chosen = jnp.take_along_axis(q, batch["action"][:, None], axis=-1)[:, 0]
        td_loss = 0.5 * mean((chosen - batch["target"]) ** 2)
        penalty = compose.total_penalty(
            self.methods, params, anchor, hp["methods"], self.ctx.parts
        )
        aux = {"td_loss": td_loss, "penalty": penalty, "q_mean": mean(chosen)}
        return td_loss + penalty, aux

    def update(self, state: PQNState, update_step: Array) -> tuple[PQNState, dict[str, Array]]:
        hp, c = state.hp, self.cfg.agent
        eps = self.epsilon(hp, update_step)
        state, traj = self._rollout(state, eps)
        last_q = self.network.apply(state.learner.params, state.obs).q.max(-1)
        target = jax.lax.stop_gradient(self.targets(traj, last_q, hp))
        flat = lambda x: x.reshape((self.batch_size, *x.shape[2:]))  # noqa: E731
        batch = {"obs": flat(traj["obs"]), "action": flat(traj["action"]),
                 "target": flat(target)}
        if traj["valid"] is not None:
            batch["valid"] = flat(traj["valid"]).astype(jnp.float32)
        key, k_learn, k_iv = jax.random.split(state.key, 3)
        params_before = state.learner.params
        learner, aux = minibatch_epochs(
            state.learner, batch, self.optimizer(hp),
            lambda p, mb: self.loss(p, mb, hp, state.learner.init_params), k_learn,
            c.update_epochs, c.num_minibatches, hp["agent"]["max_grad_norm"],
        )  # fmt: skip
        probe_obs = batch["obs"][probe_index(self.cfg.metrics.probe_size, self.batch_size)]
        events = self.events(traj["task_id"], traj["task_switched"], update_step)
        learner = compose.apply_interventions(
            self.methods, learner, probe_obs, k_iv, hp["methods"], events, self.ctx
        )
        state = state._replace(learner=learner, key=key)
        out = {
            **aux,
            "epsilon": eps,
            **self.episode_scalars(
                traj["episode_return"], traj["episode_length"], traj["episode_metrics"],
                events,
            ),
        }  # fmt: skip
        out.update(self.plasticity(learner.params, params_before, probe_obs, update_step))
        out.update(self.evaluation(learner.params, hp, eval_key(key, update_step), update_step))
        return state, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), out)
