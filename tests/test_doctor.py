"""``plasticine-jax doctor``: every section printed, and each failure named with its fix."""

import importlib

import jax.numpy as jnp
import pytest

from plasticine_jax import doctor, system
from plasticine_jax.cli import main


def _line(out: str, name: str) -> str:
    hits = [line for line in out.splitlines() if f"  {name}  " in line]
    assert len(hits) == 1, (name, out)
    return hits[0]


@pytest.fixture(scope="module")
def report():
    """One real run of the checks (importing every extra takes seconds)."""
    checks = doctor.run_checks()
    return checks, doctor.format_checks(checks)


def test_report_prints_every_section_and_the_core_is_fine_here(report):
    checks, out = report
    for section in doctor.SECTIONS:
        assert f"\n{section}:\n" in f"\n{out}", section
    names = {c.name for c in checks}
    assert {"python", "jax", "jaxlib", "batched SVD guard", "backend", "XLA_FLAGS",
            "Qt 5 (Procgen)", "wandb", "runs", "jax compile cache", "wandb files"} <= names
    assert {f"[{e}] {e}" for e in ("craftax", "brax", "envpool")} <= names
    assert doctor.exit_code(checks) == 0
    by_name = {c.name: c for c in checks}
    assert by_name["jax"].status == by_name["jaxlib"].status == doctor.OK
    assert ">=0.9.2,<0.10" in by_name["jaxlib"].detail  # read from our metadata
    assert by_name["batched SVD guard"].status == doctor.OK
    for line in out.splitlines():  # aligned: status column, then name column
        if line.startswith("  "):
            assert line[2:9].strip() in (doctor.OK, doctor.WARN, doctor.MISSING, doctor.ERROR)


def test_cli_doctor_prints_every_section_and_exits_0(capsys, report):
    """``main(["doctor"])`` end to end (the extras are imported by now: fast)."""
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for section in doctor.SECTIONS:
        assert f"\n{section}:\n" in f"\n{out}", section
    assert "XLA_FLAGS" in out and "core install ok" in out


def test_missing_qt_shows_missing_with_the_fix(capsys, monkeypatch):
    monkeypatch.setattr(system, "missing_qt5_libraries", lambda: ("libQt5Gui.so.5",))
    check = doctor.check_qt5()
    assert check.status == doctor.MISSING and "libQt5Gui.so.5" in check.detail
    assert "bash scripts/system-deps.sh" in check.fix
    assert "apt-get install -y libqt5core5a libqt5gui5" in check.fix
    out = doctor.format_checks([check])
    line = _line(out, "Qt 5 (Procgen)")
    assert line.split()[0] == "MISSING" and "-> bash scripts/system-deps.sh" in line
    assert doctor.exit_code([check]) == 0  # optional: Procgen only


def test_jaxlib_0_10_is_an_error_naming_the_deadlock(capsys, monkeypatch):
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda d: "0.10.1" if d == "jaxlib" else real(d))
    checks = doctor.check_jax()
    jaxlib = next(c for c in checks if c.name == "jaxlib")
    assert jaxlib.status == doctor.ERROR
    assert "0.10.1" in jaxlib.detail and "deadlock" in jaxlib.detail
    assert "'jaxlib>=0.9.2,<0.10'" in jaxlib.fix
    # The CLI: exit 1, the line printed; the other checks are stubbed for speed.
    monkeypatch.setattr(doctor, "check_extras", lambda: [])
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert _line(out, "jaxlib").split()[0] == "ERROR" and "core install is broken" in out


def test_jax_that_does_not_import_is_an_error(monkeypatch):
    def broken(name):
        if name == "jax":
            raise ImportError("jaxlib version 0.8.0 is older than required\nsecond line")
        return importlib.import_module(name)

    monkeypatch.setattr(doctor, "_import_module", broken)
    (check,) = doctor.check_jax()
    assert check.status == doctor.ERROR and check.detail.endswith("older than required")
    assert doctor.exit_code([check]) == 1


def test_an_extra_whose_import_raises_shows_its_error(monkeypatch):
    def fake(name):
        if name == "brax":
            raise OSError("libmujoco.so.3: cannot open shared object file\nmore detail")
        return object()

    monkeypatch.setattr(doctor, "_import_module", fake)
    checks = {c.name: c for c in doctor.check_extras()}
    brax = checks["[brax] brax"]
    assert brax.status == doctor.WARN
    assert brax.detail.endswith("fails: OSError: libmujoco.so.3: cannot open shared object file")
    assert "install -e '.[brax]'" in brax.fix
    assert checks["[craftax] craftax"].status == doctor.OK
    assert doctor.exit_code(list(checks.values())) == 0


def test_a_missing_extra_is_missing_with_the_editable_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "envpool" else real(name, *a)
    )
    checks = {c.name: c for c in doctor.check_extras()}
    envpool = checks["[envpool] envpool"]
    assert envpool.status == doctor.MISSING
    assert envpool.fix == system.install_hint("envpool")
    assert ".venv/bin/pip install -e '.[envpool]'" in envpool.fix  # this checkout's .venv


def test_svd_guard_check_catches_a_batched_svd():
    plain = doctor.check_svd_guard(lambda x: jnp.linalg.svd(x, compute_uv=False))
    assert plain.status == doctor.WARN and "rank [4]" in plain.detail
    assert doctor.check_svd_guard().status == doctor.OK


def test_paths_name_runs_under_the_cwd_and_the_compile_cache(tmp_path, monkeypatch):
    from plasticine_jax.runner import cache

    monkeypatch.setattr(cache, "cache_dir", lambda: tmp_path / "jc")
    checks = {c.name: c for c in doctor.check_paths(tmp_path)}
    assert checks["runs"].detail.startswith(f"{tmp_path / 'runs'}/<name>/")
    assert checks["jax compile cache"].detail.startswith(f"{tmp_path / 'jc'} (")
    monkeypatch.setattr(cache, "cache_dir", lambda: None)
    off = {c.name: c for c in doctor.check_paths(tmp_path)}["jax compile cache"]
    assert off.detail.startswith("off") and cache.ENV in off.fix
    assert "wandb" in checks["wandb files"].detail
