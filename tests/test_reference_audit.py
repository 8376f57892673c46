"""Results checked against the references they claim to follow (issue 9's audit).

Each test recomputes one step in numpy from the paper or the authors' code, independently of
our implementation, and compares: Plasticine's feature variance through the agent, one TRAC
step on the clipped gradient, and the first Adam step on weights that continual backprop or
ReDo rewrote (loss-of-plasticity's AdamGnT, a step count per element).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import special

from plasticine_jax.agents.ppo import PPO
from plasticine_jax.config import load_config
from plasticine_jax.envs.registry import make_env
from plasticine_jax.methods import _surgery, compose, make_method
from plasticine_jax.methods.adam_gnt import ScaleByAdamGnTState
from plasticine_jax.methods.base import LearnerState
from plasticine_jax.methods.continual_backprop import init_cbp_state
from plasticine_jax.runner.plan import build_methods, traced_hp
from tests.conftest import one_minibatch, tiny


@functools.cache
def _agent(methods: tuple = (), **metrics):
    """A tiny CartPole PPO (hidden [8], relu) and its traced hp. ``methods``: names, or
    ``(name, ((option, value), ...))`` pairs (hashable, for the cache)."""
    data = tiny(agent={"num_steps": 8, "network": {"hidden_sizes": [8], "activation": "relu"}},
                metrics={"every": 1, "probe_size": 32, **metrics})
    data["methods"] = [{"name": m} if isinstance(m, str) else {"name": m[0], "options": dict(m[1])}
                       for m in methods]
    cfg = load_config(data=data)
    ms = build_methods(cfg)
    agent = PPO(cfg, make_env(cfg.env.backend, cfg.env.id, cfg.env.num_envs), ms)
    return agent, jax.tree.map(jnp.asarray, traced_hp(cfg, ms))


# ----------------------------------------------------------------------- feature variance


@pytest.mark.parametrize("over", [None, "features", "batch"])
def test_agent_logs_the_configured_feature_variance(over):
    agent, _ = _agent(**({} if over is None else {"feature_variance_over": over}))
    params = agent.init_params(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (32, 4))
    got = agent.compute_plasticity(params, params, obs)
    f = np.asarray(agent.network.apply(params, obs).features["actor"], np.float64)
    # Plasticine: torch.mean(torch.var(features, dim=1)), unbiased over each row's features.
    want = np.var(f, axis=0).mean() if over == "batch" else np.var(f, axis=1, ddof=1).mean()
    np.testing.assert_allclose(got["feature_variance/actor"], want, rtol=1e-5)


def test_feature_variance_option_is_checked():
    with pytest.raises(ValueError, match="feature_variance_over"):
        load_config(data=tiny(metrics={"feature_variance_over": "samples"}))


# ----------------------------------------------------------------------- TRAC


def _one_minibatch(agent):
    """The agent, changed to learn one epoch of one fixed minibatch of 6, and that batch."""
    return one_minibatch(agent, advantage=(-3.0, 3.0), ret=5.0)


def _flat(tree) -> np.ndarray:
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)])


def _numpy_trac_step(x, ref, g, u, s, sigma, v, s_prev, eps):
    """One step of TRAC's ``_step`` (authors' code, as vendored in Plasticine), in numpy."""
    betas = np.array([0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999])
    delta = (x - ref) / (s.sum() + eps)
    h = delta @ g
    delta = delta + u
    v = betas**2 * v + h**2
    sigma = betas * sigma - h
    s = s_prev / special.erfi(1 / np.sqrt(2)) * special.erfi(sigma / (np.sqrt(2 * v) + eps))
    return ref + max(s.sum(), 0.0) * delta, s


def test_trac_step_reads_the_clipped_gradient_as_plasticine():
    agent, hp = _agent(("trac",))
    agent, batch = _one_minibatch(agent)
    clip = 0.05
    hp = {**hp, "agent": {**hp["agent"], "max_grad_norm": jnp.float32(clip)}}
    a, t = hp["agent"], hp["methods"]["trac"]
    learner = agent.init(jax.random.PRNGKey(0), hp).learner
    ref = learner.params
    d = jax.tree.map(lambda p, k: 0.01 * jax.random.normal(k, p.shape),
                     ref, _keys_like(ref, jax.random.PRNGKey(3)))
    x = jax.tree.map(jnp.add, ref, d)
    grads, _ = jax.grad(agent.loss, has_aux=True)(x, batch, hp, learner.init_params)
    g, xf, rf = _flat(grads), _flat(x), _flat(ref)
    norm = np.linalg.norm(g)
    assert norm > 10 * clip  # the clip is active, and h differs 10x between the two readings
    g_clipped = g * min(1.0, clip / (norm + 1e-6))  # torch.nn.utils.clip_grad_norm_

    # A mid-run TRAC state, scaled so that |h| moves s: S > 0, variance of the order of h^2.
    eps, s_prev = float(t["eps"]), float(t["s_prev"])
    h = (xf - rf) / (6 * 2e-9 + eps) @ g_clipped
    s0, sigma0, v0 = np.full(6, 2e-9), np.full(6, 2 * abs(h)), np.full(6, 4 * h**2)
    opt = learner.opt_state._replace(
        theta_ref=ref, s=jnp.asarray(s0, jnp.float32), sigma=jnp.asarray(sigma0, jnp.float32),
        variance=jnp.asarray(v0, jnp.float32), count=jnp.int32(1))
    new, _ = jax.jit(agent._learn)(learner._replace(params=x, opt_state=opt), batch, hp,
                                   jax.random.PRNGKey(1))

    # Base Adam's first step (count 1, torch / optax formula) on the clipped gradient.
    lr, adam_eps = float(a["lr"]), float(a["adam_eps"])
    m_hat, v_hat = g_clipped, g_clipped**2  # (1 - b) g / (1 - b), (1 - b2) g^2 / (1 - b2)
    u = -lr * m_hat / (np.sqrt(v_hat) + adam_eps)
    want, s = _numpy_trac_step(xf, rf, g_clipped, u, s0, sigma0, v0, s_prev, eps)
    unclipped, _ = _numpy_trac_step(xf, rf, g, u, s0, sigma0, v0, s_prev, eps)
    got = _flat(new.params)
    np.testing.assert_allclose(float(new.opt_state.s.sum()), s.sum(), rtol=1e-4)
    # float32 parameters of order 1 resolve steps to ~1e-7.
    np.testing.assert_allclose(got - rf, want - rf, rtol=1e-4, atol=1e-7)
    # The unclipped reading lands elsewhere: the check above tells the two apart.
    assert np.abs((unclipped - rf) - (want - rf)).max() > 0.1 * np.abs(want - rf).max()
    assert int(new.opt_state.count) == 2


def _keys_like(tree, key):
    leaves, treedef = jax.tree.flatten(tree)
    return jax.tree.unflatten(treedef, list(jax.random.split(key, len(leaves))))


# ----------------------------------------------------------------------- AdamGnT


B1, B2 = 0.9, 0.999


def _late_adam_state(opt_state, params, t, key):
    """``opt_state`` as after ``t`` Adam steps: moments of that age, Adam's step count(s) at
    ``t`` (a scalar for optax.adam, per entry for adam_gnt), the schedule count left at 0."""
    k1, k2 = jax.random.split(key)
    mu = jax.tree.map(lambda p, k: 1e-3 * jax.random.normal(k, p.shape), params,
                      _keys_like(params, k1))
    nu = jax.tree.map(lambda p, k: 1e-6 * (1.0 + jax.random.uniform(k, p.shape)), params,
                      _keys_like(params, k2))
    clip_state, inject = opt_state
    adam, rest = inject.inner_state[0], inject.inner_state[1:]
    count = jax.tree.map(lambda c: jnp.full_like(c, t), adam.count)
    adam = adam._replace(count=count, mu=mu, nu=nu)
    return (clip_state, inject._replace(inner_state=(adam, *rest)))


def _adam_of(opt_state):
    return opt_state[1].inner_state[0]


def _rewritten_entries(params, units: dict[str, np.ndarray]) -> dict:
    """By hand: a rewritten unit's incoming kernel column and bias, its outgoing head rows."""
    mask = jax.tree.map(lambda x: np.zeros(x.shape, bool), params)
    p = mask["params"]
    for name, u in units.items():
        torso, layer = name.split("/")
        p[torso][layer]["kernel"][:, u] = True
        p[torso][layer]["bias"][u] = True
        p[f"{torso}_head"]["kernel"][u, :] = True
    return mask


