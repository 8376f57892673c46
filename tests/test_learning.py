"""PPO learns CartPole-v1: mean final return >= 400 within a fixed budget."""

import pytest

from plasticine_jax.config import load_config
from plasticine_jax.runner.loop import run


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ppo_learns_cartpole(tmp_path):
    # 200k env steps x 4 seeds; about a minute on two CPU cores.
    cfg = load_config(
        "configs/cartpole_ppo.yaml",
        [
            "run.total_timesteps=200704",
            "run.num_seeds=4",
            "env.num_envs=8",
            "agent.hp.lr=1e-3",
            "metrics.every=0",
            f"run.out_dir={tmp_path}",
            "run.progress=false",
        ],
    )
    result = run(cfg)
    (row,) = result.summary
    assert row["seeds"] == 4
    assert row["return_mean"] >= 400, row
