"""Kron against kron_torch's algorithm (numpy, written here) and the psgd_jax variant's record."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plasticine_jax.config import ConfigError, load_config
from plasticine_jax.methods import make_method
from plasticine_jax.methods.kron import kron_torch_draws, kron_torch_schedule, kron_tx
from plasticine_jax.runner.plan import plan
from tests.conftest import tiny

TARGET = np.array(
    [[1.0, -2.0, 0.5], [0.0, 3.0, -1.0], [2.0, 0.5, 0.0], [-1.0, 1.0, 1.0], [0.5, -0.5, 2.0]]
)
MIX = np.array([[1.0, 0.2, 0.0], [0.0, 2.0, 0.3], [0.1, 0.0, 0.5]])
WEIGHT_B = np.array([1.0, 3.0, 0.3])


def loss(p):
    """A quadratic over a matrix leaf ``w`` [5, 3] and a vector leaf ``b`` [3]."""
    return jnp.sum(((p["w"] - TARGET) @ MIX) ** 2) + jnp.sum(WEIGHT_B * (p["b"] - 1.0) ** 2)


def np_grads(p):
    """``∇loss`` by hand, in numpy."""
    return {"w": 2.0 * (p["w"] - TARGET) @ MIX @ MIX.T, "b": 2.0 * WEIGHT_B * (p["b"] - 1.0)}


def zero_params():
    return {"w": jnp.zeros((5, 3)), "b": jnp.zeros((3,))}


def kron_hp(variant="kron_torch", **override):
    m = make_method("kron", {"variant": variant})
    return {k: jnp.float32(v) for k, v in {**m.hp, **override}.items()}


def sgd(lr):
    return optax.inject_hyperparams(optax.sgd)(learning_rate=lr)


# --------------------------------------------------------------- kron_torch, in numpy


def reference_fires(steps, flat_start=500.0, decay=0.001, min_prob=0.03):
    """kron_torch's ``Kron.step`` decision per step (float32, as its tensors are)."""
    f32 = np.float32
    fires, counter = [], 0
    for prob_step in range(steps):
        prob = f32(1.0) * np.exp(-f32(decay) * (f32(prob_step) - f32(flat_start)))
        prob = np.clip(prob, f32(min_prob), f32(1.0))
        counter += 1
        fire = f32(counter) >= f32(1.0) / prob
        if fire:
            counter = 0
        fires.append(bool(fire))
    return np.array(fires)


def _lower_bound(a):
    """kron_torch's ``_lb``: a lower bound on the spectral norm of ``a``."""
    max_abs = np.max(np.abs(a))
    a = a / max_abs
    x = a[:, np.argmax(np.sum(a * a, axis=0))]
    x = x @ a
    x = x / np.linalg.norm(x)
    return np.linalg.norm(a @ x) * max_abs


def _reference_precond_update(qs, g, v, precond_lr):
    """kron_torch's ``_update_precond`` for a matrix (two triangular Q) or a vector (one)."""
    if g.ndim == 1:
        (q,) = qs
        a, b = q * g, v / q
        t1, t2 = a * a, b * b
        return [q - precond_lr * (t1 - t2) * q / np.max(np.abs(t1 + t2))]
    q1, q2 = qs
    a = q1 @ g @ q2.T
    b = np.linalg.inv(q1).T @ v @ np.linalg.inv(q2)
    new = []
    for q, (t1, t2) in zip(qs, [(a @ a.T, b @ b.T), (a.T @ a, b.T @ b)], strict=True):
        term = np.triu(precond_lr * (t1 - t2)) / _lower_bound(t1 + t2)
        new.append(q - term @ q)
    return new


def _reference_precondition(qs, g):
    if g.ndim == 1:
        return qs[0] ** 2 * g
    q1, q2 = qs
    return q1.T @ q1 @ g @ q2.T @ q2


