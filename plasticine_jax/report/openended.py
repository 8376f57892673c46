"""Open-ended runs (Craftax): the Craftax score and every achievement's success rate per
setting, the order in which achievements are first unlocked, and the plasticity metrics at
those unlocks.

The Craftax adapter logs, per update, ``env/achievement/<name>`` (the fraction of the
update's finished episodes that unlocked it; empty when none finished) and
``env/craftax_score`` (Hafner 2021's score of those rates, in percent; see
``envs/craftax_score.py``). Per healthy member: the *final* rate (or score) is its mean over
the last 10% of the updates, as the final return; the *first unlock* is the env step of the
first update with a rate above 0. Aggregates over seeds are IQMs with 95% stratified
bootstrap intervals; a first unlock is summarised by its median over the seeds that reached
it, with their count. At each member's first unlock, the whole-model plasticity metrics
(``dormant_ratio``, ``stable_rank``-style columns without a network name) are read at the
nearest update that logged them, and their IQM over those seeds is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from plasticine_jax.report import stats
from plasticine_jax.report.aggregate import LAST_FRACTION
from plasticine_jax.report.figures import TRAINING, metric_families
from plasticine_jax.report.settings import Setting

PREFIX = "env/achievement/"
SCORE = "env/craftax_score"
REPS = 2000


def _final(v: np.ndarray) -> float:
    k = max(1, int(len(v) * LAST_FRACTION))
    tail = v[-k:]
    return float(np.nanmean(tail)) if np.isfinite(tail).any() else float("nan")


def _estimate(values: Sequence[float]) -> dict[str, Any]:
    x = np.array([v for v in values if np.isfinite(v)], float)
    if not len(x):
        return {"iqm": None, "ci_low": None, "ci_high": None, "seeds": 0}
    e = stats.estimate(x[:, None], stats.iqm, reps=REPS)
    return {"iqm": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high, "seeds": len(x)}


def _at(steps: np.ndarray, values: np.ndarray, step: float) -> float:
    """``values`` at the logged update nearest ``step`` (NaN if none is logged)."""
    ok = np.isfinite(values)
    if not ok.any():
        return float("nan")
    return float(values[ok][np.argmin(np.abs(steps[ok] - step))])


def open_ended(settings: Sequence[Setting]) -> dict[str, Any] | None:
    """Craftax score, achievements and unlocks per setting (``None`` without them)."""
    columns = list(dict.fromkeys(c for s in settings for c in s.run.numeric()))
    names = [c for c in columns if c.startswith(PREFIX)]
    if not names and SCORE not in columns:
        return None
    fams = metric_families(columns)
    plastic = [n for f, ns in fams.items() if f not in (TRAINING, "environment")
               for n in ns if "/" not in n]  # fmt: skip
    out: dict[str, Any] = {"achievements": [n[len(PREFIX) :] for n in names], "settings": {}}
    for s in settings:
        members = s.healthy
        steps = [s.column(m, "env_steps") for m in members]
        entry: dict[str, Any] = {
            "craftax_score": _estimate([_final(s.column(m, SCORE)) for m in members]),
            "achievements": {},
        }
        for n in names:
            firsts, at_unlock = [], {p: [] for p in plastic}
            for m, st in zip(members, steps, strict=True):
                v = s.column(m, n)
                hit = np.flatnonzero(np.nan_to_num(v) > 0)
                if not len(hit):
                    continue
                firsts.append(float(st[hit[0]]))
                for p in plastic:
                    at_unlock[p].append(_at(st, s.column(m, p), st[hit[0]]))
            entry["achievements"][n[len(PREFIX) :]] = {
                "final_rate": _estimate([_final(s.column(m, n)) for m in members]),
                "first_unlock": {
                    "median_env_steps": float(np.median(firsts)) if firsts else None,
                    "seeds": len(firsts),
                    "of": len(members),
                },
                "metrics_at_unlock": {p: _estimate(v) for p, v in at_unlock.items()},
            }
        out["settings"][s.label] = entry
    return out


def _fmt(e: dict[str, Any]) -> str:
    if e.get("iqm") is None:
        return "n/a"
    return f"{e['iqm']:.3g} [{e['ci_low']:.3g}, {e['ci_high']:.3g}]"


def open_ended_text(oe: dict[str, Any]) -> str:
    """The section in markdown: score, then per setting the achievements in the order they
    were first unlocked (median over seeds), their final rate and the metrics there."""
    lines = ["Craftax score (final, IQM over seeds, 95% CI):", "",
             "| setting | Craftax score |", "|---|---|"]  # fmt: skip
    lines += [f"| {label} | {_fmt(e['craftax_score'])} |" for label, e in oe["settings"].items()]
    for label, e in oe["settings"].items():
        ach = e["achievements"]
        if not ach:
            continue
        metrics = list(next(iter(ach.values()))["metrics_at_unlock"])

        def when(a: str, ach: dict = ach) -> tuple[bool, float]:
            first = ach[a]["first_unlock"]["median_env_steps"]
            return first is None, first or 0.0

        order = sorted(ach, key=when)
        head = ["achievement", "first unlock (median env steps)", "seeds", "final rate"]
        lines += ["", f"{label}: achievements in the order first unlocked; the metrics at "
                  "each seed's first unlock (IQM [95% CI]):", "",
                  "| " + " | ".join(head + [f"`{m}`" for m in metrics]) + " |",
                  "|" + "---|" * (len(head) + len(metrics))]  # fmt: skip
        for a in order:
            f = ach[a]["first_unlock"]
            first = "never" if f["median_env_steps"] is None else f"{f['median_env_steps']:.4g}"
            cells = [a, first, f"{f['seeds']}/{f['of']}", _fmt(ach[a]["final_rate"])]
            cells += [_fmt(ach[a]["metrics_at_unlock"][m]) for m in metrics]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
