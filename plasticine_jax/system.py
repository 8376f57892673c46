"""What this machine has that pip does not decide: system libraries, and how we are installed.

Shared by ``plasticine-jax doctor``, ``plasticine-jax list`` and the missing-extra errors, so
that all three probe the same way and name the same fix.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import sys
from pathlib import Path

# envpool's Procgen loads Debian's Qt 5 runtime (scripts/system-deps.sh installs it).
QT5_LIBRARIES = ("libQt5Core.so.5", "libQt5Gui.so.5")
QT5_PACKAGES = ("libqt5core5a", "libqt5gui5")
PROCGEN_GAMES = (
    "bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball",
    "fruitbot", "heist", "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot",
)  # fmt: skip
# envpool names them <Game><Mode>-v0, e.g. CoinrunEasy-v0, StarpilotHard-v0.
_PROCGEN_ID = re.compile(rf"^({'|'.join(PROCGEN_GAMES)})[a-z]*-v\d+$", re.IGNORECASE)


def source_checkout() -> Path | None:
    """The repository root when ``plasticine_jax`` is imported from a source checkout (the
    editable install the README uses: ``pyproject.toml`` beside the package), else ``None``."""
    root = Path(__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "plasticine-jax"' in pyproject.read_text():
        return root
    return None


def pip_command() -> str:
    """``.venv/bin/pip`` when this interpreter is the checkout's ``.venv`` (the README's
    layout, run from the repository root), else ``pip``."""
    root = source_checkout()
    if root is not None and Path(sys.prefix).resolve() == (root / ".venv").resolve():
        return ".venv/bin/pip"
    return "pip"


def install_hint(extra: str) -> str:
    """How to install the optional extra ``extra``: the editable install from a checkout,
    the PyPI package otherwise. Returns a sentence fragment such as
    ``"`.venv/bin/pip install -e '.[brax]'` (from the repository root /src/plasticine-jax)"``."""
    root = source_checkout()
    if root is None:
        return f"`pip install 'plasticine-jax[{extra}]'`"
    return f"`{pip_command()} install -e '.[{extra}]'` (from the repository root {root})"


def needs_qt5(backend: str, env_id: str, scenario: str = "none") -> bool:
    """Whether this environment loads envpool's Procgen, which needs the Qt 5 runtime."""
    if backend != "envpool":
        return False
    return scenario == "procgen_levels" or bool(_PROCGEN_ID.match(env_id))


def _ldconfig_cache() -> str | None:
    for exe in ("/sbin/ldconfig", shutil.which("ldconfig")):
        if exe and Path(exe).is_file():
            try:
                return subprocess.run(
                    [exe, "-p"], capture_output=True, text=True, timeout=30, check=False
                ).stdout
            except (OSError, subprocess.SubprocessError):
                continue
    return None


def _loadable(library: str) -> bool:
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def missing_qt5_libraries() -> tuple[str, ...]:
    """The Qt 5 libraries envpool's Procgen needs that this machine lacks (empty when all are
    present).

    Looks in the dynamic linker's cache (``ldconfig -p``), as ``scripts/system-deps.sh``
    does; a library not listed there still counts as present when ``dlopen`` finds it (e.g.
    through ``LD_LIBRARY_PATH``), because that is how envpool will load it.
    """
    cache = _ldconfig_cache() or ""
    return tuple(lib for lib in QT5_LIBRARIES if lib not in cache and not _loadable(lib))


QT5_APT = f"sudo sh -c 'apt-get update && apt-get install -y {' '.join(QT5_PACKAGES)}'"


def qt5_fix() -> str:
    """The command that installs the Qt 5 runtime: ``bash scripts/system-deps.sh`` from a
    checkout (apt-get as root, else it prints the command to run), else ``QT5_APT``."""
    return "bash scripts/system-deps.sh" if source_checkout() is not None else QT5_APT
