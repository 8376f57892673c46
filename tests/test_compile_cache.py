"""A repeated run does not compile: JAX's persistent compilation cache is on by default, in
a directory ``PLASTICINE_JAX_CACHE_DIR`` can change or turn off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["run.total_timesteps=128", "env.num_envs=2", "agent.num_steps=16",
        "agent.num_minibatches=1", "agent.update_epochs=1", "metrics.every=2",
        "metrics.probe_size=16", "run.num_seeds=1", "run.progress=false"]


def _run(tmp_path: Path, name: str, cache: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    env["PLASTICINE_JAX_CACHE_DIR"] = cache
    # Store every program, however fast its compile: with the package's 1 s threshold a
    # program that compiled in 0.9 s on the first run and 1.1 s on a loaded second run was
    # written only by the second, and the equality below failed by timing, not by caching.
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    cmd = [sys.executable, "-m", "plasticine_jax.cli", "run", "configs/cartpole_ppo.yaml",
           *TINY, f"run.out_dir={tmp_path}", f"run.name={name}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / name / "summary.json").read_text())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_repeated_run_loads_its_programs_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    first = _run(tmp_path, "first", str(cache))
    entries = set(os.listdir(cache))
    assert entries, "the first run stored nothing"
    second = _run(tmp_path, "second", str(cache))
    # Every program the second run needed was served: nothing new was written.
    assert set(os.listdir(cache)) == entries
    assert first["status"] == second["status"] == "finished"
    _run(tmp_path, "uncached", "off")  # and off means off: nothing written anywhere new
    assert set(os.listdir(cache)) == entries


def test_cache_dir_resolution(monkeypatch, tmp_path):
    import jax

    from plasticine_jax.runner import cache

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(cache.ENV, raising=False)
    # "" stands for an unset jax.config option (jax.config cannot be patched here).
    assert cache.cache_dir("") == tmp_path / "plasticine-jax" / "xla"
    monkeypatch.setenv(cache.ENV, str(tmp_path / "mine"))
    assert cache.cache_dir("") == tmp_path / "mine"
    monkeypatch.setenv(cache.ENV, "off")
    assert cache.cache_dir("") is None
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))
    assert cache.cache_dir("") == tmp_path / "jax"  # JAX's own variable wins
    assert cache.cache_dir(str(tmp_path / "cfg")) == tmp_path / "cfg"  # and jax.config first
    assert jax.config.jax_compilation_cache_dir  # the tests' own cache stays configured
