"""Neuroplastic expansion: masks on every optimizer step; the authors' topology rule.

The reference is the authors' ``STL_Scheduler`` (torressliu/neuroplastic-expansion,
``NE/STL_Scheduler.py``): ``sparse_set`` (Erdős–Rényi sparsities), ``weight_sparsify``
(initial masks), ``_dst_step`` (small-to-large branch) and the gradient hook / step wrapper
that mask after every optimizer step.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plasticine_jax.agents.ppo import PPO
from plasticine_jax.config import load_config
from plasticine_jax.envs.core import DiscreteActions
from plasticine_jax.envs.registry import make_env
from plasticine_jax.methods import compose, make_method
from plasticine_jax.methods import neuroplastic_expansion as ne
from plasticine_jax.methods.base import Events, LearnerState, ModelContext
from plasticine_jax.networks import ActorCritic, NetworkSpec
from plasticine_jax.runner.plan import build_methods, traced_hp
from tests.conftest import one_minibatch, tiny


def _events(step: int) -> Events:
    return Events(*(jnp.asarray(v, jnp.int32) for v in (step, 0, 0, 0, 0, 16)))


def _kernels(params, masks):
    return {m: np.asarray(ne._kernel(params["params"], m)) for m in masks}


def _adam_moments(opt_state):
    """Adam's ``mu`` and ``nu`` trees inside ``opt_state``."""
    is_adam = lambda x: isinstance(x, optax.ScaleByAdamState)  # noqa: E731
    (adam,) = [s for s in jax.tree.leaves(opt_state, is_leaf=is_adam) if is_adam(s)]
    return adam.mu, adam.nu


# ----------------------------------------------------------------------------- the agent


def _agent(**method_hp):
    data = tiny(agent={"num_steps": 8, "network": {"hidden_sizes": [16, 16],
                                                    "activation": "relu"}},
                metrics={"every": 0})
    data["methods"] = [{"name": "neuroplastic_expansion", "hp": dict(method_hp)}]
    cfg = load_config(data=data)
    ms = build_methods(cfg)
    agent = PPO(cfg, make_env(cfg.env.backend, cfg.env.id, cfg.env.num_envs), ms)
    return agent, jax.tree.map(jnp.asarray, traced_hp(cfg, ms))


def _assert_masked_weights_zero(learner):
    masks = ne.masks_of(learner.opt_state)
    assert not all(np.asarray(v).all() for v in masks.values())
    for m, k in _kernels(learner.params, masks).items():
        assert not k[~np.asarray(masks[m])].any(), m


def test_one_minibatch_step_of_the_agent_leaves_every_masked_weight_at_zero():
    agent, hp = _agent(delta=4.0, zeta=0.2)  # 2 epochs x 2 minibatches: a topology each update
    state0 = agent.init(jax.random.PRNGKey(0), hp)
    state, _ = jax.jit(agent.update)(state0, jnp.int32(0))  # a rollout, 4 steps, a topology
    masks0, masks = (ne.masks_of(s.learner.opt_state) for s in (state0, state))
    assert any(not np.array_equal(masks0[m], masks[m]) for m in masks)
    # One minibatch step of the agent's own optimizer chain (as tests/test_last_grads.py).
    agent, batch = one_minibatch(agent)
    learner, _ = jax.jit(agent._learn)(state.learner, batch, hp, jax.random.PRNGKey(1))
    assert int(ne.mask_state(learner.opt_state).steps) == 5
    _assert_masked_weights_zero(learner)
    # Gradients are masked too: Adam's moments of never-active weights are still zero.
    mu, nu = _adam_moments(learner.opt_state)
    for m in masks:
        never = ~np.asarray(masks0[m]) & ~np.asarray(masks[m])
        assert not np.asarray(ne._kernel(mu["params"], m))[never].any(), m
        assert not np.asarray(ne._kernel(nu["params"], m))[never].any(), m
    before, after = _kernels(state.learner.params, masks), _kernels(learner.params, masks)
    assert all(not np.array_equal(before[m], after[m]) for m in masks)  # active ones trained


