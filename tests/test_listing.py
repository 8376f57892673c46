"""``plasticine-jax list``: every named environment with its backend, extra and install state."""

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
    assert "extra [brax], NOT installed: pip install 'plasticine-jax[brax]'" in lines["brax_ant"]
    assert "extra [craftax], installed" in lines["craftax_symbolic"]
    assert lines["minatar_breakout"].endswith("(core install)")
