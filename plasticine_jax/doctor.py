"""``plasticine-jax doctor``: what a user needs to know before a long run.

Each check is a function returning ``Check`` rows (section, name, status, detail, fix), so
tests can assert them; ``format_checks`` prints one aligned line per row. Statuses:

* ``ok``: nothing to do;
* ``WARN``: works, but something deserves a look (an extra that does not import, a version
  outside the tested range of an optional package);
* ``MISSING``: an optional piece is not installed (an extra, Procgen's Qt 5 runtime);
* ``ERROR``: the core is broken (jax does not import, or jax/jaxlib outside the tested pin):
  ``exit_code`` is 1.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from plasticine_jax import system

OK, WARN, MISSING, ERROR = "ok", "WARN", "MISSING", "ERROR"
SECTIONS = ("core", "devices", "optional extras", "system libraries", "logging", "paths")
DIST = "plasticine-jax"


class Check(NamedTuple):
    """One line of the report."""

    section: str  # one of SECTIONS
    name: str
    status: str  # OK, WARN, MISSING or ERROR
    detail: str
    fix: str = ""


def _version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or ``None``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _import_module(name: str) -> Any:
    # Some extras print on import (brax: "Failed to import warp"); the report stays readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module(name)


def _fmt(spec: Any) -> str:
    """``>=0.9.2,<0.10`` (lower bound first, as pyproject writes it)."""
    return ",".join(sorted(map(str, spec), key=lambda s: not s.startswith(">")))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _requirements() -> list[str]:
    """Our declared requirements: from the installed metadata, else the checkout's
    ``pyproject.toml`` (core dependencies and every extra)."""
    try:
        return list(importlib.metadata.requires(DIST) or [])
    except importlib.metadata.PackageNotFoundError:
        pass
    root = system.source_checkout()
    if root is None:
        return []
    import tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return reqs


def pins() -> dict[str, Any]:
    """Distribution name -> ``packaging.specifiers.SpecifierSet`` we are tested with."""
    from packaging.requirements import InvalidRequirement, Requirement

    out = {}
    for line in _requirements():
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name != DIST and str(req.specifier):
            out[req.name] = req.specifier
    return out


def _outside(version: str, spec: Any) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version) not in spec
    except InvalidVersion:
        return True


# ------------------------------------------------------------------------------------ core


def check_python() -> Check:
    v = ".".join(map(str, sys.version_info[:3]))
    return Check("core", "python", OK, f"{v} ({sys.executable})")


def check_jax() -> list[Check]:
    """jax imports, and jax and jaxlib lie inside the tested pin (``pyproject.toml``)."""
    spec = pins()
    pin_fix = f"{system.pip_command()} install " + " ".join(
        f"'{d}{_fmt(spec[d])}'" for d in ("jax", "jaxlib") if d in spec
    )
    try:
        _import_module("jax")
    except Exception as e:  # a broken install raises anything from ImportError to OSError
        return [Check("core", "jax", ERROR, f"does not import: {_first_line(e)}", pin_fix)]
    out = []
    for dist in ("jax", "jaxlib"):
        v = _version(dist)
        if v is None:
            out.append(Check("core", dist, ERROR, "not installed", pin_fix))
        elif dist not in spec:
            out.append(Check("core", dist, WARN, f"{v}; no tested pin found in our metadata"))
        elif _outside(v, spec[dist]):
            why = "outside the tested pin"
            if dist == "jaxlib" and v.split(".")[:2] == ["0", "10"]:
                why += (
                    ": jaxlib 0.10.x deadlocks on batched QR/Cholesky under jit(vmap) "
                    "(README, 'The jaxlib pin')"
                )
            out.append(Check("core", dist, ERROR, f"{v} {why} ({_fmt(spec[dist])})", pin_fix))
        else:
            out.append(Check("core", dist, OK, f"{v} (tested pin {_fmt(spec[dist])})"))
    return out


def _eqns(jaxpr: Any) -> Iterator[Any]:
    """Every equation of ``jaxpr`` and of the jaxprs in its equations' parameters."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _eqns(inner)


