"""Every ``plasticine-jax`` command in README.md's ```bash blocks runs, at a tiny size.

The commands are read from the README, not restated: a README command that fails fails
here, and a command this file does not know how to run fails too (no silent skipping; teach
``_kind`` about it, or list it in ``NOT_RUN`` with the reason). ``run`` commands keep the
README's arguments and get overrides appended that shrink them to two updates (later
overrides win); they run in-process through ``cli.main``. The own-method example runs as
the README says: in a subprocess, from a directory holding the ``my_methods.py`` of the
README's python block, with no ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from plasticine_jax.cli import main
from plasticine_jax.config import load_config
from plasticine_jax.runner.loop import run

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PROGRAMS = ("plasticine-jax", ".venv/bin/plasticine-jax")
NOT_RUN = {  # first word -> why this test does not run it
    "make": "Makefile targets create .venv and install packages; CI runs them (.ci/run)",
}
SHRINK = [
    "agent.num_steps=8",
    "env.num_envs=2",
    "agent.num_minibatches=1",
    "agent.update_epochs=1",
    "metrics.probe_size=16",
    "run.num_seeds=1",
    "run.chunk_updates=1",
    "run.progress=false",
]


def _blocks(lang: str) -> list[str]:
    text = README.read_text()
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def readme_commands() -> list[list[str]]:
    """Each command line of the bash blocks as argv (continuations joined, comments cut)."""
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                out.append(argv)
    return out


def readme_files() -> dict[str, str]:
    """Python blocks whose first line names their file (``# my_methods.py ...``): module name
    -> source."""
    files = {}
    for block in _blocks("python"):
        m = re.match(r"#\s*([A-Za-z_]\w*)\.py\b", block)
        if m:
            files[m.group(1)] = block
    return files


def _kind(argv: list[str]) -> str:
    if argv[0] in NOT_RUN:
        return "not run"
    if argv[0] not in PROGRAMS:
        return "unknown"
    args = argv[1:]
    if "--coordinator" in args:  # one line per process: process 0's launches them all
        return "many processes" if args[args.index("--process-id") + 1] == "0" else "not run"
    if args in (["list"], ["doctor"]):
        return args[0]
    if len(args) == 3 and args[:2] == ["run", "--resume"]:
        return "resume"
    if len(args) >= 2 and args[0] == "report":
        return "report"
    if len(args) >= 2 and args[0] == "run" and args[1].endswith(".yaml"):
        named = [m for m in readme_files() if any(re.search(rf"\b{m}:", a) for a in args)]
        return "own method" if named else "run"
    return "unknown"


COMMANDS = [argv for argv in readme_commands() if _kind(argv) != "not run"]


REPLAY_SHRINK = [  # replay agents: 8 random steps of each env, then one gradient step an update
    *(x for x in SHRINK if not x.startswith(("agent.num_minibatches", "agent.update_epochs"))),
    "agent.replay_ratio=0.0625",
    "agent.batch_size=16",
    "agent.buffer_size=128",
    "agent.learning_starts=16",
]


def _tiny(config: str | Path, overrides: list[str], out_dir: Path) -> list[str]:
    """Overrides that shrink ``config`` (with the README's ``overrides``) to two updates."""
    replay = hasattr(load_config(config, overrides).agent, "buffer_size")
    shrink = REPLAY_SHRINK if replay else SHRINK
    cfg = load_config(config, [*overrides, *shrink])
    steps = getattr(cfg.agent, "learning_starts", 0) + 2 * cfg.env.num_envs * cfg.agent.num_steps
    return [*shrink, f"run.total_timesteps={steps}", f"run.out_dir={out_dir}"]


def _finished_runs(out_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out_dir.glob("*/summary.json"))]


def test_the_readme_shows_each_kind_of_command():
    """Guards the parser: were it to find nothing, nothing would run."""
    kinds = {_kind(argv) for argv in readme_commands()}
    expected = {"run", "resume", "report", "list", "own method", "not run", "many processes"}
    assert expected <= kinds, kinds
    assert "my_methods" in readme_files()


def test_a_command_it_cannot_run_is_reported_not_skipped(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text(
        "```bash\n.venv/bin/plasticine-jax run configs/x.yaml \\\n    a=1  # comment\n"
        "make test\n.venv/bin/plasticine-jax frobnicate\npython train.py\n```\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "README", readme)
    commands = readme_commands()
    assert commands[0] == [".venv/bin/plasticine-jax", "run", "configs/x.yaml", "a=1"]
    assert [_kind(a) for a in commands] == ["run", "not run", "unknown", "unknown"]


@pytest.mark.parametrize(
    "argv", COMMANDS, ids=[f"{i}-{_kind(a).replace(' ', '_')}" for i, a in enumerate(COMMANDS)]
)
def test_readme_command_runs(argv, tmp_path, monkeypatch, capsys):
    kind = _kind(argv)
    args = argv[1:]
    if kind == "unknown":
        pytest.fail(
            f"README command {shlex.join(argv)!r}: this test does not know how to run it; "
            "teach tests/test_readme_commands.py (_kind), or add it to NOT_RUN with a reason"
        )
    if kind in ("list", "doctor"):
        monkeypatch.chdir(ROOT)
        assert main(args) == 0
        assert capsys.readouterr().out.strip()
    elif kind == "run":
        monkeypatch.chdir(ROOT)
        out_dir = tmp_path / "runs"
        assert main([*args, *_tiny(args[1], args[2:], out_dir)]) == 0, capsys.readouterr()
        summaries = _finished_runs(out_dir)
        assert [s["status"] for s in summaries] == ["finished"]
    elif kind == "resume":
        _run_resume(args, tmp_path, monkeypatch, capsys)
    elif kind == "report":
        _run_report(args, tmp_path, monkeypatch, capsys)
    elif kind == "many processes":
        _run_many_processes(argv, tmp_path)
    else:
        _run_own_method(argv, tmp_path)


def _run_resume(args: list[str], tmp_path: Path, monkeypatch, capsys) -> None:
    """``run --resume runs/<name>``: the run directory comes from a tiny run of the config
    the name starts with, stopped after its first chunk, in a scratch working directory."""
    run_dir = Path(args[2])
    config = ROOT / "configs" / f"{run_dir.name.rsplit('-', 2)[0]}.yaml"
    assert config.is_file(), f"README resumes {run_dir}: no config {config.name} to make it"
    out_dir = tmp_path / run_dir.parent
    overrides = [*_tiny(config, [], out_dir), f"run.name={run_dir.name}"]
    stopped = run(load_config(config, overrides), stop_after_chunks=1)
    assert stopped.status == "interrupted"
    monkeypatch.chdir(tmp_path)
    assert main(args) == 0, capsys.readouterr()
    assert "finished:" in capsys.readouterr().out
    assert json.loads((tmp_path / run_dir / "summary.json").read_text())["status"] == "finished"


def _run_many_processes(argv: list[str], tmp_path: Path) -> None:
    """``run ... --coordinator A --num-processes N --process-id 0``: the README's N lines with
    that coordinator started together, shrunk as ``run`` (N members: one CPU device each),
    with ``A`` made ``127.0.0.1:<a free port>``; one run directory, finished."""

    def flag(a: list[str], name: str) -> str:
        return a[a.index(name) + 1]

    lines = [
        a for a in readme_commands()
        if "--coordinator" in a and flag(a, "--coordinator") == flag(argv, "--coordinator")
    ]
    n = int(flag(argv, "--num-processes"))
    assert sorted(int(flag(a, "--process-id")) for a in lines) == list(range(n)), lines
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out_dir = tmp_path / "runs"
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(
        f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f
    )
    procs = []
    for a in lines:
        k = next(i for i, x in enumerate(a) if x.startswith("--"))
        args, flags = a[1:k], a[k:]
        flags[flags.index("--coordinator") + 1] = f"127.0.0.1:{port}"
        shrink = [*_tiny(args[1], args[2:], out_dir), f"run.num_seeds={n}", "run.report=false"]
        log = tempfile.TemporaryFile("w+")  # not a pipe: a full pipe would stall the others
        cmd = [sys.executable, "-m", "plasticine_jax.cli", *args, *shrink, *flags]
        procs.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log), log))
    try:
        codes = [p.wait(300) for p, _ in procs]
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.kill()
    for code, (_, log) in zip(codes, procs, strict=True):
        log.seek(0)
        assert code == 0, log.read()[-3000:]
    assert [s["status"] for s in _finished_runs(out_dir)] == ["finished"]


