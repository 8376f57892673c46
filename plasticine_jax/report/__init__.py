"""Reports of run directories: aggregates with bootstrap intervals, every metric plotted,
runs compared (``plasticine-jax report RUN_DIR [RUN_DIR ...]``)."""

from plasticine_jax.report.build import build_report, write_report
from plasticine_jax.report.table import NotARunError, load_run, write_parquet

__all__ = ["NotARunError", "build_report", "load_run", "write_parquet", "write_report"]
