"""The compiled program: one compile per grid, determinism, vmap equivalence, metrics cadence."""

import chex
import numpy as np
import pytest

from plasticine_jax.config import load_config
from plasticine_jax.runner.plan import plan
from plasticine_jax.runner.program import Program
from tests.conftest import tiny


@pytest.fixture(scope="module")
def grid_program():
    cfg = load_config(data={**tiny(), "sweep": {"agent.hp.lr": [1e-3, 3e-4]}})
    (group,) = plan(cfg)
    return Program(group)


@pytest.fixture(scope="module")
def grid_outputs(grid_program):
    states = grid_program.init()
    outs = []
    for start in range(0, grid_program.num_updates, grid_program.chunk):
        states, out = grid_program.run_chunk(states, start)
        outs.append(out)
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def test_grid_of_lrs_and_seeds_compiles_once(grid_program, grid_outputs):
    assert len(grid_program.group.members) == 4
    assert grid_program.num_updates // grid_program.chunk == 2  # two chunks were run
    assert grid_program.compiles == 1


def test_outputs_are_finite_and_shaped(grid_program, grid_outputs):
    n, m = grid_program.num_updates, 4
    for k in ("pg_loss", "v_loss", "entropy", "grad_norm", "approx_kl"):
        chex.assert_shape(grid_outputs[k], (n, m))
        assert np.isfinite(grid_outputs[k]).all(), k


def test_metrics_only_every_k_updates(grid_outputs):
    dormant = grid_outputs["dormant_ratio"]  # metrics.every = 2
    assert np.isnan(dormant[0::2]).all()
    assert np.isfinite(dormant[1::2]).all()
    assert np.isfinite(grid_outputs["stable_rank/actor"][1::2]).all()
    assert (grid_outputs["weight_change"][1::2] > 0).all()


def test_same_seed_twice_is_identical(grid_program, grid_outputs):
    states = grid_program.init()
    _, out = grid_program.run_chunk(states, 0)
    for k, v in out.items():
        np.testing.assert_array_equal(v, grid_outputs[k][: grid_program.chunk], err_msg=k)


def test_seeds_differ(grid_outputs):
    # members 0 and 1 share lr 1e-3 but have different seeds
    assert not np.allclose(grid_outputs["pg_loss"][:, 0], grid_outputs["pg_loss"][:, 1])


def test_member_in_vmapped_batch_equals_that_member_alone(grid_outputs):
    # member 3 = lr 3e-4, seed 1 (seeds 0..1 per setting)
    cfg = load_config(data=tiny(), overrides=["agent.hp.lr=3e-4", "run.seed=1",
                                               "run.num_seeds=1"])
    (group,) = plan(cfg)
    alone = Program(group)
    states = alone.init()
    _, out = alone.run_chunk(states, 0)
    for k in ("pg_loss", "v_loss", "entropy", "grad_norm"):
        np.testing.assert_allclose(
            out[k][:, 0], grid_outputs[k][: alone.chunk, 3], rtol=2e-4, atol=1e-6, err_msg=k
        )


def test_params_of_members_differ_only_by_seed_and_lr(grid_program):
    states = grid_program.init()
    leaf = states.members.learner.params["params"]["actor"]["layer_0"]["kernel"]
    assert leaf.shape[0] == 4
    # same seed, different lr -> identical initial params (common random numbers)
    np.testing.assert_array_equal(np.asarray(leaf[0]), np.asarray(leaf[2]))
    assert not np.array_equal(np.asarray(leaf[0]), np.asarray(leaf[1]))