def reference_kron_torch(params, keys, lr, b1, precond_lr, flat_start, decay, min_prob):
    """kron_torch 0.3.3's ``Kron.step`` on ``params``, step by step, in float64 numpy.

    The random draws (probe ``V``, rebalance coin) are taken from ours for the same key;
    everything else follows the reference: debiased momentum, the deterministic counter,
    the probe damping added to the momentum in place, the per-leaf RMS clip.
    """
    names = ["b", "w"]  # our flattening order
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    mu = {k: np.zeros_like(v) for k, v in p.items()}
    qs = {"w": [np.eye(5), np.eye(3)], "b": [np.ones(3)]}
    fires = reference_fires(len(keys), flat_start, decay, min_prob)
    history = []
    for t, key in enumerate(keys, start=1):
        rebalance, probes = kron_torch_draws(key, [p[k].shape for k in names])
        grads = np_grads(p)
        for k, v in zip(names, probes, strict=True):
            v = np.asarray(v, np.float64)
            mu[k] = b1 * mu[k] + (1 - b1) * grads[k]
            m_hat = mu[k] / (1 - b1**t)
            if bool(rebalance) and fires[t - 1] and m_hat.ndim > 1:
                norms = np.array([np.max(np.abs(q)) for q in qs[k]])
                gmean = np.exp(np.mean(np.log(norms)))
                qs[k] = [q * gmean / n for q, n in zip(qs[k], norms, strict=True)]
            if fires[t - 1]:
                m_hat = m_hat + np.sqrt(np.finfo(np.float32).eps) * np.mean(np.abs(m_hat)) * v
                qs[k] = _reference_precond_update(qs[k], m_hat, v, precond_lr)
            pre = _reference_precondition(qs[k], m_hat)
            pre = pre * min(1.0, 1.1 / (np.sqrt(np.mean(pre**2)) + 1e-12))
            p[k] = p[k] - lr * pre
        history.append({k: v.copy() for k, v in p.items()})
    return history, qs


def run_ours(tx, keys, params=None):
    """Our transform on ``loss``; params after each step and the final state."""
    params = zero_params() if params is None else params

    def step(carry, k):
        p, s = carry
        u, s = tx.update(jax.grad(loss)(p), s, p, key=k)
        p = optax.apply_updates(p, u)
        return (p, s), p

    (_, state), history = jax.jit(lambda c: jax.lax.scan(step, c, keys))((params, tx.init(params)))
    return history, state


def test_matches_numpy_kron_torch_step_by_step():
    hp = dict(b1=0.9, precond_lr=0.1, flat_start=2.0, decay=0.7, min_prob=0.25)
    keys = jax.random.split(jax.random.PRNGKey(3), 12)
    # the schedule refreshes the preconditioner on steps 1, 2, 3, then every 4th
    fires = reference_fires(12, hp["flat_start"], hp["decay"], hp["min_prob"])
    np.testing.assert_array_equal(np.flatnonzero(fires) + 1, [1, 2, 3, 7, 11])
    expected, expected_qs = reference_kron_torch(zero_params(), keys, 0.1, **hp)
    history, state = run_ours(kron_tx(sgd(0.1), kron_hp(**hp)), keys)
    for t, want in enumerate(expected):
        for k in ("w", "b"):
            np.testing.assert_allclose(
                history[k][t], want[k], rtol=1e-4, atol=1e-6, err_msg=f"step {t + 1}, leaf {k}"
            )
    for ours, want in zip(
        state.kron.qs["w"] + state.kron.qs["b"], expected_qs["w"] + expected_qs["b"], strict=True
    ):
        np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-6)
    assert all(q.dtype == jnp.float32 for q in jax.tree.leaves(state.kron.qs))


def test_first_updates_are_debiased_momentum():
    """With the preconditioner frozen at I and a constant gradient, debiased momentum is the
    gradient from the first step on; psgd_jax's undebiased momentum is (1 − 0.9ᵗ) of it."""
    params = {"w": jnp.ones((4, 3)), "b": jnp.ones((3,))}
    grads = {"w": 0.01 * jnp.linspace(0.5, 1.5, 12).reshape(4, 3), "b": jnp.full((3,), -0.02)}
    for variant, fraction in (("kron_torch", [1.0, 1.0, 1.0]), ("psgd_jax", [0.1, 0.19, 0.271])):
        tx = kron_tx(sgd(0.1), kron_hp(variant, precond_lr=0.0), variant=variant)
        state = tx.init(params)
        for t, key in enumerate(jax.random.split(jax.random.PRNGKey(0), 3)):
            u, state = jax.jit(tx.update)(grads, state, params, key=key)
            # kron_torch's probe damping perturbs the momentum by ~3e-4 of its mean magnitude
            chex.assert_trees_all_close(
                u, jax.tree.map(lambda g, f=fraction[t]: -0.1 * f * g, grads), rtol=5e-3
            )


