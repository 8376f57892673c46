"""The PPO loss on a tiny hand example: zero parameters give uniform logits and value 0."""

import jax
import jax.numpy as jnp
import numpy as np

from plasticine_jax.agents.ppo import PPO
from plasticine_jax.envs.registry import make_env


def test_ppo_loss_hand_example(tiny_config):
    cfg = tiny_config(agent={"norm_adv": False, "clip_vloss": True})
    agent = PPO(cfg, make_env("gymnax", "CartPole-v1", 4))
    params = jax.tree.map(jnp.zeros_like, agent.init_params(jax.random.PRNGKey(0)))
    # With zero weights: logits = 0 -> pi(a) = 1/2 for both actions; value = 0.
    old_logp = np.log(np.array([0.25, 0.5, 0.8], np.float32))
    batch = {
        "obs": jnp.zeros((3, 4)),
        "action": jnp.array([0, 1, 0]),
        "log_prob": jnp.asarray(old_logp),
        "value": jnp.array([0.5, -0.1, 0.0]),
        "advantage": jnp.array([1.0, -2.0, 0.5]),
        "return": jnp.array([1.0, 0.3, -1.0]),
    }
    hp = {
        "agent": {"clip_eps": 0.2, "ent_coef": 0.01, "vf_coef": 0.5},
        "methods": {},
    }
    loss, aux = agent.loss(params, batch, hp, params)
    ratio = 0.5 / np.exp(old_logp)  # [2.0, 1.0, 0.625]
    adv = np.array([1.0, -2.0, 0.5])
    pg = np.mean(np.maximum(-adv * ratio, -adv * np.clip(ratio, 0.8, 1.2)))
    # value clipping: v_old + clip(0 - v_old, -.2, .2)
    v_old = np.array([0.5, -0.1, 0.0])
    ret = np.array([1.0, 0.3, -1.0])
    v_clip = v_old + np.clip(0 - v_old, -0.2, 0.2)
    v_loss = 0.5 * np.mean(np.maximum((0 - ret) ** 2, (v_clip - ret) ** 2))
    entropy = np.log(2.0)
    np.testing.assert_allclose(aux["pg_loss"], pg, rtol=1e-5)
    np.testing.assert_allclose(aux["v_loss"], v_loss, rtol=1e-5)
    np.testing.assert_allclose(aux["entropy"], entropy, rtol=1e-5)
    np.testing.assert_allclose(loss, pg - 0.01 * entropy + 0.5 * v_loss, rtol=1e-5)
    np.testing.assert_allclose(aux["clipfrac"], 2 / 3, rtol=1e-6)


def test_ignored_steps_drop_out_of_the_loss(tiny_config):
    """Transitions whose action the env ignored (``valid`` 0) change no loss term: the
    masked loss on a batch equals the plain loss on its valid rows, advantage
    normalisation included, and an ignored row's data changes nothing."""
    cfg = tiny_config(agent={"norm_adv": True, "clip_vloss": True})
    agent = PPO(cfg, make_env("gymnax", "CartPole-v1", 4))
    params = agent.init_params(jax.random.PRNGKey(0))
    k = jax.random.split(jax.random.PRNGKey(1), 4)
    batch = {
        "obs": jax.random.normal(k[0], (6, 4)),
        "action": jnp.array([0, 1, 0, 1, 1, 0]),
        "log_prob": jnp.log(jnp.array([0.4, 0.5, 0.6, 0.3, 0.5, 0.7])),
        "value": jax.random.normal(k[1], (6,)),
        "advantage": jax.random.normal(k[2], (6,)) * 3.0,
        "return": jax.random.normal(k[3], (6,)),
    }
    hp = {"agent": {"clip_eps": 0.2, "ent_coef": 0.01, "vf_coef": 0.5}, "methods": {}}
    valid = np.array([1, 0, 1, 1, 0, 1], np.float32)
    keep = valid.astype(bool)
    masked_loss, masked_aux = agent.loss(params, {**batch, "valid": jnp.asarray(valid)}, hp, params)
    plain_loss, plain_aux = agent.loss(params, {k: v[keep] for k, v in batch.items()}, hp, params)
    np.testing.assert_allclose(masked_loss, plain_loss, rtol=1e-5)
    for name in plain_aux:
        np.testing.assert_allclose(masked_aux[name], plain_aux[name], rtol=1e-5, atol=1e-7)
    # Changing an ignored row's data changes nothing.
    other = {**batch, "advantage": batch["advantage"].at[1].set(100.0), "valid": valid}
    np.testing.assert_allclose(agent.loss(params, other, hp, params)[0], masked_loss, rtol=1e-6)
