"""DQN (Mnih et al. 2015) and C51 (Bellemare et al. 2017) from an on-device replay buffer.

One member's update (``agent.num_steps`` steps of every env, then ``G = replay_ratio *
num_steps * num_envs`` gradient steps):

1. act epsilon-greedily with the online network; epsilon decays linearly from ``eps_start``
   to ``eps_end`` over ``exploration_fraction * run.total_timesteps`` env steps per member,
   counted from the start of the run, prefill included (CleanRL ``linear_schedule``);
2. store the rollout in the member's buffer (``agents.replay``; each observation once);
3. ``G`` gradient steps on uniformly sampled n-step batches. The target network moves
   whenever the env-step count crosses a multiple of ``target_every`` (each gradient step
   stands for ``num_steps * num_envs / G`` env steps): ``theta' <- tau theta + (1 - tau)
   theta'`` (``tau = 1``: CleanRL's hard copy), then the methods' ``after_target_update``
   hooks (neuroplastic expansion's target masking);
4. interventions, with the target network kept consistent (below), metrics.

The prefill (``learning_starts`` random-action env steps per member, CleanRL's
``learning_starts``) runs inside ``init``: a phase of its own, not a ``cond`` in every update.
The logged ``env_steps`` include it.

Losses on a batch of n-step targets ``y = R^(n) + gamma^m (1 - d) Q'(s_{t+m}, a*)``
(``a* = argmax Q'``, or ``argmax Q`` of the online network with ``double``; van Hasselt et
al. 2016): DQN ``mse`` (CleanRL: ``mean (y - Q)^2``) or ``huber`` (Dopamine:
``optax.huber_loss``, ``0.5 x^2`` inside ``huber_delta``). C51: cross-entropy between the
categorical projection of ``r + gamma^m (1 - d) z`` under ``p'(s_{t+m}, a*)`` onto the
support and the online distribution at ``(s, a)``; CleanRL takes ``log`` of softmax
probabilities clamped to ``[1e-5, 1 - 1e-5]``, we take ``log_softmax`` of the logits (the
same up to the clamp). With the ``hl_gauss`` method (either agent) the network has
``num_bins`` logits per action over HL-Gauss's support and the loss is HL-Gauss's
cross-entropy to the scalar target ``y``, whose Q-values are the bins' means.

Targets at episode ends: a termination stops bootstrapping; a time-limit truncation never
counts as a termination (each observation is stored once, so the target of the truncated
step itself is dropped and earlier steps bootstrap from the last stored observation).

Target networks and interventions: after the methods' interventions, every parameter entry
an intervention changed is copied into the target network (a reset, ReDo's recycled units,
shrink & perturb, an injection: the target receives the same fresh weights, as Nikishin et
al. 2022 reset both); entries no intervention touched keep their target values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.agents import replay as rb
from plasticine_jax.agents.common import (
    ReplayAgent,
    crossed,
    epsilon_greedy_choice,
    eval_key,
    gradient_clip,
    linear_schedule,
    optimizer_step,
)
from plasticine_jax.agents.returns import categorical_projection
from plasticine_jax.config.load import gradient_steps
from plasticine_jax.config.schema import ExperimentConfig
from plasticine_jax.envs.core import Environment
from plasticine_jax.methods import compose
from plasticine_jax.methods import hl_gauss as hlg
from plasticine_jax.methods.base import LearnerState, Method, ModelContext
from plasticine_jax.networks.heads import critic_width
from plasticine_jax.networks.qnet import QNetwork, q_values

Array = jax.Array
HP = dict[str, Any]


class DQNState(NamedTuple):
    """Everything one member carries between updates."""

    learner: LearnerState
    target: Any
    buffer: rb.ReplayBuffer
    env_state: Any
    obs: Array
    key: Array
    env_steps: Array  # int32: env steps of this member so far, prefill included
    hp: HP


class DQN(ReplayAgent):
    """DQN with double-Q, dueling and n-step options; see the module docstring."""

    name = "dqn"
    networks = ("q",)
    loss_keys = ("td_loss", "penalty", "grad_norm")
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
                f"agent.name={cfg.agent.name!r} needs discrete actions; {env.spec.name} has "
                "continuous ones (use ppo, sac or td3)"
            )
        self.num_actions = env.spec.action_space.n
        bins = critic_width(self.spec)
        self.hl_gauss = bins > 1
        if self.hl_gauss and not any(m.name == hlg.NAME for m in self.methods):
            raise ValueError(f"{bins} value bins without the {hlg.NAME!r} method")
        self.atoms = bins if self.hl_gauss else self._atoms()
        self.network = QNetwork(self.spec, self.num_actions, self.atoms, cfg.agent.dueling)
        self.grad_steps = gradient_steps(cfg)
        self.rows = cfg.agent.buffer_size // env.spec.num_envs
        self.storage_dtype = rb.obs_storage_dtype(
            jnp.float32, 0, 255, integer_valued=integer_observations(cfg)
        )
        self.ctx = ModelContext(
            apply=self.network.apply, init=self.init_params, spec=self.spec,
            parts=self.network_parts(),
        )  # fmt: skip

    def _atoms(self) -> int:
        return 1

    # ------------------------------------------------------------------ values

    def support(self, hp: HP) -> Array | None:
        """The atoms' values ``[Z]`` (HL-Gauss: its bin centres), or None for scalar Q."""
        if self.hl_gauss:
            h = hp["methods"][hlg.NAME]
            edges = hlg.bin_edges(h["v_min"], h["v_max"], self.atoms)
            return (edges[:-1] + edges[1:]) / 2
        return None

    def q(self, params: Any, obs: Array, hp: HP) -> tuple[Array, Any]:
        out = self.network.apply(params, obs)
        return q_values(out.q, self.support(hp)), out

    def act_greedy(self, params: Any, obs: Array, hp: HP) -> Array:
        return jnp.argmax(self.q(params, obs, hp)[0], axis=-1)

    # ------------------------------------------------------------------ construction

    def optimizer(self, hp: HP) -> optax.GradientTransformationExtraArgs:
        """Adam (eps ``adam_eps``), behind the gradient clip (``grad_clip``) when
        ``clip_grad_norm``, wrapped by the methods."""
        a = hp["agent"]
        adam = self.adam()
        opt = optax.inject_hyperparams(adam)(learning_rate=a["lr"], eps=a["adam_eps"])
        if self.cfg.agent.clip_grad_norm:
            opt = optax.chain(gradient_clip(self.cfg.agent.grad_clip, a["max_grad_norm"]), opt)
        return compose.wrap_optimizer(opt, self.methods, hp["methods"])

    def _max_grad_norm(self, hp: HP) -> Array:
        if self.cfg.agent.clip_grad_norm:
            return hp["agent"]["max_grad_norm"]
        return jnp.asarray(jnp.inf, jnp.float32)

    def epsilon(self, hp: HP, env_steps: Array) -> Array:
        a = hp["agent"]
        duration = a["exploration_fraction"] * self.cfg.run.total_timesteps
        return linear_schedule(a["eps_start"], a["eps_end"], duration, env_steps)

    def init(self, key: Array, hp: HP) -> DQNState:
        """A fresh member with its buffer prefilled by ``learning_starts`` random steps."""
        k_params, k_env, k_methods, k_fill, k_run = jax.random.split(key, 5)
        learner = self.fresh_learner(k_params, k_methods, hp)
        params = learner.params
        obs, env_state = self.env.reset(k_env)
        state = DQNState(
            learner, params, self.new_buffer(), env_state, obs, k_run,
            jnp.zeros((), jnp.int32), hp,
        )  # fmt: skip
        return self.prefill(state, k_fill)

    # ------------------------------------------------------------------ acting

    def explore(self, state: DQNState, obs: Array, key: Array, random: bool):
        """Epsilon-greedy actions of the online network (uniformly random in the prefill)."""
        hp, n = state.hp, self.env.spec.num_envs
        eps = 1.0 if random else self.epsilon(hp, state.env_steps)
        greedy = (
            jnp.zeros((n,), jnp.int32) if random
            else self.act_greedy(state.learner.params, obs, hp).astype(jnp.int32)
        )  # fmt: skip
        action = epsilon_greedy_choice(key, greedy, self.num_actions, eps)
        return action, {"epsilon": jnp.asarray(eps, jnp.float32)}

    # ------------------------------------------------------------------ learning

    def loss(self, params: Any, target: Any, batch: rb.NStepBatch, hp: HP, anchor: Any):
        """The TD loss on an n-step batch plus the methods' penalties: ``(loss, aux)``."""
        a, c = hp["agent"], self.cfg.agent
        w = batch.weight
        mean = lambda x: jnp.sum(w * x) / jnp.maximum(jnp.sum(w), 1.0)  # noqa: E731
        out = self.network.apply(params, batch.obs)
        support = self.support(hp)
        q_next_t, out_next_t = self.q(target, batch.next_obs, hp)
        if c.double:
            a_star = jnp.argmax(self.q(params, batch.next_obs, hp)[0], axis=-1)
        else:
            a_star = jnp.argmax(q_next_t, axis=-1)
        take = lambda x, i: x[jnp.arange(x.shape[0]), i]  # noqa: E731  (row b, action i_b)
        chosen = take(out.q, batch.action.astype(jnp.int32))
        if support is None and self.atoms == 1:  # scalar Q
            y = jax.lax.stop_gradient(batch.reward + batch.discount * take(q_next_t, a_star))
            td = chosen - y
            per = optax.huber_loss(td, delta=a["huber_delta"]) if c.loss == "huber" else td**2
            q_mean = mean(chosen)
        elif self.hl_gauss:
            y = jax.lax.stop_gradient(batch.reward + batch.discount * take(q_next_t, a_star))
            per = hlg.hl_gauss_cross_entropy(chosen, y, hp["methods"][hlg.NAME])
            q_mean = mean((jax.nn.softmax(chosen, -1) * support).sum(-1))
        else:  # C51
            z = self.atoms_support(hp)
            p_next = jax.nn.softmax(take(out_next_t.q, a_star), axis=-1)
            z_t = batch.reward[:, None] + batch.discount[:, None] * z[None, :]
            m = jax.vmap(categorical_projection, in_axes=(0, 0, None))(z_t, p_next, z)
            m = jax.lax.stop_gradient(m)
            per = -jnp.sum(m * jax.nn.log_softmax(chosen, axis=-1), axis=-1)
            q_mean = mean((jax.nn.softmax(chosen, -1) * z).sum(-1))
        td_loss = mean(per)
        penalty = compose.total_penalty(
            self.methods, params, anchor, hp["methods"], self.ctx.parts
        )
        return td_loss + penalty, {"td_loss": td_loss, "penalty": penalty, "q_mean": q_mean}

    def atoms_support(self, hp: HP) -> Array:
        raise NotImplementedError  # C51 only

    def _learn(self, state: DQNState, env_steps_before: Array, key: Array):
        """``G`` gradient steps, each on a fresh sample, with the target updates whose
        env-step multiples fall in each step's share of the rollout."""
        hp, tx = state.hp, self.optimizer(state.hp)
        a, c = hp["agent"], self.cfg.agent
        per_update = self.steps_per_update

        def step(carry, g):
            learner, target, key, _ = carry
            key, k_sample, k_tx = jax.random.split(key, 3)
            batch = rb.sample(state.buffer, k_sample, c.batch_size, c.n_step, a["gamma"])
            learner, aux = optimizer_step(
                learner, tx,
                lambda p: self.loss(p, target, batch, hp, learner.init_params),
                k_tx, self._max_grad_norm(hp),
            )  # fmt: skip
            due = target_update_due(
                env_steps_before, g, per_update, self.grad_steps, a["target_every"]
            )
            tau = jnp.where(due, a["tau"], 0.0)
            target = jax.tree.map(
                lambda t, p: tau * p + (1.0 - tau) * t, target, learner.params
            )
            target = compose.after_target_update(
                self.methods, target, learner.opt_state, hp["methods"], due, self.ctx.parts
            )
            return (learner, target, key, batch.obs[: self.cfg.metrics.probe_size]), aux

        steps = jnp.arange(self.grad_steps, dtype=jnp.int32)
        probe = jnp.zeros((min(self.cfg.metrics.probe_size, c.batch_size),
                           *self.env.spec.obs_shape), jnp.float32)
        (learner, target, _, probe), aux = jax.lax.scan(
            step, (state.learner, state.target, key, probe), steps
        )
        # The probe: the first observations of the last gradient step's batch.
        return learner, target, jax.tree.map(jnp.mean, aux), probe

    def update(self, state: DQNState, update_step: Array) -> tuple[DQNState, dict[str, Array]]:
        """One update: rollout, store, ``G`` gradient steps, interventions, metrics."""
        hp = state.hp
        key, k_roll, k_learn, k_iv = jax.random.split(state.key, 4)
        before = state.env_steps
        state, traj, extras = self.rollout(state, self.cfg.agent.num_steps, k_roll)
        state = state._replace(buffer=self.store(state.buffer, traj))
        params_before = state.learner.params
        learner, target, aux, probe_obs = self._learn(state, before, k_learn)
        events = self.events(traj["task_id"], traj["task_switched"], update_step)
        trained = learner.params
        learner = compose.apply_interventions(
            self.methods, learner, probe_obs, k_iv, hp["methods"], events, self.ctx
        )
        target = mirror_interventions(trained, learner.params, target)
        state = state._replace(learner=learner, target=target, key=key)
        out = {
            **aux,
            "epsilon": extras["epsilon"][-1],
            **self.episode_scalars(
                traj["episode_return"], traj["episode_length"], traj["episode_metrics"],
                events,
            ),
        }  # fmt: skip
        out.update(self.plasticity(learner.params, params_before, probe_obs, update_step))
        out.update(self.evaluation(learner.params, hp, eval_key(key, update_step), update_step))
        return state, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), out)


