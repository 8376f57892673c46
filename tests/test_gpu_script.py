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
