"""Per-setting aggregates with intervals: final return, AUC, IQM, mean, median, optimality gap,
probability of improvement over a baseline and performance profiles.

Per member, on each task (the stretches of constant ``task_id``; one for a standard run):

* **final return**: the mean ``episode_return`` over the last 10% of the task's updates
  (at least one; updates where no episode ended are skipped), as the run's summary table;
* **AUC**: the mean ``episode_return`` over all the task's updates with a finished episode:
  the area under the learning curve over its length (updates are evenly spaced in env steps);
* **eval return** (when the table has ``eval/episode_return``): its last value on the task.

A setting's scores are the ``[seeds, tasks]`` matrix of a measure over its healthy members;
the estimators and the stratified bootstrap (over seeds, and over tasks when there are
several) are rliable's (``report.stats``). Members that diverged (``diverged_at`` > 0) are
left out and counted. The optimality gap and the performance profiles need normalised
scores: ``(x - lo) / (hi - lo)`` per task, with the environment's known return range where
it has one (CartPole: 0 to 500), else the lowest and highest score of that task over every
setting in the report (``normalization`` in ``report.json`` says which). Where the tasks are
different games (``game_sequence``, ``dmc_sequence``), IQM, mean and median are of the
normalised scores too, as rliable aggregates over games (``score_units``); the per-seed
values stay in returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from plasticine_jax.report import stats
from plasticine_jax.report.settings import Member, Setting, baseline_for

LAST_FRACTION = 0.1
KNOWN_RANGES = {"CartPole-v1": (0.0, 500.0), "CartPole-v0": (0.0, 200.0)}
MEASURES = ("final_return", "auc", "eval_return")
MIXED_SCENARIOS = ("game_sequence", "dmc_sequence")  # tasks with returns on their own scales


def task_segments(task_id: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the stretches of constant ``task_id`` (NaN: one task)."""
    n = len(task_id)
    if n == 0:
        return []
    t = np.where(np.isfinite(task_id), task_id, -1.0)
    starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
    return [np.arange(a, b) for a, b in zip(starts, np.r_[starts[1:], n], strict=True)]


def _final(ret: np.ndarray) -> float:
    k = max(1, int(len(ret) * LAST_FRACTION))
    tail = ret[-k:]
    return float(np.nanmean(tail)) if np.isfinite(tail).any() else math.nan


def _auc(ret: np.ndarray) -> float:
    return float(np.nanmean(ret)) if np.isfinite(ret).any() else math.nan


def _last(ret: np.ndarray) -> float:
    finite = ret[np.isfinite(ret)]
    return float(finite[-1]) if len(finite) else math.nan


def member_scores(setting: Setting, member: Member) -> dict[str, list[float]]:
    """Each measure of one member, per task: ``{measure: [tasks]}``."""
    ret = setting.column(member, "episode_return")
    ev = setting.column(member, "eval/episode_return")
    segs = task_segments(setting.column(member, "task_id"))
    out = {
        "final_return": [_final(ret[s]) for s in segs],
        "auc": [_auc(ret[s]) for s in segs],
    }
    if np.isfinite(ev).any():
        out["eval_return"] = [_last(ev[s]) for s in segs]
    return out


def score_matrices(setting: Setting) -> tuple[dict[str, tuple], dict[str, list[int]]]:
    """``{measure: (scores [seeds, tasks], seeds)}`` over the healthy members with a finite
    score on every task, and ``{measure: seeds left out for having none}``."""
    per = [(m.seed, member_scores(setting, m)) for m in setting.healthy]
    mats, missing = {}, {}
    for name in MEASURES:
        rows = [(seed, s[name]) for seed, s in per if name in s]
        if not rows:
            continue
        tasks = min(len(r) for _, r in rows)
        ok = [(seed, r[:tasks]) for seed, r in rows if np.isfinite(r[:tasks]).all()]
        missing[name] = [seed for seed, r in rows if not np.isfinite(r[:tasks]).all()]
        mats[name] = (
            np.array([r for _, r in ok], float).reshape(len(ok), tasks),
            [seed for seed, _ in ok],
        )
    return mats, missing


def normalization(settings: Sequence[Setting], mats: Sequence[dict]) -> dict[str, Any]:
    """The per-task ``lo``/``hi`` of the final returns for optimality gap and profiles."""
    envs = {str(s.run.config.get("env", {}).get("id")) for s in settings}
    if len(envs) == 1 and (env := envs.pop()) in KNOWN_RANGES:
        lo, hi = KNOWN_RANGES[env]
        return {"kind": "known", "env": env, "lo": lo, "hi": hi}
    tasks = max((m["final_return"][0].shape[1] for m in mats if "final_return" in m), default=1)
    lo, hi = [], []
    for t in range(tasks):
        vals = np.concatenate(
            [m["final_return"][0][:, t] for m in mats
             if "final_return" in m and m["final_return"][0].shape[1] > t] or [np.zeros(0)]
        )  # fmt: skip
        lo.append(float(vals.min()) if len(vals) else 0.0)
        hi.append(float(vals.max()) if len(vals) else 1.0)
    return {"kind": "observed", "lo": lo, "hi": hi}


