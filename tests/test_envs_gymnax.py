"""gymnax adapter, registry, named configs and the truncation/termination contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from plasticine_jax.envs import registry
from plasticine_jax.envs.core import ContinuousActions, DiscreteActions
from plasticine_jax.envs.registry import MissingExtraError, list_envs, make_env
from plasticine_jax.envs.testing import check_protocol, jit_fast, rollout

_slow = pytest.mark.slow  # MinAtar programs take 10-20 s each to compile on two cores
GYMNAX_IDS = [
    "CartPole-v1",
    "Pendulum-v1",
    "Breakout-MinAtar",
    pytest.param("Asterix-MinAtar", marks=_slow),
    pytest.param("Freeway-MinAtar", marks=_slow),
    pytest.param("Seaquest-MinAtar", marks=_slow),
    pytest.param("SpaceInvaders-MinAtar", marks=_slow),
]


@pytest.mark.parametrize("env_id", GYMNAX_IDS)
def test_gymnax_steps_under_jit_and_vmap(env_id):
    env = make_env("gymnax", env_id, num_envs=3)
    check_protocol(env, num_seeds=2, num_steps=3)


def test_action_spaces():
    assert make_env("gymnax", "CartPole-v1", 2).spec.action_space == DiscreteActions(2)
    space = make_env("gymnax", "Pendulum-v1", 2).spec.action_space
    assert space == ContinuousActions((1,), -2.0, 2.0)


def test_vmapped_seed_equals_seed_alone():
    env = make_env("gymnax", "Breakout-MinAtar", num_envs=2)
    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    _, batched = jit_fast(jax.vmap(lambda k: rollout(env, k, 5)), keys)
    _, alone = jit_fast(lambda k: rollout(env, k, 5), keys[1])
    np.testing.assert_array_equal(batched.next_obs[1], alone.next_obs)
    np.testing.assert_array_equal(batched.reward[1], alone.reward)


def test_truncated_steps_carry_final_obs_terminated_do_not_bootstrap():
    """CartPole with a 5-step limit: a truncated step's final_obs is the pre-reset state
    (bootstrap from it); a terminated one gets a zero bootstrap. A one-step TD target built
    the way agents build it must differ accordingly."""
    env = make_env("gymnax", "CartPole-v1", num_envs=64, options={"max_steps_in_episode": 5})
    _, traj = jit_fast(lambda k: rollout(env, k, 12), jax.random.PRNGKey(0))
    trunc, term = np.asarray(traj.truncated), np.asarray(traj.terminated)
    assert trunc.any(), "the time limit must truncate some episodes"
    # Truncation happens exactly at the limit, and only where the MDP did not end.
    assert np.all(np.asarray(traj.info.episode_length)[trunc] == 5)
    assert not np.any(trunc & term)
    final, nxt = np.asarray(traj.info.final_obs), np.asarray(traj.next_obs)
    # On a truncated step, next_obs is the fresh episode and final_obs the real successor,
    # which continues the pre-step observation (CartPole moves a little per step).
    assert np.all(np.any(final[trunc] != nxt[trunc], axis=-1))
    obs = np.asarray(traj.obs)
    assert np.all(np.abs(final[trunc] - obs[trunc]).max(-1) < 1.0)

    def value(o):  # any value function; the bootstrap must use final_obs
        return jnp.sum(o, axis=-1)

    gamma = 0.99
    bootstrap_obs = jnp.where((trunc | term)[..., None], final, nxt)
    target = traj.reward + gamma * (1.0 - term) * value(bootstrap_obs)
    target = np.asarray(target)
    np.testing.assert_allclose(target[term], np.asarray(traj.reward)[term])
    np.testing.assert_allclose(
        target[trunc], np.asarray(traj.reward)[trunc] + gamma * np.asarray(value(final[trunc]))
    )


def test_unknown_backend_scenario_and_options_are_refused():
    with pytest.raises(ValueError, match="unknown env backend"):
        make_env("gym", "CartPole-v1", 2)
    with pytest.raises(ValueError, match="unknown scenario"):
        make_env("gymnax", "CartPole-v1", 2, scenario="shuffled")
    with pytest.raises(ValueError, match="unknown scenario_options"):
        make_env(
            "gymnax",
            "CartPole-v1",
            2,
            scenario="permuted_obs",
            scenario_options={"steps_per_task": 10, "sed": 1},
        )


def test_missing_extra_names_pip_install(monkeypatch):
    monkeypatch.setattr(registry, "_extra_installed", lambda backend: backend == "gymnax")
    for backend in ("craftax", "brax", "envpool"):
        with pytest.raises(MissingExtraError, match=rf"install -e '\.\[{backend}\]'"):
            make_env(backend, "x", 2)
    with pytest.raises(MissingExtraError, match="libqt5core5a"):
        make_env("envpool", "CoinrunEasy-v0", 2)


def test_every_named_env_config_is_well_formed():
    entries = list_envs()
    assert len(entries) >= 10
    keys = {"backend", "id", "num_envs", "options", "scenario", "scenario_options"}
    for entry in entries:
        with open(entry.path) as f:
            env = yaml.safe_load(f)["env"]
        assert set(env) == keys, entry.name
        assert env["backend"] in registry.BACKENDS
        assert env["scenario"] in registry.SCENARIOS


def test_named_configs_build():
    """Every named env whose extra is installed builds (no compile: construction only)."""
    for entry in list_envs():
        if not entry.installed:
            continue
        with open(entry.path) as f:
            cfg = yaml.safe_load(f)["env"]
        env = make_env(
            cfg["backend"], cfg["id"], 2, cfg["options"], cfg["scenario"], cfg["scenario_options"]
        )
        assert env.spec.num_envs == 2