def test_the_reference_rule_grows_every_delta_optimizer_steps_until_the_target():
    agent, hp = _agent(delta=8.0, zeta=0.2, sparsity=0.7)  # 4 steps/update: every 2nd update
    state = agent.init(jax.random.PRNGKey(0), hp)
    st = ne.mask_state(state.learner.opt_state)
    update = jax.jit(agent.update)
    history = [{m: int(v.sum()) for m, v in st.masks.items()}]
    for u in range(6):  # the topology fires after updates 1, 3 and 5 (steps 8, 16, 24)
        state, _ = update(state, jnp.int32(u))
        _assert_masked_weights_zero(state.learner)
        history.append({m: int(v.sum()) for m, v in ne.masks_of(state.learner.opt_state).items()})
    assert history[1] == history[0] and history[3] == history[2]  # no multiple of 8 crossed
    assert history[2] != history[0] and history[4] != history[2]
    for m, n0 in history[0].items():
        n_grow = int(np.floor(float(st.free0[m]) * 0.2)) if float(st.free0[m]) > 0 else 0
        # Each growth step adds n_grow - int(0.4 n_grow) connections.
        assert history[2][m] - n0 == n_grow - (2 * n_grow) // 5, m
    # A network stops growing once its sparsity is at most the target (0.7 here).
    for torso in ("actor", "critic"):
        mods = [m for m in history[0] if m.startswith(torso)]
        size = sum(ne.masks_of(state.learner.opt_state)[m].size for m in mods)
        density = [sum(h[m] for m in mods) / size for h in history]
        assert density[2] < 0.3 <= density[4]  # past the target after the second growth ...
        assert density[6] == density[4]  # ... so the third grows nothing


# ----------------------------------------------------------------------------- numpy reference


def _np_dst_step(w, mask, grad, n_init_space, drop_fraction, fresh):
    """The reference's small-to-large ``_dst_step`` on one layer, transcribed to numpy
    (``torch.topk`` -> a stable descending argsort; values here are distinct)."""
    n_total = w.size
    n_ones = int(mask.sum())
    order = np.argsort(-np.abs(w).reshape(-1), kind="stable")
    n_grow = int(n_init_space * drop_fraction)
    n_prune = int(n_grow * 0.4)
    n_keep = n_ones - n_prune
    mask1 = np.zeros(n_total, np.int64)
    mask1[order] = (np.arange(n_total) < n_keep).astype(np.int64)  # scatter
    score = np.abs(grad).reshape(-1)
    lifted = np.where(mask1 == 1, score.min() - 1, score)
    order2 = np.argsort(-lifted, kind="stable")
    mask2 = np.zeros(n_total, np.int64)
    mask2[order2] = (np.arange(n_total) < n_grow).astype(np.int64)
    mask2 = mask2.reshape(w.shape)
    new_connections = (mask2 == 1) & ~mask
    w = np.where(new_connections, fresh, w)
    new_mask = (mask1.reshape(w.shape) + mask2).astype(bool)
    return w * new_mask, new_mask  # apply_mask_to_weights


def _hand_layer():
    """A 4x5 layer: 13 active weights of distinct magnitudes, 7 masked (zero)."""
    mask = np.array([[1, 1, 0, 1, 0],
                     [0, 1, 1, 1, 0],
                     [1, 0, 1, 1, 1],
                     [1, 0, 0, 1, 1]], bool)
    mags = np.array([[0.9, 0.05, 0, 0.7, 0],
                     [0, 0.3, 0.8, 0.02, 0],
                     [0.6, 0, 0.4, 0.55, 0.35],
                     [0.25, 0, 0, 0.15, 0.65]])
    w = mags * np.where(np.arange(20).reshape(4, 5) % 3 == 0, -1.0, 1.0)
    # |g|: distinct; the pruned 0.02 entry (row 1, col 3) has the largest, so it is regrown.
    grad = np.array([[0.11, 0.12, 0.51, 0.13, 0.44],
                     [0.47, 0.14, 0.15, 0.99, 0.21],
                     [0.16, 0.38, 0.17, 0.18, 0.19],
                     [0.22, 0.41, 0.33, 0.23, 0.24]]) * np.where(np.arange(20).reshape(4, 5) % 2,
                                                                  -1.0, 1.0)
    return w.astype(np.float32), mask, grad.astype(np.float32)


