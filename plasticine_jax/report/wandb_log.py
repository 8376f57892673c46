"""The report's figures and tables sent to the run's W&B run (with ``wandb.mode`` on).

The runner's W&B sink has finished its run by the time the report exists, so this resumes
that same run (its id is in ``<run_dir>/wandb.json``) and logs ``report/<figure>`` images
(the PNGs of ``report/figures``) and ``report/summary``, a table with a row per setting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plasticine_jax.report.render import summary_table


def log_report(run_dir: Path, report_dir: Path, wandb_cfg: dict[str, Any]) -> None:
    """Logs ``report_dir``'s figures and summary table to ``run_dir``'s W&B run."""
    import wandb

    report = json.loads((report_dir / "report.json").read_text())
    header, rows = summary_table(report)
    # built before the run resumes, so that nothing is half logged if either fails
    media: dict[str, Any] = {
        f"report/{p.stem}": wandb.Image(str(p)) for p in sorted(report_dir.glob("figures/*.png"))
    }
    media["report/summary"] = wandb.Table(columns=header, data=rows)
    id_file = run_dir / "wandb.json"
    run_id = json.loads(id_file.read_text()).get("id") if id_file.exists() else None
    run = wandb.init(
        project=wandb_cfg.get("project"), entity=wandb_cfg.get("entity"),
        group=wandb_cfg.get("group"), name=run_dir.name, mode=wandb_cfg.get("mode"),
        dir=str(run_dir), id=run_id, resume="allow" if run_id else None,
    )  # fmt: skip
    try:
        run.log(media)
    finally:
        run.finish()
