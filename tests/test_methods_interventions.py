"""Invariants of the scheduled interventions (ReDo, resets, injection, CBP, NE, H&T) and
their schedules, on tiny networks, plus one run through PPO."""

from __future__ import annotations

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plasticine_jax.envs.core import DiscreteActions
from plasticine_jax.methods import compose, make_method, schedules
from plasticine_jax.methods.base import Events, LearnerState, ModelContext
from plasticine_jax.methods.continual_backprop import cbp_step, init_cbp_state
from plasticine_jax.methods.hl_gauss import hl_gauss_loss, hl_gauss_target, hl_gauss_value
from plasticine_jax.methods.plasticity_injection import head_module
from plasticine_jax.methods.redo import redo_params
from plasticine_jax.metrics import dormant_mask
from plasticine_jax.networks import ACOutput, ActorCritic, NetworkSpec, Torso
from plasticine_jax.networks.init import orthogonal

N_ACTIONS = 3


def events(step=1, task_id=0, switched=False, task_step=0, steps_per_task=0, rollout=128) -> Events:
    return Events(
        update_step=jnp.asarray(step, jnp.int32),
        task_id=jnp.asarray(task_id, jnp.int32),
        task_switched=jnp.asarray(switched, bool),
        task_step=jnp.asarray(task_step, jnp.int32),
        steps_per_task=jnp.asarray(steps_per_task, jnp.int32),
        rollout_steps=jnp.asarray(rollout, jnp.int32),
    )


def hp_of(method, **over):
    return {k: jnp.asarray(over.get(k, v), jnp.float32) for k, v in method.hp.items()}


class InjectableAC(nn.Module):
    """``ActorCritic`` (separate torsos, discrete) with its heads from ``head_module``: the
    two-line change proposed for ``networks.torso``."""

    spec: NetworkSpec

    @nn.compact
    def __call__(self, obs):
        f_a, acts_a = Torso(self.spec, name="actor")(obs)
        f_c, acts_c = Torso(self.spec, name="critic")(obs)
        policy = head_module(self.spec, "actor_head", N_ACTIONS, orthogonal(0.01))(f_a)
        value = head_module(self.spec, "critic_head", 1, orthogonal(1.0))(f_c)[:, 0]
        acts = {**{f"actor/{k}": v for k, v in acts_a.items()},
                **{f"critic/{k}": v for k, v in acts_c.items()}}
        return ACOutput(policy, jnp.zeros((0,)), value, {"actor": f_a, "critic": f_c}, acts)


@functools.cache
def build(spec: NetworkSpec, obs_shape, injectable: bool = False):
    """Network and context, cached so each spec's init and apply compile once per session."""
    net = InjectableAC(spec) if injectable else ActorCritic(spec, DiscreteActions(N_ACTIONS))
    dummy = jnp.zeros((1, *obs_shape))
    # Jitted so the tests' eager calls stay fast; inside a jitted caller it is inlined.
    ctx = ModelContext(apply=jax.jit(net.apply), init=jax.jit(lambda k: net.init(k, dummy)),
                       spec=spec)
    return net, ctx


def tx():
    """PPO's optimizer layout: clip, then Adam with injected hyperparameters."""
    return optax.chain(
        optax.clip_by_global_norm(0.5), optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    )


def learner_for(ctx, key, methods=(), hps=None):
    """A fresh learner; its optimizer is ``tx()`` wrapped by the methods' optimizer hooks
    (plasticity injection and neuroplastic expansion keep their state there)."""
    params = ctx.init(key)
    ms = compose.init_method_states(methods, params, jax.random.fold_in(key, 1))
    hps = {m.name: hp_of(m) for m in methods} if hps is None else hps
    opt_state = compose.wrap_optimizer(tx(), methods, hps).init(params)
    return LearnerState(params, opt_state, params, ms)


def adam_mu(opt_state):
    return opt_state[1].inner_state[0].mu


@functools.cache
def _sgd_step(ctx):
    t = tx()

    @jax.jit
    def one(learner, obs):
        def loss(p):
            out = ctx.apply(p, obs)
            return jnp.mean(out.policy**2) + jnp.mean((out.value - 1.0) ** 2)

        g = jax.grad(loss)(learner.params)
        upd, opt = t.update(g, learner.opt_state, learner.params)
        return learner._replace(params=optax.apply_updates(learner.params, upd), opt_state=opt)

    return one