@pytest.mark.parametrize("init_method", ["zero", "lecun"])
def test_reference_topology_matches_the_authors_rule_in_numpy(init_method):
    w, mask, grad = _hand_layer()
    fresh = np.zeros_like(w) if init_method == "zero" else (
        np.arange(1, 21, dtype=np.float32).reshape(4, 5) / 100.0)
    free0, zeta = 12.5, 0.4  # n_grow = int(5.0) = 5, n_prune = int(2.0) = 2
    want_w, want_mask = _np_dst_step(w, mask, grad, free0, zeta, fresh)
    got_w, got_mask = jax.jit(ne.reference_topology)(w, mask, grad, free0, zeta, fresh)
    np.testing.assert_array_equal(np.asarray(got_mask), want_mask)
    np.testing.assert_array_equal(np.asarray(got_w), want_w)
    # What the rule did, spelled out: the two weakest (0.02, 0.05) left; 0.02 came back by
    # its gradient with its old weight; four new connections by |g| start at ``fresh``.
    assert want_mask.sum() == 13 - 2 + 5
    assert not want_mask[0, 1] and want_mask[1, 3] and want_w[1, 3] == w[1, 3]
    new = want_mask & ~mask
    assert new.sum() == 4
    np.testing.assert_array_equal(want_w[new], fresh[new])


def test_intervention_applies_the_rule_to_every_layer_when_delta_steps_are_crossed():
    m = make_method("neuroplastic_expansion")
    hp = {k: jnp.float32(v) for k, v in {**m.hp, "zeta": 0.3, "delta": 3.0}.items()}
    spec = NetworkSpec(hidden_sizes=(6,), activation="relu")
    net = ActorCritic(spec, DiscreteActions(3))
    obs = jax.random.normal(jax.random.PRNGKey(1), (8, 4))
    ctx = ModelContext(apply=net.apply, init=lambda k: net.init(k, obs[:1]), spec=spec)
    params = ctx.init(jax.random.PRNGKey(0))
    tx = compose.wrap_optimizer(optax.adam(1e-3), [m], {m.name: hp})
    grads = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(7), x.shape), params)
    learner = LearnerState(params, tx.init(params), params,
                           compose.init_method_states([m], params, jax.random.PRNGKey(2)),
                           grads)
    learner = learner._replace(params=ne.apply_masks(params, ne.masks_of(learner.opt_state)))
    apply = jax.jit(lambda s: m.intervention.apply(s, obs, None, hp, _events(1), ctx))
    st = ne.mask_state(learner.opt_state)
    chex.assert_trees_all_equal(apply(learner).params, learner.params)  # no step taken yet
    learner = learner._replace(opt_state=jax.tree.map(
        lambda s: s._replace(steps=jnp.int32(3)) if isinstance(s, ne.SparseMaskState) else s,
        learner.opt_state, is_leaf=lambda s: isinstance(s, ne.SparseMaskState)))
    new = apply(learner)
    new_masks = ne.masks_of(new.opt_state)
    assert int(new.method_state[ne.NAME]["last_steps"]) == 3
    for mod in st.masks:
        w = np.asarray(ne._kernel(learner.params["params"], mod))
        g = np.asarray(ne._kernel(grads["params"], mod))
        want_w, want_mask = _np_dst_step(w, np.asarray(st.masks[mod]), g,
                                         max(float(st.free0[mod]), 0.0), 0.3, np.zeros_like(w))
        np.testing.assert_array_equal(np.asarray(new_masks[mod]), want_mask, err_msg=mod)
        np.testing.assert_array_equal(np.asarray(ne._kernel(new.params["params"], mod)), want_w,
                                      err_msg=mod)
    assert any(int(new_masks[k].sum()) > int(st.masks[k].sum()) for k in st.masks)
    # The next call, with no further optimizer step, crosses no multiple of delta.
    chex.assert_trees_all_equal(apply(new).params, new.params)


# ----------------------------------------------------------------------------- Erdős–Rényi


