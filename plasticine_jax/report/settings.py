"""Settings of one or more runs, labelled readably, with each member's rows.

A *setting* is one point of a run's sweep (all its seeds). Its label names what sets it
apart from the other settings in the report: the swept values of its run (``sweep:<key>``
columns, as ``plan.json`` lists them) and, across runs, the config keys and method lists in
which the runs differ: ``l2(coef=0.01)``, ``lr=1e-3``, ``vanilla, lr=3e-4``. The method list
of a setting (``methods.plan.method_label``'s text, ``vanilla`` for none) picks the
baseline of the probability of improvement.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from plasticine_jax.report.table import Run

# Config keys that say where or how a run was written, not what it ran.
_NOT_COMPARED = ("name", "run.name", "run.out_dir", "run.progress", "run.checkpoint",
                 "run.report", "wandb", "sweep", "methods")  # fmt: skip


@dataclasses.dataclass
class Member:
    """One member's rows, sorted by update."""

    group: int
    member: int
    seed: int
    rows: np.ndarray  # indices into the run's columns
    diverged_at: int  # 0: healthy; else the update at which it was frozen


@dataclasses.dataclass
class Setting:
    """One sweep point of one run: label, method list, swept values and members."""

    label: str
    run: Run
    index: int
    methods: str
    values: dict[str, str]
    members: list[Member]

    @property
    def healthy(self) -> list[Member]:
        return [m for m in self.members if not m.diverged_at]

    @property
    def diverged(self) -> list[Member]:
        return [m for m in self.members if m.diverged_at]

    def column(self, member: Member, name: str) -> np.ndarray:
        """``name``'s values over the member's updates (NaN where absent)."""
        col = self.run.columns.get(name)
        if col is None:
            return np.full(len(member.rows), np.nan)
        return col[member.rows]


def format_value(v: Any) -> str:
    """A swept value as people write it: ``1e-3``, ``3e-4``, ``0.5``, ``64``, ``relu``."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return str(x)
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    if abs(x) < 1e-2 or abs(x) >= 1e5:
        mant, exp = f"{x:.6e}".split("e")
        return f"{float(mant):.6g}e{int(exp)}"
    return f"{x:.6g}"


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """``agent.hp.lr -> lr``; the full key where the last part is ambiguous or generic."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    out = {}
    for k, s in zip(keys, last, strict=True):
        generic = s in ("id", "name", "options", "scenario") or s.isdigit()
        out[k] = k if generic or last.count(s) > 1 else s
    return out


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if any(key == n or key.startswith(n + ".") for n in _NOT_COMPARED):
            continue
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = (
                json.dumps(v, sort_keys=True, default=str)
                if not isinstance(v, str | int | float | bool | type(None))
                else v
            )
    return out


def run_methods_label(config: Mapping[str, Any]) -> str:
    """The method label of a run's configured (unswept) method list."""
    if not config.get("methods"):
        return "vanilla"
    from plasticine_jax.config.schema import MethodConfig
    from plasticine_jax.runner.plan import method_label

    methods = [
        MethodConfig(
            name=m["name"],
            hp=dict(m.get("hp") or {}),
            options=dict(m.get("options") or {}),
            networks=tuple(m.get("networks") or ()),
        )  # fmt: skip
        for m in config.get("methods") or []
    ]
    return method_label(methods)


def _members(run: Run) -> dict[int, list[Member]]:
    """Members of each setting index, from the table (plan.json only fills in seeds)."""
    cols = run.columns
    if not run.num_rows:
        return {}
    group, member, update = cols["group"], cols["member"], cols["update"]
    order = np.lexsort((update, member, group))
    keys = np.stack([group[order], member[order]], axis=1)
    starts = np.flatnonzero(np.r_[True, np.any(keys[1:] != keys[:-1], axis=1)])
    bounds = np.r_[starts, len(order)]
    out: dict[int, list[Member]] = {}
    div = cols.get("diverged_at")
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        rows = order[a:b]
        at = 0
        if div is not None:
            d = div[rows]
            d = d[np.isfinite(d)]
            at = int(d.max()) if len(d) and d.max() > 0 else 0
        m = Member(int(group[rows[0]]), int(member[rows[0]]), int(cols["seed"][rows[0]]), rows, at)
        out.setdefault(int(cols["setting"][rows[0]]), []).append(m)
    return out


def _swept_values(run: Run, members: list[Member]) -> dict[str, str]:
    values = {}
    for key in run.config.get("sweep") or {}:
        col = run.columns.get(f"sweep:{key}")
        if col is not None and members:
            values[key] = str(col[members[0].rows[0]])
    return values


def differing_keys(runs: Sequence[Run]) -> list[str]:
    """Config keys (dotted) whose values differ between ``runs`` (sweeps, method lists and
    where-to-write keys left out)."""
    flat = [_flatten(r.config) for r in runs]
    return sorted({k for f in flat for k in f if any(g.get(k) != f.get(k) for g in flat)})


MAX_LABEL_KEYS = 2  # runs differing in more config keys than this are labelled by name


def collect_settings(runs: Sequence[Run]) -> list[Setting]:
    """Every setting of ``runs``, labelled by what tells it apart from the others."""
    flat = [_flatten(r.config) for r in runs]
    differing = differing_keys(runs)
    by_name = len(differing) > MAX_LABEL_KEYS
    raw = []
    for run, f in zip(runs, flat, strict=True):
        base_methods = run_methods_label(run.config)
        for index, members in sorted(_members(run).items()):
            values = _swept_values(run, members)
            methods = values.pop("methods", base_methods)
            if not by_name:
                values.update({k: f[k] for k in differing if k in f})
            raw.append([run, index, methods, values, members])
    keys = list(dict.fromkeys(k for _, _, _, v, _ in raw for k in v))
    for entry, f in zip(raw, [flat[list(runs).index(e[0])] for e in raw], strict=True):
        entry[3] = {k: entry[3].get(k, f.get(k)) for k in keys}
    varying = [k for k in keys if len({str(e[3][k]) for e in raw}) > 1]
    short = _short_keys(varying)
    method_set = {e[2] for e in raw}
    settings = []
    for run, index, methods, values, members in raw:
        parts = [methods] if len(method_set) > 1 or not varying else []
        parts += [f"{short[k]}={format_value(values[k])}" for k in varying if values[k] is not None]
        label = ", ".join(parts) or methods
        if by_name:
            label = f"{run.name}: {label}"
        values = {k: str(v) for k, v in values.items() if v is not None}
        settings.append(Setting(label, run, index, methods, values, members))
    counts: dict[str, int] = {}
    for s in settings:
        counts[s.label] = counts.get(s.label, 0) + 1
    for s in settings:
        if counts[s.label] > 1:
            s.label = f"{s.label} [{s.run.name}#{s.index}]"
    return settings


def baseline_for(setting: Setting, settings: Sequence[Setting], name: str | None) -> Setting:
    """The setting ``setting`` is compared with: ``name`` (a label) when given; else the
    method-free (``vanilla``) setting that shares its other values, else the first vanilla
    one, else the first setting."""
    if name is not None:
        for s in settings:
            if s.label == name:
                return s
        raise ValueError(
            f"baseline {name!r} is not a setting of this report; settings: "
            + ", ".join(repr(s.label) for s in settings)
        )
    vanilla = [s for s in settings if s.methods == "vanilla"]
    for s in vanilla:
        if s.values == setting.values and s.run is setting.run:
            return s
    for s in vanilla:
        if s.values == setting.values:
            return s
    return vanilla[0] if vanilla else settings[0]
