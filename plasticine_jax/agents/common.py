"""What every agent shares: the member contract, events, episode statistics, metrics,
epsilon-greedy acting, schedules and greedy evaluation.

The contract (``Agent``): an agent is built once per compile group from the static config,
the batched environment and the methods; inside the compiled program it is a pair of pure
functions over *one* member, ``init(key, hp) -> state`` and ``update(state, update_index) ->
(state, scalars)``. The runner vmaps ``update`` over members and scans it over updates; it
reads nothing else of the agent than the attributes declared here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from plasticine_jax import metrics as pm
from plasticine_jax.config.load import num_updates, prefill_steps, steps_per_update
from plasticine_jax.config.schema import ExperimentConfig
from plasticine_jax.envs.core import ContinuousActions, Environment
from plasticine_jax.methods import compose
from plasticine_jax.methods.base import Events, LearnerState, Method
from plasticine_jax.networks.spec import NetworkSpec, spec_from_config

Array = jax.Array


class Agent:
    """The base of every agent: what the runner reads, and the shared machinery.

    Attributes the runner reads:
      networks: names of the networks the agent trains (``("actor", "critic")``, ``("q",)``);
        the keys of ``features`` in its network output, and the prefix of their metrics.
      num_updates: updates in the run.
      steps_per_update: env steps per member in one update (``num_envs * num_steps``).
      prefill_steps: env steps per member ``init`` takes before the first update (a replay
        agent's random-action prefill; 0 otherwise). Logged env steps include them.
      loss_keys: scalars of ``update`` that must stay finite (the divergence guard).

    Subclasses set ``self.network`` (a flax module whose output has ``features`` and
    ``activations``), and implement ``init``, ``update``, ``trained_params`` and
    ``act_greedy``.
    """

    name = "agent"
    networks: tuple[str, ...] = ()
    loss_keys: tuple[str, ...] = ()
    # Registered methods that cannot apply to this agent, with the reason (refused at config
    # time, and shown by ``plasticine-jax list``).
    unsupported_methods: dict[str, str] = {}
    # A state field the divergence guard leaves as the update wrote it (``guard_update``).
    unguarded: str | None = None

    def __init__(
        self,
        cfg: ExperimentConfig,
        env: Environment,
        methods: Sequence[Method] = (),
        eval_env: Environment | None = None,
    ):
        self.cfg = cfg
        self.env = env
        self.eval_env = eval_env
        self.methods = tuple(methods)
        self.spec: NetworkSpec = compose.edit_network(
            spec_from_config(cfg.agent.network), self.methods
        )
        self.continuous = isinstance(env.spec.action_space, ContinuousActions)
        self.num_updates = num_updates(cfg)
        self.steps_per_update = steps_per_update(cfg)
        self.prefill_steps = prefill_steps(cfg)
        self._dummy_obs = jnp.zeros((1, *env.spec.obs_shape), jnp.float32)

    # ------------------------------------------------------------------ contract

    def init(self, key: Array, hp: dict) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, state: Any, update_step: Array) -> tuple[Any, dict[str, Array]]:
        raise NotImplementedError  # pragma: no cover - abstract

    @staticmethod
    def trained_params(state: Any) -> Any:
        """The parameters this agent trains (checked for finiteness after every update)."""
        return state.learner.params

    def act_greedy(self, params: Any, obs: Array, hp: dict) -> Array:
        raise NotImplementedError  # pragma: no cover - abstract

    def init_params(self, key: Array) -> Any:
        return self.network.init(key, self._dummy_obs)

    def network_parts(self) -> dict[str, tuple[str, ...]]:
        """Network name -> the top-level parameter modules it owns (``ModelContext.parts``):
        a Q-network owns its torso ``q`` and heads; see PPO for actor and critic."""
        return {"q": ("q", "q_head", "value_head")}

    def optimizer(self, hp: dict) -> optax.GradientTransformation:  # pragma: no cover
        raise NotImplementedError

    def adam(self) -> Callable[..., optax.GradientTransformation]:
        """``optax.adam``, or ``adam_gnt`` (the same updates with a step count per entry) when
        a method's intervention restarts Adam on the entries it rewrites
        (``needs_element_counts``: continual backprop, ReDo with ``zero_moments``)."""
        from plasticine_jax.methods.adam_gnt import adam_gnt

        return adam_gnt if any(m.needs_element_counts for m in self.methods) else optax.adam

    def fresh_learner(self, k_params: Array, k_methods: Array, hp: dict) -> LearnerState:
        """A member's freshly initialised network with its optimizer and method states (and
        ``last_grads`` when a method reads them)."""
        params = self.init_params(k_params)
        opt_state = self.optimizer(hp).init(params)
        method_state = compose.init_method_states(self.methods, params, k_methods)
        last_grads = (
            jax.tree.map(jnp.zeros_like, params) if any(m.needs_grads for m in self.methods)
            else None
        )  # fmt: skip
        return LearnerState(params, opt_state, params, method_state, last_grads)

    # ------------------------------------------------------------------ acting

    def env_action(self, action: Array) -> Array:
        """Continuous actions clipped to the action space's bounds; discrete unchanged."""
        if self.continuous:
            low, high = self.env.spec.action_space.bounds()
            return jnp.clip(action, low, high)
        return action

    # ------------------------------------------------------------------ per update

    def events(
        self, task_id: Array, task_switched: Array, update_step: Array
    ) -> Events:
        """The schedules' view of this update, from its rollout's ``task_id`` ``[T, N]`` and
        ``task_switched`` ``[T, N]``."""
        num_steps = self.cfg.agent.num_steps
        steps_per_task = self.env.spec.steps_per_task
        env_steps = self.prefill_steps // self.env.spec.num_envs + (update_step + 1) * num_steps
        task_step = env_steps % steps_per_task if steps_per_task else env_steps
        return Events(
            update_step=jnp.asarray(update_step + 1, jnp.int32),
            task_id=task_id[-1, 0].astype(jnp.int32),
            task_switched=task_switched.any(),
            task_step=jnp.asarray(task_step, jnp.int32),
            steps_per_task=jnp.asarray(steps_per_task, jnp.int32),
            rollout_steps=jnp.asarray(num_steps, jnp.int32),
        )

    def episode_scalars(
        self,
        episode_return: Array,
        episode_length: Array,
        episode_metrics: dict[str, Array],
        events: Events,
    ) -> dict[str, Array]:
        """Per-episode means over the episodes that ended in this update's rollout (NaN when
        none did), plus the task columns. An episode ended where it reports a length (for
        Atari with episodic life: a game, not every lost life)."""
        n_done = (episode_length > 0).sum()

        def per_episode(x):
            return jnp.where(n_done > 0, x.sum() / jnp.maximum(n_done, 1), jnp.nan)

        env_means = {k: per_episode(v) for k, v in episode_metrics.items()}
        env_means.update(self.env.summarize_episode_metrics(env_means))
        return {
            "episode_return": per_episode(episode_return),
            "episode_length": per_episode(episode_length),
            **{f"env/{k}": v for k, v in env_means.items()},
            "episodes": n_done.astype(jnp.float32),
            "task_id": events.task_id.astype(jnp.float32),
            "task_switched": events.task_switched.astype(jnp.float32),
        }

    # ------------------------------------------------------------------ metrics

    def extra_metrics(self, out: Any) -> dict[str, Array]:
        """Agent-specific probe metrics from the network output (PPO: policy entropy)."""
        return {}

    def compute_plasticity(self, params, params_before, probe_obs) -> dict[str, Array]:
        """Every plasticity metric on ``probe_obs``: over the whole model (``dormant_ratio``,
        ``weight_magnitude``, ``weight_change``), per torso (``stable_rank/q``,
        ``dormant/actor/layer_0``), and per network with its name as prefix
        (``critic/dormant_ratio``, ``critic/weight_magnitude``, ``critic/weight_change``; a
        shared torso counts in every network that reads it)."""
        m = self.cfg.metrics
        out = self.network.apply(params, probe_obs)
        values = pm.plasticity_metrics(
            activations=out.activations,
            features=out.features,
            params=params,
            params_before=params_before,
            activation=self.spec.activation,
            tau=m.dormant_tau,
            rank_threshold=m.rank_threshold,
            squared_rank=m.squared_rank,
            variance_over=m.feature_variance_over,
        )
        values.update(self.network_metrics(out.activations, params, params_before))
        return {**values, **self.extra_metrics(out)}

    def activation_of(self, net: str) -> str:
        """The activation of network ``net`` (one network spec for the whole model here)."""
        return self.spec.activation

    def network_metrics(
        self, activations: dict[str, Array], params: Any, params_before: Any,
        fau: bool = False,
    ) -> dict[str, Array]:
        """Per network (``network_parts``), with its name as prefix: ``dormant_ratio`` (when
        it has hidden layers), ``weight_magnitude``, ``weight_change``, and with ``fau`` the
        fraction of active units (``metrics.fraction_active_units``)."""
        m, values = self.cfg.metrics, {}
        for net, modules in self.network_parts().items():
            mods = set(modules)
            own = compose.restrict(params, mods)
            acts = {k: v for k, v in activations.items() if k.split("/")[0] in mods}
            if acts:
                values[f"{net}/dormant_ratio"] = pm.dormant_ratio(acts, m.dormant_tau)[0]
                if fau:
                    values[f"{net}/fau"] = pm.fraction_active_units(acts, self.activation_of(net))
            values[f"{net}/weight_magnitude"] = pm.weight_magnitude(own)
            values[f"{net}/weight_change"] = pm.weight_change(
                compose.restrict(params_before, mods), own
            )
        return values

    def metric_names(self) -> tuple[str, ...]:
        """Names of the plasticity metrics this agent logs (empty when they are off)."""
        if not self.cfg.metrics.every:
            return ()
        params = self.init_params(jax.random.PRNGKey(0))
        probe = jnp.zeros((self.cfg.metrics.probe_size, *self.env.spec.obs_shape))
        return tuple(jax.eval_shape(lambda: self.compute_plasticity(params, params, probe)))

    def plasticity(self, params, params_before, probe_obs, update_step) -> dict[str, Array]:
        """The metrics on every ``metrics.every``-th update, NaN on the others; a real
        branch (the update index is unbatched), so the other updates pay nothing."""
        every = self.cfg.metrics.every
        if not every:
            return {}
        names = self.metric_names()
        return jax.lax.cond(
            (update_step + 1) % every == 0,
            lambda: self.compute_plasticity(params, params_before, probe_obs),
            lambda: {k: jnp.full((), jnp.nan, jnp.float32) for k in names},
        )

    # ------------------------------------------------------------------ evaluation

    def evaluation(self, params: Any, hp: dict, key: Array, update_step: Array) -> dict:
        """``eval/episode_return`` every ``eval.every`` updates (NaN on the others), from
        ``eval.num_envs`` episodes of the greedy policy (random actions with probability
        ``eval.epsilon``) on the separate ``eval_env``."""
        ev = self.cfg.eval
        if not ev.every or self.eval_env is None:
            return {}

        def run():
            return {"eval/episode_return": evaluate(
                self.eval_env, lambda obs, k: self._eval_action(params, obs, hp, k),
                key, ev.max_steps,
            )}  # fmt: skip

        return jax.lax.cond(
            (update_step + 1) % ev.every == 0,
            run,
            lambda: {"eval/episode_return": jnp.full((), jnp.nan, jnp.float32)},
        )

    def _eval_action(self, params, obs, hp, key):
        action = self.act_greedy(params, obs, hp)
        eps = self.cfg.eval.epsilon
        if self.continuous or not eps:
            return action
        n = self.env.spec.action_space.n
        return epsilon_greedy_choice(key, action, n, eps)