def check_svd_guard(fn: Callable[..., Any] | None = None) -> Check:
    """jaxlib 0.9.2's batched CPU SVD blocks on XLA's thread pool (two at once hung a PPO
    run), so ``metrics.rank.singular_values`` hands LAPACK one matrix at a time under
    ``vmap``. Checked on the program: a doubly vmapped call must contain only 2-D SVDs."""
    name = "batched SVD guard"
    try:
        import jax
        import jax.numpy as jnp

        if fn is None:
            from plasticine_jax.metrics.rank import singular_values as fn
        closed = jax.make_jaxpr(jax.vmap(jax.vmap(fn)))(jnp.zeros((2, 3, 5, 4)))
    except Exception as e:
        return Check("core", name, WARN, f"could not trace singular_values: {_first_line(e)}")
    ranks = [e.invars[0].aval.ndim for e in _eqns(closed.jaxpr) if e.primitive.name == "svd"]
    if ranks and all(r == 2 for r in ranks):
        return Check("core", name, OK, "vmapped singular_values decomposes one matrix per call")
    return Check(
        "core",
        name,
        WARN,
        f"vmapped singular_values runs SVDs of rank {ranks or 'none'}: batched SVDs can hang "
        "jaxlib's CPU thread pool",
        "restore the custom_vmap rule in plasticine_jax/metrics/rank.py (README, 'The jaxlib pin')",
    )


# --------------------------------------------------------------------------------- devices


def check_devices() -> list[Check]:
    """The default backend and its devices, and ``XLA_FLAGS`` when set."""
    try:
        jax = _import_module("jax")
        devices = jax.devices()
        backend = jax.default_backend()
    except Exception as e:
        out = [Check("devices", "backend", ERROR, f"jax cannot list devices: {_first_line(e)}")]
    else:
        kinds = ", ".join(sorted({d.device_kind for d in devices}))
        if backend == "cpu":
            kinds += "; no GPU or TPU visible to jax"
        detail = f"{backend}: {len(devices)} device{'s' * (len(devices) > 1)} ({kinds})"
        out = [Check("devices", "backend", OK, detail)]
    flags = os.environ.get("XLA_FLAGS")
    out.append(Check("devices", "XLA_FLAGS", OK, flags if flags else "(not set)"))
    return out


# ------------------------------------------------------------------------- optional extras


def check_extras() -> list[Check]:
    """Each optional backend: installed, inside its tested range, and importable."""
    from plasticine_jax.envs.registry import _EXTRAS

    spec = pins()
    out = []
    for backend, (extra, modules) in _EXTRAS.items():
        hint = system.install_hint(extra)
        for module in modules:
            name = f"[{extra}] {module}"
            v = _version(module)
            if importlib.util.find_spec(module) is None:
                out.append(Check("optional extras", name, MISSING, "not installed", hint))
                continue
            try:
                _import_module(module)
            except Exception as e:
                out.append(
                    Check(
                        "optional extras",
                        name,
                        WARN,
                        f"{v or 'installed'}, but `import {module}` fails: {_first_line(e)}",
                        f"reinstall: {hint}",
                    )
                )
                continue
            if v and module in spec and _outside(v, spec[module]):
                detail = f"{v}, outside the tested range {_fmt(spec[module])} of [{extra}]"
                out.append(Check("optional extras", name, WARN, detail, hint))
            else:
                out.append(Check("optional extras", name, OK, f"{v} ({backend} backend)"))
    return out


# ------------------------------------------------------------------------ system libraries


