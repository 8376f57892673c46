"""Importing gymnax without paying for its plotting libraries.

``import gymnax`` imports every environment it registers, and five of those modules import
``matplotlib.pyplot`` (and Pong ``seaborn``, which pulls in pandas and scipy.stats) at module
level, for their ``render`` methods only. On the 2-core development machine ``import gymnax``
took 1.76 s that way and 0.41 s with them deferred (``benchmarks/RESULTS.md``, issue 13,
"Start-up parts"). ``import_gymnax`` imports gymnax with those two modules deferred: a stand-in
module imports the real one the first time anything reads an attribute of it (a render, or
user code that imports it later), so nothing changes but when the cost is paid. Modules
already imported are left as they are.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

#: Modules gymnax imports at module level and uses only to render.
RENDER_ONLY = ("seaborn", "matplotlib.pyplot")


class _Deferred(ModuleType):
    """Stands in ``sys.modules`` for a module not imported yet; the first read of an
    attribute it lacks imports the real module (which then replaces it in ``sys.modules``)
    and is answered from it, as is every later one.

    It carries the real module's ``__spec__``, so ``import name`` (which reads
    ``__spec__``) returns it without importing. ``importlib.util.LazyLoader`` would load on
    that read, i.e. on the ``import`` statement itself in Python 3.11."""

    def __init__(self, name: str, spec):
        super().__init__(name)
        self.__spec__ = spec

    def __getattr__(self, attr: str):
        name = self.__name__
        real = sys.modules.get(name)
        if real is None or real is self:
            sys.modules.pop(name, None)
            real = importlib.import_module(name)
        return getattr(real, attr)


def _defer(name: str) -> None:
    """Registers a ``_Deferred`` stand-in for ``name`` (no-op when it is imported already
    or cannot be found)."""
    if name in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(name)  # imports a dotted name's parent package
    except (ImportError, ValueError):
        return
    if spec is None:
        return
    module = _Deferred(name, spec)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:  # what the import system does after importing a submodule
        setattr(sys.modules[parent], child, module)


def import_gymnax() -> ModuleType:
    """``import gymnax``, with ``RENDER_ONLY`` deferred until first used (module docstring)."""
    if "gymnax" not in sys.modules:
        for name in RENDER_ONLY:
            _defer(name)
    import gymnax

    return gymnax
