"""Craftax adapter: optimistic resets, achievements, the Craftax score and its metrics.

The score and metric-hook tests need no Craftax; the rest are skipped without the extra
(CI installs it; see README's test command).
"""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plasticine_jax.envs.core import StepInfo
from plasticine_jax.envs.craftax_env import CraftaxEnv
from plasticine_jax.envs.craftax_score import achievement_success_rates, craftax_score
from plasticine_jax.envs.registry import make_env
from plasticine_jax.envs.testing import (
    assert_episode_metrics,
    check_protocol,
    check_protocol_with_state,
)

needs_craftax = pytest.mark.skipif(
    importlib.util.find_spec("craftax") is None, reason="the craftax extra is not installed"
)


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


def _bare_craftax(names):
    """The Craftax adapter's metric hooks without Craftax: only its achievement names."""
    env = CraftaxEnv.__new__(CraftaxEnv)
    env.achievement_names = names
    return env


def _info(achievements):
    n = achievements.shape[0]
    zeros = jnp.zeros(n)
    return StepInfo(zeros, zeros, zeros, zeros, zeros, {"achievements": achievements})


def test_metric_hooks_give_rates_and_score_by_hand():
    env = _bare_craftax(("collect_wood", "place_table", "eat_cow"))
    # Two steps of 3 envs; episodes end at (0, 0), (0, 2), (1, 1): three episodes, which
    # unlocked {wood, table}, {wood}, {wood}. Rows where no episode ended are zero.
    steps = [
        jnp.array([[1, 1, 0], [0, 0, 0], [1, 0, 0]], jnp.float32),
        jnp.array([[0, 0, 0], [1, 0, 0], [0, 0, 0]], jnp.float32),
    ]
    per_step = [env.episode_metrics(_info(a)) for a in steps]
    assert set(per_step[0]) == {
        "achievement/collect_wood",
        "achievement/place_table",
        "achievement/eat_cow",
    }
    np.testing.assert_array_equal(per_step[0]["achievement/place_table"], [1, 0, 0])
    np.testing.assert_array_equal(per_step[1]["achievement/collect_wood"], [0, 1, 0])
    # As the agent reduces them: summed over the rollout, divided by the 3 episodes.
    means = {k: sum(m[k].sum() for m in per_step) / 3 for k in per_step[0]}
    np.testing.assert_allclose(means["achievement/collect_wood"], 1.0)
    np.testing.assert_allclose(means["achievement/place_table"], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(means["achievement/eat_cow"], 0.0)
    ((name, score),) = env.summarize_episode_metrics(means).items()
    # Rates in percent 100, 33.3, 0: exp((ln 101 + ln 34.3 + ln 1) / 3) - 1.
    assert name == "craftax_score"
    np.testing.assert_allclose(score, np.cbrt(101 * (1 + 100 / 3)) - 1, rtol=1e-5)
    assert 14.0 < float(score) < 14.2


def test_score_is_nan_without_episodes_and_needs_every_achievement():
    env = _bare_craftax(("collect_wood", "place_table"))
    nan = jnp.float32(jnp.nan)
    means = {"achievement/collect_wood": nan, "achievement/place_table": nan}
    assert np.isnan(env.summarize_episode_metrics(means)["craftax_score"])
    with pytest.raises(KeyError, match="achievement/place_table"):
        env.summarize_episode_metrics({"achievement/collect_wood": jnp.float32(0.5)})
    with pytest.raises(ValueError, match="3 entries but 2 names"):
        env.episode_metrics(_info(jnp.zeros((2, 3))))


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


@needs_craftax
def test_time_limit_is_truncation_with_achievements_logged(classic_rollout):
    env, _, traj = classic_rollout
    assert env.spec.action_space.n == 17 and env.spec.obs_shape == (1345,)
    assert traj.truncated[:, [1, 3]].all() and not traj.truncated[:, [0, 2]].any()
    assert not traj.terminated.any()
    np.testing.assert_array_equal(traj.info.episode_length[:, 1], 2)
    ach = traj.info.extras["achievements"]
    assert ach.shape == (2, 4, 4, len(env.achievement_names)) == (2, 4, 4, 22)
    assert not ach[:, [0, 2]].any(), "achievements are reported only when an episode ends"
    # The metric hooks: one rate per achievement, in extras order, and the score.
    means = assert_episode_metrics(env, traj)
    assert len(means) == 22 + 1 and "achievement/collect_wood" in means
    assert env.achievement_names[0] == "collect_wood"
    rates = np.stack([means[f"achievement/{n}"] for n in env.achievement_names])
    np.testing.assert_allclose(rates, ach.sum(axis=(0, 1, 2)) / 16, rtol=1e-6)
    np.testing.assert_allclose(means["craftax_score"], craftax_score(100 * rates), rtol=1e-6)


@needs_craftax
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


@needs_craftax
@pytest.mark.slow
def test_full_craftax_steps_under_jit_and_vmap():
    # Full Craftax (nine floors): world generation makes this the costliest Craftax program.
    env = make_env("craftax", "Craftax-Symbolic-v1", num_envs=2, options={"reset_ratio": 2})
    assert env.spec.action_space.n == 43 and env.spec.obs_shape == (8268,)
    assert len(env.achievement_names) > 22  # Craftax's own list, not Classic's
    check_protocol_with_state(env, num_seeds=2, num_steps=2)


@needs_craftax
def test_pixel_observations_step_under_jit_and_vmap():
    # The pixel path of the adapter (id mapping, [H, W, 3] observations through resets from
    # the pool) is the same for both games; Classic's renderer and textures are the cheaper
    # ones (full Craftax's textures alone take minutes to build in a fresh environment).
    env = make_env(
        "craftax",
        "Craftax-Classic-Symbolic-v1",
        num_envs=2,
        options={"pixels": True, "max_timesteps": 2, "reset_ratio": 2},
    )
    assert env.spec.name == "Craftax-Classic-Pixels-v1"
    assert env.spec.obs_shape == (63, 63, 3) and env.spec.action_space.n == 17
    traj = check_protocol(env, num_seeds=2, num_steps=3)
    # Every env times out at step 1 and is handed a fresh world's image from the pool.
    assert traj.truncated[:, 1].all() and not traj.truncated[:, [0, 2]].any()
    for s, i in np.ndindex(2, 2):
        assert not np.array_equal(traj.info.final_obs[s, 1, i], traj.next_obs[s, 1, i])
    assert traj.obs.min() >= 0 and traj.obs.max() <= 1 and traj.obs.std() > 0


@needs_craftax
def test_ppo_update_logs_achievements_and_the_craftax_score():
    from plasticine_jax.agents.ppo import PPO
    from plasticine_jax.config import load_config
    from plasticine_jax.envs.testing import jit_fast
    from plasticine_jax.runner.plan import traced_hp
    from tests.conftest import tiny

    # 2 envs x 8 steps, episodes of 4 steps: every env ends two episodes in the rollout.
    env_cfg = {
        "backend": "craftax",
        "id": "Craftax-Classic-Symbolic-v1",
        "num_envs": 2,
        "options": {"max_timesteps": 4, "reset_ratio": 2, "pool_size": 2},
    }
    cfg = load_config(data=tiny(
        env=env_cfg,
        agent={"num_steps": 8, "num_minibatches": 1, "update_epochs": 1},
        metrics={"every": 0},
        run={"total_timesteps": 16, "num_seeds": 1, "chunk_updates": 1},
    ))  # fmt: skip
    env = make_env("craftax", env_cfg["id"], 2, env_cfg["options"])
    agent = PPO(cfg, env)
    state = agent.init(jax.random.PRNGKey(0), traced_hp(cfg, []))
    _, out = jit_fast(agent.update, state, jnp.int32(0))
    out = jax.tree.map(np.asarray, out)
    assert out["episodes"] == 4
    names = env.achievement_names
    assert {f"env/achievement/{n}" for n in names} <= set(out)
    assert "env/craftax_score" in out and "env/achievement/collect_wood" in out
    rates = np.array([out[f"env/achievement/{n}"] for n in names])
    assert np.all((rates >= 0) & (rates <= 1)), rates
    np.testing.assert_allclose(out["env/craftax_score"], craftax_score(100 * rates), rtol=1e-5)