def test_update_counter_fires_on_the_reference_schedule():
    fires, counter = [], jnp.int32(0)
    hp = kron_hp()
    want = reference_fires(6000)
    schedule = jax.jit(kron_torch_schedule)
    ours = []
    for n in range(6000):
        fire, counter = schedule(jnp.int32(n), counter, hp)
        ours.append(bool(fire))
    fires = np.array(ours)
    np.testing.assert_array_equal(fires, want)
    # flat for steps 1..501 (prob_step 0..500), then the first gap is 2 steps
    assert fires[:501].all() and not fires[501] and fires[502]
    # decayed to min_prob 0.03: every 34th step
    np.testing.assert_array_equal(np.diff(np.flatnonzero(fires))[-20:], 34)


def test_update_schedule_is_traced_per_member():
    """Inside jit(vmap): flat_start is a traced hyperparameter, the step count is state."""
    hp = kron_hp()

    def run(flat_start):
        def step(counter, n):
            fire, counter = kron_torch_schedule(n, counter, {**hp, "flat_start": flat_start})
            return counter, fire

        return jax.lax.scan(step, jnp.int32(0), jnp.arange(1200, dtype=jnp.int32))[1]

    fires = jax.jit(jax.vmap(run))(jnp.array([500.0, 100.0]))
    np.testing.assert_array_equal(fires[0], reference_fires(1200, flat_start=500.0))
    np.testing.assert_array_equal(fires[1], reference_fires(1200, flat_start=100.0))


def test_preconditioner_changes_only_on_fired_steps():
    hp = kron_hp(flat_start=3.0, decay=0.5, min_prob=0.2)
    tx = kron_tx(sgd(0.01), hp)
    params, changed = zero_params(), []
    state = tx.init(params)
    step = jax.jit(lambda g, s, k: tx.update(g, s, params, key=k)[1])
    for k in jax.random.split(jax.random.PRNGKey(2), 20):
        new = step(jax.grad(loss)(params), state, k)
        changed.append(not np.array_equal(new.kron.qs["w"][0], state.kron.qs["w"][0]))
        state = new
    np.testing.assert_array_equal(changed, reference_fires(20, 3.0, 0.5, 0.2))


def test_update_rms_is_clipped_per_leaf():
    params = {"w": jnp.zeros((4, 3)), "b": jnp.zeros((3,))}
    grads = {
        "w": 10.0 * jnp.linspace(-1.0, 2.0, 12).reshape(4, 3),
        "b": jnp.array([0.01, -0.02, 0.03]),
    }
    tx = kron_tx(sgd(1.0), kron_hp(precond_lr=0.0))
    u, _ = jax.jit(tx.update)(grads, tx.init(params), params, key=jax.random.PRNGKey(0))
    rms = lambda x: float(jnp.sqrt(jnp.mean(x * x)))  # noqa: E731
    np.testing.assert_allclose(rms(u["w"]), 1.1, rtol=1e-5)
    np.testing.assert_allclose(u["w"], -1.1 * grads["w"] / rms(grads["w"]), rtol=1e-2, atol=1e-3)
    # the small leaf is not scaled down by the large one (no global clip)
    np.testing.assert_allclose(u["b"], -grads["b"], rtol=5e-3)


def test_learning_rate_is_the_base_optimizers():
    params = {"w": jnp.ones((4, 3)), "b": jnp.ones((3,))}
    grads = {"w": 0.1 * jnp.linspace(-1.0, 1.0, 12).reshape(4, 3), "b": jnp.ones((3,))}
    hp = kron_hp()
    keys = jax.random.split(jax.random.PRNGKey(4), 2)

    def updates(base):
        tx = kron_tx(base, hp)
        s, out = tx.init(params), []
        for k in keys:
            u, s = jax.jit(tx.update)(grads, s, params, key=k)
            out.append(u)
        return out

    (a1, a2), (b1, b2) = updates(sgd(0.1)), updates(sgd(0.3))
    chex.assert_trees_all_close((b1, b2), jax.tree.map(lambda x: 3.0 * x, (a1, a2)), rtol=1e-6)
    # a schedule (PPO's anneal) is read at each step: 0.1 then 0.05
    s1, s2 = updates(sgd(lambda count: 0.1 * 0.5**count))
    chex.assert_trees_all_close((s1, s2), (a1, jax.tree.map(lambda x: 0.5 * x, a2)), rtol=1e-6)
    # no injected rate: learning rate 1, said out loud
    with pytest.warns(UserWarning, match="injects no learning_rate"):
        n1, _ = updates(optax.sgd(0.1))
    chex.assert_trees_all_close(n1, jax.tree.map(lambda x: 10.0 * x, a1), rtol=1e-6)


