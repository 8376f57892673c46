"""Continual scenarios over gymnax: permuted observations and the MinAtar game sequence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plasticine_jax.envs.continual import TaskSchedule
from plasticine_jax.envs.core import DiscreteActions, Environment, EnvSpec, StepInfo, Wrapper
from plasticine_jax.envs.dynamics_shift import DynamicsShift
from plasticine_jax.envs.permuted import PermutedObs, permutation_table
from plasticine_jax.envs.registry import make_env
from plasticine_jax.envs.testing import (
    assert_episode_metrics,
    check_protocol,
    jit_fast,
    rollout,
)

SPT = 3  # steps per task
EXPECTED_TASKS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])  # 3 tasks; the last runs on


def _permuted(mode="features", env_id="CartPole-v1", **extra):
    return make_env(
        "gymnax",
        env_id,
        num_envs=2,
        scenario="permuted_obs",
        scenario_options={"num_tasks": 3, "steps_per_task": 2 * SPT, "mode": mode, **extra},
    )


@pytest.mark.parametrize("mode,shape", [("features", (4,)), ("pixels", (10, 10, 4))])
def test_permutation_table_rows_are_bijections(mode, shape):
    table = permutation_table(shape, num_tasks=4, seed=1, mode=mode, patch_size=1)
    size = int(np.prod(shape))
    for row in table:
        np.testing.assert_array_equal(np.sort(row), np.arange(size))
    assert len({tuple(r) for r in table}) == 4, "each task must get its own permutation"


def test_pixel_permutation_keeps_channels_and_patches_together():
    shape = (4, 4, 3)
    table = permutation_table(shape, num_tasks=2, seed=0, mode="pixels", patch_size=2)
    image = np.arange(48).reshape(shape)
    out = image.reshape(-1)[table[1]].reshape(shape)
    # Every output pixel holds one input pixel's three channels, in order.
    assert np.all(np.diff(out, axis=-1) == 1)
    # Every output 2x2 patch is an input 2x2 patch.
    patches = {tuple(image[i : i + 2, j : j + 2].reshape(-1)) for i in (0, 2) for j in (0, 2)}
    for i in (0, 2):
        for j in (0, 2):
            assert tuple(out[i : i + 2, j : j + 2].reshape(-1)) in patches


def test_permuted_obs_changes_exactly_at_the_task_boundary():
    env = _permuted()
    base = make_env("gymnax", "CartPole-v1", num_envs=2)
    key = jax.random.PRNGKey(0)
    _, traj = jit_fast(lambda k: rollout(env, k, 10), key)
    _, raw = jit_fast(lambda k: rollout(base, k, 10), key)  # same keys, same actions
    table = permutation_table((4,), 3, seed=0, mode="features", patch_size=1)
    tasks = np.asarray(traj.info.task_id)[:, 0]
    np.testing.assert_array_equal(tasks, EXPECTED_TASKS)
    switched = np.asarray(traj.info.task_switched)[:, 0]
    np.testing.assert_array_equal(np.flatnonzero(switched), [3, 6])
    for t in range(10):
        # obs seen when acting at step t uses step t's task; final_obs too.
        perm = table[EXPECTED_TASKS[t]]
        np.testing.assert_array_equal(traj.obs[t], np.asarray(raw.obs[t])[:, perm])
        np.testing.assert_array_equal(traj.info.final_obs[t], raw.info.final_obs[t][:, perm])
    # The dynamics are untouched.
    np.testing.assert_array_equal(traj.reward, raw.reward)
    assert env.spec.num_tasks == 3 and env.spec.steps_per_task == SPT


def test_permuted_obs_jit_vmap_and_pixels():
    check_protocol(_permuted(), num_seeds=2, num_steps=4)
    env = _permuted("pixels", "Breakout-MinAtar", patch_size=2)
    traj = check_protocol(env, num_seeds=2, num_steps=4)
    assert np.all(np.sort(traj.obs.reshape(-1)) >= 0)


class _Counting(Environment):
    """Obs = the step counter; every episode lasts 2 steps and earns 1 per step. Logs the
    finished episode's return twice over, and sums the means in a summary."""

    spec = EnvSpec("counting", 2, (3,), DiscreteActions(2))

    def reset(self, key):
        return jnp.zeros((2, 3)), jnp.zeros((), jnp.int32)

    def step(self, key, state, action):
        t = state + 1
        obs = jnp.full((2, 3), t, jnp.float32)
        done = jnp.full(2, t % 2 == 0)
        ret = jnp.where(done, 2.0, 0.0)
        info = StepInfo(obs, jnp.zeros(2, jnp.int32), jnp.zeros(2, bool), ret,
                        jnp.where(done, 2, 0), {"ret": ret})  # fmt: skip
        return obs, t, jnp.ones(2), jnp.zeros(2, bool), done, info

    def episode_metrics(self, info):
        return {"double_return": 2 * info.extras["ret"]}

    def summarize_episode_metrics(self, means):
        return {"double_return_plus_one": means["double_return"] + 1}


def test_wrappers_forward_the_episode_metric_hooks():
    for cls in (PermutedObs, DynamicsShift):
        assert issubclass(cls, Wrapper), f"{cls.__name__} must forward its inner env's hooks"
    env = PermutedObs(_Counting(), TaskSchedule(2, 2))
    assert env.inner.spec.name == "counting"
    traj = check_protocol(env, num_seeds=2, num_steps=4)
    means = assert_episode_metrics(env, traj)
    assert means == {"double_return": 4.0, "double_return_plus_one": 5.0}


def _sequence(channels="padded"):
    return make_env(
        "gymnax",
        "MinAtar",
        num_envs=3,
        scenario="game_sequence",
        scenario_options={
            "games": ["Breakout", "Freeway"],
            "steps_per_task": 3 * 4,  # env steps per member: 4 steps of each of 3 envs
            "channels": channels,
        },
    )


@pytest.mark.parametrize(
    "channels,depth,freeway_slots",
    [
        ("padded", 7, slice(4, 7)),  # only Freeway fills slots 4..6
        pytest.param("disjoint", 11, slice(4, 11), marks=pytest.mark.slow),  # Freeway: 4..10
    ],
)
def test_game_sequence_switches_game_at_the_configured_step(channels, depth, freeway_slots):
    env = _sequence(channels)
    assert env.spec.obs_shape == (10, 10, depth)
    assert env.spec.action_space.n == 6 and env.spec.num_tasks == 2
    traj = check_protocol(env, num_seeds=2, num_steps=8)
    game = traj.info.extras["game"]
    np.testing.assert_array_equal(game[:, :, 0], [[0, 0, 0, 0, 1, 1, 1, 1]] * 2)
    np.testing.assert_array_equal(traj.info.task_id[:, :, 0], [[0, 0, 0, 0, 1, 1, 1, 1]] * 2)
    np.testing.assert_array_equal(np.flatnonzero(traj.info.task_switched[0, :, 0]), [4])
    # The last step of Breakout cuts every episode and hands out Freeway's first frame.
    assert np.all(traj.truncated[:, 3] | traj.terminated[:, 3])
    freeway = traj.obs[..., freeway_slots].reshape(2, 8, -1).any(-1)
    np.testing.assert_array_equal(freeway, [[False] * 4 + [True] * 4] * 2)
    # The cut episode's final_obs is still Breakout.
    assert not traj.info.final_obs[:, 3][..., freeway_slots].any()
    if channels == "disjoint":
        assert not traj.obs[:, 4:, ..., :4].any(), "Freeway must not touch Breakout's slots"
