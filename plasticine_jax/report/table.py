"""A run directory read back: its metrics table (CSV or Parquet), config, plan and summary.

``metrics.csv`` is what the runner streams; ``metrics.parquet`` is the same table, written
beside it once the run ends (``write_parquet``): typed columns, a tenth of the size, read in
milliseconds. ``load_run`` reads the Parquet file when it is at least as new as the CSV,
else the CSV. Empty CSV cells (plasticity metrics on updates that do not compute them)
become NaN; ``sweep:<key>`` columns stay text, as the runner wrote them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from plasticine_jax.config.load import yaml_load

NOT_METRICS = frozenset(
    {"group", "member", "setting", "seed", "update", "env_steps", "diverged", "diverged_at",
     "task_id", "task_switched"}
)  # fmt: skip


@dataclasses.dataclass
class Run:
    """One run directory, read."""

    path: Path
    columns: dict[str, np.ndarray]  # float64, or object (text) for sweep:<key> columns
    config: dict[str, Any]
    plan: list[dict[str, Any]]
    summary: dict[str, Any]
    source: str  # "metrics.parquet" | "metrics.csv"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def num_rows(self) -> int:
        return len(self.columns["update"]) if "update" in self.columns else 0

    def numeric(self) -> list[str]:
        """Names of the float columns, in table order."""
        return [k for k, v in self.columns.items() if v.dtype.kind == "f"]


class NotARunError(ValueError):
    """The path is not a run directory (no metrics table)."""


def _schema(names: list[str]) -> dict[str, pa.DataType]:
    return {n: (pa.string() if n.startswith("sweep:") else pa.float64()) for n in names}


def _read_csv(path: Path) -> pa.Table:
    with path.open(newline="") as f:
        header = f.readline().strip().split(",")
    if header == [""]:
        return pa.table({})
    opts = pacsv.ConvertOptions(
        column_types=_schema(header), strings_can_be_null=False, null_values=[""]
    )
    return pacsv.read_csv(path, convert_options=opts)


def read_table(run_dir: Path) -> tuple[pa.Table, str]:
    """The metrics table of ``run_dir`` and the file it came from."""
    csv_path, pq_path = run_dir / "metrics.csv", run_dir / "metrics.parquet"
    if pq_path.exists() and (
        not csv_path.exists() or pq_path.stat().st_mtime >= csv_path.stat().st_mtime
    ):
        return pq.read_table(pq_path), pq_path.name
    if not csv_path.exists():
        raise NotARunError(f"{run_dir}: no metrics.csv or metrics.parquet; not a run directory")
    return _read_csv(csv_path), csv_path.name


def write_parquet(run_dir: str | Path) -> Path:
    """Writes ``metrics.parquet`` beside ``metrics.csv`` (atomically) and returns its path."""
    run_dir = Path(run_dir)
    table = _read_csv(run_dir / "metrics.csv")
    out = run_dir / "metrics.parquet"
    tmp = out.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    return out


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            cols[name] = np.asarray(col.to_pylist(), dtype=object)
        else:
            cols[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)
    return cols


def load_run(run_dir: str | Path) -> Run:
    """Reads a run directory written by ``plasticine_jax.runner.loop.run``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NotARunError(f"{run_dir}: no such directory")
    table, source = read_table(run_dir)

    def read(name: str, parse, default):
        p = run_dir / name
        return parse(p.read_text()) if p.exists() else default

    return Run(
        path=run_dir,
        columns=_columns(table),
        config=read("config.yaml", yaml_load, {}) or {},
        plan=read("plan.json", json.loads, []),
        summary=read("summary.json", json.loads, {}),
        source=source,
    )
