"""A plasticity diagnosis of continual runs: per task, each metric's level and trend, the
return on each task against the first, and how each metric's drift relates to the later
drop in return.

Per healthy member and task ``k`` (the stretches of constant ``task_id``):

* ``level``: the metric's mean over the task's logged updates;
* ``trend``: the least-squares slope of the metric against env steps on the task, times the
  task's length in env steps (the fitted change over the task, in the metric's units);
* ``return vs first``: the task's final return (``report.aggregate``) minus task 0's.

Each is aggregated over seeds as an IQM with a 95% stratified bootstrap interval.

The correlation pairs every member's task ``k >= 1`` with ``x`` = the metric's level on
task ``k - 1`` minus its first logged value in the run (the drift before task ``k``) and
``y`` = final return on task 0 minus on task ``k`` (the drop in return). It is Spearman's
rank correlation over all pairs of every setting of the report, with a 95% interval from a
bootstrap over members (a member's pairs stay together). With fewer than ``MIN_MEMBERS``
members or ``MIN_PAIRS`` pairs it says the seeds are too few to tell, and it says so when the
interval includes 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.stats

from plasticine_jax.report import stats
from plasticine_jax.report.aggregate import member_scores, task_segments
from plasticine_jax.report.figures import TRAINING, metric_families
from plasticine_jax.report.settings import Member, Setting

MIN_MEMBERS = 4
MIN_PAIRS = 8
REPS = 1000  # bootstrap replicates: dozens of metrics x tasks x settings


def _member_tasks(setting: Setting, member: Member, names: Sequence[str]) -> dict[str, Any]:
    steps = setting.column(member, "env_steps")
    du = float(steps[1] - steps[0]) if len(steps) > 1 else 0.0  # env steps of one update
    segs = task_segments(setting.column(member, "task_id"))
    out: dict[str, Any] = {"final": member_scores(setting, member)["final_return"], "m": {}}
    for name in names:
        v = setting.column(member, name)
        finite = np.isfinite(v)
        first = v[finite][0] if finite.any() else np.nan
        levels, trends = [], []
        for s in segs:
            ok = finite[s]
            levels.append(float(v[s][ok].mean()) if ok.any() else np.nan)
            if ok.sum() >= 2 and np.ptp(steps[s][ok]) > 0:
                slope = np.polyfit(steps[s][ok], v[s][ok], 1)[0]
                trends.append(float(slope * (steps[s][-1] - steps[s][0] + du)))
            else:
                trends.append(np.nan)
        out["m"][name] = {"level": levels, "trend": trends, "first": float(first)}
    return out


def _iqm_per_task(values: list[list[float]], tasks: int) -> list[dict[str, Any]]:
    """IQM over seeds with its 95% interval for each task (seeds stratified per task; on a
    task where a seed has no value, that seed is left out there)."""
    x = np.array([v[:tasks] for v in values], float).reshape(len(values), tasks)
    none = {"iqm": None, "ci_low": None, "ci_high": None, "seeds": 0}
    if np.isfinite(x).all() and len(x):
        point, lo, hi = stats.bootstrap(x, _column_iqm, reps=REPS)
        cols = list(zip(point, lo, hi, strict=True))
        seeds = [len(x)] * tasks
    else:  # a column at a time, each over its finite values
        cols, seeds = [], []
        for k in range(tasks):
            c = x[np.isfinite(x[:, k]), k]
            cols.append(stats.bootstrap(c[:, None], stats.iqm, reps=REPS) if len(c) else None)
            seeds.append(len(c))
    return [
        none if c is None else {"iqm": float(c[0]), "ci_low": float(c[1]),
                                "ci_high": float(c[2]), "seeds": n}
        for c, n in zip(cols, seeds, strict=True)
    ]  # fmt: skip


def _column_iqm(x: np.ndarray) -> np.ndarray:
    """IQM over runs of each task: ``[..., runs, tasks] -> [..., tasks]`` (NaN propagates)."""
    return stats.trim_mean(x, axis=-2)


def _rank_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho along the last axis, vectorised (ties get average ranks)."""
    rx = scipy.stats.rankdata(x, axis=-1)
    ry = scipy.stats.rankdata(y, axis=-1)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx**2).sum(axis=-1) * (ry**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=-1) / den, np.nan)


def correlation(x: np.ndarray, y: np.ndarray, rng: int = 0) -> dict[str, Any]:
    """Spearman's rho over the pairs ``x, y`` (``[members, pairs]``: each member's drifts
    and later drops), with a 95% bootstrap interval over members, and a verdict in words.
    Members with a missing value are left out."""
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    x, y = x[ok], y[ok]
    members, n = len(x), int(x.size)
    out: dict[str, Any] = {"rho": None, "ci_low": None, "ci_high": None, "members": members,
                           "pairs": n}  # fmt: skip
    if members < MIN_MEMBERS or n < MIN_PAIRS:
        out["verdict"] = (
            f"too few seeds to tell ({members} members, {n} pairs; needs {MIN_MEMBERS} "
            f"members and {MIN_PAIRS} pairs)"
        )
        return out
    rho = float(_rank_corr(x.ravel(), y.ravel()))
    pick = np.random.default_rng(rng).integers(0, members, (REPS, members))
    boot = _rank_corr(x[pick].reshape(REPS, -1), y[pick].reshape(REPS, -1))
    boot = boot[np.isfinite(boot)]
    if not np.isfinite(rho) or len(boot) < REPS // 2:
        out["verdict"] = "cannot tell: the metric or the drop in return barely varies"
        return out
    lo, hi = np.percentile(boot, [2.5, 97.5])
    out.update(rho=rho, ci_low=float(lo), ci_high=float(hi))
    if lo <= 0 <= hi:
        out["verdict"] = "no clear relation (the interval includes 0)"
    else:
        way = "rose" if rho > 0 else "fell"
        out["verdict"] = f"the more the metric {way} before a task, the more the return dropped"
    return out