def target_update_due(
    env_steps_before: Array, g: Array, steps_per_update: int, grad_steps: int, every: Array
) -> Array:
    """Whether gradient step ``g`` (of ``grad_steps`` in an update of ``steps_per_update``
    env steps that began at ``env_steps_before``) moves the target network: step ``g``
    stands for the env steps ``(before + g S // G, before + (g + 1) S // G]``, and the
    target moves when a multiple of ``every`` lies in them (``common.crossed``). Over a run
    the target moves ``floor(env steps / every)`` times, whatever ``num_envs``, ``S``, ``G``."""
    lo = env_steps_before + (g * steps_per_update) // grad_steps
    hi = env_steps_before + ((g + 1) * steps_per_update) // grad_steps
    return crossed(lo, hi, every)


def integer_observations(cfg: ExperimentConfig) -> bool:
    """Whether the env's observations are integers in ``[0, 255]`` (stored as uint8, exactly):
    gymnax's MinAtar grids (0/1, also under the permutation and game-sequence scenarios) and
    envpool's discrete-action envs (Atari and Procgen pixels; the value-based agents refuse
    continuous actions), unless observation normalisation is on."""
    e = cfg.env
    if e.normalize.obs:
        return False
    return (e.backend == "gymnax" and e.id.endswith("-MinAtar")) or e.backend == "envpool"


def mirror_interventions(trained: Any, intervened: Any, target: Any) -> Any:
    """The target network with every entry the interventions changed (``trained`` ->
    ``intervened``) copied from the online network; other entries keep their target value."""
    return jax.tree.map(
        lambda t, p, q: jnp.where(p != q, q, t), target, trained, intervened
    )


class C51(DQN):
    """C51: ``num_atoms`` atoms evenly spaced on ``[v_min, v_max]`` per action."""

    name = "c51"

    def _atoms(self) -> int:
        return self.cfg.agent.num_atoms

    def atoms_support(self, hp: HP) -> Array:
        a = hp["agent"]
        z = jnp.arange(self.atoms, dtype=jnp.float32) / (self.atoms - 1)
        return a["v_min"] + (a["v_max"] - a["v_min"]) * z

    def support(self, hp: HP) -> Array | None:
        if self.hl_gauss:
            return super().support(hp)
        return self.atoms_support(hp)
