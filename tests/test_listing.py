"""``plasticine-jax list``: every named environment with its backend, extra and install state."""

from pathlib import Path

import pytest

from plasticine_jax import system
from plasticine_jax.cli import main
from plasticine_jax.envs import registry


def _env_lines(out: str) -> dict[str, str]:
    section = out.split("environments:\n", 1)[1].split("\nagents:", 1)[0]
    lines = [line.strip() for line in section.splitlines()]
    return {line.split()[0]: line for line in lines}


def test_list_prints_every_named_env_with_backend_and_extra(capsys):
    assert main(["list"]) == 0
    lines = _env_lines(capsys.readouterr().out)
    entries = registry.list_envs()
    assert sorted(lines) == [e.name for e in entries]
    for e in entries:
        line = lines[e.name]
        assert f"{e.backend} {e.env_id}" in line, line
        assert (e.scenario in line) == (e.scenario != "none"), line
    assert lines["cartpole"].endswith("(core install)")
    assert "+ permuted_obs" in lines["permuted_cartpole"]
    for name, extra in (("craftax_symbolic", "craftax"), ("brax_ant", "brax"),
                        ("atari_pong", "envpool")):  # fmt: skip
        state = "installed" if registry._extra_installed(extra) else "NOT installed"
        assert f"extra [{extra}], {state}" in lines[name], lines[name]


def test_list_says_how_to_install_a_missing_extra(capsys, monkeypatch):
    monkeypatch.setattr(registry, "_extra_installed", lambda backend: backend != "brax")
    assert main(["list"]) == 0
    lines = _env_lines(capsys.readouterr().out)
    # This is a source checkout run from its .venv: the README's editable install.
    assert "extra [brax], NOT installed: `.venv/bin/pip install -e '.[brax]'` (from the " \
        f"repository root {system.source_checkout()})" in lines["brax_ant"]
    assert "extra [craftax], installed" in lines["craftax_symbolic"]
    assert lines["minatar_breakout"].endswith("(core install)")


def test_missing_extra_names_pypi_outside_a_checkout(capsys, monkeypatch):
    monkeypatch.setattr(system, "source_checkout", lambda: None)
    monkeypatch.setattr(registry, "_extra_installed", lambda backend: backend != "craftax")
    assert main(["list"]) == 0
    line = _env_lines(capsys.readouterr().out)["craftax_symbolic"]
    assert line.endswith("NOT installed: `pip install 'plasticine-jax[craftax]'`)"), line
    pypi = r"`pip install 'plasticine-jax\[craftax\]'`"
    with pytest.raises(registry.MissingExtraError, match=pypi):
        registry.require_backend("craftax")


def test_require_backend_names_the_editable_install_from_a_checkout(monkeypatch):
    monkeypatch.setattr(registry, "_extra_installed", lambda backend: backend != "brax")
    with pytest.raises(registry.MissingExtraError) as e:
        registry.require_backend("brax")
    assert f"run `.venv/bin/pip install -e '.[brax]'` (from the repository root " \
        f"{system.source_checkout()})" in str(e.value)


def test_source_checkout_is_the_folder_with_our_pyproject():
    root = system.source_checkout()
    assert root is not None and (root / "pyproject.toml").is_file()
    assert (root / "plasticine_jax" / "system.py").resolve() == Path(system.__file__).resolve()


def test_procgen_without_qt_is_not_usable(capsys, monkeypatch):
    monkeypatch.setattr(registry, "_extra_installed", lambda backend: True)
    monkeypatch.setattr(system, "missing_qt5_libraries", lambda: ("libQt5Core.so.5",))
    assert main(["list"]) == 0
    lines = _env_lines(capsys.readouterr().out)
    want = "installed, NOT usable: Qt 5 runtime missing; run bash scripts/system-deps.sh"
    assert want in lines["procgen_coinrun_continual"], lines["procgen_coinrun_continual"]
    for name in ("atari_pong", "dmc_walker_sequence", "brax_ant"):  # no Qt needed
        assert "NOT usable" not in lines[name], lines[name]


def test_procgen_with_qt_is_plain_installed(capsys, monkeypatch):
    monkeypatch.setattr(registry, "_extra_installed", lambda backend: True)
    monkeypatch.setattr(system, "missing_qt5_libraries", lambda: ())
    assert main(["list"]) == 0
    line = _env_lines(capsys.readouterr().out)["procgen_coinrun_continual"]
    assert line.endswith("(extra [envpool], installed)"), line


def test_procgen_ids_are_recognised():
    for env_id in ("CoinrunEasy-v0", "StarpilotHard-v0", "Maze-v0", "CaveflyerMemory-v0"):
        assert system.needs_qt5("envpool", env_id), env_id
    for env_id in ("Pong-v5", "WalkerStand-v1", "MiniGrid-MemoryS7-v0", "FingerTurnEasy-v1"):
        assert not system.needs_qt5("envpool", env_id), env_id
    assert system.needs_qt5("envpool", "anything", "procgen_levels")
    assert not system.needs_qt5("gymnax", "CoinrunEasy-v0")


def test_qt_probe_agrees_with_system_deps_script():
    """The probe and ``scripts/system-deps.sh --check`` see the same libraries."""
    import subprocess

    root = system.source_checkout()
    proc = subprocess.run(["bash", str(root / "scripts/system-deps.sh"), "--check"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (proc.returncode == 0) == (system.missing_qt5_libraries() == ()), proc.stderr


def test_list_shows_each_agent_with_its_networks_and_the_methods_that_do_not_apply(capsys):
    from plasticine_jax.agents import AGENTS, agent_class

    assert main(["list"]) == 0
    section = capsys.readouterr().out.split("agents:\n", 1)[1].split("\nmethods:", 1)[0]
    lines = {line.strip().split(":")[0]: line for line in section.splitlines()}
    assert sorted(lines) == sorted(AGENTS)
    for name in AGENTS:
        cls = agent_class(name)
        assert f"networks {', '.join(cls.networks)}" in lines[name], lines[name]
    assert lines["pqn"].endswith("every method except hl_gauss")
    assert lines["dqn"].endswith("every method")