def _first_steps_after(method, learner_of, intervene):
    """The base optimizer's step on the same gradient after ``intervene``, for the agent with
    ``method`` (adam_gnt) and the same intervention under the plain agent's optax.adam."""
    agent, hp = _agent((method,))
    plain, plain_hp = _agent()
    params = agent.init_params(jax.random.PRNGKey(0))
    t = 1000
    steps = {}
    for name, a, h in (("gnt", agent, hp), ("adam", plain, plain_hp)):
        tx = a.optimizer(h)
        state = _late_adam_state(tx.init(params), params, t, jax.random.PRNGKey(4))
        learner = intervene(learner_of(a, params, state), agent)
        grads = jax.tree.map(lambda x, k: 3e-2 * jax.random.normal(k, x.shape),
                             params, _keys_like(params, jax.random.PRNGKey(5)))
        assert float(optax.global_norm(grads)) < float(h["agent"]["max_grad_norm"])  # no clip
        u, _ = tx.update(grads, learner.opt_state, learner.params,
                         max_grad_norm=h["agent"]["max_grad_norm"])
        steps[name] = (learner, u)
    lr, eps = float(hp["agent"]["lr"]), float(hp["agent"]["adam_eps"])
    return steps, grads, lr, eps, t


def _check_first_steps(steps, grads, lr, eps, t, touched):
    (learner, u), (_, u_today) = steps["gnt"], steps["adam"]
    g, got, today = _flat(grads), _flat(u), _flat(u_today)
    on = _flat(touched).astype(bool)
    assert on.any() and (~on).any()
    # The surgery restarted exactly the rewritten entries' step counts.
    counts = _flat(_adam_of(learner.opt_state).count)
    np.testing.assert_array_equal(counts, np.where(on, 0, t))
    # Rewritten entries: AdamGnT's step with count 1 from zero moments (numpy, torch's Adam
    # formula per entry), about lr in magnitude...
    def adam_step(count):
        m, v = (1 - B1) * g, (1 - B2) * g**2
        return -lr * (m / (1 - B1**count)) / (np.sqrt(v / (1 - B2**count)) + eps)

    np.testing.assert_allclose(got[on], adam_step(1)[on], rtol=1e-5, atol=1e-12)
    big = on & (np.abs(g) > 1e-2)
    assert big.any()
    np.testing.assert_allclose(np.abs(got[big]), lr, rtol=1e-2)
    # ... where today's shared count (t + 1 = 1001) makes it about 2.5 lr.
    np.testing.assert_allclose(today[on], adam_step(t + 1)[on], rtol=1e-5, atol=1e-12)
    assert (np.abs(today[big]) > 2.3 * lr).all()
    # Every other entry steps exactly as with today's optax.adam.
    np.testing.assert_array_equal(got[~on], today[~on])


