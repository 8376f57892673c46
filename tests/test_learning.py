"""PPO learns CartPole-v1: mean final return >= 400 within a fixed budget.

Runs the real command line in a subprocess with the production XLA settings (the test
session itself compiles at a low optimisation level to keep compiles short, which makes
long runs slower), and reads the run directory it writes.
"""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ppo_learns_cartpole(tmp_path):
    # 200k env steps x 4 seeds; about a minute on two CPU cores.
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    cmd = [
        sys.executable, "-m", "plasticine_jax.cli", "run", "configs/cartpole_ppo.yaml",
        "run.total_timesteps=200704",
        "run.num_seeds=4",
        "env.num_envs=8",
        "agent.hp.lr=1e-3",
        "metrics.every=0",
        f"run.out_dir={tmp_path}",
        "run.name=learn",
        "run.progress=false",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "learn" / "summary.json").read_text())
    assert summary["status"] == "finished"
    (row,) = summary["summary"]
    assert row["seeds"] == 4
    assert row["return_mean"] >= 400, row