def sgd_steps(learner, ctx, obs, n=3):
    for _ in range(n):
        learner = _sgd_step(ctx)(learner, obs)
    return learner


# ----------------------------------------------------------------------------- schedules


def test_every_k_updates_fires_exactly_on_multiples():
    s = jax.jit(schedules.every_k_updates())
    fired = [int(s(events(step=t), {"period": 3.0})) for t in range(1, 13)]
    assert fired == [0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1]
    assert not any(int(s(events(step=t), {"period": 0.0})) for t in range(1, 6))
    # The period is traced: one compiled schedule, vmapped over two periods.
    v = jax.vmap(lambda k: s(events(step=4), {"period": k}))(jnp.array([2.0, 3.0]))
    np.testing.assert_array_equal(v, [True, False])


def test_at_task_switch_and_composition():
    sw = schedules.at_task_switch()
    assert bool(sw(events(switched=True), {})) and not bool(sw(events(switched=False), {}))
    both = schedules.any_of(schedules.every_k_updates(), sw)
    hp = {"period": 5.0}
    assert bool(both(events(step=5), hp)) and bool(both(events(step=2, switched=True), hp))
    assert not bool(both(events(step=2), hp))
    assert not bool(schedules.all_of(schedules.every_k_updates(), sw)(events(step=5), hp))
    assert bool(schedules.negate(schedules.never())(events(), {}))


@pytest.mark.parametrize("steps_per_task, rollout, fraction", [(250, 100, 0.5), (400, 100, 0.25),
                                                              (250, 100, 0.0)])