def check_qt5() -> Check:
    """The Qt 5 runtime that envpool's Procgen loads (``scripts/system-deps.sh``)."""
    missing = system.missing_qt5_libraries()
    if not missing:
        libs = ", ".join(system.QT5_LIBRARIES)
        return Check("system libraries", "Qt 5 (Procgen)", OK, f"{libs} found")
    fix = system.qt5_fix()
    if fix != system.QT5_APT:
        fix += f", or {system.QT5_APT}"
    detail = f"{', '.join(missing)} not found: envpool's Procgen cannot load"
    return Check("system libraries", "Qt 5 (Procgen)", MISSING, detail, fix)


# --------------------------------------------------------------------------------- logging


def check_wandb() -> Check:
    """wandb (a core dependency, used only with ``wandb.mode=online|offline``)."""
    fix = f"{system.pip_command()} install 'wandb{_fmt(pins().get('wandb', ''))}'"
    try:
        _import_module("wandb")
    except Exception as e:
        status = MISSING if isinstance(e, ModuleNotFoundError) else WARN
        return Check("logging", "wandb", status, f"does not import: {_first_line(e)}", fix)
    v = _version("wandb") or "?"
    return Check("logging", "wandb", OK, f"{v} (used with wandb.mode=online|offline)")


# ----------------------------------------------------------------------------------- paths


def _writable(path: Path) -> bool:
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK)


def check_paths(cwd: Path | None = None) -> list[Check]:
    """Where runs, compiled programs and W&B files go."""
    cwd = Path.cwd() if cwd is None else cwd
    runs = cwd / "runs"
    detail = f"{runs}/<name>/ (run.out_dir, default 'runs' relative to the current directory)"
    if _writable(runs):
        out = [Check("paths", "runs", OK, detail)]
    else:
        fix = "run from a writable directory, or set run.out_dir=/writable/path"
        out = [Check("paths", "runs", WARN, f"{detail}: not writable", fix)]
    try:
        from plasticine_jax.runner import cache as compile_cache

        ENV = compile_cache.ENV
        cache = compile_cache.cache_dir()
    except Exception:
        cache, ENV = None, "PLASTICINE_JAX_CACHE_DIR"
    if cache:
        detail = f"{cache} (a repeated run loads its programs; {ENV}=off turns it off)"
        out.append(Check("paths", "jax compile cache", OK, detail))
    else:
        detail = "off: every run compiles its programs afresh"
        fix = f"unset {ENV} (default ~/.cache/plasticine-jax/xla) or set it to a directory"
        out.append(Check("paths", "jax compile cache", OK, detail, fix))
    try:
        import wandb.env

        artifacts = f"; artifact cache {wandb.env.get_cache_dir()}"
    except Exception:
        artifacts = ""
    out.append(Check("paths", "wandb files", OK, f"<run dir>/wandb/{artifacts}"))
    return out


# ---------------------------------------------------------------------------------- report


def run_checks() -> list[Check]:
    """Every check, in ``SECTIONS`` order."""
    return [
        check_python(),
        *check_jax(),
        check_svd_guard(),
        *check_devices(),
        *check_extras(),
        check_qt5(),
        check_wandb(),
        *check_paths(),
    ]


def exit_code(checks: list[Check]) -> int:
    """1 when the core is broken (any ``ERROR``), else 0: missing extras only warn."""
    return int(any(c.status == ERROR for c in checks))


def format_checks(checks: list[Check]) -> str:
    """One aligned line per check under its section title, then a verdict."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for section in SECTIONS:
        rows = [c for c in checks if c.section == section]
        if not rows:
            continue
        lines.append(f"{section}:")
        for c in rows:
            fix = f"  -> {c.fix}" if c.fix else ""
            lines.append(f"  {c.status:<7}  {c.name:<{width}}  {c.detail}{fix}")
    if exit_code(checks):
        lines.append("\nthe core install is broken (ERROR above): fix it before running")
    else:
        lines.append("\ncore install ok; WARN / MISSING lines concern optional pieces")
    return "\n".join(lines)
