"""Per-method invariants for the optimizer, penalty and network-edit methods (no agent)."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plasticine_jax.envs.core import DiscreteActions
from plasticine_jax.methods import compose, make_method
from plasticine_jax.methods.kron import kron_tx
from plasticine_jax.methods.nap import nap_tx
from plasticine_jax.methods.parseval import parseval_term
from plasticine_jax.methods.shrink_perturb import shrink_perturb_tx
from plasticine_jax.methods.trac import trac_tx
from plasticine_jax.methods.weight_clipping import weight_clipping_tx
from plasticine_jax.networks import ActorCritic, NetworkSpec
from plasticine_jax.networks.init import orthogonal

KEY = jax.random.PRNGKey(0)


@functools.cache
def tiny_params(norm: str = "none", activation: str = "tanh", hidden=(8, 8)):
    net = ActorCritic(
        NetworkSpec(hidden_sizes=hidden, norm=norm, activation=activation), DiscreteActions(3)
    )
    return net, jax.jit(net.init)(KEY, jnp.zeros((1, 4)))


def random_like(tree, key, scale=0.1):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef,
        [scale * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)],
    )


def hp_of(name, **override):
    m = make_method(name)
    return {k: jnp.asarray(v, jnp.float32) for k, v in {**m.hp, **override}.items()}


# --------------------------------------------------------------------- shrink & perturb


@pytest.mark.parametrize("perturb", ["fresh", "init"])
def test_shrink_perturb_identity(perturb):
    _, params = tiny_params()
    grads = random_like(params, jax.random.PRNGKey(1))
    base = optax.adam(1e-3)
    tx = shrink_perturb_tx(base, hp_of("shrink_perturb", shrink=1.0, perturb=0.0), perturb)
    u, _ = jax.jit(lambda g, p: tx.update(g, tx.init(p), p, key=KEY))(grads, params)
    u_ref, _ = jax.jit(lambda g, p: base.update(g, base.init(p), p))(grads, params)
    chex.assert_trees_all_equal(u, u_ref)


def test_shrink_perturb_init_formula():
    _, params = tiny_params()
    init = params
    moved = jax.tree.map(lambda x: x + 0.5, params)
    zero = optax.set_to_zero()
    tx = shrink_perturb_tx(zero, hp_of("shrink_perturb", shrink=0.9, perturb=0.1), "init")
    state = tx.init(init)
    u, _ = tx.update(jax.tree.map(jnp.zeros_like, params), state, moved, key=KEY)
    new = optax.apply_updates(moved, u)
    chex.assert_trees_all_close(
        new, jax.tree.map(lambda m, i: 0.9 * m + 0.1 * i, moved, init), atol=1e-6
    )


def test_shrink_perturb_fresh_matches_init_distribution():
    _, params = tiny_params()
    tx = shrink_perturb_tx(optax.set_to_zero(), hp_of("shrink_perturb", shrink=0.0, perturb=1.0))
    zeros = jax.tree.map(jnp.zeros_like, params)
    step = jax.jit(lambda k: tx.update(zeros, tx.init(params), params, key=k)[0])
    u1, u2 = step(jax.random.PRNGKey(1)), step(jax.random.PRNGKey(2))
    f1, f2 = optax.apply_updates(params, u1), optax.apply_updates(params, u2)
    k = ("params", "actor", "layer_1", "kernel")
    get = lambda t: t[k[0]][k[1]][k[2]][k[3]]  # noqa: E731
    # a fresh orthogonal draw with the initial gain: same norm, different values
    np.testing.assert_allclose(jnp.linalg.norm(get(f1)), jnp.linalg.norm(get(params)), rtol=1e-5)
    assert not np.allclose(get(f1), get(f2))
    w = get(f1) / jnp.sqrt(2.0)
    np.testing.assert_allclose(w.T @ w, jnp.eye(8), atol=1e-4)
    # constant leaves (zero biases) are redrawn as their constant
    chex.assert_trees_all_equal(f1["params"]["actor"]["layer_1"]["bias"], jnp.zeros(8))


# --------------------------------------------------------------------- NaP


def test_nap_returns_weights_to_initial_norm():
    _, params = tiny_params(norm="layernorm")
    tx = nap_tx(optax.sgd(0.5), {})
    state = tx.init(params)
    p = params
    for i in range(3):
        grads = random_like(p, jax.random.PRNGKey(i + 1), scale=1.0)
        u, state = tx.update(grads, state, p)
        p = optax.apply_updates(p, u)
    for torso in ("actor", "critic"):
        for layer in ("layer_0", "layer_1"):
            np.testing.assert_allclose(
                jnp.linalg.norm(p["params"][torso][layer]["kernel"]),
                jnp.linalg.norm(params["params"][torso][layer]["kernel"]),
                rtol=1e-5,
            )
            assert not np.allclose(
                p["params"][torso][layer]["kernel"], params["params"][torso][layer]["kernel"]
            )
        for norm in ("norm_0", "norm_1"):
            np.testing.assert_allclose(
                optax.global_norm(p["params"][torso][norm]),
                optax.global_norm(params["params"][torso][norm]),
                rtol=1e-5,
            )
    np.testing.assert_allclose(
        jnp.linalg.norm(p["params"]["actor_head"]["kernel"]),
        jnp.linalg.norm(params["params"]["actor_head"]["kernel"]),
        rtol=1e-5,
    )
    # dense biases are free
    assert jnp.linalg.norm(p["params"]["actor"]["layer_0"]["bias"]) > 0


def test_nap_one_step_equals_hand_projection():
    """Conv and dense kernels each go back to their initial norm; each LayerNorm's (scale,
    offset) pair goes back *jointly* to its initial norm; biases are free."""
    net = ActorCritic(
        NetworkSpec(torso="minatar_cnn", hidden_sizes=(8,), norm="layernorm", activation="relu"),
        DiscreteActions(3),
    )
    params = jax.tree.map(np.asarray, net.init(KEY, jnp.zeros((1, 5, 5, 2))))
    grads = jax.tree.map(np.asarray, random_like(params, jax.random.PRNGKey(4), scale=1.0))
    tx = nap_tx(optax.sgd(0.5), {})
    u, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, u)
    stepped = jax.tree.map(lambda p, g: p - 0.5 * g, params, grads)
    want = jax.tree.map(np.copy, stepped)
    p0, p1, w = params["params"], stepped["params"], want["params"]
    for mod in ("actor/layer_0", "actor/layer_1", "critic/layer_0", "critic/layer_1",
                "actor_head", "critic_head"):
        get = lambda t, m=mod: functools.reduce(lambda d, k: d[k], m.split("/"), t)  # noqa: E731
        get(w)["kernel"] = get(p1)["kernel"] * (
            np.linalg.norm(get(p0)["kernel"]) / np.linalg.norm(get(p1)["kernel"])
        )
    for torso in ("actor", "critic"):
        for norm in ("norm_0", "norm_1"):
            n0 = np.sqrt(sum(np.sum(x**2) for x in p0[torso][norm].values()))
            n1 = np.sqrt(sum(np.sum(x**2) for x in p1[torso][norm].values()))
            for leaf in ("scale", "bias"):
                w[torso][norm][leaf] = p1[torso][norm][leaf] * (n0 / n1)
            # Jointly, not one by one: the offset (0 at init) moved, so the scale's own norm
            # is below its initial norm.
            assert np.abs(new["params"][torso][norm]["bias"]).max() > 0.1
            assert np.linalg.norm(new["params"][torso][norm]["scale"]) < 0.99 * np.linalg.norm(
                p0[torso][norm]["scale"]
            )
    chex.assert_trees_all_close(new, want, rtol=1e-5, atol=1e-6)


def test_nap_edits_network_to_layernorm():
    spec = compose.edit_network(NetworkSpec(), [make_method("nap")])
    assert spec.norm == "layernorm"
    assert compose.edit_network(NetworkSpec(), [make_method("layer_norm")]).norm == "layernorm"


# --------------------------------------------------------------------- penalties


def test_l2_gradient_is_coef_theta():
    _, params = tiny_params()
    m = make_method("l2")
    g = jax.grad(lambda p: m.penalty(p, p, {"coef": 0.3}))(params)
    chex.assert_trees_all_close(g, jax.tree.map(lambda x: 0.3 * x, params), rtol=1e-6)


def test_l2_decoupled_update():
    _, params = tiny_params()
    m = make_method("l2", {"variant": "decoupled"})
    tx = m.optimizer(optax.set_to_zero(), {"coef": jnp.float32(0.1)})
    u, _ = tx.update(params, tx.init(params), params)
    chex.assert_trees_all_close(u, jax.tree.map(lambda x: -0.1 * x, params), rtol=1e-6)


def test_l2_init_gradients_hand_derived():
    _, anchor = tiny_params()
    params = random_like(anchor, jax.random.PRNGKey(3))
    diff = jax.tree.map(jnp.subtract, params, anchor)
    dist = jnp.sqrt(sum(jnp.sum(d**2) for d in jax.tree.leaves(diff)))
    sq = make_method("l2_init", {"variant": "squared"})
    g = jax.grad(lambda p: sq.penalty(p, anchor, {"coef": 0.2}))(params)
    chex.assert_trees_all_close(g, jax.tree.map(lambda d: 0.4 * d, diff), rtol=1e-5)
    un = make_method("l2_init")
    assert dict(un.options) == {} and un.hp["coef"] == 0.01
    g = jax.grad(lambda p: un.penalty(p, anchor, {"coef": 0.01}))(params)
    chex.assert_trees_all_close(g, jax.tree.map(lambda d: 0.01 * d / dist, diff), rtol=1e-5)
    np.testing.assert_allclose(un.penalty(params, anchor, {"coef": 0.01}), 0.01 * dist, rtol=1e-5)
    # at the anchor the unsquared norm's gradient is finite (0)
    g0 = jax.grad(lambda p: un.penalty(p, anchor, {"coef": 0.01}))(anchor)
    chex.assert_trees_all_equal(g0, jax.tree.map(jnp.zeros_like, anchor))


def test_parseval_zero_on_orthogonal_and_hand_value():
    w = jax.jit(lambda k: orthogonal(1.0)(k, (16, 8)))(
        KEY
    )  # orthonormal columns: W = wᵀ has orthonormal rows
    assert float(parseval_term(w, 1.0)) < 1e-10
    np.testing.assert_allclose(parseval_term(2.0 * jnp.eye(3), 1.0), 3 * 9.0, rtol=1e-6)
    _, params = tiny_params()
    m = make_method("parseval")
    p = jax.tree.map(lambda x: x, params)
    # orthogonal init with gain sqrt(2): W Wᵀ = 2 I, so with s = 2 the penalty vanishes
    assert float(m.penalty(p, p, {"coef": 1.0, "scale": 2.0})) < 1e-8
    val = m.penalty(p, p, {"coef": 1e-3, "scale": 1.0})
    np.testing.assert_allclose(val, 1e-3 * 2 * 8 * 1.0, rtol=1e-4)  # 2 layers × ‖I‖² = 8
    m_all = make_method("parseval", {"layers": ["hidden", "heads"]})
    assert float(m_all.penalty(p, p, {"coef": 1.0, "scale": 1.0})) > float(val) / 1e-3


# --------------------------------------------------------------------- network edits


@pytest.mark.parametrize("name", ["crelu", "fourier"])
def test_widening_activation_doubles_width(name):
    spec = compose.edit_network(NetworkSpec(hidden_sizes=(8, 8)), [make_method(name)])
    assert spec.activation == name
    net = ActorCritic(spec, DiscreteActions(3))
    params = net.init(KEY, jnp.zeros((1, 4)))
    assert params["params"]["actor"]["layer_1"]["kernel"].shape == (16, 8)
    assert params["params"]["actor_head"]["kernel"].shape == (16, 3)
    out = net.apply(params, jnp.ones((2, 4)))
    assert out.features["actor"].shape == (2, 16)


# --------------------------------------------------------------------- TRAC and Kron


def quadratic_run(make_tx, steps=200, extra_key=False):
    a = jnp.diag(jnp.array([1.0, 4.0, 0.5]))
    target = jnp.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
    loss = lambda p: jnp.sum(((p["w"] - target) @ a) ** 2) + jnp.sum((p["b"] - 1.0) ** 2)  # noqa: E731
    params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros((3,))}
    tx = make_tx()
    state = tx.init(params)

    def step(carry, k):
        p, s = carry
        g = jax.grad(loss)(p)
        u, s = tx.update(g, s, p, key=k)
        return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, jax.random.split(KEY, steps)))(
        (params, state)
    )
    return float(loss(params)), float(loss(p))


def test_trac_reduces_quadratic():
    hp = hp_of("trac")
    before, after = quadratic_run(lambda: trac_tx(optax.adam(1e-2), hp))
    assert after < 0.1 * before


def test_trac_disabled_is_base():
    hp = hp_of("trac", enabled=0.0)
    _, params = tiny_params()
    grads = random_like(params, jax.random.PRNGKey(1))
    tx, base = trac_tx(optax.adam(1e-3), hp), optax.adam(1e-3)
    u, _ = tx.update(grads, tx.init(params), params)
    chex.assert_trees_all_equal(u, base.update(grads, base.init(params), params)[0])


def _trac_midrun(tx, params, key):
    """A TRAC state after three steps, so that x != θ_ref and the tuners have moved."""
    state = tx.init(params)
    for k in jax.random.split(key, 3):
        u, state = tx.update(random_like(params, k, 1.0), state, params, max_grad_norm=0.1)
        params = optax.apply_updates(params, u)
    return params, state


def test_trac_h_reads_the_clipped_gradient():
    # TRAC around chain(clip, adam) told the threshold equals TRAC around adam fed the
    # clipped gradient: h and the base update both see the clipped gradient.
    hp = hp_of("trac", s_prev=1e-3)
    _, params = tiny_params()
    clipped = trac_tx(optax.chain(optax.clip_by_global_norm(0.1), optax.adam(1e-3)), hp)
    params, state = _trac_midrun(clipped, params, jax.random.PRNGKey(2))
    grads = random_like(params, jax.random.PRNGKey(3), 1.0)
    assert float(optax.global_norm(grads)) > 10 * 0.1
    u, new = clipped.update(grads, state, params, max_grad_norm=0.1)
    g_clipped, _ = optax.clip_by_global_norm(0.1).update(grads, optax.EmptyState())
    plain = trac_tx(optax.adam(1e-3), hp)
    plain_state = state._replace(inner=state.inner[1])
    u_ref, ref = plain.update(g_clipped, plain_state, params)
    chex.assert_trees_all_close(u, u_ref, rtol=1e-5, atol=1e-8)
    chex.assert_trees_all_close((new.s, new.sigma, new.variance), (ref.s, ref.sigma, ref.variance))
    # Reading the raw gradient (no threshold) gives other tuner statistics.
    _, raw = clipped.update(grads, state, params)
    assert not np.allclose(raw.sigma, new.sigma, rtol=1e-3)


def test_trac_reference_point_is_taken_at_the_first_step():
    # The reference records θ_ref on the first step() (lazy _init_state), not at construction.
    hp = hp_of("trac")
    _, params = tiny_params()
    tx = trac_tx(optax.adam(1e-3), hp)
    state = tx.init(jax.tree.map(jnp.zeros_like, params))
    _, state = tx.update(random_like(params, jax.random.PRNGKey(1)), state, params)
    chex.assert_trees_all_equal(state.theta_ref, params)
    assert int(state.count) == 1
    moved = jax.tree.map(lambda x: x + 1.0, params)
    _, state = tx.update(random_like(params, jax.random.PRNGKey(2)), state, moved)
    chex.assert_trees_all_equal(state.theta_ref, params)


@pytest.mark.parametrize("variant", ["kron_torch", "psgd_jax"])
def test_kron_reduces_quadratic(variant):
    m = make_method("kron", {"variant": variant})
    hp = {k: jnp.float32(v) for k, v in m.hp.items()}
    base = optax.inject_hyperparams(optax.sgd)(learning_rate=0.05)  # Kron's learning rate
    before, after = quadratic_run(lambda: kron_tx(base, hp, variant=variant), steps=300)
    assert after < 0.05 * before


@pytest.mark.parametrize("variant", ["kron_torch", "psgd_jax"])
def test_kron_reads_base_learning_rate_and_uses_key(variant):
    m = make_method("kron", {"variant": variant})
    hp = {k: jnp.float32(v) for k, v in m.hp.items()}
    base = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)
    params = {"layer": {"kernel": jnp.ones((6, 4)), "bias": jnp.ones((4,))}}
    grads = random_like(params, jax.random.PRNGKey(1))
    tx = kron_tx(base, hp, variant=variant)
    u, _ = jax.jit(lambda g: tx.update(g, tx.init(params), params, key=KEY))(grads)
    assert all(float(jnp.max(jnp.abs(x))) == 0.0 for x in jax.tree.leaves(u))
    tx = kron_tx(optax.inject_hyperparams(optax.adam)(learning_rate=1.0), hp, variant=variant)
    state = tx.init(params)
    # after the first (always-updating) step, different keys give different preconditioners
    step = jax.jit(lambda k: tx.update(grads, state, params, key=k)[1])
    s1, s2 = step(jax.random.PRNGKey(1)), step(jax.random.PRNGKey(2))
    q1 = s1.kron.qs["layer"]["kernel"][0]
    q2 = s2.kron.qs["layer"]["kernel"][0]
    assert not np.allclose(q1, q2)
    np.testing.assert_allclose(q1, jnp.triu(q1))


@pytest.mark.parametrize("variant", ["kron_torch", "psgd_jax"])
def test_kron_randomness_differs_between_vmapped_seeds(variant):
    m = make_method("kron", {"variant": variant})
    hp = {k: jnp.float32(v) for k, v in m.hp.items()}
    params = {"layer": {"kernel": jnp.ones((6, 4)), "bias": jnp.ones((4,))}}
    grads = random_like(params, jax.random.PRNGKey(1))
    tx = kron_tx(optax.inject_hyperparams(optax.adam)(learning_rate=1.0), hp, variant=variant)
    step = lambda k: tx.update(grads, tx.init(params), params, key=k)  # noqa: E731
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    u, s = jax.jit(jax.vmap(step))(keys)
    q = s.kron.qs["layer"]["kernel"][0]
    chex.assert_shape(q, (2, 6, 6))
    assert not np.allclose(q[0], q[1])
    assert not np.allclose(u["layer"]["kernel"][0], u["layer"]["kernel"][1])
    # each vmapped seed is that seed's own run; equal keys give equal draws
    alone = jax.jit(step)(keys[1])
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], (u, s)), alone, rtol=1e-5,
                                atol=1e-7)
    u_same, _ = jax.jit(jax.vmap(step))(jnp.stack([keys[0], keys[0]]))
    np.testing.assert_array_equal(u_same["layer"]["kernel"][0], u_same["layer"]["kernel"][1])


# --------------------------------------------------------------------- SAM


def test_sam_uses_gradient_at_perturbed_point():
    loss = lambda p: jnp.sum(p["w"] ** 4)  # noqa: E731
    params = {"w": jnp.array([1.0, -2.0])}
    grad_fn = jax.grad(loss)
    g = grad_fn(params)
    tx = make_method("sam").optimizer(optax.identity(), {"rho": jnp.float32(0.1)})
    u, _ = tx.update(g, tx.init(params), params, grad_fn=grad_fn)
    eps = 0.1 * g["w"] / jnp.linalg.norm(g["w"])
    np.testing.assert_allclose(u["w"], 4 * (params["w"] + eps) ** 3, rtol=1e-5)
    tx0 = make_method("sam").optimizer(optax.identity(), {"rho": jnp.float32(0.0)})
    u0, _ = tx0.update(g, tx0.init(params), params, grad_fn=grad_fn)
    chex.assert_trees_all_close(u0, g)
    with pytest.raises(ValueError, match="grad_fn"):
        tx.update(g, tx.init(params), params)


# --------------------------------------------------------------------- weight clipping


def test_weight_clipping_bounds():
    _, params = tiny_params()
    tx = weight_clipping_tx(optax.sgd(10.0), {"kappa": jnp.float32(2.0)})
    state = tx.init(params)
    grads = random_like(params, jax.random.PRNGKey(5), scale=5.0)
    u, _ = tx.update(grads, state, params)
    new = optax.apply_updates(params, u)
    for torso in ("actor", "critic"):
        for layer in ("layer_0", "layer_1"):
            b = jnp.max(jnp.abs(params["params"][torso][layer]["kernel"]))
            for leaf in ("kernel", "bias"):
                x = new["params"][torso][layer][leaf]
                assert float(jnp.max(jnp.abs(x))) <= 2 * float(b) * (1 + 1e-5)
                assert float(jnp.max(jnp.abs(x))) > 1.9 * float(b)  # it did bind
    inf_tx = weight_clipping_tx(optax.sgd(10.0), {"kappa": jnp.float32(jnp.inf)})
    u_inf, _ = inf_tx.update(grads, inf_tx.init(params), params)
    chex.assert_trees_all_equal(
        u_inf, optax.sgd(10.0).update(grads, optax.sgd(10.0).init(params), params)[0]
    )


# --------------------------------------------------------------------- user transforms


def test_user_transform_by_import_path():
    m = make_method("tests.user_methods:scaled_sign")
    assert m.hp == {"scale": 1e-3} and m.identity_hp is None
    _, params = tiny_params()
    grads = random_like(params, jax.random.PRNGKey(1))
    tx = compose.wrap_optimizer(optax.sgd(1.0), [m], {m.name: {"scale": jnp.float32(0.5)}})
    u, _ = jax.jit(lambda g, s, p: tx.update(g, s, p, key=KEY))(grads, tx.init(params), params)
    chex.assert_trees_all_equal(u, jax.tree.map(lambda g: -0.5 * jnp.sign(g), grads))
    noise = make_method("tests.user_methods:gradient_noise", {"chain": "before"})
    assert noise.identity_hp == {"std": 0.0}
    tx = compose.wrap_optimizer(optax.sgd(1.0), [noise], {noise.name: {"std": jnp.float32(0.0)}})
    u, _ = tx.update(grads, tx.init(params), params, key=KEY)
    chex.assert_trees_all_equal(u, jax.tree.map(lambda g: -g, grads))
    with pytest.raises(ValueError, match="no module named"):
        make_method("tests.no_such_module:x")
    with pytest.raises(ValueError, match="has no"):
        make_method("tests.user_methods:nope")