def _cbp_learner(agent, params, opt_state):
    ms = compose.init_method_states(agent.methods, params, jax.random.PRNGKey(6))
    return LearnerState(params, opt_state, params, ms)


def test_continual_backprop_restarts_adam_on_replaced_weights_as_adam_gnt():
    m = make_method("continual_backprop")
    assert m.needs_element_counts
    hp = {"replacement_rate": 0.5, "maturity": 0.0, "decay": 0.99}
    obs = jax.random.normal(jax.random.PRNGKey(7), (32, 4))
    replaced = {}

    def intervene(learner, agent):
        ms = {m.name: init_cbp_state(learner.params)}
        new = m.intervention.apply(learner._replace(method_state=ms), obs,
                                   jax.random.PRNGKey(8), hp, None, agent.ctx)
        for name, s in new.method_state[m.name].items():
            replaced[name] = np.flatnonzero(np.asarray(s["age"]) == 0)  # reset ages
        return new

    steps, grads, lr, eps, t = _first_steps_after("continual_backprop", _cbp_learner, intervene)
    assert all(len(u) == 4 for u in replaced.values())  # 0.5 x 8 eligible units per layer
    _check_first_steps(steps, grads, lr, eps, t, _rewritten_entries(grads, replaced))


REDO_ZM = ("redo", (("zero_moments", True),))


