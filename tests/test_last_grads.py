"""``LearnerState.last_grads``: kept (the last minibatch's loss gradient) only when a method
needs it, so neuroplastic expansion grows connections by the real gradient."""


import jax
import jax.numpy as jnp
import numpy as np

from plasticine_jax.agents.ppo import PPO
from plasticine_jax.config import load_config
from plasticine_jax.envs.registry import make_env
from plasticine_jax.runner.plan import build_methods, traced_hp
from tests.conftest import one_minibatch, tiny


def _agent(methods):
    data = tiny(agent={"num_steps": 8, "network": {"hidden_sizes": [8], "activation": "relu"}},
                metrics={"every": 0})
    data["methods"] = methods
    cfg = load_config(data=data)
    ms = build_methods(cfg)
    agent = PPO(cfg, make_env(cfg.env.backend, cfg.env.id, cfg.env.num_envs), ms)
    return agent, jax.tree.map(jnp.asarray, traced_hp(cfg, ms))


def test_last_grads_are_the_last_minibatch_gradient_for_methods_that_need_them():
    agent, hp = _agent([{"name": "neuroplastic_expansion"}])
    state = agent.init(jax.random.PRNGKey(0), hp)
    assert jax.tree.structure(state.learner.last_grads) == jax.tree.structure(
        state.learner.params
    )
    # One epoch of one minibatch on a fixed batch: last_grads must be that batch's gradient.
    agent, batch = one_minibatch(agent)
    learner, _ = jax.jit(agent._learn)(state.learner, batch, hp, jax.random.PRNGKey(1))
    expected, _ = jax.grad(agent.loss, has_aux=True)(
        state.learner.params, batch, hp, state.learner.init_params
    )
    for got, want in zip(jax.tree.leaves(learner.last_grads), jax.tree.leaves(expected),
                         strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert any(np.abs(np.asarray(g)).sum() > 0 for g in jax.tree.leaves(learner.last_grads))


def test_no_gradient_copy_without_a_method_that_needs_it():
    agent, hp = _agent([{"name": "redo"}])
    state = agent.init(jax.random.PRNGKey(0), hp)
    assert state.learner.last_grads is None
    state, _ = jax.jit(agent.update)(state, jnp.int32(0))
    assert state.learner.last_grads is None
