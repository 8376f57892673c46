"""Every shipped continual experiment (``configs/experiments/*.yaml`` with a scenario)
switches task: shrunk as ``tests/test_experiments.py`` shrinks it (as many tasks in the tiny
run as in the shipped one), each of its settings logs at least three distinct ``task_id``
values and ``task_switched`` on some rows.

The shipped ``permuted_cartpole_resets`` once logged ``task_id = 0`` on every row: its
``steps_per_task`` counted steps per env, so no task ever ended and its reset settings gave
vanilla's results bit for bit."""

from __future__ import annotations

import csv

import pytest

from plasticine_jax.config import load_config
from plasticine_jax.runner.loop import run
from plasticine_jax.runner.plan import plan
from tests.test_experiments import EXPERIMENTS, _tiny_overrides

CONTINUAL = [p for p in EXPERIMENTS if load_config(p).env.scenario != "none"]


def _cheaper(path) -> list[str]:
    """Further cuts that leave the task schedule alone: no plasticity metrics and no
    checkpoints, and a game sequence of its first two games (as the config fuzz test shrinks
    it; task k still plays ``games[k % len(games)]``). Tracing the five MinAtar games'
    program dominated this test's time."""
    extra = ["metrics.every=0", "run.checkpoint=false"]
    games = load_config(path).env.scenario_options.get("games")
    if isinstance(games, list | tuple) and len(games) > 2:
        extra.append(f"env.scenario_options.games=[{', '.join(games[:2])}]")
    return extra


def test_the_shipped_continual_experiments_are_found():
    names = {p.stem for p in CONTINUAL}
    assert {"permuted_cartpole_resets", "minatar_game_sequence"} <= names


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", CONTINUAL, ids=lambda p: p.stem)
def test_every_setting_of_a_continual_experiment_switches_task(path, tmp_path):
    over = [*_tiny_overrides(path), *_cheaper(path), f"run.out_dir={tmp_path}", "run.name=tiny"]
    cfg = load_config(path, over)
    result = run(cfg)
    assert result.status == "finished"
    with (result.run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    settings = {r["setting"] for r in rows}
    assert settings == {str(m.setting) for g in plan(cfg) for m in g.members}
    for s in sorted(settings):
        mine = [r for r in rows if r["setting"] == s]
        tasks = {int(float(r["task_id"])) for r in mine}
        assert len(tasks) >= 3, (path.stem, s, tasks)
        assert any(float(r["task_switched"]) == 1.0 for r in mine), (path.stem, s)
        assert {float(r["task_switched"]) for r in mine} <= {0.0, 1.0}
