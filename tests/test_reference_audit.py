"""Results checked against the references they claim to follow (issue 9's audit).

Each test recomputes one step in numpy from the paper or the authors' code, independently of
our implementation, and compares: Plasticine's feature variance through the agent, one TRAC
step on the clipped gradient, and the first Adam step on weights that continual backprop or
ReDo rewrote (loss-of-plasticity's AdamGnT, a step count per element).
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from plasticine_jax.agents.ppo import PPO
from plasticine_jax.config import load_config
from plasticine_jax.envs.registry import make_env
from plasticine_jax.runner.plan import build_methods, traced_hp
from tests.conftest import tiny


@functools.cache
def _agent(methods: tuple[str, ...] = (), **metrics):
    """A tiny CartPole PPO (hidden [8], relu) with the named methods, and its traced hp."""
    data = tiny(agent={"num_steps": 8, "network": {"hidden_sizes": [8], "activation": "relu"}},
                metrics={"every": 1, "probe_size": 32, **metrics})
    data["methods"] = [{"name": n} for n in methods]
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
    got = agent._compute_plasticity(params, params, obs)
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
    agent = copy.copy(agent)
    agent.batch_size = agent.minibatch_size = 6
    one = dataclasses.replace(agent.cfg.agent, num_minibatches=1, update_epochs=1)
    agent.cfg = dataclasses.replace(agent.cfg, agent=one)
    batch = {
        "obs": jnp.linspace(-1, 1, 6 * 4).reshape(6, 4),
        "action": jnp.array([0, 1, 0, 1, 1, 0]),
        "log_prob": jnp.full(6, -0.69),
        "value": jnp.zeros(6),
        "advantage": jnp.linspace(-3, 3, 6),
        "return": jnp.full(6, 5.0),
    }
    return agent, batch


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
