"""One experiment over several processes (runner/distributed.py): two processes of two CPU
devices each, on 127.0.0.1, write the rows one process of four devices writes, into one run
directory; a stopped multi-process run resumes to the same rows; bad flags and member
counts are clear errors; a resumed run's states go back onto the member sharding.

Every run here is a subprocess: a process joins ``jax.distributed`` once, before any JAX
computation, and its device count is fixed when JAX starts (``XLA_FLAGS``)."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from plasticine_jax.cli import main
from plasticine_jax.config import ConfigError, load_config
from plasticine_jax.runner import distributed
from plasticine_jax.runner.program import member_sharding
from tests.conftest import tiny

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds per launch; a hung collective fails the test instead of CI

pytestmark = pytest.mark.slow

# Runs of one process of 4 devices, in one subprocess: the reference, a run stopped after
# its first chunk, and its resume, with the states every chunk is dispatched with recorded.
REFERENCE = """
import json, sys
import jax
from plasticine_jax.config import load_config
from plasticine_jax.runner import loop, program

seen = []
dispatch = program.Program.dispatch
def spy(self, states, start, length=None):
    seen.append({"start": start, "leaves": [
        [type(x).__name__, repr(getattr(x, "sharding", None))] for x in jax.tree.leaves(states)
    ]})
    return dispatch(self, states, start, length)
program.Program.dispatch = spy

config, out = sys.argv[1], sys.argv[2]
loop.run(load_config(config, ["run.name=one"]))
fresh = list(seen)
part = loop.run(load_config(config, ["run.name=part"]), stop_after_chunks=1)
seen.clear()
loop.run(resume=part.run_dir)
json.dump({"fresh": fresh, "resumed": seen, "status": part.status}, open(out, "w"))
"""

# One process of a multi-process run; it takes the arguments of ``plasticine-jax run``.
# Process 1 alone asks to stop after the first chunk, as a Ctrl-C on it would (its stop
# flag and ``stop_after_chunks`` are one decision): process 0 must stop there too.
STOP_AFTER_ONE = """
import sys
from plasticine_jax.cli import build_parser
from plasticine_jax.config import load_config
from plasticine_jax.runner import distributed
from plasticine_jax.runner.loop import run