def test_at_task_fraction_fires_once_per_task_where_the_threshold_is_crossed(
    steps_per_task, rollout, fraction
):
    s = jax.jit(schedules.at_task_fraction())
    hp = {"task_fraction": fraction}
    threshold = int(fraction * steps_per_task)
    fired_at = []
    for u in range(1, 31):  # as Agent.events: env steps done, modulo the task length
        env_steps = u * rollout
        ev = events(step=u, task_step=env_steps % steps_per_task, steps_per_task=steps_per_task,
                    rollout=rollout)
        if bool(s(ev, hp)):
            fired_at.append(u)
    # Expected: the update whose rollout covers env step (task k start + threshold).
    expected = []
    for k in range(0, 30 * rollout // steps_per_task + 1):
        target = k * steps_per_task + threshold
        u = max(1, -(-target // rollout))  # ceil: first update with env_steps >= target
        if target > 0 and u <= 30:
            expected.append(u)
    assert fired_at == sorted(set(expected))
    # Never on a single-task scenario.
    assert not bool(s(events(step=3, task_step=300, steps_per_task=0), hp))


def test_make_schedule_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown schedule"):
        schedules.make_schedule("every_full_moon")


# ----------------------------------------------------------------------------- ReDo


def _kill(params, torso, i, units):
    """Makes units of layer i exactly silent under ReLU (zero incoming weights, bias -1; with
    LayerNorm, scale 0 and offset -1)."""
    p = jax.tree.map(lambda x: x, params)
    layer = p["params"][torso][f"layer_{i}"]
    layer["kernel"] = layer["kernel"].at[..., units].set(0.0)
    layer["bias"] = layer["bias"].at[np.asarray(units)].set(-1.0)
    norm = p["params"][torso].get(f"norm_{i}")
    if norm is not None:
        norm["scale"] = norm["scale"].at[np.asarray(units)].set(0.0)
        norm["bias"] = norm["bias"].at[np.asarray(units)].set(-1.0)
    return p


def _expected_redo(params, fresh, recycled, conv_hw):
    """Hand-written ReDo on numpy arrays (index lists, explicit flatten order)."""
    out = jax.tree.map(np.array, params)
    f = jax.tree.map(np.array, fresh)
    for name in sorted(recycled, key=lambda n: (int(n.split("_")[-1]), n)):
        torso, layer = name.split("/")
        i = int(layer.split("_")[1])
        units = np.flatnonzero(np.asarray(recycled[name]))
        p, fp = out["params"], f["params"]
        p[torso][layer]["kernel"][..., units] = fp[torso][layer]["kernel"][..., units]
        p[torso][layer]["bias"][units] = fp[torso][layer]["bias"][units]
        if f"norm_{i}" in p[torso]:
            for leaf in ("scale", "bias"):
                p[torso][f"norm_{i}"][leaf][units] = fp[torso][f"norm_{i}"][leaf][units]
        nxt = f"layer_{i + 1}"
        if nxt in p[torso]:
            k = p[torso][nxt]["kernel"]
            if k.ndim == 4:
                k[:, :, units, :] = 0.0
            elif p[torso][layer]["kernel"].ndim == 4:  # conv -> flatten -> dense
                H, W = conv_hw
                C = p[torso][layer]["kernel"].shape[-1]
                idx = np.arange(H * W * C).reshape(H, W, C)[:, :, units].reshape(-1)
                k[idx, :] = 0.0
            else:
                k[units, :] = 0.0
        else:
            head = {"actor": "actor_head", "critic": "critic_head"}[torso]
            p[head]["kernel"][units, :] = 0.0
    return out


@pytest.mark.parametrize("torso, obs_shape, norm", [("mlp", (6,), "none"),
                                                   ("minatar_cnn", (5, 5, 2), "none"),
                                                   ("mlp", (6,), "layernorm")])
def test_redo_touches_exactly_the_dormant_units(torso, obs_shape, norm):
    spec = NetworkSpec(torso=torso, hidden_sizes=(8, 8) if torso == "mlp" else (8,),
                       activation="relu", norm=norm)
    _, ctx = build(spec, obs_shape)
    params = ctx.init(jax.random.PRNGKey(0))
    params = _kill(params, "actor", 0, [1, 4])
    params = _kill(params, "critic", 1, [2])
    obs = jax.random.uniform(jax.random.PRNGKey(1), (32, *obs_shape))
    acts = ctx.apply(params, obs).activations
    fresh = ctx.init(jax.random.PRNGKey(2))
    new, touched, recycled = jax.jit(redo_params)(params, acts, fresh, 0.025)
    # Exactly the tau-dormant units (as the metric defines them) are recycled...
    for name, a in acts.items():
        np.testing.assert_array_equal(recycled[name], dormant_mask(a, 0.025), err_msg=name)
    assert recycled["actor/layer_0"][np.array([1, 4])].all()
    assert recycled["critic/layer_1"][2]
    # ... and every entry of every parameter is what the hand-written rule says.
    conv_hw = (3, 3) if torso == "minatar_cnn" else None
    expected = _expected_redo(params, fresh, recycled, conv_hw)
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, new), expected)
    # ``touched`` (what moment zeroing edits) marks exactly those entries: run the same rule
    # on ones with fresh twos; rewritten entries are 2 (incoming) or 0 (outgoing).
    marks = _expected_redo(jax.tree.map(jnp.ones_like, params),
                           jax.tree.map(lambda x: jnp.full_like(x, 2.0), fresh), recycled, conv_hw)
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, touched),
                                jax.tree.map(lambda x: x != 1.0, marks))


def test_redo_can_zero_the_moments_of_recycled_weights():
    spec = NetworkSpec(torso="mlp", hidden_sizes=(8, 8), activation="relu")
    _, ctx = build(spec, (6,))
    obs = jax.random.uniform(jax.random.PRNGKey(1), (32, 6))
    m = make_method("redo", {"zero_moments": True})
    learner = sgd_steps(learner_for(ctx, jax.random.PRNGKey(0)), ctx, obs)
    learner = learner._replace(params=_kill(learner.params, "actor", 0, [3]))
    key = jax.random.PRNGKey(5)
    new = m.intervention.apply(learner, obs, key, hp_of(m), events(), ctx)
    acts = ctx.apply(learner.params, obs).activations
    _, touched, _ = redo_params(learner.params, acts, ctx.init(key), 0.025)
    mu_old, mu = adam_mu(learner.opt_state), adam_mu(new.opt_state)
    assert (np.asarray(mu["params"]["actor"]["layer_0"]["kernel"][:, 3]) == 0).all()
    assert (np.asarray(mu["params"]["actor"]["layer_1"]["kernel"][3]) == 0).all()
    want = jax.tree.map(lambda m, t: jnp.where(t, 0.0, m), mu_old, touched)
    chex.assert_trees_all_equal(mu, want)
    assert np.asarray(mu_old["params"]["actor"]["layer_0"]["kernel"][:, 3]).any()


