"""``report.md`` and the self-contained ``report.html`` from the aggregates and figures.

The HTML embeds every figure as base64 SVG or PNG (``data:`` URI), its style inline: it opens
from a file, offline. A few lines of inline script count the figures that decoded
(``img.naturalWidth > 0``) into ``<body data-rendered>``, so a headless browser can check
that all of them did. ``report.md`` holds the same tables and links the figure files written
beside it in ``figures/``.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

Figures = Sequence[tuple[str, str, bytes]]  # (file stem, title, svg or png bytes)
MIME = {"svg": "image/svg+xml", "png": "image/png"}


def _num(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _ci(value: Any, lo: Any, hi: Any) -> str:
    return f"{_num(value)} [{_num(lo)}, {_num(hi)}]"


def _measure(row: dict, name: str, stat: str = "iqm") -> str:
    m = row.get(name)
    if not m or "iqm" not in m:
        return "n/a"
    if stat == "iqm":
        return _ci(m["iqm"], m["ci_low"], m["ci_high"])
    e = m[stat]
    return _ci(e["value"], e["ci_low"], e["ci_high"])


def summary_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-setting table (values with their 95% intervals)."""
    rows = report["settings"]
    has_eval = any("eval_return" in r for r in rows)
    header = ["setting", "seeds", "diverged", "final return IQM", "mean", "median",
              "optimality gap", "AUC IQM"] + (["eval return IQM"] if has_eval else []) + [
              "P(improvement) over baseline"]  # fmt: skip
    out = []
    for r in rows:
        f = r.get("final_return", {})
        healthy = r["members"] - r["diverged"]
        seeds = f"{f.get('seeds', 0)}/{healthy}" if f.get("seeds", 0) != healthy else str(healthy)
        imp = r.get("improvement")
        imp_text = (
            f"{_ci(imp['probability'], imp['ci_low'], imp['ci_high'])} vs {imp['baseline']}"
            if imp else "(baseline)" if r.get("is_baseline") else "n/a"
        )  # fmt: skip
        cells = [r["label"], seeds, f"{r['diverged']}/{r['members']}",
                 _measure(r, "final_return"), _measure(r, "final_return", "mean"),
                 _measure(r, "final_return", "median"),
                 _measure(r, "final_return", "optimality_gap"), _measure(r, "auc")]  # fmt: skip
        if has_eval:
            cells.append(_measure(r, "eval_return"))
        cells.append(imp_text)
        out.append(cells)
    return header, out


def _notes(report: dict[str, Any]) -> list[str]:
    notes = list(report.get("notes", []))
    for r in report["settings"]:
        for d in r["diverged_members"]:
            notes.append(
                f"{r['label']}: seed {d['seed']} (member {d['member']}, group {d['group']}) "
                f"diverged at update {d['update']}; left out of every aggregate"
            )
        left = r.get("final_return", {}).get("left_out") or []
        if left:
            notes.append(f"{r['label']}: seeds {left} finished no episode on some task; left out")
    return notes


def markdown(report: dict[str, Any], figures: Figures) -> str:
    """``report.md``: runs, the per-setting table, notes and links to the figures."""
    lines = [f"# {report['title']}", ""]
    lines += [f"- `{r['path']}`: {r['status']}, {r['rows']} rows ({r['source']})"
              for r in report["runs"]]  # fmt: skip
    if report.get("differing_keys"):
        lines.append(f"- the runs differ in: {', '.join(report['differing_keys'])}")
    lines += ["", _estimators_text(report), ""]
    header, rows = summary_table(report)
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    notes = _notes(report)
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    if figures:
        lines += ["", "## Figures", ""]
        ext = report.get("figure_format", "svg")
        lines += [
            f"### {title}\n\n![{title}](figures/{stem}.{ext})\n" for stem, title, _ in figures
        ]
    for section, text in report.get("sections", {}).items():
        lines += ["", f"## {section}", "", text]
    return "\n".join(lines) + "\n"


def _estimators_text(report: dict[str, Any]) -> str:
    e = report["estimators"]
    return (
        f"Final return: {e['final_return']}; AUC: {e['auc']}. Aggregates over seeds as "
        f"rliable defines them (Agarwal et al. 2021), each with its {e['interval']} "
        f"({e['reps']} replicates). Optimality gap and profiles on normalised scores "
        f"({report['normalization']['kind']} range). Aggregates are of the "
        f"{report.get('score_units', 'return')}. Baseline: {report['baseline']}."
    )


def _md_html(text: str) -> str:
    """The markdown the sections use (paragraphs, ``code``, pipe tables) as HTML."""
    out, table = [], []

    def inline(t: str) -> str:
        parts = html.escape(t).split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    def flush() -> None:
        if table:
            rows = [r for r in table if not set(r.replace("|", "")) <= set("-: ")]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells[0])
                       + "</tr>" + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r)
                                            + "</tr>" for r in cells[1:]) + "</table>")  # fmt: skip
            table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(out)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}h2{margin-top:1.6em}
pre{white-space:pre-wrap;font-size:13px}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.figure'), ok = 0;
  imgs.forEach(function (i) { if (i.complete && i.naturalWidth > 0) ok++; });
  document.body.setAttribute('data-rendered', ok + '/' + imgs.length);
});
"""


def html_page(report: dict[str, Any], figures: Figures) -> str:
    """The self-contained ``report.html``."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(report['title'])}"
             f"</title><style>{_STYLE}</style></head>"
             f"<body data-figures='{len(figures)}'><h1>{e(report['title'])}</h1><ul>"]  # fmt: skip
    parts += [f"<li><code>{e(r['path'])}</code>: {e(r['status'])}, {r['rows']} rows "
              f"({e(r['source'])})</li>" for r in report["runs"]]  # fmt: skip
    if report.get("differing_keys"):
        parts.append(f"<li>the runs differ in: {e(', '.join(report['differing_keys']))}</li>")
    parts.append(f"</ul><p>{e(_estimators_text(report))}</p>")
    header, rows = summary_table(report)
    parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
    parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
    parts.append("</table>")
    notes = _notes(report)
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    mime = MIME[report.get("figure_format", "svg")]
    for stem, title, raw in figures:
        data = base64.b64encode(raw).decode("ascii")
        parts.append(f"<h2>{e(title)}</h2><img class='figure' id='fig-{e(stem)}' "
                     f"alt='{e(title)}' src='data:{mime};base64,{data}'>")  # fmt: skip
    for section, text in report.get("sections", {}).items():
        parts.append(f"<h2>{e(section)}</h2>{_md_html(text)}")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts)
