"""DQN and PQN learn CartPole-v1: mean greedy-evaluation return >= 400 within a fixed budget.

As ``tests/test_learning.py`` does for PPO: the real command line in a subprocess with the
production XLA settings, reading the run directory it writes. The score is
``eval/episode_return`` (16 greedy episodes per evaluation, on a separate env copy),
averaged over the seeds and the last two evaluations.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest


def _run(tmp_path, config, overrides, timeout=880):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    cmd = [sys.executable, "-m", "plasticine_jax.cli", "run", config, *overrides,
           "metrics.every=0", f"run.out_dir={tmp_path}", "run.name=learn",
           "run.progress=false", "run.checkpoint=false"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "learn"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    with (run_dir / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["eval/episode_return"]]
    updates = sorted({int(r["update"]) for r in rows})
    last = [float(r["eval/episode_return"]) for r in rows if int(r["update"]) in updates[-2:]]
    return float(np.mean(last)), len({r["member"] for r in rows})


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pqn_learns_cartpole(tmp_path):
    # purejaxql's pqn_cartpole.yaml (the agent's defaults: 32 envs x 64 steps, 16 minibatches
    # x 4 epochs, 256-256 LayerNorm ReLU, RAdam 1e-4), 2e5 steps x 2 seeds. At 1.3e5 steps
    # (this test's budget until 2026-12-04) the score was on the edge: 500.0 with the
    # Gram-Schmidt of before, 390.1 with its row-wise form, whose initial weights differ by
    # about 1e-6; at 196,608 steps both give at least 498 (measured that day).
    score, seeds = _run(tmp_path, "configs/dqn_cartpole.yaml", [
        "agent={name: pqn}", "env.num_envs=32", "run.total_timesteps=196608",
        "run.num_seeds=2", "eval={every: 16, num_envs: 16, max_steps: 500}",
    ])  # fmt: skip
    assert seeds == 2
    assert score >= 400, score


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_dqn_learns_cartpole(tmp_path):
    # rejax's tuned CartPole DQN (keraJLi/rejax configs/gymnax/cartpole.yaml): 10 envs, 5
    # gradient steps per 10 env steps on batches of 100, double and dueling, SiLU 64-64,
    # Polyak 0.02 per iteration, lr 1e-3 on 0.5 td^2 (= 5e-4 on our mse), 1e5 steps x 2 seeds.
    score, seeds = _run(tmp_path, "configs/dqn_cartpole.yaml", [
        "env.num_envs=10", "agent.num_steps=1", "agent.replay_ratio=0.5",
        "agent.batch_size=100", "agent.buffer_size=50000", "agent.learning_starts=5000",
        "agent.double=true", "agent.dueling=true", "agent.clip_grad_norm=true",
        "agent.network.hidden_sizes=[64, 64]", "agent.network.activation=silu",
        "agent.hp.lr=5e-4", "agent.hp.tau=0.02", "agent.hp.target_every=10",
        "agent.hp.max_grad_norm=10", "agent.hp.eps_end=0.05",
        "agent.hp.exploration_fraction=0.5", "run.total_timesteps=100000", "run.num_seeds=2",
        "eval={every: 500, num_envs: 16, max_steps: 500}",
    ])  # fmt: skip
    assert seeds == 2
    assert score >= 400, score