@pytest.mark.parametrize("name, options", [("redo", {}),
                                           ("neuroplastic_expansion", {"rule": "dormant"})])
def test_dormancy_methods_refuse_non_relu_activations_naming_the_setter(name, options):
    from plasticine_jax.methods.validate import MethodConflictError, check_methods
    from plasticine_jax.networks.activations import ACTIVATIONS

    m = make_method(name, options)
    allowed = m.requires["activation"]
    assert set(allowed) == {"relu", "leaky_relu", "gelu", "silu", "crelu"}
    assert set(allowed) <= set(ACTIVATIONS)
    for act in ("tanh", "sigmoid", "identity"):
        with pytest.raises(MethodConflictError,
                           match=f"method '{name}' needs the network's activation .* but the "
                                 f"network config makes it '{act}'"):
            check_methods([m], NetworkSpec(activation=act))
    with pytest.raises(MethodConflictError, match=f"'{name}'.*method 'fourier' makes it 'fourier'"):
        check_methods([make_method("fourier"), m], NetworkSpec(activation="relu"))
    # A method that sets a ReLU-family activation satisfies it on a tanh network.
    assert check_methods([make_method("crelu"), m], NetworkSpec()).activation == "crelu"
    assert check_methods([m], NetworkSpec(activation="gelu")).activation == "gelu"


def test_continual_backprop_accepts_any_activation():
    from plasticine_jax.methods.validate import check_methods
    from plasticine_jax.networks.activations import ACTIVATIONS

    m = make_method("continual_backprop")
    # any activation of one feature a unit (its replacement bound reads the layer's width);
    # widening ones (CReLU) need activation_width=2
    same_width = {a for a, f in ACTIVATIONS.items() if f[1] == 1}
    assert set(m.requires["activation"]) == same_width and {"tanh", "relu"} <= same_width
    assert check_methods([m], NetworkSpec(activation="tanh")).activation == "tanh"


# ----------------------------------------------------------------------------- layer reset


def test_layer_reset_equals_fresh_init_of_that_layer_only():
    spec = NetworkSpec(torso="mlp", hidden_sizes=(8, 8), activation="relu")
    _, ctx = build(spec, (6,))
    obs = jax.random.uniform(jax.random.PRNGKey(1), (16, 6))
    m = make_method("layer_reset", {"layers": ["actor_head", "critic/layer_1"],
                                    "reset_opt_state": True})
    learner = sgd_steps(learner_for(ctx, jax.random.PRNGKey(0)), ctx, obs)
    key = jax.random.PRNGKey(7)
    new = jax.jit(lambda s: m.intervention.apply(s, obs, key, hp_of(m), events(), ctx))(learner)
    fresh = ctx.init(key)["params"]
    p, old = new.params["params"], learner.params["params"]
    chex.assert_trees_all_equal(p["actor_head"], fresh["actor_head"])
    chex.assert_trees_all_equal(p["critic"]["layer_1"], fresh["critic"]["layer_1"])
    chex.assert_trees_all_equal(p["actor"], old["actor"])
    chex.assert_trees_all_equal(p["critic_head"], old["critic_head"])
    chex.assert_trees_all_equal(p["critic"]["layer_0"], old["critic"]["layer_0"])
    mu = adam_mu(new.opt_state)["params"]
    assert not np.asarray(mu["actor_head"]["kernel"]).any()
    assert np.asarray(mu["critic_head"]["kernel"]).any()


# ----------------------------------------------------------------------------- injection
# Plasticity injection has its own file: tests/test_injection.py.


# ----------------------------------------------------------------------------- CBP


