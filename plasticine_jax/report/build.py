"""Writes a report of one or more run directories: ``report.html``, ``report.md``,
``report.json`` and ``figures/*.svg`` (or ``*.png``).

It reads the run directories alone (``report.table``), so it can be regenerated and runs can
be compared later: ``plasticine-jax report RUN_DIR [RUN_DIR ...] [--out DIR]``. The runner
calls ``write_report(run_dir)`` at the end of every finished run (``run.report``), after it
wrote ``metrics.parquet`` beside ``metrics.csv``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plasticine_jax.report import figures as figs
from plasticine_jax.report import stats
from plasticine_jax.report.aggregate import aggregate
from plasticine_jax.report.diagnosis import diagnose, diagnosis_text
from plasticine_jax.report.openended import SCORE, open_ended, open_ended_text
from plasticine_jax.report.render import html_page, markdown
from plasticine_jax.report.settings import baseline_for, collect_settings, differing_keys
from plasticine_jax.report.table import load_run, write_parquet


def default_out(run_dirs: Sequence[Path]) -> Path:
    """``<run>/report`` for one run; ``report-<a>+<b>...`` in the working directory else."""
    if len(run_dirs) == 1:
        return run_dirs[0] / "report"
    return Path("report-" + "+".join(p.name for p in run_dirs)[:120])


def _json_safe(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def build_report(
    run_dirs: Sequence[str | Path],
    *,
    baseline: str | None = None,
    reps: int = stats.REPS,
    with_figures: bool = True,
    fmt: str = "svg",
) -> tuple[dict[str, Any], list[tuple[str, str, bytes]]]:
    """The report's content: ``report.json``'s dict and the figures ``(stem, title, data)``
    in ``fmt`` (``svg`` or ``png``; ``report["figure_format"]``)."""
    runs = [load_run(p) for p in run_dirs]
    settings = collect_settings(runs)
    if not settings:
        raise ValueError(
            "no rows in " + ", ".join(str(r.path) for r in runs) + ": nothing to report"
        )
    agg = aggregate(settings, baseline=baseline, reps=reps)
    base_labels = {baseline_for(s, settings, baseline).label for s in settings}
    for row in agg["settings"]:
        row["is_baseline"] = row["label"] in base_labels
    report: dict[str, Any] = {
        "title": "plasticine-jax report: " + ", ".join(r.name for r in runs),
        "runs": [
            {
                "path": str(r.path),
                "name": r.name,
                "status": r.summary.get("status", "unknown"),
                "rows": r.num_rows,
                "source": r.source,
            }
            for r in runs
        ],  # fmt: skip
        "differing_keys": differing_keys(runs) if len(runs) > 1 else [],
        "baseline": baseline
        or "the vanilla setting with the same swept values (else the first vanilla one, else the "
        "first setting)",
        **agg,
    }
    report["sections"] = {}
    diag = diagnose(settings)
    if diag is not None:
        report["diagnosis"] = diag
        report["sections"]["Plasticity diagnosis (continual)"] = diagnosis_text(diag)
    oe = open_ended(settings)
    if oe is not None:
        report["open_ended"] = oe
        report["sections"]["Open-ended: Craftax score and achievements"] = open_ended_text(oe)
    figures: list[tuple[str, str, bytes]] = []
    if with_figures:
        figures = _figures(settings, agg, fmt)
    report["figure_format"] = fmt
    return report, figures


def _figures(settings, agg, fmt: str) -> list[tuple[str, str, bytes]]:
    out = []

    def add(stem: str, title: str, fig) -> None:
        if fig is not None:
            out.append((stem, title, figs.render(fig, fmt)))

    add("learning_curves", "Learning curves", figs.learning_curves(settings))
    if any(SCORE in s.run.columns for s in settings):
        add("craftax_score", "Craftax score", figs.learning_curves(settings, (SCORE,)))
    if len(settings) > 1:  # comparisons; one setting's numbers are all in the table
        add("intervals", "Final return: aggregates with 95% intervals",
            figs.intervals_figure(agg))  # fmt: skip
        add("profiles", "Performance profiles", figs.profiles_figure(agg, settings))
    columns = list(dict.fromkeys(c for s in settings for c in s.run.numeric()))
    families = figs.metric_families(columns)
    add("metrics", "Every metric over time (" + ", ".join(families) + ")",
        figs.metric_figure(settings, families))  # fmt: skip
    return out


def write_report(
    run_dirs: str | Path | Sequence[str | Path],
    out: str | Path | None = None,
    *,
    baseline: str | None = None,
    reps: int = stats.REPS,
    with_figures: bool = True,
    fmt: str = "svg",
) -> Path:
    """Writes the report of ``run_dirs`` into ``out`` (default ``default_out``); returns
    the path of ``report.html``. Each run's ``metrics.parquet`` is written first where it
    is missing or older than its CSV."""
    if isinstance(run_dirs, str | Path):
        run_dirs = [run_dirs]
    paths = [Path(p) for p in run_dirs]
    for p in paths:
        csv, parquet = p / "metrics.csv", p / "metrics.parquet"
        if csv.exists() and (not parquet.exists() or parquet.stat().st_mtime < csv.stat().st_mtime):
            try:
                write_parquet(p)
            except OSError:
                pass  # a read-only run directory: the report reads the CSV
    report, figures = build_report(
        paths, baseline=baseline, reps=reps, with_figures=with_figures, fmt=fmt
    )
    out = Path(out) if out is not None else default_out(paths)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for old in (out / "figures").glob("*.*"):  # a figure that is no longer drawn goes
        old.unlink()
    for stem, _, data in figures:
        (out / "figures" / f"{stem}.{fmt}").write_bytes(data)
    _atomic(out / "report.json", json.dumps(_json_safe(report), indent=1))
    _atomic(out / "report.md", markdown(report, figures))
    _atomic(out / "report.html", html_page(report, figures))
    return out / "report.html"


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
