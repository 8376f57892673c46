"""Brax adapter and the dynamics-shift scenario."""

import jax
import jax.numpy as jnp
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


def _shift(env_id, friction=(1.0,), mass=(1.0,), **options):
    return make_env(
        "brax",
        env_id,
        num_envs=2,
        options=options,
        scenario="dynamics_shift",
        scenario_options={
            "friction": friction,
            "mass": mass,
            "steps_per_task": 2 * SPT,  # env steps per member, 2 envs
            "num_tasks": 2,
        },
    )


def _shift_vs_plain(env_id, friction=(1.0,), mass=(1.0,), **options):
    """Rollouts ``[S, T, N]`` of a dynamics shift and of the same env with its own physics in
    every task: same keys, hence the same initial states and random actions.

    One program, one compile of the Brax pipeline (the test's whole cost): the shift's
    per-task physics table and an all-ones table (unchanged physics) are vmapped inputs of
    the same rollout, swapped in while tracing as Brax's own domain randomisation swaps
    ``sys``.
    """
    shift = _shift(env_id, friction, mass, **options)
    plain = _shift(env_id, **options)
    own = jax.tree.leaves(shift.inner.sys)
    # The physics of task 0 (and of every task of the all-ones table) is the env's own.
    for sys in (shift.sys_for(jnp.int32(0)), plain.sys_for(jnp.int32(1))):
        for a, b in zip(jax.tree.leaves(sys), own, strict=True):
            np.testing.assert_array_equal(a, b)
    tables = jax.tree.map(lambda *t: np.stack(t), shift._table, plain._table)
    keys = jax.random.split(jax.random.PRNGKey(0), SEEDS)

    def run(table, key):
        saved, shift._table = shift._table, table
        try:
            return rollout(shift, key, STEPS)[1]
        finally:
            shift._table = saved

    both = jit_fast(jax.vmap(jax.vmap(run, (None, 0)), (0, None)), tables, keys)
    shifted, unchanged = (jax.tree.map(lambda x, i=i: x[i], both) for i in range(2))
    return (
        shift,
        assert_protocol(shift, shifted, SEEDS, STEPS),
        assert_protocol(shift, unchanged, SEEDS, STEPS),
    )


def _assert_changes_exactly_at_boundary(shifted, plain):
    # Same keys, same random actions: identical in task 0, different once task 1 steps.
    np.testing.assert_array_equal(shifted.next_obs[:, :SPT], plain.next_obs[:, :SPT])
    for t in range(SPT, STEPS):
        assert np.abs(shifted.next_obs[:, t] - plain.next_obs[:, t]).max() > 1e-6, t
    np.testing.assert_array_equal(shifted.info.task_id[0, :, 0], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(np.flatnonzero(shifted.info.task_switched[0, :, 0]), [SPT])


def test_mass_change_changes_dynamics_and_brax_steps_under_jit_vmap():
    shift, shifted, plain = _shift_vs_plain("inverted_pendulum", mass=(1.0, 4.0))
    assert shift.spec.obs_shape == (4,) and shift.spec.action_space.shape == (1,)
    assert shift.spec.num_tasks == 2 and shift.spec.steps_per_task == SPT
    _assert_changes_exactly_at_boundary(shifted, plain)
    np.testing.assert_array_equal(shifted.info.extras["mass_scale"][0, :, 0], [1, 1, 1, 4, 4, 4])
    np.testing.assert_array_equal(shifted.info.extras["friction_scale"], 1)


def test_dynamics_shift_forwards_the_episode_metric_hooks():
    shift = make_env(
        "brax", "inverted_pendulum", num_envs=2, scenario="dynamics_shift",
        scenario_options={"mass": (1.0, 2.0), "steps_per_task": 2 * SPT},
    )  # fmt: skip
    assert shift.episode_metrics(None) == {} and shift.summarize_episode_metrics({}) == {}
    shift.inner.episode_metrics = lambda info: {"ret": info}
    shift.inner.summarize_episode_metrics = lambda means: {"ret_sum": sum(means.values())}
    assert shift.episode_metrics(3.0) == {"ret": 3.0}
    assert shift.summarize_episode_metrics({"a": 1.0, "b": 2.0}) == {"ret_sum": 3.0}


# Friction acts through contacts: the slippery ant of configs/envs/brax_slippery_ant.yaml.
FRICTION_ENV = "ant"


@pytest.mark.slow
def test_friction_change_changes_contact_dynamics():
    # Also the ant's jit(vmap) protocol check (the rollouts go through BraxEnv.step_with).
    shift, shifted, plain = _shift_vs_plain(FRICTION_ENV, friction=(1.0, 0.05))
    assert shift.spec.obs_shape == (27,) and shift.spec.action_space.shape == (8,)
    _assert_changes_exactly_at_boundary(shifted, plain)
    np.testing.assert_allclose(shifted.info.extras["friction_scale"][0, :, 0], [1] * 3 + [0.05] * 3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "env_id", [e for e in ["ant", "halfcheetah", "hopper", "walker2d"] if e != FRICTION_ENV]
)
def test_brax_locomotion_steps(env_id):
    check_protocol(make_env("brax", env_id, num_envs=2), num_seeds=2, num_steps=2)


@pytest.mark.slow
def test_brax_backend_is_an_option_and_time_limit_truncates():
    # The time limit is the adapter's own step counter, the same for every backend.
    env = make_env(
        "brax",
        "inverted_pendulum",
        num_envs=2,
        options={"backend": "generalized", "episode_length": 2},
    )
    assert env._env.backend == "generalized"
    traj = check_protocol(env, num_seeds=2, num_steps=4)
    assert traj.truncated[:, [1, 3]].all() and not traj.truncated[:, [0, 2]].any()
    assert not traj.terminated.any()
    np.testing.assert_array_equal(traj.info.episode_length[:, 1], 2)
    # Truncated steps carry the true successor; the next obs is a fresh episode's.
    for s, i in np.ndindex(2, 2):
        assert not np.allclose(traj.info.final_obs[s, 1, i], traj.next_obs[s, 1, i])
    with pytest.raises(ValueError, match="brax backend"):
        make_env("brax", "ant", 2, options={"backend": "physx"})
