"""Craftax adapter: optimistic resets, achievements, the Craftax score."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plasticine_jax.envs.craftax_score import achievement_success_rates, craftax_score

# CI installs the craftax extra (see README's test command); elsewhere this is optional.
pytest.importorskip("craftax")

from plasticine_jax.envs.registry import make_env  # noqa: E402
from plasticine_jax.envs.testing import check_protocol_with_state  # noqa: E402


def test_craftax_score_matches_the_crafter_formula():
    # Two achievements at 100% and 0%: exp((ln 101 + ln 1) / 2) - 1 = sqrt(101) - 1.
    np.testing.assert_allclose(craftax_score(jnp.array([100.0, 0.0])), np.sqrt(101) - 1, 1e-5)
    np.testing.assert_allclose(craftax_score(jnp.zeros(22)), 0.0, atol=1e-6)
    np.testing.assert_allclose(craftax_score(jnp.full(22, 100.0)), 100.0, 1e-5)
    np.testing.assert_allclose(craftax_score(jnp.array([50.0, jnp.nan])), 50.0, 1e-5)


def test_success_rates_count_only_finished_episodes():
    ach = jnp.array([[1, 0], [1, 1], [0, 0], [1, 1]], jnp.float32)  # row 3 did not end
    done = jnp.array([True, True, True, False])
    np.testing.assert_allclose(achievement_success_rates(ach, done), [200 / 3, 100 / 3], 1e-5)
    assert np.isnan(achievement_success_rates(ach, jnp.zeros(4, bool))).all()


@pytest.fixture(scope="module")
def classic_rollout():
    # max_timesteps=2: every episode times out at steps 1 and 3, so each env takes two
    # worlds from the pool; pool 4 with 2 new worlds per step.
    env = make_env(
        "craftax",
        "Craftax-Classic-Symbolic-v1",
        num_envs=4,
        options={"max_timesteps": 2, "reset_ratio": 2, "pool_size": 4},
    )
    state, traj = check_protocol_with_state(env, num_seeds=2, num_steps=4)
    return env, jax.tree.map(np.asarray, state), traj


def test_time_limit_is_truncation_with_achievements_logged(classic_rollout):
    env, _, traj = classic_rollout
    assert env.spec.action_space.n == 17 and env.spec.obs_shape == (1345,)
    assert traj.truncated[:, [1, 3]].all() and not traj.truncated[:, [0, 2]].any()
    assert not traj.terminated.any()
    np.testing.assert_array_equal(traj.info.episode_length[:, 1], 2)
    ach = traj.info.extras["achievements"]
    assert ach.shape == (2, 4, 4, len(env.achievement_names)) == (2, 4, 4, 22)
    assert not ach[:, [0, 2]].any(), "achievements are reported only when an episode ends"


def test_optimistic_resets_hand_out_valid_fresh_worlds(classic_rollout):
    env, state, traj = classic_rollout
    world = state.env_state
    # Just reset from the pool at step 3: a fresh, never-played world.
    np.testing.assert_array_equal(world.timestep, 0)
    np.testing.assert_array_equal(world.achievements, False)
    np.testing.assert_array_equal(world.player_health, 9)
    # The handed-out observation is the handed-out state's observation.
    obs = jax.vmap(jax.vmap(env._env.get_obs))(world)
    np.testing.assert_allclose(traj.next_obs[:, 3], np.asarray(obs))
    for s in range(2):
        maps = world.map[s].reshape(4, -1)
        assert len({m.tobytes() for m in maps}) == 4, "envs finishing together get distinct worlds"
        # The pool was refilled: the worlds of the second reset differ from the first.
        for i in range(4):
            assert not np.array_equal(traj.next_obs[s, 1, i], traj.next_obs[s, 3, i])
    # Seeds use their own keys, hence their own worlds.
    assert not np.array_equal(world.map[0], world.map[1])


@pytest.mark.slow
def test_full_craftax_symbolic_and_pixels_step():
    for pixels in (False, True):
        env = make_env(
            "craftax",
            "Craftax-Symbolic-v1",
            num_envs=2,
            options={"pixels": pixels, "reset_ratio": 2},
        )
        check_protocol_with_state(env, num_seeds=2, num_steps=2)
        assert env.spec.action_space.n == 43