def test_kron_torch_reads_the_gradient_clipped_to_the_agents_max_grad_norm():
    """Plasticine clips before ``Kron.step``; the psgd_jax variant keeps reading it raw."""
    params = {"w": jnp.zeros((4, 3)), "b": jnp.zeros((3,))}
    grads = {"w": jnp.full((4, 3), 2.0), "b": jnp.full((3,), -2.0)}  # global norm √60
    scale = 0.5 / np.sqrt(60.0)
    for variant, factor in (("kron_torch", scale), ("psgd_jax", 1.0)):
        tx = kron_tx(sgd(0.1), kron_hp(variant), variant=variant)
        step = jax.jit(
            functools.partial(tx.update, key=jax.random.PRNGKey(0), max_grad_norm=jnp.float32(0.5))
        )
        _, s = step(grads, tx.init(params), params)
        want = jax.tree.map(lambda g, f=factor: 0.1 * f * g, grads)
        chex.assert_trees_all_close(s.kron.mu, want, rtol=1e-6)


def test_kron_has_no_learning_rate_of_its_own():
    assert "lr" not in make_method("kron").hp
    assert "lr" not in make_method("kron", {"variant": "psgd_jax"}).hp
    data = tiny()
    data["methods"] = [{"name": "kron", "hp": {"lr": 1e-3}}]
    with pytest.raises(ConfigError, match=r"unknown hyperparameter\(s\) \['lr'\]"):
        plan(load_config(data=data))
    with pytest.raises(ValueError, match="unknown variant 'kron'.*'kron_torch', 'psgd_jax'"):
        make_method("kron", {"variant": "kron"})


def test_conv_kernels_merge_into_a_matrix_with_float32_factors():
    """kron_torch's merge rule on a 4-dim leaf picks ``[prod(s[:-1]), s[-1]]``."""
    params = {"conv": jnp.zeros((3, 3, 4, 8), jnp.bfloat16), "b": jnp.zeros((8,), jnp.bfloat16)}
    tx = kron_tx(sgd(0.1), kron_hp())
    state = tx.init(params)
    assert [q.shape for q in state.kron.qs["conv"]] == [(36, 36), (8, 8)]
    assert all(q.dtype == jnp.float32 for q in jax.tree.leaves(state.kron.qs))
    grads = jax.tree.map(lambda x: jnp.ones_like(x) * 0.1, params)
    u, s = jax.jit(functools.partial(tx.update, key=jax.random.PRNGKey(0)))(grads, state, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(u, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(s.kron.mu, params)


def test_default_is_kron_torch_in_code_and_config():
    from pathlib import Path

    import yaml

    m = make_method("kron")
    assert m.hp["flat_start"] == 500.0
    path = Path(__file__).resolve().parents[1] / "configs/methods/kron.yaml"
    (entry,) = yaml.safe_load(path.read_text())["methods"]
    assert entry["options"]["variant"] == "kron_torch"
    assert entry["hp"] == m.hp
    assert make_method("kron", {"variant": "psgd_jax"}).hp["flat_start"] == 200.0


# --------------------------------------------------------------- psgd_jax, as before


# Recorded with plasticine_jax/methods/kron.py at b37ea64 (before the kron_torch variant):
# Adam-injected lr 0.05, flat_start 5, decay 0.2 (so the update coin also skips), 30 steps.
RECORDED_W = np.array([
    [0.8580606, -1.4927281, 0.07742411],
    [0.3720167, 1.4999996, -0.03647274],
    [1.4767985, 0.4338649, 0.3853951],
    [-0.9753784, 0.9003003, 0.49467027],
    [0.7205776, -0.46306247, 1.1472254],
])  # fmt: skip
RECORDED_B = np.array([1.147074, 1.2223647, 0.66050464])
RECORDED_QB = np.array([1.0585289, 0.72361374, 1.1848353])


def test_psgd_jax_variant_matches_its_recorded_run():
    hp = kron_hp("psgd_jax", flat_start=5.0, decay=0.2)
    base = optax.inject_hyperparams(optax.adam)(learning_rate=0.05)
    tx = kron_tx(base, hp, variant="psgd_jax")
    history, state = run_ours(tx, jax.random.split(jax.random.PRNGKey(7), 30))
    np.testing.assert_allclose(history["w"][-1], RECORDED_W, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history["b"][-1], RECORDED_B, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.kron.qs["b"][0], RECORDED_QB, rtol=1e-5)