def test_continual_backprop_replaces_no_more_than_its_rate_allows():
    spec = NetworkSpec(torso="mlp", hidden_sizes=(8, 8), activation="relu")
    _, ctx = build(spec, (6,))
    obs = jax.random.normal(jax.random.PRNGKey(1), (32, 6))
    params = ctx.init(jax.random.PRNGKey(0))
    state = init_cbp_state(params)
    hp = {"replacement_rate": 0.05, "maturity": 2.0, "decay": 0.9}
    step = jax.jit(lambda p, s, k: cbp_step(p, s, ctx.apply(p, obs).activations, ctx.init(k), hp))
    totals = {}
    T = 12
    for t in range(T):
        params, new_state, _, replaced = step(params, state, jax.random.PRNGKey(10 + t))
        for name, mask in replaced.items():
            mask = np.asarray(mask)
            # replaced units were mature, and restart at age 0
            assert (np.asarray(state[name]["age"])[mask] + 1 > hp["maturity"]).all()
            assert (np.asarray(new_state[name]["age"])[mask] == 0).all()
            totals[name] = totals.get(name, 0) + int(mask.sum())
        state = new_state
    # Units are eligible from their 3rd firing: at most rate * 8 * (T - 2) per layer.
    bound = np.floor(hp["replacement_rate"] * 8 * (T - 2) + 1e-6)
    for name, n in totals.items():
        assert 0 < n <= bound, (name, n, bound)


# ----------------------------------------------------------------------------- NE
# Neuroplastic expansion has its own file: tests/test_neuroplastic_expansion.py.


# ----------------------------------------------------------------------------- H&T, optimizer


def test_hare_and_tortoise_ema_and_reset():
    m = make_method("hare_tortoise")
    spec = NetworkSpec(torso="mlp", hidden_sizes=(8, 8), activation="relu")
    _, ctx = build(spec, (6,))
    obs = jax.random.normal(jax.random.PRNGKey(1), (8, 6))
    hp = hp_of(m, alpha=0.9, period=3.0)
    learner = sgd_steps(learner_for(ctx, jax.random.PRNGKey(0), [m]), ctx, obs)
    run = jax.jit(lambda s, t: compose.apply_interventions(
        [m], s, obs, jax.random.PRNGKey(0), {m.name: hp}, events(step=t), ctx))
    new = run(learner, 1)
    want = jax.tree.map(lambda t, h: 0.9 * t + 0.1 * h, learner.init_params, learner.params)
    chex.assert_trees_all_close(new.method_state[m.name]["tortoise"], want, rtol=1e-6)
    chex.assert_trees_all_equal(new.params, learner.params)
    reset = run(new, 3)
    chex.assert_trees_all_equal(reset.params, reset.method_state[m.name]["tortoise"])


def test_opt_reset_restarts_adam_but_keeps_the_learning_rate():
    m = make_method("opt_reset")
    spec = NetworkSpec(torso="mlp", hidden_sizes=(8, 8), activation="relu")
    _, ctx = build(spec, (6,))
    obs = jax.random.normal(jax.random.PRNGKey(1), (8, 6))
    learner = sgd_steps(learner_for(ctx, jax.random.PRNGKey(0)), ctx, obs)
    new = m.intervention.apply(learner, obs, None, {}, events(), ctx)
    adam = new.opt_state[1].inner_state[0]
    assert int(adam.count) == 0
    assert not any(np.asarray(x).any() for x in jax.tree.leaves((adam.mu, adam.nu)))
    assert int(new.opt_state[1].count) == int(learner.opt_state[1].count) == 3
    assert float(new.opt_state[1].hyperparams["learning_rate"]) == pytest.approx(1e-3)
    fresh = tx().init(learner.params)
    chex.assert_trees_all_equal(new.opt_state[1].inner_state, fresh[1].inner_state)


