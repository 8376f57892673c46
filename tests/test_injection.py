"""Plasticity injection: the switch lives in the optimizer state, never in the parameters.

The injected network's output must equal ``h_old(x) + h_a(x) - h_b(x)``, the three heads
applied by hand to the torso's features, whatever other method acts on the parameters.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plasticine_jax.envs.core import DiscreteActions
from plasticine_jax.methods import REGISTRY, compose, make_method
from plasticine_jax.methods.base import Events, LearnerState, ModelContext
from plasticine_jax.methods.plasticity_injection import NAME, injected_flags
from plasticine_jax.networks import ActorCritic, NetworkSpec

OBS = jax.random.normal(jax.random.PRNGKey(1), (16, 6))
HEADS = {"actor_head": "actor", "critic_head": "critic"}
EVENTS = Events(*(jnp.asarray(v, t) for v, t in (
    (1, jnp.int32), (0, jnp.int32), (True, bool), (0, jnp.int32), (0, jnp.int32),
    (16, jnp.int32))))


def hp_of(m, **over):
    return {k: jnp.asarray(over.get(k, v), jnp.float32) for k, v in m.hp.items()}


@functools.cache
def _setup(names: tuple[str, ...], lr: float = 1e-3, hp_over: tuple = ()):
    """Network, optimizer (PPO's layout wrapped by the methods, first innermost) and a
    jitted training step on a fixed batch, for the methods ``names``."""
    methods = [make_method(n) for n in names]
    spec = compose.edit_network(
        NetworkSpec(torso="mlp", hidden_sizes=(8, 8), activation="relu"), methods)
    net = ActorCritic(spec, DiscreteActions(3))
    ctx = ModelContext(apply=net.apply, init=lambda k: net.init(k, OBS[:1]), spec=spec)
    over = {name: dict(values) for name, values in hp_over}
    hps = {m.name: hp_of(m, **over.get(m.name, {})) for m in methods}
    base = optax.chain(optax.clip_by_global_norm(0.5),
                       optax.inject_hyperparams(optax.adam)(learning_rate=lr))
    tx = compose.wrap_optimizer(base, methods, hps)

    def loss(p, anchor):
        out = net.apply(p, OBS)
        task = jnp.mean((out.policy - jnp.arange(3.0)) ** 2) + jnp.mean((out.value - 1.0) ** 2)
        return task + compose.total_penalty(methods, p, anchor, hps)

    @jax.jit
    def step(learner, key):
        g = jax.grad(loss)(learner.params, learner.init_params)
        u, opt = tx.update(g, learner.opt_state, learner.params, key=key,
                           grad_fn=lambda p: jax.grad(loss)(p, learner.init_params))
        return learner._replace(params=optax.apply_updates(learner.params, u), opt_state=opt)

    @jax.jit
    def init(key):
        params = ctx.init(key)
        states = compose.init_method_states(methods, params, key)
        return LearnerState(params, tx.init(params), params, states)

    inj = next((m for m in methods if m.name == NAME), None)
    inject = inj and jax.jit(lambda s, k: inj.intervention.apply(s, OBS, k, {}, EVENTS, ctx))
    return net, init, step, inject


def _train(step, learner, n, seed=10):
    for i in range(n):
        learner = step(learner, jax.random.PRNGKey(seed + i))
    return learner


def _by_hand(net, params):
    """Each head's output from its three sub-heads, in float64 on the torso's features."""
    feats = jax.jit(net.apply)(params, OBS).features
    out = {}
    for head, torso in HEADS.items():
        h = jax.tree.map(lambda x: np.asarray(x, np.float64), params["params"][head])
        f = np.asarray(feats[torso], np.float64)
        out[head] = ((f @ h["kernel"] + h["bias"]) + (f @ h["kernel_a"] + h["bias_a"])
                     - (f @ h["kernel_b"] + h["bias_b"]))
    return out


def _assert_sum_of_heads(net, params):
    out, want = jax.jit(net.apply)(params, OBS), _by_hand(net, params)
    np.testing.assert_allclose(out.policy, want["actor_head"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.value, want["critic_head"][:, 0], rtol=1e-5, atol=1e-5)


def test_the_switch_is_not_a_parameter_and_survives_an_optimizer_reset():
    net, init, step, inject = _setup((NAME,))
    learner = init(jax.random.PRNGKey(0))
    for head in HEADS:
        assert set(learner.params["params"][head]) == {
            "kernel", "bias", "kernel_a", "bias_a", "kernel_b", "bias_b"}
    assert all(jnp.issubdtype(x.dtype, jnp.floating) for x in jax.tree.leaves(learner.params))
    assert not any(bool(v) for v in injected_flags(learner.opt_state).values())
    learner = inject(learner, jax.random.PRNGKey(3))
    assert all(bool(v) for v in injected_flags(learner.opt_state).values())
    reset = make_method("opt_reset")
    learner = reset.intervention.apply(learner, OBS, None, {}, EVENTS, None)
    assert all(bool(v) for v in injected_flags(learner.opt_state).values())


def test_injection_head_is_dense_until_injection_then_only_h_a_trains():
    net, init, step, inject = _setup((NAME,))
    plain = ActorCritic(NetworkSpec(torso="mlp", hidden_sizes=(8, 8), activation="relu"),
                        DiscreteActions(3))
    learner = init(jax.random.PRNGKey(0))
    # Before injection: the same values and updates as nn.Dense heads, bit for bit.
    _, plain_init, plain_step, _ = _setup(())
    ref = plain_init(jax.random.PRNGKey(0))
    learner, ref = _train(step, learner, 3), _train(plain_step, ref, 3)
    for head in HEADS:
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(learner.params["params"][head][leaf],
                                          ref.params["params"][head][leaf])
        assert not np.asarray(learner.params["params"][head]["kernel_a"]).any()
    chex.assert_trees_all_equal(learner.params["params"]["actor"], ref.params["params"]["actor"])
    np.testing.assert_array_equal(net.apply(learner.params, OBS).policy,
                                  plain.apply(ref.params, OBS).policy)

    new = inject(learner, jax.random.PRNGKey(3))
    before, after = net.apply(learner.params, OBS), net.apply(new.params, OBS)
    np.testing.assert_array_equal(after.policy, before.policy)  # the first fold is exact
    np.testing.assert_array_equal(after.value, before.value)
    head = lambda s: s.params["params"]["actor_head"]  # noqa: E731
    assert np.asarray(head(new)["kernel_a"]).any()
    np.testing.assert_array_equal(head(new)["kernel_a"], head(new)["kernel_b"])
    # After injection h_old and h_b are exactly still, h_a and the encoder train.
    trained = _train(step, new, 3, seed=20)
    for leaf in ("kernel", "bias", "kernel_b", "bias_b"):
        np.testing.assert_array_equal(head(trained)[leaf], head(new)[leaf])
    assert not np.array_equal(head(trained)["kernel_a"], head(new)["kernel_a"])
    assert not np.array_equal(trained.params["params"]["actor"]["layer_1"]["kernel"],
                              new.params["params"]["actor"]["layer_1"]["kernel"])
    _assert_sum_of_heads(net, trained.params)
    # A second injection folds the first and still leaves the outputs unchanged.
    again = inject(trained, jax.random.PRNGKey(4))
    np.testing.assert_allclose(net.apply(again.params, OBS).policy,
                               net.apply(trained.params, OBS).policy, atol=1e-6)
    np.testing.assert_array_equal(head(again)["kernel_a"], head(again)["kernel_b"])


def _parameter_methods() -> list[str]:
    """Every registered method that moves parameters through the optimizer or the loss."""
    return [n for n in sorted(REGISTRY) if n != NAME
            and (make_method(n).optimizer is not None or make_method(n).penalty is not None)]


# Strong enough that a switch stored as a parameter would leave its threshold within the
# test's steps (a shrink of 0.999999 would need ~700000 of them).
STRONG = (("shrink_perturb", (("shrink", 0.9), ("perturb", 0.01))),)


LIGHT = ("l2", "shrink_perturb", "weight_clipping")


def _combinations():
    for other in _parameter_methods():
        for outermost in (False, True):
            marks = () if other in LIGHT else pytest.mark.slow
            yield pytest.param(other, outermost, marks=marks,
                               id=f"{other}-{'listed_last' if outermost else 'listed_first'}")


@pytest.mark.parametrize("other, outermost", list(_combinations()))
def test_output_is_the_sum_of_the_three_heads_whatever_moves_the_parameters(other, outermost):
    """Combined with every method that moves parameters, listed before or after it: after
    injection and 8 steps at a large learning rate, the output is h_old + h_a - h_b of the
    current values; listed last, h_old and h_b have not moved and h_a has."""
    names = (other, NAME) if outermost else (NAME, other)
    net, init, step, inject = _setup(names, lr=0.1, hp_over=STRONG)
    learner = _train(step, init(jax.random.PRNGKey(0)), 2)
    new = inject(learner, jax.random.PRNGKey(3))
    trained = _train(step, new, 8, seed=20)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(trained.params))
    _assert_sum_of_heads(net, trained.params)
    if outermost:
        for head in HEADS:
            h0, h1 = new.params["params"][head], trained.params["params"][head]
            for leaf in ("kernel", "bias", "kernel_b", "bias_b"):
                np.testing.assert_array_equal(h1[leaf], h0[leaf], err_msg=f"{head}/{leaf}")
            assert not np.allclose(h1["kernel_a"], h1["kernel_b"]), head