def test_redo_with_zero_moments_restarts_adam_on_recycled_weights():
    m = make_method(*REDO_ZM[:1], dict(REDO_ZM[1]))
    assert m.needs_element_counts
    obs = jax.random.normal(jax.random.PRNGKey(7), (32, 4))
    recycled = {}

    def intervene(learner, agent):
        layer = learner.params["params"]["actor"]["layer_0"]
        layer = {"kernel": layer["kernel"].at[:, 3].set(0.0), "bias": layer["bias"].at[3].set(-1.0)}
        p = {**learner.params["params"], "actor": {**learner.params["params"]["actor"],
                                                     "layer_0": layer}}
        learner = learner._replace(params={**learner.params, "params": p})
        for name, a in agent.network.apply(learner.params, obs).activations.items():
            score = np.abs(np.asarray(a)).mean(0)
            recycled[name] = np.flatnonzero(score / score.mean() <= 0.025)  # Sokar et al.
        return m.intervention.apply(learner, obs, jax.random.PRNGKey(8), {"tau": 0.025}, None,
                                    agent.ctx)

    steps, grads, lr, eps, t = _first_steps_after(REDO_ZM, _cbp_learner, intervene)
    assert 3 in recycled["actor/layer_0"]
    _check_first_steps(steps, grads, lr, eps, t, _rewritten_entries(grads, recycled))


def test_redo_dopamine_moment_zeroing_keeps_the_global_count():
    m = make_method("redo", {"zero_moments": True, "reset_counts": False})
    assert not m.needs_element_counts
    agent, hp = _agent((("redo", (("zero_moments", True), ("reset_counts", False))),))
    state = agent.optimizer(hp).init(agent.init_params(jax.random.PRNGKey(0)))
    assert isinstance(_adam_of(state), optax.ScaleByAdamState)


def test_adam_gnt_is_adam_until_a_reset_and_keeps_the_schedule():
    agent, hp = _agent(("continual_backprop",))
    plain, plain_hp = _agent()
    params = agent.init_params(jax.random.PRNGKey(0))
    tx, ref = agent.optimizer(hp), plain.optimizer(plain_hp)
    s, s_ref = tx.init(params), ref.init(params)
    assert isinstance(_adam_of(s), ScaleByAdamGnTState)
    per_update = agent.cfg.agent.update_epochs * agent.cfg.agent.num_minibatches
    for i in range(2 * per_update):
        g = jax.tree.map(lambda x, k: jax.random.normal(k, x.shape), params,
                         _keys_like(params, jax.random.PRNGKey(i)))
        u, s = tx.update(g, s, params, max_grad_norm=hp["agent"]["max_grad_norm"])
        u_ref, s_ref = ref.update(g, s_ref, params)
        np.testing.assert_array_equal(_flat(u), _flat(u_ref))
    # LR annealing reads the schedule's own count: one update done -> lr (1 - 1 / updates).
    want = float(hp["agent"]["lr"]) * (1 - 1 / agent.num_updates)
    np.testing.assert_allclose(float(s[1].hyperparams["learning_rate"]), want, rtol=1e-6)
    # An optimizer-state reset restarts every per-entry count, keeps the learning rate.
    reset = _surgery.reset_opt_state(s, params)
    assert not _flat(_adam_of(reset).count).any() and not _flat(_adam_of(reset).mu).any()
    assert float(reset[1].hyperparams["learning_rate"]) == float(s[1].hyperparams["learning_rate"])
    kept = _surgery.reset_opt_state(s, params, reset_count=False)
    np.testing.assert_array_equal(_flat(_adam_of(kept).count), 2 * per_update)


