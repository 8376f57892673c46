"""Where per-update rows go: the run's CSV table, Weights & Biases, a progress bar."""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ID_COLUMNS = ("group", "member", "setting", "seed", "update", "env_steps")


def chunk_rows(
    group: int,
    members: Sequence[Any],
    start: int,
    steps_per_update: int,
    out: Mapping[str, np.ndarray],
    prefill_steps: int = 0,
) -> list[dict[str, Any]]:
    """Turns a chunk's ``{name: [chunk, M]}`` arrays into one row per (update, member).
    ``env_steps`` counts the member's env steps at the end of the update, the
    ``prefill_steps`` its agent took before the first update included.

    Plasticity metrics are computed only every ``metrics.every`` updates; on the other
    updates they are NaN in ``out`` and written as empty cells.
    """
    n = next(iter(out.values())).shape[0]
    rows = []
    for i in range(n):
        update = start + i + 1
        for m in members:
            row: dict[str, Any] = {
                "group": group,
                "member": m.index,
                "setting": m.setting,
                "seed": m.seed,
                "update": update,
                "env_steps": prefill_steps + update * steps_per_update,
            }
            row.update({f"sweep:{k}": v for k, v in m.values.items()})
            for k, v in out.items():
                x = float(v[i, m.index])
                row[k] = "" if math.isnan(x) else x
            rows.append(row)
    return rows


class CSVSink:
    """Appends rows to ``metrics.csv``, flushed after every chunk (survives a crash).

    The header is fixed by the first call; later columns must be a subset of it.
    """

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path = path
        self.columns = list(columns)
        new = not path.exists()
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, restval="")
        if new:
            self._writer.writeheader()

    def write(self, rows: Sequence[Mapping[str, Any]], step_offset: int = 0) -> None:
        self._writer.writerows(rows)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def truncate_csv(path: Path, keep) -> None:
    """Rewrites ``path`` keeping only rows for which ``keep(row)`` holds (used on resume)."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        rows = [r for r in reader if keep(r)]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


class WandbSink:
    """Logs, per update, each setting's mean over seeds of every scalar. Off by default.

    One W&B run per experiment; keys are ``setting{i}/{metric}``, plotted against
    ``env_steps`` (per member). W&B's own step must only grow, and every compile group
    counts its ``env_steps`` from 0, so the logged step is the group's offset (the env steps
    of the groups before it) plus ``env_steps``. The run's id is kept in
    ``<run_dir>/wandb.json``, and ``--resume`` continues that same W&B run. The final metrics
    table is attached as an artifact. ``mode="offline"`` needs no network.
    """

    def __init__(self, cfg, run_dir: Path, config_dict: Mapping[str, Any], resume: bool = False):
        import wandb

        self._wandb = wandb
        id_file = run_dir / "wandb.json"
        run_id = None
        if resume and id_file.exists():
            run_id = json.loads(id_file.read_text()).get("id")
        self.run = wandb.init(
            project=cfg.wandb.project,
            entity=cfg.wandb.entity,
            group=cfg.wandb.group,
            tags=list(cfg.wandb.tags),
            name=run_dir.name,
            mode=cfg.wandb.mode,
            dir=str(run_dir),
            config=dict(config_dict),
            id=run_id,
            resume="allow" if run_id else None,
        )
        id_file.write_text(json.dumps({"id": self.run.id}))
        self.run.define_metric("env_steps")
        self.run.define_metric("setting*", step_metric="env_steps")

    def write(self, rows: Sequence[Mapping[str, Any]], step_offset: int = 0) -> None:
        by_update: dict[int, dict[str, list[float]]] = {}
        for r in rows:
            bucket = by_update.setdefault(int(r["env_steps"]), {})
            for k, v in r.items():
                if k in ID_COLUMNS or k.startswith("sweep:") or v == "":
                    continue
                bucket.setdefault(f"setting{r['setting']}/{k}", []).append(float(v))
        for env_steps, values in sorted(by_update.items()):
            logged = {k: float(np.mean(v)) for k, v in values.items()}
            self.run.log({**logged, "env_steps": env_steps}, step=step_offset + env_steps)

    def close(self, table_path: Path | None = None) -> None:
        if table_path is not None and table_path.exists():
            art = self._wandb.Artifact(f"{self.run.name}-metrics", type="metrics")
            art.add_file(str(table_path))
            self.run.log_artifact(art)
        self.run.finish()

class Progress:
    """A tqdm bar over env steps per member with steps/s (all members), mean return (over
    healthy members) and, once any member diverged, ``k/N diverged``."""

    def __init__(self, total_steps: int, num_members: int, enabled: bool):
        self.enabled = enabled
        self.num_members = num_members
        self.t0 = time.perf_counter()
        self.done = 0
        self._diverged = ""
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, unit="step", dynamic_ncols=True, smoothing=0.1)

    def diverged(self, count: int, of: int) -> None:
        """Shows ``count/of diverged`` for the running group (nothing while none has)."""
        self._diverged = f"{count}/{of}" if count else ""

    def advance(self, steps: int, mean_return: float, sps: float) -> None:
        self.done += steps
        if self.enabled:
            self.bar.update(steps)
            post = {"steps/s": f"{sps:,.0f}", "return": f"{mean_return:.2f}"}
            if self._diverged:
                post["diverged"] = self._diverged
            self.bar.set_postfix(post, refresh=True)

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
