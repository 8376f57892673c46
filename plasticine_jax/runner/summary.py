"""The short table printed at the end of a run: final return per setting over seeds."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def iqm(x: np.ndarray) -> float:
    """Interquartile mean (Agarwal et al. 2021): mean of the middle 50% of values."""
    x = np.sort(np.asarray(x, float))
    n = len(x)
    if n == 0:
        return float("nan")
    lo, hi = int(math.floor(0.25 * n)), int(math.ceil(0.75 * n))
    return float(x[lo:hi].mean()) if hi > lo else float(x.mean())


def summarize(table: Path, groups: Sequence[Any], last_fraction: float = 0.1) -> list[dict]:
    """Per setting: mean/IQM/std over seeds of each member's mean episode return over the
    last ``last_fraction`` of its logged updates (updates with no finished episode skipped),
    and the last logged dormant ratio averaged over seeds.

    Members that diverged (``diverged_at`` > 0 in the table) are left out of every
    aggregate and reported apart: ``diverged`` counts them and ``diverged_members`` lists
    ``{"member", "seed", "update"}`` for each.
    """
    per_member: dict[tuple[int, int], list[tuple[int, float, float]]] = defaultdict(list)
    diverged_at: dict[tuple[int, int], int] = {}
    if table.exists():
        with table.open(newline="") as f:
            for r in csv.DictReader(f):
                key = (int(r["group"]), int(r["member"]))
                at = int(float(r["diverged_at"])) if r.get("diverged_at") else 0
                if at:
                    diverged_at[key] = at
                    continue
                ret = float(r["episode_return"]) if r.get("episode_return") else math.nan
                dorm = float(r["dormant_ratio"]) if r.get("dormant_ratio") else math.nan
                per_member[key].append((int(r["update"]), ret, dorm))
    rows = []
    for g in groups:
        settings: dict[int, list[Any]] = defaultdict(list)
        for m in g.members:
            settings[m.setting].append(m)
        for setting, members in settings.items():
            finals, dormant, updates, bad = [], [], 0, []
            for m in members:
                if (g.index, m.index) in diverged_at:
                    bad.append(
                        {"member": m.index, "seed": m.seed,
                         "update": diverged_at[(g.index, m.index)]}
                    )  # fmt: skip
                    continue
                rec = sorted(per_member.get((g.index, m.index), []))
                if not rec:
                    continue
                updates = max(updates, rec[-1][0])
                k = max(1, int(len(rec) * last_fraction))
                tail = np.array([r[1] for r in rec[-k:]])
                finals.append(np.nanmean(tail) if np.isfinite(tail).any() else math.nan)
                d = [r[2] for r in rec if math.isfinite(r[2])]
                if d:
                    dormant.append(d[-1])
            finals_arr = np.array([f for f in finals if math.isfinite(f)])
            rows.append(
                {
                    "group": g.index,
                    "setting": setting,
                    **{k: v for k, v in members[0].values.items()},
                    "seeds": len(members),
                    "updates": updates,
                    "return_mean": float(finals_arr.mean()) if len(finals_arr) else math.nan,
                    "return_iqm": iqm(finals_arr),
                    "return_std": float(finals_arr.std()) if len(finals_arr) else math.nan,
                    "dormant_ratio": float(np.mean(dormant)) if dormant else math.nan,
                    "diverged": len(bad),
                    "diverged_members": bad,
                }
            )
    return rows


def diverged_members(rows: Sequence[dict]) -> list[dict]:
    """Every diverged member of the summary rows, with its group and setting."""
    return [
        {"group": r["group"], "setting": r["setting"], **d}
        for r in rows
        for d in r.get("diverged_members", [])
    ]


def format_table(rows: Sequence[dict]) -> str:
    """A plain aligned text table, then the diverged members (if any) by setting."""
    rows_in = rows
    if not rows:
        return "(no rows)"
    rows = [_printable(r) for r in rows]
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.4g}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in cells]
    bad = diverged_members(rows_in)
    if bad:
        lines.append(
            "\ndiverged (left out of the aggregates above): "
            + "; ".join(
                f"setting {d['setting']} seed {d['seed']} at update {d['update']}" for d in bad
            )
        )
    return "\n".join(lines)


def _printable(row: dict) -> dict:
    """A summary row for the table: ``diverged`` as ``k/seeds``, the member list dropped."""
    out = {k: v for k, v in row.items() if k != "diverged_members"}
    if "diverged" in out:
        out["diverged"] = f"{out['diverged']}/{out['seeds']}"
    return out