# ----------------------------------------------------------------------- ReDo overlap


def _dopamine_redo(params, fresh, recycled):
    """Dopamine's ``recycle_dead_neurons`` on numpy arrays: every recycled unit's incoming
    weights re-initialised first, then every recycled unit's outgoing weights zeroed."""
    out = jax.tree.map(np.array, params)
    p, f = out["params"], jax.tree.map(np.asarray, fresh)["params"]
    for name, u in recycled.items():
        torso, layer = name.split("/")
        p[torso][layer]["kernel"][:, u] = f[torso][layer]["kernel"][:, u]
        p[torso][layer]["bias"][u] = f[torso][layer]["bias"][u]
    for name, u in recycled.items():
        torso, layer = name.split("/")
        nxt = f"layer_{int(layer.split('_')[1]) + 1}"
        reader = p[torso][nxt] if nxt in p[torso] else p[f"{torso}_head"]
        reader["kernel"][u, :] = 0.0
    return out


@pytest.mark.parametrize("mode", ["zero", "fresh"])
def test_redo_weights_between_two_recycled_units(mode):
    from plasticine_jax.envs.core import DiscreteActions
    from plasticine_jax.methods.redo import redo_params
    from plasticine_jax.networks import ActorCritic, NetworkSpec

    net = ActorCritic(NetworkSpec(hidden_sizes=(8, 8), activation="relu"), DiscreteActions(2))
    init = jax.jit(lambda k: net.init(k, jnp.zeros((1, 6))))
    params = init(jax.random.PRNGKey(0))
    p = jax.tree.map(np.array, params)
    for layer, unit in (("layer_0", 1), ("layer_1", 2)):  # dead under ReLU: z = -1
        p["params"]["actor"][layer]["kernel"][:, unit] = 0.0
        p["params"]["actor"][layer]["bias"][unit] = -1.0
    params = jax.tree.map(jnp.asarray, p)
    obs = jax.random.normal(jax.random.PRNGKey(1), (32, 6))
    acts = jax.jit(net.apply)(params, obs).activations
    fresh = init(jax.random.PRNGKey(2))
    recycle = jax.jit(redo_params, static_argnames=("torsos", "dormant_to_dormant"))
    new, _, mask = recycle(params, acts, fresh, 0.025, dormant_to_dormant=mode)
    recycled = {k: np.flatnonzero(np.asarray(v)) for k, v in mask.items()}
    assert {1} <= set(recycled["actor/layer_0"]) and {2} <= set(recycled["actor/layer_1"])
    w = np.asarray(new["params"]["actor"]["layer_1"]["kernel"])[1, 2]
    if mode == "zero":
        assert w == 0.0
        chex.assert_trees_all_equal(jax.tree.map(np.asarray, new),
                                    _dopamine_redo(params, fresh, recycled))
    else:
        assert w == float(fresh["params"]["actor"]["layer_1"]["kernel"][1, 2]) != 0.0
    with pytest.raises(ValueError, match="dormant_to_dormant must be one of"):
        make_method("redo", {"dormant_to_dormant": "random"})
