"""Heads built through ``networks.heads``: plasticity injection and HL-Gauss in the real agent."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plasticine_jax.agents.ppo import PPO
from plasticine_jax.config import load_config
from plasticine_jax.envs.core import DiscreteActions
from plasticine_jax.envs.registry import make_env
from plasticine_jax.methods import make_method
from plasticine_jax.methods.base import Method
from plasticine_jax.methods.hl_gauss import hl_gauss_loss, hl_gauss_value
from plasticine_jax.methods.plasticity_injection import inject
from plasticine_jax.networks import ActorCritic, NetworkSpec
from plasticine_jax.networks.heads import InjectableDense, critic_width
from plasticine_jax.runner.plan import build_methods, traced_hp
from tests.conftest import tiny

OBS = jnp.linspace(-1.0, 1.0, 5 * 4).reshape(5, 4)


def test_injectable_heads_are_ordinary_dense_heads_until_injection():
    plain = NetworkSpec(hidden_sizes=(8,))
    spec = make_method("plasticity_injection").network(plain)
    net, ref = ActorCritic(spec, DiscreteActions(3)), ActorCritic(plain, DiscreteActions(3))
    key = jax.random.PRNGKey(0)
    params, ref_params = net.init(key, OBS), ref.init(key, OBS)
    for head in ("actor_head", "critic_head"):
        assert set(params["params"][head]) == {
            "kernel", "bias", "kernel_a", "bias_a", "kernel_b", "bias_b"
        }  # no "injected" flag among the parameters: it lives in the optimizer state
        np.testing.assert_array_equal(
            params["params"][head]["kernel"], ref_params["params"][head]["kernel"]
        )
    out, ref_out = net.apply(params, OBS), ref.apply(ref_params, OBS)
    np.testing.assert_array_equal(out.policy, ref_out.policy)
    np.testing.assert_array_equal(out.value, ref_out.value)
    # Injecting a fresh head leaves the outputs unchanged (up to float rounding).
    fresh = net.init(jax.random.PRNGKey(1), OBS)["params"]
    p = dict(params["params"])
    for head in ("actor_head", "critic_head"):
        p[head] = inject(p[head], fresh[head])
    after = net.apply({"params": p}, OBS)
    np.testing.assert_allclose(after.policy, out.policy, atol=1e-6)
    np.testing.assert_allclose(after.value, out.value, atol=1e-6)
    assert not np.allclose(p["actor_head"]["kernel_a"], params["params"]["actor_head"]["kernel"])


def test_injection_option_names_only_the_chosen_heads():
    spec = make_method("plasticity_injection", {"heads": ["critic_head"]}).network(NetworkSpec())
    params = ActorCritic(spec, DiscreteActions(2)).init(jax.random.PRNGKey(0), OBS)["params"]
    assert "kernel_a" in params["critic_head"] and "kernel_a" not in params["actor_head"]
    assert isinstance(InjectableDense(3), InjectableDense)


@pytest.fixture(scope="module")
def hl_agent():
    data = tiny(agent={"num_steps": 8}, metrics={"every": 0})
    data["methods"] = [{"name": "hl_gauss", "options": {"num_bins": 11},
                        "hp": {"v_min": 0.0, "v_max": 50.0}}]
    cfg = load_config(data=data)
    methods = build_methods(cfg)
    env = make_env(cfg.env.backend, cfg.env.id, cfg.env.num_envs)
    agent = PPO(cfg, env, methods)
    hp = jax.tree.map(jnp.asarray, traced_hp(cfg, methods))
    return agent, hp


def test_hl_gauss_critic_has_bins_and_the_agent_reads_its_value(hl_agent):
    agent, hp = hl_agent
    assert critic_width(agent.spec) == 11 and agent.value_bins == 11
    params = agent.init_params(jax.random.PRNGKey(0))
    assert params["params"]["critic_head"]["kernel"].shape == (16, 11)
    out = agent.network.apply(params, OBS)
    assert np.isnan(out.value).all()  # the scalar value is unusable without the support
    v = agent._value(out, hp)
    np.testing.assert_allclose(v, hl_gauss_value(out.value_logits, 0.0, 50.0), rtol=1e-6)
    assert ((v > 0.0) & (v < 50.0)).all()


def test_hl_gauss_value_loss_is_the_cross_entropy(hl_agent):
    agent, hp = hl_agent
    params = agent.init_params(jax.random.PRNGKey(0))
    ret = jnp.array([1.0, 7.0, 20.0, 49.0, 60.0])
    batch = {
        "obs": OBS,
        "action": jnp.zeros(5, jnp.int32),
        "log_prob": jnp.full(5, -jnp.log(2.0)),
        "value": jnp.zeros(5),
        "advantage": jnp.linspace(-1.0, 1.0, 5),
        "return": ret,
    }
    _, aux = agent.loss(params, batch, hp, params)
    logits = agent.network.apply(params, OBS).value_logits
    expected = hl_gauss_loss(logits, ret, hp["methods"]["hl_gauss"])
    np.testing.assert_allclose(aux["v_loss"], expected, rtol=1e-6)
    assert float(aux["v_loss"]) > 0.0
    # the support is [0, 50]: the return 60 is clipped to the edge bin, and says so
    assert float(aux["hl_gauss/return_outside_support"]) == pytest.approx(1 / 5)


def test_hl_gauss_update_trains_the_categorical_critic(hl_agent):
    agent, hp = hl_agent
    state = agent.init(jax.random.PRNGKey(0), hp)
    update = jax.jit(agent.update)
    before = state.learner.params["params"]["critic_head"]["kernel"]
    losses = []
    for u in range(3):
        state, out = update(state, jnp.int32(u))
        losses.append(float(out["v_loss"]))
    assert np.isfinite(losses).all()
    after = state.learner.params["params"]["critic_head"]["kernel"]
    assert not np.allclose(before, after)


def test_value_bins_without_hl_gauss_is_refused():
    cfg = load_config(data=tiny())
    env = make_env(cfg.env.backend, cfg.env.id, cfg.env.num_envs)
    edit = Method(name="bins", hp={}, network=lambda s: s.with_option("value_bins", 5))
    with pytest.raises(ValueError, match="value bins but no 'hl_gauss'"):
        PPO(cfg, env, [edit])
