"""The report of a run directory built by hand with known numbers, and of real tiny runs:
``plasticine-jax report`` end to end, written at the end of every finished run, and a report
that fails never costs the run its results."""

from __future__ import annotations

import csv
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import yaml

from plasticine_jax.cli import main
from plasticine_jax.config import load_config
from plasticine_jax.report import build_report, load_run, write_parquet, write_report
from plasticine_jax.report.settings import collect_settings, format_value
from plasticine_jax.runner import loop
from tests.conftest import tiny

UPDATES = 10
SEEDS = 3
L2 = {"name": "l2", "hp": {"coef": 0.01}}


def _ret(setting: int, seed: int, update: int) -> float:
    """episode_return by hand; seed 1 finishes no episode on odd updates."""
    if seed == 1 and update % 2:
        return float("nan")
    return 10.0 * setting + seed + update


def _write_run(
    path: Path, *, lr: float = 2.5e-4, tasks: bool = False, diverge: bool = True, env: dict = None
):
    """A run directory as the runner writes it: vanilla and l2 x 3 seeds x 10 updates; in
    setting 1 (l2) seed 2 diverged at update 6; with ``tasks`` a switch after update 5."""
    path.mkdir(parents=True)
    cfg = {
        "name": "hand",
        "env": env or {"backend": "gymnax", "id": "CartPole-v1"},
        "agent": {"name": "ppo", "hp": {"lr": lr}},
        "methods": [],
        "run": {"total_timesteps": 1000, "num_seeds": SEEDS},
        "sweep": {"methods": [[], [L2]]},
    }
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    plan, rows = [], []
    cols = ["group", "member", "setting", "seed", "update", "env_steps", "sweep:methods",
            "diverged", "diverged_at", "dormant_ratio", "actor/weight_magnitude",
            "episode_return", "grad_norm", "task_id", "task_switched"]  # fmt: skip
    for setting, label in enumerate(["vanilla", "l2(coef=0.01)"]):
        for seed in range(SEEDS):
            member = setting * SEEDS + seed
            plan.append({"group": 0, "member": member, "setting": setting, "seed": seed,
                         "methods": label})  # fmt: skip
            for u in range(1, UPDATES + 1):
                bad = diverge and setting == 1 and seed == 2 and u >= 6
                r = _ret(setting, seed, u)
                rows.append({
                    "group": 0, "member": member, "setting": setting, "seed": seed,
                    "update": u, "env_steps": 100 * u, "sweep:methods": label,
                    "diverged": int(bad), "diverged_at": 6 if bad else 0,
                    "dormant_ratio": 0.01 * u + 0.1 * setting if u % 2 == 0 else "",
                    "actor/weight_magnitude": 1.0 + seed if u % 2 == 0 else "",
                    "episode_return": "" if np.isnan(r) else r, "grad_norm": 0.5,
                    "task_id": float(u > 5) if tasks else 0.0,
                    "task_switched": float(tasks and u == 6),
                })  # fmt: skip
    (path / "plan.json").write_text(json.dumps(plan))
    with (path / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    (path / "summary.json").write_text(json.dumps({"status": "finished"}))
    return path


def _final(setting: int, seed: int, last: int) -> float:
    k = [u for u in (last,) if not np.isnan(_ret(setting, seed, u))]
    return _ret(setting, seed, k[0]) if k else float("nan")


@pytest.fixture(scope="module")
def hand_report(tmp_path_factory):
    run = _write_run(tmp_path_factory.mktemp("hand") / "run")
    t0 = time.perf_counter()
    html = write_report(run, reps=5000)
    seconds = time.perf_counter() - t0
    return run, html, json.loads((html.parent / "report.json").read_text()), seconds


def test_hand_built_run_aggregates(hand_report):
    _, _, rep, _ = hand_report
    vanilla, l2 = rep["settings"]
    assert [vanilla["label"], l2["label"]] == ["vanilla", "l2(coef=0.01)"]
    # final return: the last 10% of 10 updates is update 10; seed 1 has one there too
    finals = [_ret(0, s, 10) for s in range(SEEDS)]
    f = vanilla["final_return"]
    assert [p["seed"] for p in f["per_seed"]] == [0, 1, 2]
    assert [p["final_return"] for p in f["per_seed"]] == finals
    assert f["iqm"] == pytest.approx(scipy.stats.trim_mean(finals, 0.25))
    assert f["ci_low"] <= f["iqm"] <= f["ci_high"]
    assert min(finals) <= f["ci_low"] and f["ci_high"] <= max(finals)
    assert f["mean"]["value"] == pytest.approx(np.mean(finals))
    assert f["median"]["value"] == pytest.approx(np.median(finals))
    assert f["optimality_gap"]["value"] == pytest.approx(1 - np.mean(finals) / 500)
    assert rep["normalization"] == {"kind": "known", "env": "CartPole-v1", "lo": 0.0, "hi": 500.0}
    # AUC: the mean over updates with a finished episode (seed 1: even updates only)
    aucs = [np.nanmean([_ret(0, s, u) for u in range(1, 11)]) for s in range(SEEDS)]
    assert [p["auc"] for p in vanilla["auc"]["per_seed"]] == pytest.approx(aucs)
    assert aucs[1] == pytest.approx(7.0)  # updates 2..10 even, + 1


def test_hand_built_run_diverged_member_is_left_out_and_counted(hand_report):
    _, html, rep, _ = hand_report
    vanilla, l2 = rep["settings"]
    assert (vanilla["diverged"], l2["diverged"]) == (0, 1)
    assert l2["diverged_members"] == [{"group": 0, "member": 5, "seed": 2, "update": 6}]
    f = l2["final_return"]
    assert [p["seed"] for p in f["per_seed"]] == [0, 1] and f["seeds"] == 2
    assert [p["final_return"] for p in f["per_seed"]] == [_ret(1, s, 10) for s in (0, 1)]
    md = (html.parent / "report.md").read_text()
    assert "| l2(coef=0.01) | 2 | 1/3 |" in md
    assert "seed 2 (member 5, group 0) diverged at update 6" in md


def test_hand_built_run_improvement_and_profiles(hand_report):
    _, _, rep, _ = hand_report
    vanilla, l2 = rep["settings"]
    assert "improvement" not in vanilla and vanilla["is_baseline"]
    imp = l2["improvement"]  # every l2 score (20, 21) beats every vanilla one (10, 11, 12)
    assert imp["baseline"] == "vanilla" and imp["probability"] == 1.0
    assert imp["ci_low"] == imp["ci_high"] == 1.0
    prof = rep["profiles"]
    taus = np.array(prof["taus"])
    want = [(np.array([_ret(0, s, 10) for s in range(3)]) / 500 > t).mean() for t in taus]
    np.testing.assert_allclose(prof["settings"]["vanilla"]["fraction"], want)


def test_hand_built_run_html_is_self_contained(hand_report):
    _, html, rep, seconds = hand_report
    text = html.read_text()
    figures = sorted(p.stem for p in (html.parent / "figures").glob("*.svg"))
    assert {"learning_curves", "intervals", "profiles", "metrics"} <= set(figures)
    assert text.count("src='data:image/svg+xml;base64,") == len(figures)
    assert "http://" not in text.replace("http://www.w3.org/", "")  # only SVG namespaces
    assert "https://" not in text  # nothing to fetch
    md = (html.parent / "report.md").read_text()
    assert all(f"(figures/{s}.svg)" in md for s in figures)
    assert seconds < 30, seconds


def test_parquet_reads_back_as_the_csv(tmp_path):
    run = _write_run(tmp_path / "run")
    from_csv = load_run(run)
    assert from_csv.source == "metrics.csv"
    write_parquet(run)
    from_pq = load_run(run)
    assert from_pq.source == "metrics.parquet"
    assert list(from_pq.columns) == list(from_csv.columns)
    for k, v in from_csv.columns.items():
        if v.dtype.kind == "f":
            np.testing.assert_array_equal(v, from_pq.columns[k])
        else:
            assert list(v) == list(from_pq.columns[k])
    assert np.isnan(from_csv.columns["dormant_ratio"][0])  # empty cell: no metrics there


def test_continual_run_scores_per_task(tmp_path):
    run = _write_run(tmp_path / "run", tasks=True)
    rep, _ = build_report([run], reps=2000, with_figures=False)
    f = rep["settings"][0]["final_return"]
    assert f["tasks"] == 2
    # per task: the last 10% of 5 updates is its last update (5 and 10); seed 1 has none at 5
    assert [p["seed"] for p in f["per_seed"]] == [0, 2] and f["left_out"] == [1]
    assert f["per_seed"][0]["per_task"] == [_ret(0, 0, 5), _ret(0, 0, 10)]


def test_runs_that_differ_are_labelled_by_what_differs(tmp_path):
    a = _write_run(tmp_path / "a", lr=1e-3)
    b = _write_run(tmp_path / "b", lr=3e-4)
    labels = [s.label for s in collect_settings([load_run(a), load_run(b)])]
    assert labels == ["vanilla, lr=1e-3", "l2(coef=0.01), lr=1e-3", "vanilla, lr=3e-4",
                      "l2(coef=0.01), lr=3e-4"]  # fmt: skip
    rep, _ = build_report([a, b], reps=1000, with_figures=False)
    assert rep["differing_keys"] == ["agent.hp.lr"]
    by = {r["label"]: r for r in rep["settings"]}
    assert by["l2(coef=0.01), lr=3e-4"]["improvement"]["baseline"] == "vanilla, lr=3e-4"
    assert format_value("0.00025") == "2.5e-4" and format_value("64") == "64"


def test_cli_report_and_a_named_baseline(tmp_path, capsys):
    run = _write_run(tmp_path / "run", diverge=False)
    out = tmp_path / "out"
    assert main(["report", str(run), "--out", str(out), "--baseline", "l2(coef=0.01)"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["settings"][0]["improvement"]["probability"] == 0.0
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "report error" in capsys.readouterr().err
    assert main(["report", str(run), "--baseline", "nope"]) == 2


# ---- real tiny runs ----------------------------------------------------------------------


def _tiny_cfg(tmp_path: Path, name: str, **run):
    return load_config(data=tiny(run={"out_dir": str(tmp_path), "name": name,
                                      "total_timesteps": 4 * 16 * 2, **run}))  # fmt: skip


def test_every_finished_run_writes_its_report(tmp_path, monkeypatch):
    timed = []
    real = loop.write_run_report

    def timed_report(*args):
        t0 = time.perf_counter()
        out = real(*args)
        timed.append(time.perf_counter() - t0)
        return out

    monkeypatch.setattr(loop, "write_run_report", timed_report)
    result = loop.run(_tiny_cfg(tmp_path, "tiny"))
    report = result.run_dir / "report"
    assert (result.run_dir / "metrics.parquet").is_file()
    assert {p.name for p in report.iterdir()} >= {"report.html", "report.md", "report.json"}
    rep = json.loads((report / "report.json").read_text())
    (row,) = rep["settings"]
    (summary,) = result.summary
    # the run's own summary and the report use the same final return per member
    assert np.mean([p["final_return"] for p in row["final_return"]["per_seed"]]) == (
        pytest.approx(summary["return_mean"])
    )
    assert timed[0] < 10, f"the report of a tiny run took {timed[0]:.1f} s"
    # and the CLI regenerates it from the directory alone
    assert main(["report", str(result.run_dir), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["settings"][0]["final_return"] == row["final_return"]


def test_a_failing_report_never_loses_the_run(tmp_path, monkeypatch):
    import plasticine_jax.report as report_pkg

    def broken(*args, **kwargs):
        raise RuntimeError("figure backend exploded")

    monkeypatch.setattr(report_pkg, "write_report", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = loop.run(_tiny_cfg(tmp_path, "broken"))
    assert result.status == "finished"
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("figure backend exploded" in m and "plasticine-jax report" in m for m in msgs)
    assert json.loads((result.run_dir / "summary.json").read_text())["status"] == "finished"
    assert (result.run_dir / "metrics.csv").stat().st_size > 0
    assert not (result.run_dir / "report").exists()


def test_run_report_false_writes_none(tmp_path):
    result = loop.run(_tiny_cfg(tmp_path, "quiet", report=False))
    assert result.status == "finished" and not (result.run_dir / "report").exists()


# ---- continual diagnosis -----------------------------------------------------------------


def test_diagnosis_levels_trends_and_returns_per_task(tmp_path):
    from plasticine_jax.report.diagnosis import MIN_PAIRS

    run = _write_run(tmp_path / "run", tasks=True, diverge=False)
    rep, _ = build_report([run], reps=1000, with_figures=False)
    diag = rep["diagnosis"]
    assert diag["tasks"] == 2 and set(diag["settings"]) == {"vanilla", "l2(coef=0.01)"}
    for s, label in enumerate(["vanilla", "l2(coef=0.01)"]):
        d = diag["settings"][label]["metrics"]["dormant_ratio"]
        # logged on even updates: task 0 holds 2, 4; task 1 holds 6, 8, 10
        assert [e["iqm"] for e in d["level"]] == pytest.approx([0.03 + 0.1 * s, 0.08 + 0.1 * s])
        # slope 0.01 an update (100 env steps) over a task of 5 updates
        assert [e["iqm"] for e in d["trend"]] == pytest.approx([0.05, 0.05])
        vs = diag["settings"][label]["return_vs_first"]
        # task 0's final return is update 5 (seed 1 has none there), task 1's update 10
        assert vs[1]["iqm"] == pytest.approx(5.0) and vs[1]["seeds"] == 2
    c = diag["correlations"]["dormant_ratio"]
    assert c["rho"] is None and c["pairs"] < MIN_PAIRS and "too few seeds" in c["verdict"]
    assert any("Plasticity diagnosis" in k for k in rep["sections"])


def test_correlation_finds_a_planted_relation_and_not_a_missing_one():
    from plasticine_jax.report.diagnosis import correlation

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4))
    planted = correlation(x, 2 * x + 0.01 * rng.normal(size=x.shape))
    assert planted["rho"] > 0.95 and planted["ci_low"] > 0 and "rose" in planted["verdict"]
    none = correlation(x, rng.normal(size=x.shape))
    assert none["ci_low"] <= 0 <= none["ci_high"] and "includes 0" in none["verdict"]
    few = correlation(x[:3], x[:3])
    assert few["rho"] is None and few["verdict"].startswith("too few seeds to tell")


# ---- open-ended (Craftax) ----------------------------------------------------------------


def test_craftax_score_achievements_and_unlock_order(tmp_path):
    run = _write_run(tmp_path / "run", diverge=False)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    for r in rows:  # collect_wood from update 3 + seed on, place_table never
        u, seed = int(r["update"]), int(r["seed"])
        r["env/achievement/collect_wood"] = 0.5 if u >= 3 + seed else 0.0
        r["env/achievement/place_table"] = 0.0
        r["env/craftax_score"] = 0.1 * u
    with (run / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    rep, figures = build_report([run], reps=1000)
    oe = rep["open_ended"]
    assert oe["achievements"] == ["collect_wood", "place_table"]
    v = oe["settings"]["vanilla"]
    assert v["craftax_score"]["iqm"] == pytest.approx(1.0)  # the last update's 0.1 * 10
    wood = v["achievements"]["collect_wood"]
    assert wood["first_unlock"] == {"median_env_steps": 400.0, "seeds": 3, "of": 3}
    assert wood["final_rate"]["iqm"] == pytest.approx(0.5)
    # dormant_ratio (logged on even updates) nearest the unlocks at updates 3, 4, 5
    at = wood["metrics_at_unlock"]["dormant_ratio"]
    assert at["seeds"] == 3 and at["iqm"] == pytest.approx(np.mean([0.02, 0.04, 0.04]))
    table = v["achievements"]["place_table"]
    assert table["first_unlock"]["median_env_steps"] is None
    text = rep["sections"]["Open-ended: Craftax score and achievements"]
    assert text.index("| collect_wood |") < text.index("| place_table | never |")
    assert "craftax_score" in [stem for stem, _, _ in figures]


def test_report_figures_and_table_go_to_wandb_offline(tmp_path):
    from plasticine_jax.report.wandb_log import log_report

    run = _write_run(tmp_path / "run", diverge=False)
    html = write_report(run, reps=1000, fmt="png")
    log_report(run, html.parent, {"mode": "offline", "project": "plasticine-jax"})
    (offline,) = (run / "wandb").glob("offline-run-*")
    images = {p.name.rsplit("_", 2)[0] for p in offline.rglob("media/images/report/*.png")}
    assert images == {p.stem for p in (html.parent / "figures").glob("*.png")}, images
    assert list(offline.rglob("media/table/report/summary*.table.json"))


def _rewrite(run: Path, edit) -> None:
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    for r in rows:
        edit(r)
    with (run / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_evaluation_returns_are_aggregated_and_plotted(tmp_path):
    run = _write_run(tmp_path / "run", diverge=False)

    def edit(r):  # greedy evaluation every 5 updates: 100 + seed, then 200 + seed
        u = int(r["update"])
        r["eval/episode_return"] = 100.0 * (u // 5) + int(r["seed"]) if u % 5 == 0 else ""

    _rewrite(run, edit)
    rep, figures = build_report([run], reps=1000)
    ev = rep["settings"][0]["eval_return"]
    assert [p["eval_return"] for p in ev["per_seed"]] == [200.0, 201.0, 202.0]
    assert "eval/episode_return" not in rep["settings"][0]["final_return"]
    from plasticine_jax.report.render import summary_table

    assert "eval return IQM" in summary_table(rep)[0]
    assert "learning_curves" in [stem for stem, _, _ in figures]


def test_a_run_with_no_episodes_and_every_member_diverged_still_reports(tmp_path):
    run = _write_run(tmp_path / "run")

    def edit(r):
        r["episode_return"] = ""
        if r["setting"] == "1":
            r["diverged"], r["diverged_at"] = 1, 3

    _rewrite(run, edit)
    html = write_report(run, reps=500)
    rep = json.loads((html.parent / "report.json").read_text())
    assert [r["diverged"] for r in rep["settings"]] == [0, 3]
    assert rep["settings"][0]["final_return"]["seeds"] == 0
    assert "n/a" in (html.parent / "report.md").read_text()


def test_tasks_that_are_different_games_are_aggregated_normalised(tmp_path):
    env = {"backend": "gymnax", "id": "Breakout-MinAtar", "scenario": "game_sequence"}
    run = _write_run(tmp_path / "run", tasks=True, diverge=False, env=env)
    rep, _ = build_report([run], reps=1000, with_figures=False)
    assert (
        rep["score_units"].startswith("normalised") and rep["normalization"]["kind"] == "observed"
    )
    lo, hi = np.array(rep["normalization"]["lo"]), np.array(rep["normalization"]["hi"])
    # task 0 ends at update 5, task 1 at update 10; seed 1 has no episode at 5 (left out)
    raw = np.array([[_ret(s, seed, 5), _ret(s, seed, 10)] for s in (0, 1) for seed in (0, 2)])
    np.testing.assert_allclose(lo, raw.min(axis=0))
    np.testing.assert_allclose(hi, raw.max(axis=0))
    f = rep["settings"][1]["final_return"]
    want = (raw[2:] - lo) / (hi - lo)
    assert f["iqm"] == pytest.approx(scipy.stats.trim_mean(want.ravel(), 0.25))
    assert f["per_seed"][0]["per_task"] == [_ret(1, 0, 5), _ret(1, 0, 10)]  # still returns
