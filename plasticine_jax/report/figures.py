"""The report's figures, drawn with matplotlib (``render``: SVG, or PNG through Agg).

matplotlib's ``Figure`` is used directly (no ``pyplot``, so no global state and no GUI
backend is touched in a user's process). Its cost is per axes, tick and text (about 20 ms a
panel on one core), and a run logs dozens of metric columns, so the metric figure is one
axes of cells drawn as collections, and SVG leaves the text to the viewer. Time axes are env
steps per member; curves are thinned to at most ``MAX_POINTS`` points (equal bins of
updates).

* learning curves: per setting the IQM over seeds of ``episode_return`` (each member's last
  finished episode, carried forward), a 95% bootstrap band over seeds, and the same for
  ``eval/episode_return`` when the agent evaluates (and ``env/craftax_score`` for Craftax);
* every metric column over time, per setting (IQM and band over seeds, on the updates that
  compute it), in families (dormant units, activity, rank, features, weights, gradients,
  entropy, training, environment);
* performance profiles and the aggregate intervals (``report.aggregate``), when there are
  settings to compare.

Task switches (where ``task_id`` changes) are dashed lines, and tasks are shaded in turn.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from plasticine_jax.report import stats

if TYPE_CHECKING:
    from matplotlib.figure import Figure
from plasticine_jax.report.settings import Setting
from plasticine_jax.report.table import NOT_METRICS

MAX_POINTS = 200
BAND_REPS = 300  # bootstrap replicates of a curve's band (a drawn band, not a reported number)
DPI = 72
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
CURVES = ("episode_return", "eval/episode_return")
FAMILIES = (  # (title, pattern on the column name), first match wins
    ("dormant units", r"dormant"),
    ("active units", r"active_fraction"),
    ("feature rank", r"(stable|effective)_rank"),
    ("features", r"feature_(norm|variance)"),
    ("weights", r"weight_(magnitude|change)"),
    ("gradients", r"grad_norm"),
    ("entropy", r"entropy"),
    ("environment", r"^env/"),
)
TRAINING = "training"


def metric_families(columns: Sequence[str]) -> dict[str, list[str]]:
    """Metric columns (everything but ids, task columns and returns) grouped by family."""
    out: dict[str, list[str]] = {}
    for name in columns:
        if name in NOT_METRICS or name in CURVES or name.startswith("sweep:"):
            continue
        if name.startswith("eval/"):
            continue
        family = next((t for t, p in FAMILIES if re.search(p, name)), TRAINING)
        out.setdefault(family, []).append(name)
    order = [t for t, _ in FAMILIES] + [TRAINING]
    return {t: sorted(out[t], key=_network_order) for t in order if t in out}


def _network_order(name: str) -> tuple:
    # whole-model metric first, then per network, then per layer
    return (name.count("/"), name)


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]


FORMATS = ("svg", "png")


def render(fig, fmt: str = "svg") -> bytes:
    """``fig`` as SVG (text left to the viewer: ``svg.fonttype: none``, fixed ids) or PNG.

    SVG is the default: Agg rasterises every glyph (about 0.4 ms each on this project's
    2-core machine, and a run's metric figure holds over a thousand), while an SVG names the
    text and the browser draws it, about five times cheaper to write."""
    import matplotlib

    if fmt not in FORMATS:
        raise ValueError(f"figure format {fmt!r}; one of {FORMATS}")
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "plasticine-jax"}):
        fig.savefig(buf, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


def _figure(panels: int, cols: int = 4, width: float = 12.0, height: float = 2.2):
    from matplotlib.figure import Figure

    rows = max(1, -(-panels // cols))
    cols = min(cols, max(panels, 1))
    fig = Figure(figsize=(width, height * rows + 0.4), dpi=DPI, layout="none")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    fig.subplots_adjust(left=0.06, right=0.99, top=1 - 0.35 / (height * rows + 0.4),
                        bottom=0.55 / (height * rows + 0.4), wspace=0.25, hspace=0.35)  # fmt: skip
    flat = list(axes.flat)
    for ax in flat[panels:]:
        ax.set_visible(False)
    for ax in flat[:panels]:
        ax.locator_params(nbins=4)
        ax.tick_params(labelsize=7)
    return fig, flat[:panels]


def _aligned(setting: Setting, name: str, carry: bool = False):
    """``(env_steps [T], values [seeds, T], task_switch_steps)`` over the healthy members,
    on the updates where every seed has a value; ``carry`` fills gaps with the last value."""
    members = setting.healthy
    if not members:
        return None
    n = min(len(m.rows) for m in members)
    vals = np.stack([setting.column(m, name)[:n] for m in members])
    steps = setting.column(members[0], "env_steps")[:n]
    if carry:
        vals = _carry_forward(vals)
    keep = np.isfinite(vals).all(axis=0)
    if not keep.any():
        return None
    return steps[keep], vals[:, keep]


def _carry_forward(x: np.ndarray) -> np.ndarray:
    idx = np.where(np.isfinite(x), np.arange(x.shape[1]), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out = x[np.arange(x.shape[0])[:, None], idx]
    return out


def _thin(steps: np.ndarray, vals: np.ndarray):
    t = len(steps)
    if t <= MAX_POINTS:
        return steps, vals
    edges = np.linspace(0, t, MAX_POINTS + 1).astype(int)
    s = np.array([steps[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=True)])
    v = np.stack([vals[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:],
                                                              strict=True)], axis=1)  # fmt: skip
    return s, v


def task_spans(setting: Setting) -> list[tuple[float, float]]:
    """``(start, end)`` env steps of each task of the setting's first healthy member."""
    members = setting.healthy or setting.members
    if not members:
        return []
    m = members[0]
    steps = setting.column(m, "env_steps")
    tid = setting.column(m, "task_id")
    if not np.isfinite(tid).any() or np.nanmax(tid) == np.nanmin(tid):
        return []
    cut = np.flatnonzero(np.r_[True, tid[1:] != tid[:-1]])
    ends = np.r_[steps[cut[1:] - 1], steps[-1]]
    starts = np.r_[0.0, ends[:-1]]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _mark_tasks(ax, spans: list[tuple[float, float]]) -> None:
    for i, (a, b) in enumerate(spans):
        if i % 2:
            ax.axvspan(a, b, color="0.92", lw=0, zorder=0)
        if i:
            ax.axvline(a, color="0.4", lw=0.8, ls="--", zorder=1)


def _draw_setting(ax, steps, vals, color, label=None) -> None:
    steps, vals = _thin(steps, vals)
    mid, lo, hi = stats.curve_band(vals, reps=BAND_REPS)
    ax.plot(steps, mid, color=color, lw=1.4, label=label)
    if vals.shape[0] > 1:
        ax.fill_between(steps, lo, hi, color=color, alpha=0.2, lw=0)


def learning_curves(settings: Sequence[Setting], curves: Sequence[str] = CURVES) -> Figure | None:
    """Training (and evaluation) returns per setting: IQM over seeds with a 95% band, each
    member's last value carried over updates where no episode ended."""
    names = [c for c in curves if any(c in s.run.columns for s in settings)]
    data = {c: [(_aligned(s, c, carry=True), i) for i, s in enumerate(settings)] for c in names}
    names = [c for c in names if any(d is not None for d, _ in data[c])]
    if not names:
        return None
    fig, axes = _figure(len(names), cols=len(names), width=6.0 * len(names), height=3.6)
    spans = task_spans(settings[0])
    for ax, name in zip(axes, names, strict=True):
        _mark_tasks(ax, spans)
        for d, i in data[name]:
            if d is not None:
                _draw_setting(ax, *d, _color(i), settings[i].label)
        ax.set_title(f"{name} (IQM over seeds, 95% CI)", fontsize=9)
        ax.set_xlabel("env steps per member", fontsize=8)
    axes[0].legend(fontsize=7, loc="best", frameon=False)
    return fig


def metric_figure(
    settings: Sequence[Setting], families: dict[str, Sequence[str]], cols: int = 4
) -> Figure | None:
    """Every metric column, by family (a heading row each), one cell per column: IQM over
    seeds per setting with its 95% band, on the updates that log it (NaN cells, the updates
    without metrics, are dropped).

    The cells are drawn into a single axes (a grid of boxes, each labelled with its
    metric and y range, x from 0 to the run's last env step), as collections:
    matplotlib's cost is per axes and per tick, and a run logs dozens of metric columns, so
    this keeps a run's report well under a second where one axes per metric took seconds.
    """
    from matplotlib.collections import LineCollection, PolyCollection

    cells, headings, k = [], [], 0  # cells: (slot, name, data); slot counts grid places
    for family, names in families.items():
        fam = []
        for name in names:
            d = [(_aligned(s, name), i) for i, s in enumerate(settings) if name in s.run.columns]
            d = [(_band(*x), i) for x, i in d if x is not None]
            if d:
                fam.append((name, d))
        if not fam:
            continue
        k = -(-k // cols) * cols  # a family starts a new row, under its heading
        headings.append((k // cols, family))
        for name, d in fam:
            cells.append((k, name, d))
            k += 1
    if not cells:
        return None
    rows = -(-k // cols)
    cell_w, cell_h, head = 3.0, 1.7, 0.25  # inches; head: a family heading's height
    fig, ax = _canvas(cols * cell_w, rows * cell_h + len(headings) * head + 0.35)
    ax.set_xlim(0, cols)
    total = rows + (len(headings) * head + 0.35) / cell_h
    ax.set_ylim(-total, 0)
    offset = {}  # row -> how far headings above it push it down (in cell heights)
    h = 0.0
    for r in range(rows):
        if any(hr == r for hr, _ in headings):
            h += head / cell_h
            title = next(t for hr, t in headings if hr == r)
            ax.text(0.02, -r - h + 0.02, title, fontsize=9, weight="bold", va="bottom")
        offset[r] = h
    x_end = max(float(st[-1]) for _, _, d in cells for (st, *_), _ in d)
    spans = task_spans(settings[0])
    lines = {i: [] for i in range(len(settings))}
    bands = {i: [] for i in range(len(settings))}
    dots = {i: [] for i in range(len(settings))}
    frames, switches, shades = [], [], []
    for slot, name, d in cells:
        r, c = divmod(slot, cols)
        x0, x1, y1 = c + 0.17, c + 0.97, -r - offset[r] - 0.2
        y0 = -r - offset[r] - 0.88
        frames.append([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)])
        lo = min(float(np.min(b[2])) for b, _ in d)
        hi = max(float(np.max(b[3])) for b, _ in d)
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5

        def fx(x, x0=x0, x1=x1):
            return x0 + (x1 - x0) * np.asarray(x) / max(x_end, 1.0)

        def fy(y, y0=y0, y1=y1, lo=lo, hi=hi):
            return y0 + (y1 - y0) * (np.asarray(y) - lo) / (hi - lo)

        for j, (a, b) in enumerate(spans):
            if j % 2:
                shades.append([(fx(a), y0), (fx(b), y0), (fx(b), y1), (fx(a), y1)])
            if j:
                switches.append([(fx(a), y0), (fx(a), y1)])
        for (steps, mid, blo, bhi), i in d:
            lines[i].append(np.c_[fx(steps), fy(mid)])
            if len(steps) == 1:  # a metric logged once: a line of one point draws nothing
                dots[i].append((float(fx(steps)[0]), float(fy(mid)[0])))
            if not np.array_equal(blo, bhi):
                bands[i].append(np.r_[np.c_[fx(steps), fy(blo)],
                                      np.c_[fx(steps), fy(bhi)][::-1]])  # fmt: skip
        # one text a cell (matplotlib's cost is per text): the name and the y range
        ax.text(x0, y1 + 0.03, f"{name}   [{lo:.3g}, {hi:.3g}]", fontsize=7, va="bottom")
    ax.text(cols - 0.03, -total + 0.02, f"x: env steps per member, 0 to {x_end:.3g}; y: each "
            "cell from the low to the high end of its range", fontsize=7, ha="right",
            va="bottom")  # fmt: skip
    ax.add_collection(PolyCollection(shades, facecolors="0.92", edgecolors="none", zorder=0))
    ax.add_collection(LineCollection(switches, colors="0.4", linewidths=0.7,
                                     linestyles="--", zorder=1))  # fmt: skip
    ax.add_collection(LineCollection(frames, colors="0.3", linewidths=0.6, zorder=3))
    for i in lines:
        color = _color(i)
        if bands[i]:
            ax.add_collection(PolyCollection(bands[i], facecolors=color, alpha=0.2,
                                             edgecolors="none", zorder=1))  # fmt: skip
        ax.add_collection(LineCollection(lines[i], colors=color, linewidths=1.2, zorder=2))
        if dots[i]:
            ax.plot(*zip(*dots[i], strict=True), "o", color=color, ms=3, zorder=2)
    _legend(fig, settings)
    return fig


def _band(steps: np.ndarray, vals: np.ndarray):
    steps, vals = _thin(steps, vals)
    return (steps, *stats.curve_band(vals, reps=BAND_REPS))


def _canvas(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    return fig, ax


def _legend(fig, settings: Sequence[Setting]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=_color(i), lw=2) for i in range(len(settings))]
    fig.legend(handles, [s.label for s in settings], loc="lower center", fontsize=7,
               ncol=min(4, len(settings)), frameon=False)  # fmt: skip


def profiles_figure(agg: dict[str, Any], settings: Sequence[Setting]) -> Figure | None:
    """Performance profiles (fraction of runs above tau, normalised score) with bands."""
    prof = agg["profiles"]
    if not prof["settings"]:
        return None
    fig, (ax,) = _figure(1, cols=1, width=6.0, height=3.6)
    taus = np.asarray(prof["taus"])
    for i, s in enumerate(settings):
        p = prof["settings"].get(s.label)
        if p is None:
            continue
        ax.plot(taus, p["fraction"], color=_color(i), lw=1.4, label=s.label)
        ax.fill_between(taus, p["ci_low"], p["ci_high"], color=_color(i), alpha=0.2, lw=0)
    norm = agg["normalization"]
    ax.set_xlabel(f"normalised final return tau ({_norm_text(norm)})", fontsize=8)
    ax.set_title("performance profile: fraction of runs with score > tau", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    return fig


def _norm_text(norm: dict[str, Any]) -> str:
    if norm["kind"] == "known":
        return f"0 = {norm['lo']:g}, 1 = {norm['hi']:g}"
    return "0/1 = lowest/highest final return in this report, per task"


def intervals_figure(agg: dict[str, Any]) -> Figure | None:
    """IQM, mean, median and optimality gap of the final return, with 95% intervals, and
    the probability of improvement over the baseline, one row per setting."""
    rows = [r for r in agg["settings"] if "iqm" in r.get("final_return", {})]
    if not rows:
        return None
    has_poi = any("improvement" in r for r in rows)
    names = ["iqm", "mean", "median", "optimality_gap"] + (["improvement"] if has_poi else [])
    fig = _interval_axes(len(names), len(rows))
    axes = fig.axes
    y = np.arange(len(rows))[::-1]
    for ax, name in zip(axes, names, strict=True):
        for yi, (i, r) in zip(y, enumerate(rows), strict=True):
            e = _interval(r, name)
            if e is None:
                continue
            v, lo, hi = e
            ax.plot([lo, hi], [yi, yi], color=_color(i), lw=4, alpha=0.5, solid_capstyle="butt")
            ax.plot([v], [yi], "|", color="k", ms=10)
        ax.set_title(name.replace("_", " ") + (" P(X > baseline)" if name == "improvement"
                                               else ""), fontsize=8)  # fmt: skip
        ax.set_yticks(y, [r["label"] for r in rows] if ax is axes[0] else [], fontsize=7)
    return fig


def _interval_axes(n: int, rows: int):
    from matplotlib.figure import Figure

    height = 0.9 + 0.3 * rows
    fig = Figure(figsize=(12, height), dpi=DPI)
    longest = 0.3
    fig.subplots(1, n)
    fig.subplots_adjust(left=longest, right=0.99, top=1 - 0.3 / height, bottom=0.4 / height,
                        wspace=0.15)  # fmt: skip
    for ax in fig.axes:
        ax.locator_params(axis="x", nbins=3)
        ax.tick_params(labelsize=7)
        ax.set_ylim(-0.6, rows - 0.4)
    return fig


def _interval(row: dict, name: str):
    if name == "improvement":
        e = row.get("improvement")
        return None if e is None else (e["probability"], e["ci_low"], e["ci_high"])
    f = row["final_return"]
    if name == "iqm":
        return f["iqm"], f["ci_low"], f["ci_high"]
    e = f[name]
    return e["value"], e["ci_low"], e["ci_high"]
