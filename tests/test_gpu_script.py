"""``benchmarks/gpu.sh`` runs end to end on CPU at a tiny size and writes its results file:
a throughput row per requested seed count and the method sweep's timing row (8 lists)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SWEEP_EXTRA = ("env.num_envs=4 agent.num_steps=16 agent.num_minibatches=2 "
               "agent.update_epochs=1 metrics.probe_size=32 run.progress=false")


@pytest.mark.slow  # about 50 s on the 2-core development machine
def test_gpu_script_runs_both_parts_at_a_tiny_size(tmp_path):
    # XLA_FLAGS and the compilation cache come from tests/conftest.py through os.environ.
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "ALLOW_CPU": "1", "PY": sys.executable,
           "SEEDS": "1 2", "ENVS": "cartpole", "UPDATES": "10", "REPEATS": "1",
           "SWEEP_SEEDS": "2", "STEPS": "128", "SWEEP_EXTRA": SWEEP_EXTRA, "OUT": "out"}
    # From tmp_path: the script finds the repo root itself; OUT is relative to the caller.
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "jax.devices()" in proc.stdout and "nvidia-smi -L" in proc.stdout

    out = tmp_path / "out"
    md = (out / "gpu_results.md").read_text()
    assert "CpuDevice" in md and re.search(r"Commit `[0-9a-f]{40}", md), md[:500]
    for seeds in (1, 2):  # a full row per seed count: compile times, two rates, the cost
        assert re.search(rf"^\| cartpole \| {seeds} \| [\d.]+ / [\d.]+ \| [\d,]+ \| [\d,]+ \| "
                         r"[+-][\d.]+% \|$", md, re.M), md
    # 8 method lists x 2 seeds = 16 members, 128 steps each, one compiled program, timed.
    assert re.search(r"^\| 8 \| 2 \| 16 \| 128 \| 1 \| [\d,]+ \| [\d,]+ \| [\d,]+ \| [\d,]+ "
                     r"\(scaled\) \|$", md, re.M), md
    summary = json.loads((out / "sweep" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["members"] == 16
    assert (out / "throughput.txt").is_file() and (out / "sweep.log").is_file()


DEVICE_ENV = {"JAX_PLATFORMS": "cpu", "ALLOW_CPU": "1", "SEEDS": "1", "ENVS": "cartpole",
              "UPDATES": "10", "REPEATS": "1", "SWEEP_SEEDS": "1", "STEPS": "128",
              "SWEEP_EXTRA": SWEEP_EXTRA}


def _script(tmp_path, script, **env):
    """``benchmarks/<script>`` from ``tmp_path`` at the tiny sizes, ``env`` on top."""
    env = {**os.environ, **DEVICE_ENV, "PY": sys.executable, "OUT": str(tmp_path / "out"),
           "SITE": str(tmp_path / "site"), **env}
    return subprocess.run(["bash", str(ROOT / "benchmarks" / script)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)


def _device(tmp_path, **env):
    return _script(tmp_path, "gpu_device.sh", **env)


@pytest.mark.slow  # about 30 s on the 2-core development machine
def test_device_wrapper_returns_the_results_and_the_package_versions(tmp_path):
    # WHEELS=none: this venv has the packages the device image lacks.
    proc = _device(tmp_path, WHEELS="none")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "out"
    # only the files that come back from the device tool: flat, five of them
    assert sorted(p.name for p in out.iterdir()) == [
        "gpu_results.md", "sweep.log", "sweep_summary.json", "throughput.txt", "versions.txt"]
    versions = dict(line.split(" ", 1) for line in (out / "versions.txt").read_text().splitlines())
    import jax

    assert versions["jax"] == jax.__version__ and set(versions) >= {"python", "flax", "gymnax"}
    md = (out / "gpu_results.md").read_text()
    assert re.search(rf"^Packages \(`benchmarks/gpu_device.sh`\): python [\d.]+, jax "
                     rf"{re.escape(jax.__version__)}, ", md, re.M), md[-500:]
    assert re.search(r"^\| cartpole \| 1 \| ", md, re.M) and "| 8 | 1 | 8 | 128 | 1 |" in md
    assert json.loads((out / "sweep_summary.json").read_text())["members"] == 8


def _wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel (a module that sets ``X = 1``), built by hand."""
    import zipfile

    name = "pjx_probe-0.0.1"
    files = {"pjx_probe.py": "X = 1\n",
             f"{name}.dist-info/METADATA": "Metadata-Version: 2.1\nName: pjx-probe\n"
                                           "Version: 0.0.1\n",
             f"{name}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                        "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{name}.dist-info/RECORD"] = "".join(f"{k},,\n" for k in files) + \
        f"{name}.dist-info/RECORD,,\n"
    folder.mkdir()
    path = folder / "pjx_probe-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return path


def test_device_wrapper_installs_the_wheels_and_keeps_its_budget(tmp_path):
    _wheel(tmp_path / "wheels")
    proc = _device(tmp_path, WHEELS=str(tmp_path / "wheels"), BUDGET_S="1")
    assert (tmp_path / "site" / "pjx_probe.py").read_text() == "X = 1\n"  # installed there
    assert proc.returncode != 0 and "gpu.sh ran past BUDGET_S=1 s" in proc.stderr, proc.stderr
    out = tmp_path / "out"
    assert (out / "versions.txt").is_file() and (out / "gpu_sh.log").is_file()


def test_device_wrapper_without_wheels_says_how_to_get_them(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = _device(tmp_path, WHEELS=str(tmp_path / "empty"))
    assert proc.returncode != 0
    assert "no wheels in" in proc.stderr and "scripts/device-wheels.sh" in proc.stderr
    proc = _device(tmp_path, WHEELS="none", OUT="")
    assert proc.returncode != 0 and "OUT is not set" in proc.stderr


FAKE_PIP = """#!/usr/bin/env bash
# Stands in for `python -m pip download ... -d DEST REQ...`: records the arguments and
# writes one empty wheel per requirement (or per requirement but the last, FAKE_SHORT=1).
echo "$@" > "$FAKE_LOG"
args=("$@"); dest=""; reqs=()
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        -d) dest="${args[i+1]}"; i=$((i + 1)) ;;
        *==*) reqs+=("${args[i]}") ;;
    esac
done
[[ "${FAKE_SHORT:-0}" == 1 ]] && unset 'reqs[-1]'
for r in "${reqs[@]}"; do touch "$dest/${r%%==*}-${r##*==}-py3-none-any.whl"; done
"""


@pytest.mark.parametrize("short", [False, True])
def test_device_wheels_asks_pip_for_python_3_12_wheels_and_counts_them(tmp_path, short):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PIP)
    fake.chmod(0o755)
    env = {**os.environ, "PY": str(fake), "DEST": str(tmp_path / "whl"),
           "FAKE_LOG": str(tmp_path / "args"), "FAKE_SHORT": "1" if short else "0"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "device-wheels.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    args = (tmp_path / "args").read_text().split()
    assert args[:3] == ["-m", "pip", "download"]
    for flag in ["--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                 "gymnax==1.0.1", "gymnasium==1.3.0", "farama-notifications==0.0.4"]:
        assert flag in args, (flag, args)
    if short:
        assert proc.returncode != 0 and "only 2 wheels" in proc.stderr, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        assert "3 wheels in" in proc.stdout
        assert len(list((tmp_path / "whl").glob("*.whl"))) == 3


def _gpu_sh(tmp_path, **env):
    return _script(tmp_path, "gpu.sh", **env)


@pytest.mark.slow  # about 15 s on the 2-core development machine
def test_parts_runs_one_part_alone(tmp_path):
    proc = _gpu_sh(tmp_path, PARTS="sweep")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    md = (tmp_path / "out" / "gpu_results.md").read_text()
    assert "### Method sweep" in md and "| 8 | 1 | 8 | 128 | 1 |" in md
    assert "PPO throughput" not in md and not (tmp_path / "out" / "throughput.txt").exists()


@pytest.mark.parametrize("parts", [" ", "throughput sweeps"])  # (an empty one: the default)
def test_parts_refuses_what_it_does_not_know(tmp_path, parts):
    proc = _gpu_sh(tmp_path, PARTS=parts)
    assert proc.returncode != 0
    assert "PARTS" in proc.stderr and "give throughput, sweep or both" in proc.stderr
