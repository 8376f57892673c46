"""Brax adapter and the dynamics-shift scenario."""

import jax
import numpy as np
import pytest

# CI installs the brax extra (see README's test command); elsewhere this is optional.
pytest.importorskip("brax")

from plasticine_jax.envs.registry import make_env  # noqa: E402
from plasticine_jax.envs.testing import (  # noqa: E402
    assert_protocol,
    check_protocol,
    jit_fast,
    rollout,
)

SEEDS, STEPS, SPT = 2, 6, 3


def _shift_vs_base(env_id, friction=(1.0,), mass=(1.0,), **options):
    shift = make_env(
        "brax",
        env_id,
        num_envs=2,
        options=options,
        scenario="dynamics_shift",
        scenario_options={
            "friction": friction,
            "mass": mass,
            "steps_per_task": SPT,
            "num_tasks": 2,
        },
    )
    base = make_env("brax", env_id, num_envs=2, options=options)
    keys = jax.random.split(jax.random.PRNGKey(0), SEEDS)

    def both(k):  # one program for both rollouts: one compile
        return rollout(shift, k, STEPS)[1], rollout(base, k, STEPS)[1]

    shifted, plain = jit_fast(jax.vmap(both), keys)
    return (
        shift,
        assert_protocol(shift, shifted, SEEDS, STEPS),
        base,
        assert_protocol(base, plain, SEEDS, STEPS),
    )


def _assert_changes_exactly_at_boundary(shifted, plain):
    # Same keys, same random actions: identical in task 0, different once task 1 steps.
    np.testing.assert_array_equal(shifted.next_obs[:, :SPT], plain.next_obs[:, :SPT])
    for t in range(SPT, STEPS):
        assert np.abs(shifted.next_obs[:, t] - plain.next_obs[:, t]).max() > 1e-6, t
    np.testing.assert_array_equal(shifted.info.task_id[0, :, 0], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(np.flatnonzero(shifted.info.task_switched[0, :, 0]), [SPT])


def test_mass_change_changes_dynamics_and_brax_steps_under_jit_vmap():
    shift, shifted, base, plain = _shift_vs_base("inverted_pendulum", mass=(1.0, 4.0))
    assert base.spec.obs_shape == (4,) and base.spec.action_space.shape == (1,)
    assert shift.spec.num_tasks == 2 and shift.spec.steps_per_task == SPT
    _assert_changes_exactly_at_boundary(shifted, plain)
    np.testing.assert_array_equal(shifted.info.extras["mass_scale"][0, :, 0], [1, 1, 1, 4, 4, 4])


def test_dynamics_shift_forwards_the_episode_metric_hooks():
    shift = make_env(
        "brax", "inverted_pendulum", num_envs=2, scenario="dynamics_shift",
        scenario_options={"mass": (1.0, 2.0), "steps_per_task": SPT},
    )  # fmt: skip
    assert shift.episode_metrics(None) == {} and shift.summarize_episode_metrics({}) == {}
    shift.inner.episode_metrics = lambda info: {"ret": info}
    shift.inner.summarize_episode_metrics = lambda means: {"ret_sum": sum(means.values())}
    assert shift.episode_metrics(3.0) == {"ret": 3.0}
    assert shift.summarize_episode_metrics({"a": 1.0, "b": 2.0}) == {"ret_sum": 3.0}


@pytest.mark.slow
def test_brax_time_limit_truncates():
    env = make_env("brax", "inverted_pendulum", num_envs=2, options={"episode_length": 2})
    traj = check_protocol(env, num_seeds=1, num_steps=4)
    assert traj.truncated[:, [1, 3]].all() and not traj.terminated.any()
    np.testing.assert_array_equal(traj.info.episode_length[:, 1], 2)
    # Truncated steps carry the true successor; the next obs is a fresh episode's.
    assert not np.allclose(traj.info.final_obs[:, 1], traj.next_obs[:, 1])


@pytest.mark.slow
def test_friction_change_changes_contact_dynamics():
    _, shifted, _, plain = _shift_vs_base("halfcheetah", friction=(1.0, 0.05))
    _assert_changes_exactly_at_boundary(shifted, plain)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["ant", "halfcheetah", "hopper", "walker2d"])
def test_brax_locomotion_steps(env_id):
    check_protocol(make_env("brax", env_id, num_envs=2), num_seeds=2, num_steps=2)


@pytest.mark.slow
def test_brax_backend_is_an_option():
    env = make_env("brax", "inverted_pendulum", num_envs=2, options={"backend": "generalized"})
    check_protocol(env, num_seeds=2, num_steps=2)
    with pytest.raises(ValueError, match="brax backend"):
        make_env("brax", "ant", 2, options={"backend": "physx"})