class ReplayAgent(Agent):
    """An agent that learns from its member's on-device replay buffer (DQN, C51, SAC, TD3).

    Subclasses implement ``explore(state, obs, key, random) -> (action [N, ...], extras)``
    (``random``: a static flag for the prefill's uniformly random actions; ``extras``: a dict
    of scalars logged per step, e.g. DQN's epsilon), and keep ``buffer``, ``env_state``,
    ``obs``, ``env_steps`` and ``hp`` in their state. ``self.storage_dtype`` is the
    observations' storage dtype (``replay.obs_storage_dtype``).
    """

    unguarded = "buffer"  # a frozen member's buffer is never sampled again

    def new_buffer(self) -> Any:
        """An empty buffer of ``agent.buffer_size`` transitions (float actions of the action
        box's shape for continuous actions, int32 for discrete)."""
        from plasticine_jax.agents import replay as rb

        spec = self.env.spec
        space = spec.action_space
        shape, dtype = (space.shape, jnp.float32) if self.continuous else ((), jnp.int32)
        return rb.init_buffer(
            self.cfg.agent.buffer_size, spec.num_envs, spec.obs_shape, self.storage_dtype,
            shape, dtype,
        )  # fmt: skip

    def prefill(self, state: Any, key: Array) -> Any:
        """``state`` after ``prefill_steps`` uniformly random env steps, stored."""
        rows = self.prefill_steps // self.env.spec.num_envs
        if not rows:
            return state
        state, traj, _ = self.rollout(state, rows, key, random=True)
        return state._replace(buffer=self.store(state.buffer, traj))

    def random_action(self, key: Array) -> Array:
        """Uniformly random actions ``[N, ...]``: an action index, or a point of the box."""
        n, space = self.env.spec.num_envs, self.env.spec.action_space
        if self.continuous:
            low, high = space.bounds()
            return jax.random.uniform(key, (n, *space.shape), jnp.float32, low, high)
        return jax.random.randint(key, (n,), 0, space.n)

    def explore(self, state: Any, obs: Array, key: Array, random: bool):
        raise NotImplementedError  # pragma: no cover - abstract

    def rollout(self, state: Any, steps: int, key: Array, random: bool = False):
        """``steps`` exploring (or uniformly random) steps of every env: ``(state, traj,
        extras)``, every leaf ``[steps, ...]``."""
        n = self.env.spec.num_envs

        def step(carry, _):
            env_state, obs, key, env_steps = carry
            key, k_act, k_env = jax.random.split(key, 3)
            action, extras = self.explore(state._replace(env_steps=env_steps), obs, k_act, random)
            next_obs, env_state, reward, term, trunc, info = self.env.step(k_env, env_state, action)
            row = {
                "obs": obs, "action": action, "reward": reward, "terminated": term,
                "truncated": trunc,
                "valid": (
                    jnp.ones((n,), bool) if info.action_ignored is None
                    else ~info.action_ignored
                ),
                "episode_return": info.episode_return, "episode_length": info.episode_length,
                "task_id": info.task_id, "task_switched": info.task_switched,
                "episode_metrics": self.env.episode_metrics(info),
            }  # fmt: skip
            return (env_state, next_obs, key, env_steps + n), (row, extras)

        carry = (state.env_state, state.obs, key, state.env_steps)
        (env_state, obs, _, env_steps), (traj, extras) = jax.lax.scan(step, carry, None, steps)
        state = state._replace(env_state=env_state, obs=obs, env_steps=env_steps)
        return state, traj, extras

    @staticmethod
    def store(buffer: Any, traj: dict) -> Any:
        """``buffer`` with a rollout's rows added."""
        from plasticine_jax.agents import replay as rb

        return rb.add_rows(
            buffer, traj["obs"], traj["action"], traj["reward"], traj["terminated"],
            traj["truncated"], traj["valid"],
        )  # fmt: skip


