"""``networks:`` restricts a method to some of the agent's networks: a penalty sees only
their parameters, an intervention changes only their parameters and optimizer statistics;
a network edit or an optimizer wrapper is refused, as is a network the agent lacks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plasticine_jax.config import ConfigError, load_config
from plasticine_jax.methods import compose
from plasticine_jax.methods.base import Events
from plasticine_jax.runner.plan import plan
from plasticine_jax.runner.program import Program
from tests.conftest import tiny


def _agent(methods):
    data = tiny(agent={"network": {"hidden_sizes": [8], "activation": "relu"}})
    data["methods"] = methods
    cfg = load_config(data=data)
    group = plan(cfg)[0]
    return Program(group).agent, group


def test_l2_on_the_critic_penalises_only_the_critic():
    agent, group = _agent([{"name": "l2", "networks": ["critic"], "hp": {"coef": 0.5}}])
    params = agent.init_params(jax.random.PRNGKey(0))
    hp = {"l2": {"coef": 0.5}}
    got = float(compose.total_penalty(agent.methods, params, params, hp, agent.ctx.parts))
    p = params["params"]
    want = 0.5 * 0.5 * sum(float(np.sum(np.square(x)))
                           for k in ("critic", "critic_head") for x in jax.tree.leaves(p[k]))
    assert got == pytest.approx(want, rel=1e-6)
    everything = 0.5 * 0.5 * sum(float(np.sum(np.square(x))) for x in jax.tree.leaves(p))
    assert got < everything  # the actor's weights are not in it


def test_a_reset_of_the_actor_leaves_the_critic_and_its_moments():
    agent, group = _agent([{"name": "layer_reset", "networks": ["actor"],
                            "options": {"layers": ["heads"], "reset_opt_state": True,
                                        "schedule": "every_update"}}])
    state = jax.jit(agent.init)(jax.random.PRNGKey(1), jax.tree.map(lambda x: x[0], group.hp))
    learner = state.learner
    # Nonzero Adam moments everywhere, so a reset's zeroing shows.
    opt = jax.tree.map(lambda x: x + 1.0 if jnp.issubdtype(x.dtype, jnp.floating) else x,
                       learner.opt_state)
    learner = learner._replace(opt_state=opt)
    ev = Events(*(jnp.int32(1),) * 2, jnp.bool_(False), *(jnp.int32(1),) * 3)
    new = compose.apply_interventions(agent.methods, learner, None, jax.random.PRNGKey(2),
                                      {"layer_reset": {}}, ev, agent.ctx)
    old_p, new_p = learner.params["params"], new.params["params"]
    assert not np.allclose(old_p["actor_head"]["kernel"], new_p["actor_head"]["kernel"])
    for k in ("critic", "critic_head", "actor"):
        for a, b in zip(jax.tree.leaves(old_p[k]), jax.tree.leaves(new_p[k]), strict=True):
            np.testing.assert_array_equal(a, b)
    mu_old = _find(learner.opt_state, "mu")["params"]
    mu_new = _find(new.opt_state, "mu")["params"]
    assert (np.asarray(mu_new["actor_head"]["kernel"]) == 0).all()
    np.testing.assert_array_equal(mu_new["critic_head"]["kernel"], mu_old["critic_head"]["kernel"])


def _find(state, field):
    for s in jax.tree.leaves(state, is_leaf=lambda x: hasattr(x, field)):
        if hasattr(s, field):
            return getattr(s, field)
    raise AssertionError(field)


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ({"name": "l2", "networks": ["q"]}, r"\['q'\] not networks of agent.name='ppo'"),
        ({"name": "trac", "networks": ["critic"]}, r"wraps the optimizer"),
        ({"name": "crelu", "networks": ["actor"]}, r"edits the network"),
    ],
)
def test_networks_the_agent_lacks_or_hooks_that_act_on_everything_are_refused(method, message):
    data = tiny(agent={"network": {"hidden_sizes": [8], "activation": "relu"}})
    data["methods"] = [method]
    with pytest.raises(ConfigError, match=message):
        load_config(data=data)


def test_metrics_per_network_carry_its_name_and_only_its_weights():
    agent, _ = _agent([])
    params = agent.init_params(jax.random.PRNGKey(3))
    before = agent.init_params(jax.random.PRNGKey(4))
    obs = jax.random.normal(jax.random.PRNGKey(5), (32, 4))
    got = agent.compute_plasticity(params, before, obs)
    p, b = params["params"], before["params"]
    for net, mods in (("actor", ("actor", "actor_head", "log_std")),
                      ("critic", ("critic", "critic_head"))):
        leaves = [np.asarray(x) for k in mods if k in p for x in jax.tree.leaves(p[k])]
        olds = [np.asarray(x) for k in mods if k in b for x in jax.tree.leaves(b[k])]
        n = sum(x.size for x in leaves)
        rms = np.sqrt(sum((x**2).sum() for x in leaves) / n)
        change = np.sqrt(sum(((x - y) ** 2).sum() for x, y in zip(leaves, olds, strict=True)) / n)
        assert float(got[f"{net}/weight_magnitude"]) == pytest.approx(rms, rel=1e-5)
        assert float(got[f"{net}/weight_change"]) == pytest.approx(change, rel=1e-5)
        # Dormant units of the network's one hidden layer, from its activations in numpy.
        h = np.maximum(np.asarray(obs) @ np.asarray(p[net]["layer_0"]["kernel"])
                       + np.asarray(p[net]["layer_0"]["bias"]), 0.0)
        score = np.abs(h).mean(0) / (np.abs(h).mean(0).mean() + 1e-9)
        assert float(got[f"{net}/dormant_ratio"]) == pytest.approx(np.mean(score <= 0.025))
