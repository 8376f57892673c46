"""Every shipped config runs end to end at a tiny size: every compile group, checkpointing
on, then the same run stopped mid-way and resumed across group boundaries, which must equal
the uninterrupted run row for row (every column). A config that cannot resume (envpool: its
pool is not in the checkpoint) must say so instead."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from plasticine_jax.config import load_config
from plasticine_jax.runner.loop import resumable, run

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((REPO / "configs" / "experiments").glob("*.yaml"))
TOP_LEVEL = sorted((REPO / "configs").glob("*.yaml"))
UPDATES = 4  # per group, in chunks of 2
TINY_STEPS = UPDATES * 2 * 8  # env steps per member: 2 envs x 8 steps an update

# Shrinks any shipped config: 2 envs x 8 steps, 4 updates a group, 1 seed, small widths.
COMMON = [
    "env.num_envs=2",
    "agent.num_steps=8",
    "run.chunk_updates=2",
    "run.num_seeds=1",
    "run.progress=false",
    "run.checkpoint=true",
    "metrics.every=2",
    "metrics.probe_size=16",
]
SHRINK = [  # PPO and PQN: epochs of minibatches over the rollout
    *COMMON,
    "agent.num_minibatches=2",
    "agent.update_epochs=1",
    f"run.total_timesteps={TINY_STEPS}",
]
PREFILL = 16  # replay agents: 8 random steps of each env first, then one gradient step an update
REPLAY_SHRINK = [
    *COMMON,
    "agent.replay_ratio=0.0625",
    "agent.batch_size=16",
    "agent.buffer_size=128",
    f"agent.learning_starts={PREFILL}",
    f"run.total_timesteps={PREFILL + TINY_STEPS}",
]


def _tiny_overrides(path: Path) -> list[str]:
    cfg = load_config(path)
    extra = []
    if cfg.agent.network.torso == "mlp":
        extra.append("agent.network.hidden_sizes=[16, 16]")
    else:
        extra.append("agent.network.hidden_sizes=[16]")
    if cfg.env.backend == "craftax":
        extra.append("env.options={pixels: false, reset_ratio: 2, pool_size: 2}")
    if cfg.env.scenario != "none":
        # As many tasks in the tiny run as in the shipped one: steps_per_task shrinks with
        # the run (env steps per member, a multiple of the 2 envs).
        tasks = cfg.run.total_timesteps / cfg.env.scenario_options["steps_per_task"]
        assert tasks >= 2, f"{path.name} never reaches its second task"
        spt = max(2, round(TINY_STEPS / tasks / 2) * 2)
        extra.append(f"env.scenario_options.steps_per_task={spt}")
    if cfg.eval.every:
        extra.append("eval={every: 2, num_envs: 2, max_steps: 20}")
    return [*(REPLAY_SHRINK if hasattr(cfg.agent, "buffer_size") else SHRINK), *extra]


def _rows(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _assert_same_rows(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for k in ra:
            if ra[k] == "" or rb[k] == "":
                assert ra[k] == rb[k], (k, ra, rb)
                continue
            try:
                x, y = float(ra[k]), float(rb[k])
            except ValueError:
                assert ra[k] == rb[k], k
                continue
            assert math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-7), (k, ra["group"], x, y)


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("path", EXPERIMENTS + TOP_LEVEL, ids=lambda p: p.stem)
def test_shipped_config_runs_to_the_end_and_resumes_across_groups(path, tmp_path):
    over = [*_tiny_overrides(path), f"run.out_dir={tmp_path}"]
    full = run(load_config(path, [*over, "run.name=full"]))
    assert full.status == "finished"
    groups = {int(r["group"]) for r in _rows(full.run_dir)}
    cfg = load_config(path, over)
    n_groups = max(groups) + 1
    assert groups == set(range(n_groups))
    assert full.programs_compiled == n_groups  # one compile a group: its chunks all match
    rows = _rows(full.run_dir)
    seeds_per_group = {g: {r["member"] for r in rows if int(r["group"]) == g} for g in groups}
    assert len(rows) == sum(len(m) for m in seeds_per_group.values()) * UPDATES
    if cfg.env.scenario != "none":
        assert max(float(r["task_id"]) for r in rows) >= 2  # the tasks really switch
    if not resumable(cfg):  # envpool: finished, and says it cannot be resumed
        assert not full.resumable
        assert json.loads((full.run_dir / "summary.json").read_text())["resumable"] is False
        return
    # Stop inside the last group when there are several (the resume then starts in a
    # later group), else after the first chunk; the resume runs to the end.
    chunks = 2 * (n_groups - 1) + 1
    part = run(load_config(path, [*over, "run.name=part"]), stop_after_chunks=chunks)
    assert part.status == "interrupted"
    resumed = run(resume=part.run_dir)
    assert resumed.status == "finished"
    _assert_same_rows(rows, _rows(resumed.run_dir))