def evaluate(env: Environment, policy: Callable, key: Array, max_steps: int) -> Array:
    """Mean return of the first episode of each of ``env``'s envs within ``max_steps`` steps
    (NaN when none finished). ``policy(obs [N, ...], key) -> action [N, ...]``."""
    k_reset, key = jax.random.split(key)
    obs, state = env.reset(k_reset)
    n = env.spec.num_envs

    def step(carry, _):
        state, obs, key, done, ret = carry
        key, k_act, k_env = jax.random.split(key, 3)
        obs, state, _, term, trunc, info = env.step(k_env, state, policy(obs, k_act))
        first_end = (term | trunc) & ~done
        ret = jnp.where(first_end, info.episode_return, ret)
        return (state, obs, key, done | term | trunc, ret), None

    init = (state, obs, key, jnp.zeros(n, bool), jnp.zeros(n, jnp.float32))
    (_, _, _, done, ret), _ = jax.lax.scan(step, init, None, max_steps)
    finished = done.sum()
    return jnp.where(finished > 0, (ret * done).sum() / jnp.maximum(finished, 1), jnp.nan)


def epsilon_greedy_choice(key: Array, greedy: Array, num_actions: int, eps: Array) -> Array:
    """``greedy`` actions ``[N]``, each replaced with probability ``eps`` by a uniformly
    random one (CleanRL / purejaxql)."""
    k_explore, k_action = jax.random.split(key)
    random = jax.random.randint(k_action, greedy.shape, 0, num_actions)
    return jnp.where(jax.random.uniform(k_explore, greedy.shape) < eps, random, greedy)


