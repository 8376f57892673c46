"""A method named ``my_methods:scaled_sign`` is found in the current directory, without
``PYTHONPATH``, as the README's example runs it; a module found nowhere says where it looked."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from plasticine_jax.config import ConfigError, load_config
from plasticine_jax.methods import user
from plasticine_jax.runner.plan import build_methods
from tests.conftest import tiny

CLI = Path(sys.executable).parent / "plasticine-jax"  # a console script: no cwd on sys.path
MY_METHODS = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, optax

    def scaled_sign(scale: float = 1e-3) -> optax.GradientTransformation:
        def update_fn(updates, state, params=None):
            return jax.tree.map(lambda u: scale * jnp.sign(u), updates), state
        return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)
    """
)


@pytest.fixture
def bare_path(monkeypatch, tmp_path):
    """The current directory is ``tmp_path``, which is not on ``sys.path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("doctor_probe_")]:
        del sys.modules[name]


def test_cli_run_finds_my_methods_in_the_cwd_without_pythonpath(tmp_path):
    (tmp_path / "my_methods.py").write_text(MY_METHODS)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(tiny()))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    argv = [str(CLI), "run", "exp.yaml",
            'methods=[{name: "my_methods:scaled_sign", hp: {scale: 1.0e-3},'
            " options: {chain: after}}]",
            "sweep.methods.0.hp.scale=[1.0e-4,1.0e-3]", "run.num_seeds=1",
            "agent.update_epochs=1", "agent.num_minibatches=1", "run.total_timesteps=128",
            "run.out_dir=out", "run.name=r"]  # fmt: skip
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "programs compiled 1" in proc.stdout  # both scales in one program
    assert (tmp_path / "out" / "r" / "summary.json").is_file()


def test_resolve_appends_the_cwd_only_when_needed(bare_path):
    (bare_path / "doctor_probe_a.py").write_text("def f():\n    return 1\n")
    assert user.resolve("doctor_probe_a:f")() == 1
    assert sys.path[-1] == str(bare_path)  # appended: never shadows an importable module
    assert user.resolve("optax:adam").__module__.startswith("optax")


def test_module_found_nowhere_names_module_cwd_and_fix(bare_path):
    with pytest.raises(ValueError) as e:
        user.resolve("doctor_probe_missing:f")
    msg = str(e.value)
    assert "no module named 'doctor_probe_missing'" in msg
    assert f"current directory {bare_path}" in msg
    assert "doctor_probe_missing.py" in msg and "PYTHONPATH=" in msg


def test_module_that_fails_to_import_shows_its_error(bare_path):
    (bare_path / "doctor_probe_b.py").write_text("import doctor_probe_dependency\n")
    with pytest.raises(ValueError, match="importing module 'doctor_probe_b' failed: No module "
                                         "named 'doctor_probe_dependency'"):  # fmt: skip
        user.resolve("doctor_probe_b:f")
    (bare_path / "doctor_probe_c.py").write_text("def f(:\n")
    with pytest.raises(ValueError, match="'doctor_probe_c' raised SyntaxError"):
        user.resolve("doctor_probe_c:f")


def test_the_planner_turns_it_into_a_config_error(bare_path):
    cfg = load_config(data=tiny(methods=[{"name": "doctor_probe_missing:f"}]))
    with pytest.raises(ConfigError, match=r"methods\.0 \(doctor_probe_missing:f\): .*current "
                                          "directory"):  # fmt: skip
        build_methods(cfg)