def diagnose(settings: Sequence[Setting]) -> dict[str, Any] | None:
    """The diagnosis of the continual settings of a report (``None`` when none has two
    tasks)."""
    columns = list(dict.fromkeys(c for s in settings for c in s.run.numeric()))
    fams = metric_families(columns)
    names = [n for f, ns in fams.items() if f not in (TRAINING, "environment") for n in ns]
    per_setting, pairs = {}, {n: [] for n in names}
    tasks_seen = 0
    for s in settings:
        data = [_member_tasks(s, m, names) for m in s.healthy]
        tasks = min((len(d["final"]) for d in data), default=0)
        if tasks < 2:
            continue
        tasks_seen = max(tasks_seen, tasks)
        finals = [d["final"][:tasks] for d in data]
        vs_first = [[f[k] - f[0] for k in range(tasks)] for f in finals]
        entry: dict[str, Any] = {
            "tasks": tasks,
            "final_return": _iqm_per_task(finals, tasks),
            "return_vs_first": _iqm_per_task(vs_first, tasks),
            "metrics": {},
        }
        for n in names:
            entry["metrics"][n] = {
                "level": _iqm_per_task([d["m"][n]["level"] for d in data], tasks),
                "trend": _iqm_per_task([d["m"][n]["trend"] for d in data], tasks),
            }
            for d, f in zip(data, finals, strict=True):
                m = d["m"][n]
                x = [m["level"][k - 1] - m["first"] for k in range(1, tasks)]
                pairs[n].append((x, [f[0] - f[k] for k in range(1, tasks)]))
        per_setting[s.label] = entry
    if not per_setting:
        return None
    return {
        "tasks": tasks_seen,
        "settings": per_setting,
        "correlations": {n: correlation(*_pair_arrays(pairs[n])) for n in names if pairs[n]},
    }


def _pair_arrays(pairs: list[tuple[list, list]]) -> tuple[np.ndarray, np.ndarray]:
    """``[members, pairs]`` arrays (members of settings with more tasks cut to the fewest)."""
    p = min(len(x) for x, _ in pairs)
    return (np.array([x[:p] for x, _ in pairs], float).reshape(len(pairs), p),
            np.array([y[:p] for _, y in pairs], float).reshape(len(pairs), p))  # fmt: skip


def _fmt(e: dict[str, Any]) -> str:
    if e.get("iqm") is None:
        return "n/a"
    return f"{e['iqm']:.3g} [{e['ci_low']:.3g}, {e['ci_high']:.3g}]"


def diagnosis_text(diag: dict[str, Any]) -> str:
    """The diagnosis in markdown: returns per task against the first, whole-model metric
    levels per task, and every metric's correlation with the later drop in return."""
    lines = []
    k = diag["tasks"]
    head = " | ".join(f"task {i}" for i in range(k))
    lines += ["Final return on each task minus on task 0 (IQM over seeds, 95% CI):", "",
              f"| setting | {head} |", "|---|" + "---|" * k]  # fmt: skip
    for label, e in diag["settings"].items():
        cells = [_fmt(x) for x in e["return_vs_first"]] + [""] * (k - e["tasks"])
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    whole = [n for n in next(iter(diag["settings"].values()))["metrics"] if "/" not in n]
    for n in whole:
        lines += ["", f"`{n}` per task: level (mean over the task) and trend (fitted change "
                  "over the task), IQM over seeds [95% CI]:", "",
                  f"| setting | {head} |", "|---|" + "---|" * k]  # fmt: skip
        for label, e in diag["settings"].items():
            m = e["metrics"][n]
            cells = [f"{_fmt(a)}; trend {_fmt(b)}" for a, b in zip(m["level"], m["trend"],
                                                                    strict=True)]  # fmt: skip
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Each metric's drift before task k (its level on task k-1 minus its first "
        "value) against the drop in return on task k (task 0's final return minus task "
        "k's): Spearman's rho over all members and tasks, 95% bootstrap CI over members. "
        f"{len(diag['correlations'])} metrics are tested: at 95% about one in 20 shows an "
        "interval without 0 by chance alone.",
        "",
        "| metric | rho [95% CI] | members | pairs | verdict |",
        "|---|---|---|---|---|",
    ]
    for n, c in sorted(diag["correlations"].items(),
                       key=lambda kv: -abs(kv[1]["rho"] or 0.0)):  # fmt: skip
        r = "n/a" if c["rho"] is None else f"{c['rho']:.2f} [{c['ci_low']:.2f}, {c['ci_high']:.2f}]"
        lines.append(f"| `{n}` | {r} | {c['members']} | {c['pairs']} | {c['verdict']} |")
    return "\n".join(lines)
