"""SAC and TD3 learn Pendulum-v1: mean greedy-evaluation return above -400 (a random policy
scores about -1200) within a CI budget.

As ``tests/test_learning_value.py``: the real command line in a subprocess with the
production XLA settings, on the shipped configs (CleanRL's defaults) with 64-64 networks and
batches of 128 instead of 256-256 and 256, so that two seeds x 12,000 steps fit the budget
of two CPU cores. The score is ``eval/episode_return`` (16 greedy episodes per evaluation on
a separate env copy), averaged over the seeds and the last two evaluations.
"""

import pytest

from tests.test_learning_value import _run

SMALL = [
    "agent.network.hidden_sizes=[64, 64]", "agent.batch_size=128", "run.total_timesteps=12000",
    "run.num_seeds=2", "run.chunk_updates=1000", "eval={every: 1000, num_envs: 16, max_steps: 200}",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("agent", ["sac", "td3"])
def test_offpolicy_agent_learns_pendulum(agent, tmp_path):
    score, seeds = _run(tmp_path, f"configs/{agent}_pendulum.yaml", SMALL)
    assert seeds == 2
    assert score > -400, score
