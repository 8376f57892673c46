"""JAX's persistent compilation cache, on by default: a repeated run does not compile.

The cache directory is, in order: ``$JAX_COMPILATION_CACHE_DIR`` (JAX's own variable, also
when set through ``jax.config``), ``$PLASTICINE_JAX_CACHE_DIR``, or
``$XDG_CACHE_HOME/plasticine-jax/xla`` (``~/.cache/plasticine-jax/xla``).
``PLASTICINE_JAX_CACHE_DIR=off`` turns it off. Entries are keyed by the program, the XLA
flags, the devices and the jax/jaxlib versions, so a stale entry is never served; deleting
the directory is always safe. Programs that compile in under a second are not stored.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

ENV = "PLASTICINE_JAX_CACHE_DIR"


def cache_dir(configured: str | None = None) -> Path | None:
    """Where compiled programs are cached (see the module docstring), or None when off.
    ``configured`` stands for ``jax.config.jax_compilation_cache_dir`` (read when None)."""
    if configured is None:
        configured = jax.config.jax_compilation_cache_dir
    configured = configured or os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if configured:
        return Path(configured)
    ours = os.environ.get(ENV, "")
    if ours.lower() in ("off", "none", "0", "false"):
        return None
    if ours:
        return Path(ours).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "plasticine-jax" / "xla"


def enable_compile_cache() -> Path | None:
    """Points JAX's persistent compilation cache at ``cache_dir()`` (idempotent); returns
    the directory, or None when the cache is off or the directory cannot be created (the
    run then compiles as usual)."""
    path = cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if jax.config.jax_compilation_cache_dir != str(path):
        jax.config.update("jax_compilation_cache_dir", str(path))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return path
