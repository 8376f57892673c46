"""Neuroplastic expansion as its reference TD3 runs it (torressliu/neuroplastic-expansion,
``stl/TD3.py``): target kernels multiplied by the masks after every Polyak step
(``w *= mask``), and a static sparse actor (``--static_actor``: the masks stay at the
initial Erdős–Rényi sparsity) next to a growing critic. Expected values are computed here
in numpy from the formulas, not by the library."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plasticine_jax.agents.ppo import PPO
from plasticine_jax.config import ConfigError, load_config
from plasticine_jax.envs.core import DiscreteActions
from plasticine_jax.envs.registry import make_env
from plasticine_jax.methods import compose, make_method
from plasticine_jax.methods import neuroplastic_expansion as ne
from plasticine_jax.networks import ActorCritic, NetworkSpec
from plasticine_jax.runner.plan import build_methods, plan, traced_hp
from tests.conftest import tiny
from tests.test_offpolicy import ac_cfg
from tests.test_offpolicy import build as build_ac
from tests.test_value_agents import build as build_value
from tests.test_value_agents import value_cfg

TAU = 0.3


def _ne_entry(**options):
    hp = {"initial_stl_sparsity": 0.8, "sparsity": 0.25, "zeta": 0.2, "delta": 1e9}
    return {"name": "neuroplastic_expansion", "options": {"rule": "reference", **options},
            "hp": hp}


def _agent(cfg, build):
    agent = build(cfg)
    hp = jax.tree.map(jnp.asarray, traced_hp(cfg, plan(cfg)[0].methods))
    return agent, hp, jax.jit(agent.update)


def _with_hp(state, section, **values):
    """``state`` with some of its traced hyperparameters replaced (the same program)."""
    new = {k: jnp.asarray(float(v)) for k, v in values.items()}
    hp = dict(state.hp)
    if section == "methods":
        hp["methods"] = {**hp["methods"], ne.NAME: {**hp["methods"][ne.NAME], **new}}
    else:
        hp[section] = {**hp[section], **new}
    return state._replace(hp=hp)


def _np(tree):
    return jax.tree.map(np.asarray, tree)


def _polyak_then_mask(online, target, masks, tau):
    """numpy: ``(tau * online + (1 - tau) * target) * mask`` on the masked kernels, the plain
    Polyak step on every other leaf (biases, unmasked heads)."""
    want = jax.tree.map(lambda p, t: tau * p + (1.0 - tau) * t, _np(online), _np(target))
    for module, mask in masks.items():
        leaf = want["params"]
        for k in module.split("/"):
            leaf = leaf[k]
        leaf["kernel"] = leaf["kernel"] * np.asarray(mask)
    return want


def _assert_trees_close(got, want):
    for g, w in zip(jax.tree.leaves(_np(got)), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def _some_masked_entry_nonzero(target, masks):
    return any(np.asarray(ne._kernel(target["params"], m))[~np.asarray(v)].any()
               for m, v in masks.items())


# ----------------------------------------------------------------------------- DQN


def test_dqn_polyak_step_then_masks_equals_numpy_and_only_when_the_target_moves():
    # 2 envs x 4 steps, replay ratio 0.125: one gradient step an update; target_every 1: the
    # target moves on it. No topology (delta 1e9), so nothing else touches the target.
    cfg = value_cfg("dqn", "agent.replay_ratio=0.125", f"agent.hp.tau={TAU}",
                    "agent.hp.target_every=1", "metrics.every=0", "agent.network.activation=relu",
                    f"methods=[{_ne_entry()}]")
    agent, hp, update = _agent(cfg, build_value)
    s0 = agent.init(jax.random.PRNGKey(0), hp)
    masks0 = ne.masks_of(s0.learner.opt_state)
    assert _some_masked_entry_nonzero(s0.target, masks0)  # the target starts dense
    s1, _ = update(s0, jnp.int32(0))
    masks = ne.masks_of(s1.learner.opt_state)
    _assert_trees_close(s1.target, _polyak_then_mask(s1.learner.params, s0.target, masks, TAU))
    assert not _some_masked_entry_nonzero(s1.target, masks)
    # No multiple of target_every in the update's env steps: no target update, no masking.
    s0_late = _with_hp(s0, "agent", target_every=1e6)
    s1_late, _ = update(s0_late, jnp.int32(0))
    _assert_trees_close(s1_late.target, _np(s0.target))


# ----------------------------------------------------------------------------- TD3


def _td3_static_actor():
    # 2 envs x 1 step, replay ratio 0.5: one critic step an update, followed by the actor
    # step and the Polyak step (policy_frequency 1).
    cfg = ac_cfg("td3", "agent.policy_frequency=1", "agent.replay_ratio=0.5",
                 f"agent.hp.tau={TAU}", "metrics.every=0",
                 f"methods=[{_ne_entry(static_networks=['actor'])}]")
    return _agent(cfg, build_ac)


def _er_keep_counts(shapes, sparsity):
    """numpy: Erdős–Rényi's kept weights per layer, ``n - floor(S_l n)`` with ``1 - S_l =
    eps sum(shape) / n`` and ``eps`` keeping ``(1 - S) sum n`` (no layer dense here)."""
    n = np.array([np.prod(s) for s in shapes], np.float64)
    raw = np.array([np.sum(s) for s in shapes], np.float64) / n
    eps = (1.0 - sparsity) * n.sum() / (raw * n).sum()
    assert (raw * eps < 1.0).all()
    return (n - np.floor((1.0 - raw * eps) * n)).astype(int)


def test_td3_polyak_step_then_masks_equals_numpy_for_the_actor_and_each_critic():
    agent, hp, update = _td3_static_actor()
    s0 = agent.init(jax.random.PRNGKey(0), hp)
    s1, _ = update(s0, jnp.int32(0))
    a_masks = ne.masks_of(s1.actor.opt_state)
    _assert_trees_close(s1.actor_target,
                        _polyak_then_mask(s1.actor.params, s0.actor_target, a_masks, TAU))
    c_masks = ne.masks_of(s1.critic.opt_state)  # [E, ...]: each critic its own
    for i in range(agent.cfg.agent.num_critics):
        pick = lambda t, i=i: jax.tree.map(lambda x: x[i], t)  # noqa: E731
        _assert_trees_close(
            pick(s1.critic_target),
            _polyak_then_mask(pick(s1.critic.params), pick(s0.critic_target), pick(c_masks), TAU),
        )
    k = np.asarray(c_masks["critic/layer_0"])
    assert not np.array_equal(k[0], k[1])


def test_td3_static_actor_keeps_its_initial_masks_while_the_critics_grow():
    agent, hp, update = _td3_static_actor()
    s = _with_hp(agent.init(jax.random.PRNGKey(1), hp), "methods", delta=1.0)
    zeta, s_init = 0.2, 0.8
    a0, c0 = ne.masks_of(s.actor.opt_state), ne.masks_of(s.critic.opt_state)
    a_mods, c_mods = ["actor/layer_0", "actor_head"], ["critic/layer_0", "critic_head"]
    assert sorted(a0) == a_mods and sorted(c0) == c_mods
    a_counts = [int(np.asarray(a0[m]).sum()) for m in a_mods]
    np.testing.assert_array_equal(a_counts, _er_keep_counts([a0[m].shape for m in a_mods], s_init))
    c_n0 = np.array([np.asarray(c0[m]).reshape(2, -1).sum(1) for m in c_mods])  # [L, E]
    np.testing.assert_array_equal(
        c_n0, np.repeat(_er_keep_counts([c0[m].shape[1:] for m in c_mods], s_init)[:, None], 2, 1))
    # The reference's growth per topology step: n_grow = int(zeta free_0), free_0 =
    # initial_stl_sparsity n - n_1(0); int(0.4 n_grow) of the weakest are pruned first.
    sizes = np.array([np.prod(c0[m].shape[1:]) for m in c_mods])[:, None]
    n_grow = np.floor(zeta * (s_init * sizes - c_n0)).astype(int)
    per_step = n_grow - (2 * n_grow) // 5
    assert per_step.sum() > 0
    for u in range(3):  # delta = 1 optimizer step: a topology step after every update
        s, _ = update(s, jnp.int32(u))
        a_masks, c_masks = ne.masks_of(s.actor.opt_state), ne.masks_of(s.critic.opt_state)
        for m in a_mods:
            np.testing.assert_array_equal(np.asarray(a_masks[m]), np.asarray(a0[m]), err_msg=m)
        c_n = np.array([np.asarray(c_masks[m]).reshape(2, -1).sum(1) for m in c_mods])
        np.testing.assert_array_equal(c_n, c_n0 + (u + 1) * per_step, err_msg=str(u))
    # Masked weights of the online and target actors are zero.
    for m, v in a0.items():
        for tree in (s.actor.params, s.actor_target):
            assert not np.asarray(ne._kernel(tree["params"], m))[~np.asarray(v)].any(), m


def test_sac_masks_its_target_critics_only_on_the_critic_steps_that_move_them():
    # One critic step an update, counted update_step * 1 + 0; target_network_frequency 2:
    # the target critics move (and are masked) after step 2, not after step 1. Starting at
    # step 1 keeps the dense initial target, whose masked entries show an unwanted masking.
    cfg = ac_cfg("sac", "agent.policy_frequency=1", "agent.replay_ratio=0.5",
                 "agent.target_network_frequency=2", f"agent.hp.tau={TAU}", "metrics.every=0",
                 f"methods=[{_ne_entry()}]")
    agent, hp, update = _agent(cfg, build_ac)
    s0 = agent.init(jax.random.PRNGKey(2), hp)
    s1, _ = update(s0, jnp.int32(1))
    _assert_trees_close(s1.critic_target, _np(s0.critic_target))
    c_masks = ne.masks_of(s1.critic.opt_state)
    first = jax.tree.map(lambda x: x[0], s1.critic_target)
    assert _some_masked_entry_nonzero(first, jax.tree.map(lambda x: x[0], c_masks))
    s2, _ = update(s1, jnp.int32(2))
    for i in range(agent.cfg.agent.num_critics):
        pick = lambda t, i=i: jax.tree.map(lambda x: x[i], t)  # noqa: E731
        _assert_trees_close(
            pick(s2.critic_target),
            _polyak_then_mask(pick(s2.critic.params), pick(s1.critic_target), pick(c_masks), TAU),
        )


# ----------------------------------------------------------------------------- the hook


def _learner_parts(m):
    spec = NetworkSpec(hidden_sizes=(8,), activation="relu")
    params = ActorCritic(spec, DiscreteActions(2)).init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    hp = {k: jnp.float32(v) for k, v in m.hp.items()}
    opt_state = compose.wrap_optimizer(optax.adam(1e-3), [m], {m.name: hp}).init(params)
    return params, opt_state, {m.name: hp}


@pytest.mark.parametrize(
    ("options", "masked"),
    [({}, True), ({"rule": "dormant"}, False), ({"mask_targets": False}, False),
     ({"rule": "dormant", "mask_targets": True}, True)],
)
def test_target_masking_defaults_on_for_reference_and_off_for_dormant(options, masked):
    m = make_method("neuroplastic_expansion", options)
    assert (m.after_target_update is not None) == masked
    target, opt_state, hps = _learner_parts(m)  # dense: masked entries are nonzero
    masks = ne.masks_of(opt_state)
    got = compose.after_target_update([m], target, opt_state, hps)
    assert _some_masked_entry_nonzero(got, masks) != masked
    if masked:
        _assert_trees_close(got, _polyak_then_mask(target, target, masks, 1.0))
    # A target update that did not happen (due false) leaves the target as it was.
    late = compose.after_target_update([m], target, opt_state, hps, due=jnp.bool_(False))
    _assert_trees_close(late, _np(target))


def _ppo(**network):
    data = tiny(agent={"network": {"hidden_sizes": [16, 16], "activation": "relu", **network}},
                metrics={"every": 0})
    data["methods"] = [{**_ne_entry(static_networks=["actor"]),
                        "hp": {"delta": 4.0, "zeta": 0.2, "sparsity": 0.25}}]
    cfg = load_config(data=data)
    ms = build_methods(cfg)
    agent = PPO(cfg, make_env(cfg.env.backend, cfg.env.id, cfg.env.num_envs), ms)
    return agent, jax.tree.map(jnp.asarray, traced_hp(cfg, ms))


def test_ppo_static_actor_keeps_its_masks_while_its_separate_critic_grows():
    agent, hp = _ppo()  # 2 epochs x 2 minibatches: 4 optimizer steps, a topology an update
    state = agent.init(jax.random.PRNGKey(0), hp)
    m0 = _np(ne.masks_of(state.learner.opt_state))
    update = jax.jit(agent.update)
    for u in range(2):
        state, _ = update(state, jnp.int32(u))
    m = _np(ne.masks_of(state.learner.opt_state))
    for mod in m0:
        if mod.startswith("actor"):
            np.testing.assert_array_equal(m[mod], m0[mod], err_msg=mod)
    assert sum(m[k].sum() for k in m if k.startswith("critic")) > sum(
        m0[k].sum() for k in m0 if k.startswith("critic"))


def test_a_static_network_sharing_a_torso_with_a_growing_one_is_refused():
    agent, hp = _ppo(shared_torso=True)
    state = jax.eval_shape(agent.init, jax.random.PRNGKey(0), hp)
    with pytest.raises(ValueError, match=r"share \['shared'\] with a network that grows"):
        jax.eval_shape(agent.update, state, jnp.int32(0))
    parts = {"actor": ("shared", "actor_head", "log_std"), "critic": ("shared", "critic_head")}
    with pytest.raises(ValueError, match=r"share \['shared'\].*shared_torso: false"):
        ne.static_modules(parts, ("actor",))
    assert ne.static_modules(parts, ("actor", "critic")) == {"shared", "actor_head", "log_std",
                                                             "critic_head"}
    separate = {"actor": ("actor", "actor_head"), "critic": ("critic", "critic_head")}
    assert ne.static_modules(separate, ("actor",)) == {"actor", "actor_head"}
    with pytest.raises(ValueError, match=r"names \['policy'\], not networks of this agent"):
        ne.static_modules(separate, ("policy",))


# ----------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("agent", "entry", "match"),
    [
        ("td3", _ne_entry(static_networks=["policy"]),
         r"options.static_networks names \['policy'\], not networks of agent.name='td3'; "
         r"it trains \['actor', 'critic'\]"),
        ("dqn", _ne_entry(static_networks=["actor"]),
         r"static_networks names \['actor'\], not networks of agent.name='dqn'; it trains \['q'\]"),
        ("td3", {**_ne_entry(static_networks=["actor"]), "networks": ["critic"]},
         r"names \['actor'\], which the entry's networks: \['critic'\] leaves out; add them to "
         r"networks: or drop them from options.static_networks"),
        ("td3", _ne_entry(static_networks=["actor", "actor"]),
         r"static_networks lists \['actor'\] more than once"),
        ("td3", _ne_entry(static_networks="actor"),
         r"option static_networks='actor' must be a list of strings"),
        ("td3", _ne_entry(mask_targets="yes"), r"option mask_targets='yes' must be true or false"),
    ],
)
def test_static_network_config_errors_name_the_problem_and_the_fix(agent, entry, match):
    with pytest.raises(ConfigError, match=match):
        if agent == "dqn":
            value_cfg("dqn", f"methods=[{entry}]")
        else:
            ac_cfg("td3", f"methods=[{entry}]")