args = build_parser().parse_args(["run", *sys.argv[1:]])
distributed.initialize(args.coordinator, args.num_processes, args.process_id)
stop = 1 if args.process_id == 1 else None
result = run(load_config(args.config, args.overrides), stop_after_chunks=stop)
print("status:", result.status, result.run_dir)
"""


def _env(devices: int) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes(args: list[str], n: int = 2, devices: int = 2) -> list[tuple[int, str]]:
    """``args`` then ``--coordinator/--num-processes/--process-id`` launched as ``n``
    processes of ``devices`` CPU devices; their exit codes and outputs."""
    port = _free_port()
    # output to files, not pipes: a process blocked on a full pipe would stall the others
    logs = [tempfile.TemporaryFile("w+") for _ in range(n)]
    procs = [
        subprocess.Popen(
            [*args, "--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n),
             "--process-id", str(i)],
            cwd=REPO, env=_env(devices), stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for i, log in enumerate(logs)
    ]
    try:
        codes = [p.wait(TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outs = []
    for log in logs:
        log.seek(0)
        outs.append(log.read())
        log.close()
    return list(zip(codes, outs, strict=True))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "plasticine_jax.cli", "run", *args]


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("distributed")
    data = tiny(run={"num_seeds": 4, "report": False, "out_dir": str(root / "runs")})
    path = root / "tiny.yaml"  # 4 members, 4 updates in 2 chunks of 2
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def reference(config) -> dict:
    """One process of 4 devices: the run (``runs/one``), a stopped-and-resumed copy
    (``runs/part``) and the states each chunk was dispatched with."""
    out = config.parent / "reference.json"
    proc = subprocess.run(
        [sys.executable, "-c", REFERENCE, str(config), str(out)],
        cwd=REPO, env=_env(4), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_flags_that_are_incomplete_or_out_of_range_are_clear_errors(config, capsys):
    cases = [
        (["--num-processes", "2", "--process-id", "0"], "also needs --coordinator"),
        (["--coordinator", "127.0.0.1:1234"], "also needs --num-processes, --process-id"),
        (["--coordinator", "127.0.0.1:1234", "--num-processes", "2"], "also needs --process-id"),
        (["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"],
         "--process-id 2 is out of range for --num-processes 2: give 0 to 1"),
        (["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "-1"],
         "out of range"),
        (["--coordinator", "127.0.0.1", "--num-processes", "2", "--process-id", "0"],
         "give HOST:PORT"),
        (["--coordinator", "127.0.0.1:1234", "--num-processes", "0", "--process-id", "0"],
         "give 1 or more processes"),
    ]  # fmt: skip
    for flags, message in cases:
        assert main(["run", str(config), *flags]) == 2, flags
        err = capsys.readouterr().err
        assert message in err, (flags, err)
    # nothing was initialised, nothing was written
    assert not distributed.check_flags(None, None, None)
    assert not (config.parent / "runs").exists()


def test_uneven_members_or_a_taken_run_directory_stop_every_process_with_the_error(
    config, monkeypatch
):
    # over two processes of two devices each: 6 members cannot split over 4 devices
    rc_out = _processes(_cli(str(config), "run.num_seeds=6", "run.name=uneven"))
    for rc, out in rc_out:
        assert rc == 2, out[-3000:]
        assert "6 members do not divide over the 4 devices of 2 processes" in out, out[-3000:]
        assert "multiple of 4" in out and "run.num_seeds=8" in out
    assert not (config.parent / "runs" / "uneven").exists()
    # process 0 alone makes the run directory; its refusal reaches process 1 too
    taken = config.parent / "runs" / "taken"
    taken.mkdir(parents=True)
    (taken / "metrics.csv").write_text("kept\n")
    for rc, out in _processes(_cli(str(config), "run.name=taken")):
        assert rc == 2, out[-3000:]
        assert f"run directory {taken} already exists and is not empty" in out, out[-3000:]
    assert [p.name for p in taken.iterdir()] == ["metrics.csv"]
    # one process keeps its fallback (all members on one device, with a note) ...
    assert member_sharding(3, ["d0", "d1"])[0] is None
    # ... and envpool, whose pools live in each host process, is refused over several
    monkeypatch.setattr(distributed, "process_count", lambda: 2)
    with pytest.raises(ConfigError, match="3 members do not divide over the 2 devices"):
        member_sharding(3, ["d0", "d1"])
    envpool = load_config(data=tiny(env={"backend": "envpool", "id": "CartPole-v1"}))
    with pytest.raises(ConfigError, match="envpool.* cannot run over several processes"):
        distributed.check_config(envpool)


def test_two_processes_write_one_run_with_the_rows_of_one_process(config, reference):
    runs = config.parent / "runs"
    rc_out = _processes(_cli(str(config)))  # default, timestamped name: process 0's is used
    for rc, out in rc_out:
        assert rc == 0, out[-3000:]
    written = [d for d in runs.iterdir() if d.name.startswith("tiny-")]
    assert len(written) == 1, written  # one run directory, written by process 0 only
    run_dir = written[0]
    assert f"run directory {run_dir}" in rc_out[0][1]
    assert f"process 1: finished; process 0 wrote {run_dir}" in rc_out[1][1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["programs_compiled"] == 1
    # the same programs over the same 4 devices, split over two processes: every value is
    # the same float32 bits (compared as the CSV's text)
    rows, expected = _rows(run_dir), _rows(runs / "one")
    assert len(rows) == 4 * 4 and rows == expected


def test_a_stopped_two_process_run_resumes_to_the_uninterrupted_rows(config, reference):
    runs = config.parent / "runs"
    rc_out = _processes([sys.executable, "-c", STOP_AFTER_ONE, str(config), "run.name=part2"])
    for rc, out in rc_out:  # both stopped after the chunk process 1 stopped after
        assert rc == 0 and "status: interrupted" in out, out[-3000:]
    part = runs / "part2"
    assert len(_rows(part)) == 2 * 4  # the first chunk: 2 updates of 4 members
    rc_out = _processes(_cli("--resume", str(part)))  # both processes, the same flags
    for rc, out in rc_out:
        assert rc == 0, out[-3000:]
    assert json.loads((part / "summary.json").read_text())["status"] == "finished"
    assert _rows(part) == _rows(runs / "one")


def test_fresh_and_resumed_states_are_on_the_member_sharding_and_compile_once(config, reference):
    # one process of 4 devices: a resumed run continues on the 4 devices, not on one
    assert reference["status"] == "interrupted"
    fresh, resumed = reference["fresh"], reference["resumed"]
    assert [d["start"] for d in fresh] == [0, 2] and [d["start"] for d in resumed] == [2]
    leaves = resumed[0]["leaves"]
    assert all(kind == "ArrayImpl" for kind, _ in leaves), {k for k, _ in leaves}
    assert all("spec=P('members',)" in sharding for _, sharding in leaves), leaves
    # where the uninterrupted run's second chunk started: its program serves (one compile)
    assert leaves == fresh[1]["leaves"]
    runs = config.parent / "runs"
    assert json.loads((runs / "part" / "summary.json").read_text())["programs_compiled"] == 1
    # init's states are on it too: a sharded run compiles its chunk once, not twice
    assert fresh[0]["leaves"] == fresh[1]["leaves"]
    assert json.loads((runs / "one" / "summary.json").read_text())["programs_compiled"] == 1
    assert _rows(runs / "part") == _rows(runs / "one")


def test_chunks_sized_by_time_take_process_0s_lengths_on_every_process(config, reference):
    # chunk lengths from each process's own clock would differ, and the processes would
    # then run different numbers of updates between collectives; every process takes
    # process 0's (distributed.same)
    runs = config.parent / "runs"
    rc_out = _processes(_cli(str(config), "run.name=timed", "run.chunk_updates=0",
                             "run.chunk_seconds=0.01"))  # fmt: skip
    for rc, out in rc_out:
        assert rc == 0, out[-3000:]
    summary = json.loads((runs / "timed" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["programs_compiled"] == 1
    assert _rows(runs / "timed") == _rows(runs / "one")
