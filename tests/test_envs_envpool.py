"""envpool adapter: one pool for seeds x envs, Atari preprocessing, Procgen levels, DMC."""

import jax
import numpy as np
import pytest

# CI installs the envpool extra (see README's test command); elsewhere this is optional.
pytest.importorskip("envpool")

from plasticine_jax.envs.registry import make_env  # noqa: E402
from plasticine_jax.envs.testing import check_protocol, jit_fast, rollout  # noqa: E402

ATARI = dict(
    episodic_life=True,
    reward_clip=True,
    noop_max=30,
    stack_num=4,
    img_height=84,
    img_width=84,
    gray_scale=True,
)


@pytest.fixture(scope="module")
def pong():
    return make_env("envpool", "Pong-v5", num_envs=2, options={**ATARI, "max_episode_steps": 5})


def test_atari_preprocessing_and_time_limit(pong):
    assert pong.spec.obs_shape == (4, 84, 84) and pong.spec.action_space.n == 6
    traj = check_protocol(pong, num_seeds=2, num_steps=7)
    assert 0.0 <= traj.obs.min() and traj.obs.max() <= 1.0
    # 5-step limit: the 5th step truncates every env, which then restarts at once.
    assert traj.truncated[:, 4].all() and not traj.truncated[:, [0, 1, 2, 3, 5, 6]].any()
    np.testing.assert_array_equal(traj.info.episode_length[:, 4], 5)
    assert not np.array_equal(traj.info.final_obs[:, 4], traj.next_obs[:, 4])
    np.testing.assert_array_equal(traj.info.extras["lives"][:, 0], 0)  # Pong has no lives


def test_pooled_seeds_are_independent(pong):
    """Three seeds share one pool of 6 envs; each seed's envs match that seed run alone
    (its own actions, its own env seeds), so no seed sees or disturbs another's envs."""
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    _, pooled = jit_fast(jax.vmap(lambda k: rollout(pong, k, 6)), keys)
    for s in (0, 2):
        _, alone = jit_fast(lambda k: rollout(pong, k, 6), keys[s])
        np.testing.assert_array_equal(pooled.next_obs[s], alone.next_obs)
        np.testing.assert_array_equal(pooled.reward[s], alone.reward)
    assert not np.array_equal(pooled.next_obs[0], pooled.next_obs[1])
    # Nested vmap (hyperparameters x seeds) also maps onto one pool.
    grid = jax.random.split(jax.random.PRNGKey(1), 4).reshape(2, 2, -1)
    _, nested = jit_fast(jax.vmap(jax.vmap(lambda k: rollout(pong, k, 2))), grid)
    assert nested.obs.shape == (2, 2, 2, 2, 4, 84, 84)


def test_reset_runs_even_when_only_rewards_are_used(pong):
    # A pure_callback whose outputs are unused may be dropped; the reset must still happen.
    rewards = jit_fast(lambda k: rollout(pong, k, 3)[1].reward, jax.random.PRNGKey(2))
    assert rewards.shape == (3, 2)


def test_procgen_level_advances_every_task():
    env = make_env(
        "envpool",
        "CoinrunEasy-v0",
        num_envs=2,
        scenario="procgen_levels",
        scenario_options={
            "steps_per_task": 3,
            "num_tasks": 3,
            "start_level": 5,
            "level_stride": 20,
        },
    )
    assert env.spec.num_tasks == 3 and env.spec.obs_shape == (3, 64, 64)
    traj = check_protocol(env, num_seeds=2, num_steps=8)
    levels = traj.info.extras["level_seed"]
    # Steps 0-1 play level 5; the step that ends a task already hands out the next level.
    np.testing.assert_array_equal(levels[:, :2], 5)
    np.testing.assert_array_equal(levels[:, 3:5], 25)
    np.testing.assert_array_equal(levels[:, 6:], 45)
    np.testing.assert_array_equal(traj.info.task_id[0, :, 0], [0, 0, 0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(np.flatnonzero(traj.info.task_switched[0, :, 0]), [3, 6])
    assert (traj.truncated | traj.terminated)[:, [2, 5]].all()


def test_procgen_without_qt_names_the_apt_packages(monkeypatch):
    import envpool

    from plasticine_jax.envs.registry import MissingExtraError

    def no_qt(task_id, **kwargs):  # what envpool raises when libQt5Core.so.5 is missing
        raise ImportError("EnvPool Procgen requires the system Qt 5 runtime on Linux.")

    monkeypatch.setattr(envpool, "make_spec", no_qt)
    with pytest.raises(MissingExtraError, match="apt-get install -y libqt5core5a libqt5gui5"):
        make_env("envpool", "CoinrunEasy-v0", 2)


@pytest.mark.slow
def test_dmc_sequence_switches_task():
    env = make_env(
        "envpool",
        "WalkerStand-v1",
        num_envs=2,
        scenario="dmc_sequence",
        scenario_options={"tasks": "walker", "steps_per_task": 2},
    )
    assert env.spec.num_tasks == 6 and env.spec.obs_shape == (24,)
    traj = check_protocol(env, num_seeds=2, num_steps=5)
    np.testing.assert_array_equal(traj.info.task_id[0, :, 0], [0, 0, 1, 1, 2])
    assert traj.truncated[:, [1, 3]].all()
