"""The host loop: plan, compile each group, run it chunk by chunk, stream, checkpoint.

Run directory layout::

    <out_dir>/<name>/
      config.yaml      the resolved config (re-loadable: ``plasticine-jax run config.yaml``)
      plan.json        members: group, setting, seed and swept values
      metrics.csv      one row per (member, update), appended after every chunk
      checkpoint.json  the last two checkpoints, checkpoint-g<group>-u<update>.ckpt,
                       with their SHA-256 (runner/checkpoint.py)
      summary.json     final table, programs compiled, status (finished | interrupted)

Ctrl-C (SIGINT) asks the loop to stop after the chunk in flight: the chunk's rows and a
checkpoint are written, and ``plasticine-jax run --resume <dir>`` continues to the same
result as an uninterrupted run (so does a run killed outright: rows after the last
checkpoint are dropped and recomputed). A second Ctrl-C aborts at once; what was written
stays. A checkpoint is written after the first chunk that ends ``run.checkpoint_every``
seconds (default 60; 0 = every chunk) after the last one, and always after the chunk a run
stops after; a killed run resumes from the last one written. Chunks have
``run.chunk_updates`` updates, or when that is 0 are sized to ``run.chunk_seconds`` of wall
time each (``program.ChunkSizer``); one compiled program runs every length. While chunk k's
rows and checkpoint are written, chunk k+1 already runs (JAX's asynchronous dispatch). envpool runs
cannot be resumed (their pools live in the host process); ``--resume`` refuses them and
says why. Over several processes (``runner/distributed.py``) every process runs this loop in
lock-step and process 0 alone writes the run directory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import signal
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from plasticine_jax.config.load import ConfigError, load_config, to_dict
from plasticine_jax.config.schema import ExperimentConfig
from plasticine_jax.envs.registry import MissingExtraError
from plasticine_jax.runner import distributed
from plasticine_jax.runner.checkpoint import (
    POINTER,
    decode,
    encode,
    read_checkpoint,
    write_checkpoint,
)
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
from plasticine_jax.runner.summary import diverged_members, summarize


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    status: str
    programs_compiled: int
    summary: list[dict[str, Any]]
    notes: list[str] = dataclasses.field(default_factory=list)
    resumable: bool = True


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
      The run directory, final status, number of compiled programs and summary rows (none
      on the processes other than 0 of a multi-process run, which write nothing).
    """
    t_call, first_chunk_s = time.perf_counter(), None
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"--resume {run_dir}: no config.yaml there; not a run directory")
        cfg = load_config(run_dir / "config.yaml")
        if not resumable(cfg):
            raise ConfigError(_NOT_RESUMABLE.format(run_dir=run_dir))
    elif cfg is None:
        raise ValueError("run() needs a config or a run directory to resume")
    distributed.check_config(cfg)
    groups = plan(cfg)  # validates every grid point before anything compiles
    programs = build_programs(groups)
    columns = _columns(cfg, programs)
    writer = distributed.is_writer()  # the other processes of a multi-process run write nothing
    if resume is None:
        run_dir = Path(distributed.on_writer(lambda: str(make_run_dir(cfg))))  # one name
        if writer:
            (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
            (run_dir / "plan.json").write_text(json.dumps(_plan_json(groups), indent=1))
    start_group, start_update, saved = read_checkpoint(run_dir)
    if resume is not None and writer:
        truncate_csv(
            run_dir / "metrics.csv",
            lambda r: int(r["group"]) < start_group
            or (int(r["group"]) == start_group and int(r["update"]) <= start_update),
        )
    sinks: list[Any] = [CSVSink(run_dir / "metrics.csv", columns)] if writer else []
    if cfg.wandb.mode != "disabled" and writer:
        sinks.append(WandbSink(cfg, run_dir, to_dict(cfg), resume=resume is not None))
    offsets = np.cumsum(
        [0] + [p.prefill_steps + p.num_updates * p.steps_per_update for p in programs]
    )
    total = int(offsets[-1])
    members = sum(len(g.members) for g in groups)
    progress = Progress(total, members, cfg.run.progress and writer)
    if start_group < len(programs):
        progress.advance(
            int(offsets[start_group])
            + (programs[start_group].prefill_steps if start_update else 0)
            + start_update * programs[start_group].steps_per_update,
            float("nan"), 0.0,
        )  # fmt: skip
    else:
        progress.advance(total, float("nan"), 0.0)
    status, chunks_done, compiled = "finished", 0, 0
    write_ckpt = cfg.run.checkpoint and resumable(cfg)
    t_start = last_ckpt = time.perf_counter()
    try:
        with _StopFlag() as stop:
            for program in programs[start_group:]:
                g = program.group
                states = program.init()
                first = start_update if g.index == start_group else 0
                if first:
                    restored = decode(states, saved, f"{run_dir}/{POINTER}'s newest")  # numpy
                    states = distributed.to_global(restored, program.sharding)
                elif program.prefill_steps:  # init took them (a replay agent's prefill)
                    progress.advance(program.prefill_steps, float("nan"), 0.0)
                diverged = int((distributed.to_host(states.diverged_at) > 0).sum())
                progress.diverged(diverged, len(g.members))
                # Chunk k+1 is dispatched before chunk k's rows are written (and before its
                # checkpoint file is), so the host's work overlaps the device's. A checkpoint
                # serialises the states first: dispatching donates them.
                sizer = program.sizer()
                start, length = first, sizer.next(program.num_updates - first)
                t0 = time.perf_counter()  # a chunk's seconds include its compile, if any
                states, out = program.dispatch(states, start, length)
                while True:
                    out = {k: v[:length] for k, v in distributed.to_host(out).items()}  # waits
                    seconds = time.perf_counter() - t0
                    end = start + length
                    chunks_done += 1
                    if first_chunk_s is None:
                        first_chunk_s = time.perf_counter() - t_call
                    stopping = stop.requested or (
                        stop_after_chunks is not None and chunks_done >= stop_after_chunks
                    )
                    done = end >= program.num_updates
                    late = time.perf_counter() - last_ckpt >= cfg.run.checkpoint_every
                    stopping, late = distributed.agree(stopping, late)  # all processes alike
                    due = write_ckpt and (done or stopping or late)
                    data = b""
                    if due and not done:
                        data = encode(distributed.to_host(states))  # host copies
                    if not stopping and not done:
                        # process 0's length on every process: each dispatches the same chunk
                        next_length = distributed.same(
                            sizer.next(program.num_updates - end, length, seconds)
                        )
                        t0 = time.perf_counter()
                        states, next_out = program.dispatch(states, end, next_length)
                    rows = chunk_rows(
                        g.index, g.members, start, program.steps_per_update, out,
                        program.prefill_steps,
                    )  # fmt: skip
                    for sink in sinks:
                        sink.write(rows, step_offset=int(offsets[g.index]))
                    if due:
                        if writer:
                            write_checkpoint(run_dir, g.index, end, done, data)
                        last_ckpt = time.perf_counter()
                    steps = length * program.steps_per_update
                    sps = steps * len(g.members) / max(seconds, 1e-9)
                    ret = out["episode_return"]
                    ret = float(np.nanmean(ret)) if np.isfinite(ret).any() else float("nan")
                    progress.diverged(int(out["diverged"][-1].sum()), len(g.members))
                    progress.advance(steps, ret, sps)
                    if on_chunk is not None:
                        on_chunk({"group": g.index, "update": end, "seconds": seconds})
                    if stopping:
                        if end < program.num_updates or g.index < len(programs) - 1:
                            status = "interrupted"
                        break
                    if done:
                        break
                    start, length, out = end, next_length, next_out
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
    summary = summarize(run_dir / "metrics.csv", groups) if writer else []
    info = {
        "status": status,
        "resumable": resumable(cfg),
        "programs_compiled": compiled,
        "compile_groups": len(groups),
        "members": members,
        "wall_seconds": time.perf_counter() - t_start,
        "seconds_to_first_chunk": first_chunk_s,  # from run(): plan, build, compile, chunk 1
        "notes": program_notes(programs),
        "diverged": diverged_members(summary),
        "summary": summary,
    }
    if writer:
        (run_dir / "summary.json").write_text(json.dumps(info, indent=1, default=float))
    if status == "finished" and cfg.run.report and writer:
        write_run_report(run_dir, cfg)
    return RunResult(run_dir, status, compiled, summary, info["notes"], resumable(cfg))


_NOT_RESUMABLE = (
    "--resume {run_dir}: this run steps envpool, whose environments live in the host "
    "process and are not in the checkpoint, so a resumed run would not continue the same "
    "episodes; its rows so far are kept in {run_dir}/metrics.csv. Start a new run (e.g. "
    "plasticine-jax run {run_dir}/config.yaml run.name=<new name>)"
)


def write_run_report(run_dir: Path, cfg: ExperimentConfig | None = None) -> Path | None:
    """``metrics.parquet`` and ``<run_dir>/report`` (``plasticine_jax.report``), its figures
    and table also sent to the run's W&B run when ``wandb.mode`` is on. A failure here must
    not cost the run its results, which are all written by now: it is caught and reported as
    a warning, and ``plasticine-jax report <run_dir>`` can try again."""
    try:
        from plasticine_jax.report import write_parquet, write_report

        write_parquet(run_dir)
        to_wandb = cfg is not None and cfg.wandb.mode != "disabled"
        html = write_report(run_dir, fmt="png" if to_wandb else "svg")  # W&B takes rasters
        if to_wandb:
            from plasticine_jax.report.wandb_log import log_report

            log_report(run_dir, html.parent, to_dict(cfg.wandb))
        return html
    except Exception as e:  # noqa: BLE001 - the run's results are safe; never lose them here
        warnings.warn(
            f"the report of {run_dir} failed ({type(e).__name__}: {e}); the run's results are "
            f"kept; retry with: plasticine-jax report {run_dir}",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def resumable(cfg: ExperimentConfig) -> bool:
    """Whether ``--resume`` continues this run exactly: not for envpool, whose pool state
    lives outside the compiled program (and so outside the checkpoint)."""
    return cfg.env.backend != "envpool"


def build_programs(groups: list[CompileGroup]) -> list[Program]:
    """One ``Program`` per group: environments and agents built, nothing compiled yet. A bad
    environment id, option or scenario surfaces here as a ``ConfigError``."""
    programs = []
    for g in groups:
        try:
            programs.append(Program(g))
        except MissingExtraError as e:
            raise ConfigError(f"env.backend={g.cfg.env.backend!r}: {e}") from None
        except (ValueError, TypeError, KeyError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(
                f"env (backend {g.cfg.env.backend!r}, id {g.cfg.env.id!r}, scenario "
                f"{g.cfg.env.scenario!r}): {e}"
            ) from None
    return programs


def program_notes(programs: list[Program]) -> list[str]:
    """What the summary should say about how the programs ran: member sharding turned off."""
    notes = []
    for p in programs:
        if p.sharding_note and p.sharding is None:
            notes.append(f"group {p.group.index}: {p.sharding_note}")
    return notes


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