def _anchored_learner():
    """A LayerNorm network trained 3 steps by Adam wrapped in S&P, NaP, TRAC and weight
    clipping (every wrapper whose state holds anchors), as ``compose.wrap_optimizer`` does."""
    names = ("shrink_perturb", "nap", "trac", "weight_clipping")
    ms = [make_method(n) for n in names]
    hps = {m.name: hp_of(m) for m in ms}
    hps["shrink_perturb"] = hp_of(ms[0], shrink=0.99, perturb=0.01)
    spec = NetworkSpec(torso="mlp", hidden_sizes=(8, 8), activation="relu", norm="layernorm")
    _, ctx = build(spec, (6,))
    t = compose.wrap_optimizer(tx(), ms, hps)
    obs = jax.random.normal(jax.random.PRNGKey(1), (16, 6))
    params = ctx.init(jax.random.PRNGKey(0))

    def loss(p):
        out = ctx.apply(p, obs)
        return jnp.mean(out.policy**2) + jnp.mean((out.value - 1.0) ** 2)

    @jax.jit
    def step(learner, k):
        upd, opt = t.update(jax.grad(loss)(learner.params), learner.opt_state, learner.params,
                            key=k)
        return learner._replace(params=optax.apply_updates(learner.params, upd), opt_state=opt)

    learner = LearnerState(params, t.init(params), params, {})
    for i in range(3):
        learner = step(learner, jax.random.PRNGKey(10 + i))
    return learner, step, ctx, obs


def _unwrap(opt_state):
    """``{state type name: state}`` of the nested wrappers, outermost first, then Adam."""
    out = {}
    s = opt_state
    while hasattr(s, "inner"):
        out[type(s).__name__] = s
        s = s.inner
    out["inject"] = s[1]
    out["adam"] = s[1].inner_state[0]
    return out


def _anchors(opt_state):
    st = _unwrap(opt_state)
    t = st["TracState"]
    return {
        "sp": st["ShrinkPerturbState"].init_params, "nap": st["NaPState"].target_norms,
        "trac": (t.theta_ref, t.s, t.sigma, t.variance, t.count),
        "clip": st["WeightClipState"].bounds,
    }


def test_optimizer_resets_keep_the_wrappers_anchors():
    learner, step, ctx, obs = _anchored_learner()
    before = jax.tree.map(np.asarray, _anchors(learner.opt_state))
    adam = _unwrap(learner.opt_state)["adam"]
    assert int(adam.count) == 3
    assert np.asarray(adam.mu["params"]["actor"]["layer_0"]["kernel"]).any()
    assert float(_unwrap(learner.opt_state)["TracState"].s.sum()) != 0.0  # the tuners moved

    # opt_reset: Adam restarts (moments and count), every anchor is kept bit for bit.
    m = make_method("opt_reset")
    new = jax.jit(lambda s: m.intervention.apply(s, obs, None, {}, events(), ctx))(learner)
    chex.assert_trees_all_equal_structs(new.opt_state, learner.opt_state)
    chex.assert_trees_all_equal_shapes_and_dtypes(new.opt_state, learner.opt_state)
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, _anchors(new.opt_state)), before)
    fresh_adam = tx().init(learner.params)[1].inner_state[0]
    chex.assert_trees_all_equal(_unwrap(new.opt_state)["adam"], fresh_adam)
    lr = _unwrap(new.opt_state)["inject"].hyperparams["learning_rate"]
    assert float(lr) == pytest.approx(1e-3)
    # ... so training goes on: NaP still projects to the initial norms, not to 0.
    after = step(new, jax.random.PRNGKey(20))
    k0 = learner.init_params["params"]["critic"]["layer_1"]["kernel"]
    k1 = after.params["params"]["critic"]["layer_1"]["kernel"]
    np.testing.assert_allclose(jnp.linalg.norm(k1), jnp.linalg.norm(k0), rtol=1e-5)

    # Moment zeroing (layer_reset, ReDo, CBP): only the touched moments, anchors kept, and
    # per-kernel summaries (NaP's norms) keep their shapes.
    reset = make_method("layer_reset", {"layers": ["critic/layer_1"], "reset_opt_state": True})
    new = jax.jit(lambda s: reset.intervention.apply(s, obs, jax.random.PRNGKey(3), {}, events(),
                                                  ctx))(learner)
    chex.assert_trees_all_equal_shapes_and_dtypes(new.opt_state, learner.opt_state)
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, _anchors(new.opt_state)), before)
    mu, mu_old = _unwrap(new.opt_state)["adam"].mu, adam.mu
    assert not np.asarray(mu["params"]["critic"]["layer_1"]["kernel"]).any()
    chex.assert_trees_all_equal(mu["params"]["actor"], mu_old["params"]["actor"])
    assert int(_unwrap(new.opt_state)["adam"].count) == 3