def normalize(scores: np.ndarray, norm: dict[str, Any]) -> np.ndarray:
    """Scores ``[runs, tasks]`` mapped to ``(x - lo) / (hi - lo)`` per task."""
    tasks = scores.shape[-1]
    lo = np.resize(np.asarray(norm["lo"], float), tasks)
    hi = np.resize(np.asarray(norm["hi"], float), tasks)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (scores - lo) / span


def mixed_tasks(settings: Sequence[Setting]) -> bool:
    """Whether the tasks are different games (their returns are on different scales)."""
    return any(
        str(s.run.config.get("env", {}).get("scenario")) in MIXED_SCENARIOS for s in settings
    )


def _estimates(
    scores: np.ndarray, norm: dict, reps: int, task_bootstrap: bool, normalized: bool = False
) -> dict:
    """IQM (with ``ci_low``/``ci_high``), mean, median and optimality gap of ``scores``,
    all four from the same bootstrap samples; with ``normalized`` the first three too are of
    the normalised scores."""
    names = list(stats.AGGREGATES)

    def stat(x: np.ndarray) -> np.ndarray:  # x[..., 0]: scores, x[..., 1]: normalised
        return np.stack(
            [stats.AGGREGATES[n](x[..., int(normalized or n == "optimality_gap")]) for n in names],
            axis=-1,
        )

    both = np.stack([scores, normalize(scores, norm)], axis=-1)  # tasks resample together
    point, lo, hi = stats.bootstrap(both, stat, reps=reps, task_bootstrap=task_bootstrap)
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        if name == "iqm":
            out.update(iqm=float(point[i]), ci_low=float(lo[i]), ci_high=float(hi[i]))
        else:
            out[name] = {"value": float(point[i]), "ci_low": float(lo[i]),
                         "ci_high": float(hi[i])}  # fmt: skip
    return out


def aggregate(
    settings: Sequence[Setting],
    *,
    baseline: str | None = None,
    reps: int = stats.REPS,
    profile_reps: int = stats.PROFILE_REPS,
) -> dict[str, Any]:
    """Every aggregate of every setting, as ``report.json`` holds them."""
    mats = [score_matrices(s) for s in settings]
    norm = normalization(settings, [m for m, _ in mats])
    mixed = mixed_tasks(settings)
    rows = []
    for s, (m, missing) in zip(settings, mats, strict=True):
        row: dict[str, Any] = {
            "label": s.label,
            "run": s.run.name,
            "setting": s.index,
            "methods": s.methods,
            "values": s.values,
            "members": len(s.members),
            "diverged": len(s.diverged),
            "diverged_members": [
                {"group": d.group, "member": d.member, "seed": d.seed, "update": d.diverged_at}
                for d in s.diverged
            ],
        }
        for name, (scores, seeds) in m.items():
            tasks = scores.shape[1]
            per_seed = [
                {"seed": seed, name: float(v.mean()), **({"per_task": v.tolist()} if tasks > 1
                                                        else {})}
                for seed, v in zip(seeds, scores, strict=True)
            ]  # fmt: skip
            entry: dict[str, Any] = {"seeds": len(seeds), "tasks": tasks, "per_seed": per_seed}
            entry["left_out"] = missing.get(name, [])
            if len(seeds):
                entry.update(_estimates(scores, norm, reps, tasks > 1, mixed and tasks > 1))
            row[name] = entry
        rows.append(row)
    _improvements(settings, mats, rows, baseline, reps)
    return {
        "settings": rows,
        "normalization": norm,
        "profiles": _profiles(settings, mats, norm, profile_reps),
        "score_units": "normalised return (tasks are different games)" if mixed else "return",
        "estimators": {
            "reps": reps,
            "profile_reps": profile_reps,
            "interval": "95% percentile bootstrap, stratified over seeds (and tasks when >1)",
            "final_return": f"mean return over the last {LAST_FRACTION:.0%} of each task",
            "auc": "mean return over each task's updates (area under the curve / length)",
        },
    }


def _improvements(settings, mats, rows, baseline, reps) -> None:
    for s, (m, _), row in zip(settings, mats, rows, strict=True):
        base = baseline_for(s, settings, baseline)
        if base is s or "final_return" not in m:
            continue
        bm = mats[list(settings).index(base)][0].get("final_return")
        x = m["final_return"][0]
        if bm is None or not len(bm[0]) or not len(x):
            continue
        y = bm[0]
        if x.shape[1] != y.shape[1]:
            x, y = x.mean(axis=1, keepdims=True), y.mean(axis=1, keepdims=True)
        e = stats.improvement(x, y, reps=reps)
        row["improvement"] = {
            "baseline": base.label, "probability": e.value, "ci_low": e.ci_low,
            "ci_high": e.ci_high,
        }  # fmt: skip


def _profiles(settings, mats, norm, reps) -> dict[str, Any]:
    taus = np.linspace(0.0, 1.0, 51)
    out: dict[str, Any] = {"taus": taus.tolist(), "settings": {}}
    for s, (m, _) in zip(settings, mats, strict=True):
        if "final_return" not in m or not len(m["final_return"][1]):
            continue
        scores = normalize(m["final_return"][0], norm)
        frac, lo, hi = stats.profile(scores, taus, reps=reps, task_bootstrap=scores.shape[1] > 1)
        out["settings"][s.label] = {
            "fraction": frac.tolist(),
            "ci_low": lo.tolist(),
            "ci_high": hi.tolist(),
        }
    return out