def test_erdos_renyi_sparsities_match_hand_computed_values():
    # n = (64, 256, 32), sum(shape)/n = (20/64, 32/256, 18/32); at 0.8 the network keeps
    # 0.2 * 352 = 70.4 weights = eps * (20 + 32 + 18), eps = 70.4 / 70; no density above 1.
    eps = 70.4 / 70
    got = ne.erdos_renyi([(4, 16), (16, 16), (16, 2)], 0.8)
    np.testing.assert_allclose(got, [1 - 20 / 64 * eps, 1 - 32 / 256 * eps, 1 - 18 / 32 * eps],
                               rtol=1e-6)
    # n = (256, 4096, 128): eps = 896 / 262 puts the head (66/128) above density 1, so it is
    # made dense; then eps = (0.2 * 4352 - 0.8 * 128) / 196 puts layer 0 (68/256) above 1;
    # then eps = (0.2 * 4096 - 0.8 * 384) / 128 = 4 and layer 1 keeps 4 * 128 / 4096.
    got = ne.erdos_renyi([(4, 64), (64, 64), (64, 2)], 0.8)
    np.testing.assert_allclose(got, [0.0, 1 - 4 * 128 / 4096, 0.0], atol=1e-6)
    # A convolution counts every dimension: (3 + 3 + 2 + 8) / 144.
    got = ne.erdos_renyi([(3, 3, 2, 8), (72, 8)], 0.5)
    eps = 0.5 * 720 / (16 + 80)
    np.testing.assert_allclose(got, [1 - 16 / 144 * eps, 1 - 80 / 576 * eps], rtol=1e-6)


def test_initial_masks_keep_the_largest_weights_at_the_erdos_renyi_sparsities():
    m = make_method("neuroplastic_expansion")
    hp = {k: jnp.float32(v) for k, v in m.hp.items()}
    spec = NetworkSpec(hidden_sizes=(16, 16), activation="relu")
    params = ActorCritic(spec, DiscreteActions(2)).init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    masks, _ = ne.initial_masks(params, "reference", hp)
    assert set(masks) == {"actor/layer_0", "actor/layer_1", "actor_head", "critic/layer_0",
                          "critic/layer_1", "critic_head"}
    s = ne.erdos_renyi([(4, 16), (16, 16), (16, 2)], 0.8)
    for mod, sl in zip(("actor/layer_0", "actor/layer_1", "actor_head"), s, strict=True):
        w = np.abs(np.asarray(ne._kernel(params["params"], mod))).reshape(-1)
        keep = w.size - int(np.floor(float(sl) * w.size))
        want = np.zeros(w.size, bool)
        want[np.argsort(-w)[:keep]] = True
        np.testing.assert_array_equal(np.asarray(masks[mod]).reshape(-1), want, err_msg=mod)


# ----------------------------------------------------------------------------- rule "dormant"


def test_dormant_rule_sparsity_follows_its_schedule():
    m = make_method("neuroplastic_expansion", {"rule": "dormant"})
    spec = NetworkSpec(torso="mlp", hidden_sizes=(8, 8), activation="relu")
    net = ActorCritic(spec, DiscreteActions(3))
    obs = jax.random.normal(jax.random.PRNGKey(1), (32, 6))
    ctx = ModelContext(apply=net.apply, init=lambda k: net.init(k, obs[:1]), spec=spec)
    hp = {k: jnp.float32(v) for k, v in {**m.hp, "initial_sparsity": 0.8, "final_sparsity": 0.2,
                                         "grow_until": 8.0, "period": 2.0, "zeta": 0.2}.items()}
    tx = compose.wrap_optimizer(optax.adam(1e-3), [m], {m.name: hp})
    params = ctx.init(jax.random.PRNGKey(0))
    learner = LearnerState(params, tx.init(params), params,
                           compose.init_method_states([m], params, jax.random.PRNGKey(2)))

    @jax.jit
    def step(s, t):
        g = jax.grad(lambda p: jnp.mean(net.apply(p, obs).policy ** 2))(s.params)
        u, opt = tx.update(g, s.opt_state, s.params)
        s = s._replace(params=optax.apply_updates(s.params, u), opt_state=opt, last_grads=g)
        return compose.apply_interventions([m], s, obs, jax.random.PRNGKey(0), {m.name: hp},
                                           _events(t), ctx)

    topology_sparsity = 0.8  # magnitude masks at initial_sparsity, at optimizer init
    for t in range(1, 13):
        learner = step(learner, t)
        if t % 2 == 0:
            topology_sparsity = float(ne.target_sparsity(t, hp))
        for name, mask in ne.masks_of(learner.opt_state).items():
            kernel = _kernels(learner.params, {name: mask})[name]
            assert not kernel[~np.asarray(mask)].any(), name
            assert int(np.asarray(mask).sum()) == int(ne.active_target(topology_sparsity,
                                                                       mask.size)), (t, name)
    assert topology_sparsity == pytest.approx(0.2)
