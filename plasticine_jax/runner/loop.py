"""The host loop: plan, compile each group, run it chunk by chunk, stream, checkpoint.

Run directory layout::

    <out_dir>/<name>/
      config.yaml      the resolved config (re-loadable: ``plasticine-jax run config.yaml``)
      plan.json        members: group, setting, seed and swept values
      metrics.csv      one row per (member, update), appended after every chunk
      checkpoint.json  points at checkpoint-g<group>-u<update>.msgpack, the last chunk
      summary.json     final table, programs compiled, status (finished | interrupted)

Ctrl-C (SIGINT) asks the loop to stop after the chunk in flight: the chunk's rows and a
checkpoint are written, and ``plasticine-jax run --resume <dir>`` continues to the same
result as an uninterrupted run. A second Ctrl-C aborts at once; what was written stays.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from flax import serialization

from plasticine_jax.config.load import ConfigError, load_config, to_dict
from plasticine_jax.config.schema import ExperimentConfig
from plasticine_jax.runner.plan import CompileGroup, plan
from plasticine_jax.runner.program import Program
from plasticine_jax.runner.sinks import (
    ID_COLUMNS,
    CSVSink,
    Progress,
    WandbSink,
    chunk_rows,
    truncate_csv,
)
from plasticine_jax.runner.summary import summarize


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    status: str
    programs_compiled: int
    summary: list[dict[str, Any]]


class _StopFlag:
    """SIGINT handler: first press requests a clean stop, second raises KeyboardInterrupt."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after the current chunk (Ctrl-C again to abort)...", flush=True)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def make_run_dir(cfg: ExperimentConfig) -> Path:
    name = cfg.run.name or f"{cfg.name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(cfg.run.out_dir) / name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(
            f"run directory {run_dir} already exists and is not empty; choose another "
            f"run.name, or continue it with --resume {run_dir}"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run(
    cfg: ExperimentConfig | None = None,
    *,
    resume: str | Path | None = None,
    stop_after_chunks: int | None = None,
    on_chunk: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Runs (or resumes) an experiment to its end or a clean stop.

    Args:
      cfg: the experiment; omitted when resuming (read from the run directory).
      resume: a run directory written by an earlier, stopped run.
      stop_after_chunks: stop cleanly after this many chunks (tests, smoke runs).
      on_chunk: called with progress info after every chunk (tests, notebooks).

    Returns:
      The run directory, final status, number of compiled programs and summary rows.
    """
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"--resume {run_dir}: no config.yaml there; not a run directory")
        cfg = load_config(run_dir / "config.yaml")
    elif cfg is None:
        raise ValueError("run() needs a config or a run directory to resume")
    groups = plan(cfg)  # validates every grid point before anything compiles
    programs = [Program(g) for g in groups]
    columns = _columns(cfg, programs)
    if resume is None:
        run_dir = make_run_dir(cfg)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        (run_dir / "plan.json").write_text(json.dumps(_plan_json(groups), indent=1))
    start_group, start_update, saved = _read_checkpoint(run_dir)
    if resume is not None:
        truncate_csv(
            run_dir / "metrics.csv",
            lambda r: int(r["group"]) < start_group
            or (int(r["group"]) == start_group and int(r["update"]) <= start_update),
        )
    sinks: list[Any] = [CSVSink(run_dir / "metrics.csv", columns)]
    if cfg.wandb.mode != "disabled":
        sinks.append(WandbSink(cfg, run_dir, to_dict(cfg)))
    total = sum(p.num_updates * p.steps_per_update for p in programs)
    members = sum(len(g.members) for g in groups)
    progress = Progress(total, members, cfg.run.progress)
    progress.advance(
        sum(p.num_updates * p.steps_per_update for p in programs[:start_group])
        + start_update * programs[start_group].steps_per_update
        if start_group < len(programs)
        else total,
        float("nan"),
        0.0,
    )
    status, chunks_done, compiled = "finished", 0, 0
    t_start = time.perf_counter()
    try:
        with _StopFlag() as stop:
            for program in programs[start_group:]:
                g = program.group
                states = program.init()
                first = start_update if g.index == start_group else 0
                if first:
                    states = serialization.from_bytes(states, saved)
                for start in range(first, program.num_updates, program.chunk):
                    t0 = time.perf_counter()
                    states, out = program.run_chunk(states, start)
                    seconds = time.perf_counter() - t0
                    end = start + program.chunk
                    rows = chunk_rows(g.index, g.members, start, program.steps_per_update, out)
                    for sink in sinks:
                        sink.write(rows)
                    if cfg.run.checkpoint:
                        _write_checkpoint(run_dir, g.index, end, program.num_updates, states)
                    chunks_done += 1
                    steps = program.chunk * program.steps_per_update
                    sps = steps * len(g.members) / max(seconds, 1e-9)
                    ret = np.nanmean(out["episode_return"]) if np.isfinite(
                        out["episode_return"]
                    ).any() else float("nan")
                    progress.advance(steps, float(ret), sps)
                    if on_chunk is not None:
                        on_chunk({"group": g.index, "update": end, "seconds": seconds})
                    if stop.requested or (
                        stop_after_chunks is not None and chunks_done >= stop_after_chunks
                    ):
                        if end < program.num_updates or g.index < len(programs) - 1:
                            status = "interrupted"
                        break
                compiled += program.compiles
                if status == "interrupted":
                    break
    finally:
        progress.close()
        for sink in sinks:
            if isinstance(sink, WandbSink):
                sink.close(run_dir / "metrics.csv")
            else:
                sink.close()
    summary = summarize(run_dir / "metrics.csv", groups)
    info = {
        "status": status,
        "programs_compiled": compiled,
        "compile_groups": len(groups),
        "members": members,
        "wall_seconds": time.perf_counter() - t_start,
        "summary": summary,
    }
    (run_dir / "summary.json").write_text(json.dumps(info, indent=1, default=float))
    return RunResult(run_dir, status, compiled, summary)


def _columns(cfg: ExperimentConfig, programs: list[Program]) -> list[str]:
    names: list[str] = []
    for p in programs:
        for n in p.metric_names():
            if n not in names:
                names.append(n)
    sweep = [f"sweep:{k}" for k in cfg.sweep]
    return [*ID_COLUMNS, *sweep, *names]


def _plan_json(groups: list[CompileGroup]) -> list[dict[str, Any]]:
    return [
        {"group": g.index, "member": m.index, "setting": m.setting, "seed": m.seed, **m.values}
        for g in groups
        for m in g.members
    ]


def _write_checkpoint(run_dir: Path, group: int, update: int, num_updates: int, states) -> None:
    """Writes the states, then the pointer to them; each write is atomic, so a crash at any
    moment leaves the previous or the new checkpoint, never a mix."""
    old_name = _read_checkpoint_meta(run_dir).get("file")
    if update >= num_updates:  # group finished: the next group starts fresh
        meta = {"group": group + 1, "update": 0, "file": None}
    else:
        name = f"checkpoint-g{group}-u{update}.msgpack"
        _atomic_write(run_dir / name, serialization.to_bytes(states))
        meta = {"group": group, "update": update, "file": name}
    _atomic_write(run_dir / "checkpoint.json", json.dumps(meta).encode())
    if old_name and old_name != meta["file"] and (run_dir / old_name).is_file():
        (run_dir / old_name).unlink()


def _read_checkpoint_meta(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "checkpoint.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _read_checkpoint(run_dir: Path) -> tuple[int, int, bytes]:
    meta = _read_checkpoint_meta(run_dir)
    if not meta:
        return 0, 0, b""
    data = (run_dir / meta["file"]).read_bytes() if meta["file"] else b""
    return meta["group"], meta["update"], data