# ----------------------------------------------------------------------------- HL-Gauss


def test_hl_gauss_target_and_value():
    y = jnp.array([-3.0, 0.0, 2.5, 50.0])
    p = hl_gauss_target(y, -10.0, 10.0, 51, 0.75)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
    v = hl_gauss_value(jnp.log(p + 1e-30), -10.0, 10.0)
    np.testing.assert_allclose(v[:3], y[:3], atol=0.05)
    assert float(v[3]) == pytest.approx(10.0, abs=0.3)  # clipped to the support
    hp = {"v_min": -10.0, "v_max": 10.0, "sigma_ratio": 0.75}
    g = jax.grad(hl_gauss_loss)(jnp.zeros((4, 51)), y, hp)
    assert np.isfinite(np.asarray(g)).all()
    spec = make_method("hl_gauss", {"num_bins": 21}).network(NetworkSpec())
    assert spec.option("value_bins") == 21


# ----------------------------------------------------------------------------- jit/vmap


ALL = ("plasticity_injection", "redo", "layer_reset", "continual_backprop",
       "neuroplastic_expansion", "hare_tortoise", "opt_reset")


@pytest.fixture(scope="module")
def composite():
    """All interventions composed in one program, every schedule firing, vmapped over 2 seeds."""
    methods = [make_method(n) for n in ALL]
    spec = compose.edit_network(NetworkSpec(torso="mlp", hidden_sizes=(8, 8), activation="relu"),
                                methods)
    _, ctx = build(spec, (6,), True)
    obs = jax.random.normal(jax.random.PRNGKey(1), (8, 6))
    hps = {m.name: hp_of(m, period=1.0, maturity=0.0, replacement_rate=0.5) for m in methods}
    ev = events(step=2, switched=True)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    learners = jax.vmap(lambda k: learner_for(ctx, k, methods, hps))(keys)

    def run(s, k):
        return compose.apply_interventions(methods, s, obs, k, hps, ev, ctx)

    out = jax.jit(jax.vmap(run))(learners, keys)
    return {"run": run, "ctx": ctx, "methods": methods, "hps": hps, "keys": keys,
            "learners": learners, "out": out}


def test_all_interventions_jit_and_vmap_over_two_seeds(composite):
    out, learners = composite["out"], composite["learners"]
    chex.assert_trees_all_equal_structs(out, learners)
    chex.assert_trees_all_equal_shapes_and_dtypes(out, learners)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(out)
               if jnp.issubdtype(x.dtype, jnp.floating))
    assert not np.array_equal(out.params["params"]["actor"]["layer_0"]["kernel"][0],
                              out.params["params"]["actor"]["layer_0"]["kernel"][1])


@pytest.mark.slow
def test_vmapped_seed_equals_the_seed_alone(composite):
    k = composite["keys"][1]
    alone = jax.jit(composite["run"])(
        learner_for(composite["ctx"], k, composite["methods"], composite["hps"]), k)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], composite["out"]), alone,
                                atol=1e-6)


@pytest.mark.slow
def test_redo_through_ppo_end_to_end():
    """ReDo every update inside the compiled PPO program: finite, one compile."""
    from plasticine_jax.config import load_config
    from plasticine_jax.runner.plan import plan
    from plasticine_jax.runner.program import Program
    from tests.conftest import tiny

    cfg = load_config(data=tiny(
        agent={"num_steps": 16, "num_minibatches": 2, "update_epochs": 2,
               "network": {"hidden_sizes": [16, 16], "activation": "relu"}},
        methods=[{"name": "redo", "hp": {"period": 1, "tau": 0.1}}],
    ))
    (group,) = plan(cfg)
    program = Program(group)
    states = program.init()
    before = jax.tree.map(np.asarray, states.members.learner.params)
    states, out = program.run_chunk(states, 0)
    assert program.compiles == 1
    for k in ("pg_loss", "v_loss", "grad_norm"):
        assert np.isfinite(out[k]).all(), k
    assert np.isfinite(np.asarray(jax.tree.leaves(states.members.learner.params)[0])).all()
    assert not np.array_equal(jax.tree.leaves(before)[0],
                              np.asarray(jax.tree.leaves(states.members.learner.params)[0]))