def _run_report(args: list[str], tmp_path: Path, monkeypatch, capsys) -> None:
    """``report RUN_DIR ... [--out DIR] [--baseline L]``: each run directory comes from a tiny
    run of the config its name starts with (as for resume), then the command runs there."""
    dirs = [Path(a) for a in args[1:] if not a.startswith("-") and a.startswith("runs/")]
    for run_dir in dirs:
        config = ROOT / "configs" / f"{run_dir.name.rsplit('-', 2)[0]}.yaml"
        assert config.is_file(), f"README reports {run_dir}: no config {config.name} to make it"
        overrides = [*_tiny(config, [], tmp_path / run_dir.parent), f"run.name={run_dir.name}",
                     "run.report=false"]  # fmt: skip
        assert run(load_config(config, overrides)).status == "finished"
    monkeypatch.chdir(tmp_path)
    assert main(args) == 0, capsys.readouterr()
    out = args[args.index("--out") + 1] if "--out" in args else f"{args[1]}/report"
    assert (tmp_path / out / "report.html").is_file()


def _run_own_method(argv: list[str], tmp_path: Path) -> None:
    """As the README runs it: from a directory holding ``my_methods.py`` (and ``configs/``,
    ``.venv/``), through the console script, with no ``PYTHONPATH``."""
    for name, source in readme_files().items():
        (tmp_path / f"{name}.py").write_text(source)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    args = argv[1:]
    exe = str(tmp_path / argv[0]) if "/" in argv[0] else str(Path(sys.executable).parent / argv[0])
    shrink = _tiny(ROOT / args[1], args[2:], tmp_path / "runs")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([exe, *args, *shrink], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [s["status"] for s in _finished_runs(tmp_path / "runs")] == ["finished"]