def linear_schedule(start: Array, end: Array, duration: Array, t: Array) -> Array:
    """CleanRL's ``linear_schedule``: ``start`` to ``end`` linearly over ``duration`` steps,
    then ``end``. A zero duration gives ``end`` at once."""
    frac = jnp.clip(t / jnp.maximum(duration, 1e-9), 0.0, 1.0)
    return jnp.where(duration > 0, start + frac * (end - start), end)


def crossed(before: Array, after: Array, every: Array) -> Array:
    """Whether a multiple of ``every`` lies in ``(before, after]`` (int32 counters; a traced
    float ``every`` is truncated to an int, at least 1): the robust "every k steps" when a
    counter advances by more than one at a time (``num_envs`` env steps per step), where
    ``after % every == 0`` would skip the multiples it jumps over."""
    every = jnp.maximum(jnp.asarray(every).astype(jnp.int32), 1)
    return (after // every) > (before // every)


def eval_key(key: Array, update_step: Array) -> Array:
    """The evaluation key of an update: folded from the member's key, so evaluating does
    not change the training stream."""
    return jax.random.fold_in(key, update_step)


def probe_index(probe_size: int, batch: int) -> Array:
    """A fixed, evenly strided probe of ``probe_size`` of ``batch`` rows."""
    size = min(probe_size, batch)
    return jnp.linspace(0, batch - 1, size).astype(jnp.int32)


# A permutation's probability of a tied sort key, at most 2**-PERMUTATION_TIE_BITS.
PERMUTATION_TIE_BITS = 20


def permutation_rounds(n: int) -> tuple[int, int]:
    """``(index_bits, rounds)`` of ``permutation(key, n)``: the bits that hold an index below
    ``n`` and the sorts needed for ``rounds * (32 - index_bits)`` random key bits, at least
    ``2 * index_bits + PERMUTATION_TIE_BITS - 1`` (module function ``permutation``)."""
    if not 1 <= n < 2**31:
        raise ValueError(f"a permutation of {n} elements: n must be in [1, 2**31)")
    index_bits = max(1, (n - 1).bit_length())
    key_bits = 32 - index_bits
    need = 2 * index_bits + PERMUTATION_TIE_BITS - 1
    return index_bits, -(-need // key_bits)


def permutation(key: Array, n: int) -> Array:
    """A uniformly random permutation of ``range(n)`` (int32): ``jax.random.permutation``'s
    law (not its values), at a quarter to a third of its cost on CPU from a few thousand
    rows on.

    ``jax.random.permutation`` sorts the indices by random 32-bit keys, two rounds of a
    two-operand (key, value) sort for ``n`` of a minibatch loop. XLA:CPU sorts several
    operands through a compiled comparator called per comparison, one operand much faster:
    8 vmapped permutations of 2048 cost 4.4 ms against 1.2 ms here, and PQN's update at
    rejax's CartPole settings (five of them an update) takes 0.82x the time
    (``benchmarks/permutation.py``, ``benchmarks/RESULTS.md``).

    Here each round packs a random key and the index into one ``uint32`` (the key's low
    ``index_bits`` cleared, the position written there) and sorts that single operand; the
    low bits of the sorted words are then the positions in key order, ties broken by
    position. Round ``j`` reorders the previous round's result by fresh keys, so the final
    order sorts the elements by the concatenation of every round's key (latest first) and
    then by index: ``rounds * (32 - index_bits)`` i.i.d. uniform bits an element
    (``permutation_rounds``). Conditional on those composite keys being distinct the
    permutation is exactly uniform (exchangeability); the chance of any tie, hence the
    total variation distance to the uniform law, is at most ``n (n - 1) / 2`` times
    ``2**-bits``, at most ``2**-PERMUTATION_TIE_BITS`` (jax's own two rounds: about
    ``2**-22`` at ``n`` = 2048). ``tests/test_permutation.py`` checks the values against a
    numpy ``lexsort`` of the same bits, and the law by a chi-square test.
    """
    index_bits, rounds = permutation_rounds(n)
    low = jnp.uint32((1 << index_bits) - 1)
    index = jnp.arange(n, dtype=jnp.uint32)
    perm = index
    for k in jax.random.split(key, rounds):
        words = (jax.random.bits(k, (n,), jnp.uint32) & ~low) | index
        perm = perm[jax.lax.sort(words) & low]
    return perm.astype(jnp.int32)


def minibatch_epochs(
    learner: LearnerState,
    batch: dict[str, Array],
    tx: optax.GradientTransformation,
    loss: Callable[[Any, dict[str, Array]], tuple[Array, dict[str, Array]]],
    key: Array,
    epochs: int,
    num_minibatches: int,
    max_grad_norm: Array,
) -> tuple[LearnerState, dict[str, Array]]:
    """``epochs`` passes over ``batch`` (every leaf ``[B, ...]``), each a fresh ``permutation``
    split into ``num_minibatches`` minibatches, one optimizer step each (PPO, PQN).

    ``loss(params, minibatch) -> (loss, aux)``. The optimizer receives the extra arguments
    methods may read (``key``, ``grad_fn``, ``max_grad_norm``). Returns the learner and the
    mean of every aux scalar plus ``grad_norm`` (before clipping).
    """
    size = next(iter(batch.values())).shape[0]
    mb_size = size // num_minibatches

    def step(carry, mb):
        learner, key = carry
        key, k_tx = jax.random.split(key)
        learner, aux = optimizer_step(learner, tx, lambda p: loss(p, mb), k_tx, max_grad_norm)
        return (learner, key), aux

    def epoch(carry, _):
        learner, key = carry
        key, k_perm = jax.random.split(key)
        perm = permutation(k_perm, size)
        mbs = jax.tree.map(
            lambda x: x[perm].reshape((num_minibatches, mb_size, *x.shape[1:])), batch
        )
        return jax.lax.scan(step, (learner, key), mbs)

    (learner, _), aux = jax.lax.scan(epoch, (learner, key), None, epochs)
    return learner, jax.tree.map(jnp.mean, aux)


def global_norm(tree: Any) -> Array:
    """``optax.global_norm`` (the l2 norm of all leaves together) as one reduction over the
    concatenated leaves: on CPU a reduction per leaf is a kernel per leaf (two, after XLA
    splits it for precision), which in the small networks of RL is a visible share of a
    gradient step. The same value up to the order of summation."""
    leaves = [jnp.ravel(x).astype(jnp.float32) for x in jax.tree.leaves(tree)]
    if not leaves:
        return jnp.zeros((), jnp.float32)
    return jnp.sqrt(jnp.sum(jnp.square(jnp.concatenate(leaves))))


def clip_by_global_norm(max_norm: Array | float) -> optax.GradientTransformation:
    """``optax.clip_by_global_norm`` computed as one scalar scale: every update ``t``
    becomes ``t * min(1, max_norm / ||g||)`` (``||g||`` the global norm of all updates),
    unchanged when ``||g|| < max_norm``. optax divides every leaf, ``(t / ||g||) *
    max_norm``: the same value up to rounding (about one ulp), but a float division per
    leaf that XLA will not duplicate into the optimizer's fused update, so on CPU each leaf
    costs an extra kernel. Same (empty) state as optax's, so checkpoints are unchanged.
    """

    def update_fn(updates, state, params=None):
        del params
        norm = global_norm(updates)
        scale = jnp.where(norm < max_norm, 1.0, max_norm / norm)
        return jax.tree.map(lambda t: t * scale.astype(t.dtype), updates), state

    return optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn)


def gradient_clip(kind: str, max_norm: Array | float) -> optax.GradientTransformation:
    """The agent's gradient clip at ``max_norm`` (config ``agent.grad_clip``).

    ``global_norm`` (the default; PureJaxRL, purejaxql, CleanRL and Plasticine's torch
    ``clip_grad_norm_``): ``clip_by_global_norm``, the whole gradient scaled by
    ``min(1, max_norm / ||g||)``. ``elementwise`` (rejax's ``optax.clip``): every entry
    clipped to ``[-max_norm, max_norm]``, its direction not kept; it needs no reduction over
    the gradient, so it fuses into the optimizer's update. Both keep an empty state.
    """
    if kind == "global_norm":
        return clip_by_global_norm(max_norm)
    if kind == "elementwise":
        return optax.clip(max_norm)
    raise ValueError(f"grad_clip={kind!r}: choose 'global_norm' or 'elementwise'")


def optimizer_step(
    learner: LearnerState,
    tx: optax.GradientTransformation,
    loss: Callable[[Any], tuple[Array, dict[str, Array]]],
    key: Array,
    max_grad_norm: Array,
) -> tuple[LearnerState, dict[str, Array]]:
    """One gradient step of ``loss(params) -> (loss, aux)``: the gradient, the (method-
    wrapped) optimizer with its extra arguments, the new parameters; ``last_grads`` kept
    when a method reads it. Returns the learner and ``aux`` plus ``grad_norm``."""
    grad_fn = jax.grad(loss, has_aux=True)
    grads, aux = grad_fn(learner.params)
    updates, opt_state = tx.update(
        grads, learner.opt_state, learner.params, key=key,
        grad_fn=lambda p: grad_fn(p)[0], max_grad_norm=max_grad_norm,
    )  # fmt: skip
    params = optax.apply_updates(learner.params, updates)
    learner = learner._replace(params=params, opt_state=opt_state)
    if learner.last_grads is not None:
        learner = learner._replace(last_grads=grads)
    return learner, {**aux, "grad_norm": global_norm(grads)}
