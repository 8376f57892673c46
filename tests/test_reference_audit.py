"""Results checked against the references they claim to follow (issue 9's audit).

Each test recomputes one step in numpy from the paper or the authors' code, independently of
our implementation, and compares: Plasticine's feature variance through the agent, one TRAC
step on the clipped gradient, and the first Adam step on weights that continual backprop or
ReDo rewrote (loss-of-plasticity's AdamGnT, a step count per element).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
