"""One thread per LAPACK call on the CPU backend.

XLA:CPU runs LAPACK (the SVD of ``metrics.rank``, QR, eigendecompositions) through SciPy's
LAPACK (jaxlib takes its kernels from ``scipy.linalg.cython_lapack``), so on a SciPy wheel
through SciPy's bundled OpenBLAS. That OpenBLAS keeps its own pool of one thread per core, and
a call made from one of XLA's worker threads then spreads over cores XLA's other workers are
using: the two pools oversubscribe the machine. On the 2-core development machine, at 32
PPO members with the metrics every update, an update took 113 ms with OpenBLAS's default
pool and 95 ms with one thread (``benchmarks/RESULTS.md``, issue 13, "LAPACK threads").

``limit_lapack_threads`` sets SciPy's BLAS pool to one thread, once per process, on the CPU
backend only, with ``threadpoolctl``. NumPy's own BLAS (a separate library in NumPy's wheels)
is left alone, unless SciPy and NumPy share one (a conda install), which is then limited too.
It does nothing when the user has set ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or
``MKL_NUM_THREADS``: an explicit choice stands.
"""

from __future__ import annotations

import functools
import os

USER_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@functools.cache
def limit_lapack_threads() -> tuple[str, ...]:
    """Limits the BLAS libraries XLA:CPU's LAPACK calls run on to one thread (module
    docstring). Returns the paths of the libraries it limited (empty when it did nothing)."""
    import jax

    if jax.default_backend() != "cpu" or any(v in os.environ for v in USER_VARIABLES):
        return ()
    import scipy
    import scipy.linalg.cython_lapack  # noqa: F401 - loads the library jaxlib calls
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    root = os.path.dirname(os.path.abspath(scipy.__file__))
    bundled = (root + os.sep, root + ".libs" + os.sep)  # scipy/.dylibs/ (macOS), scipy.libs/
    own = [lib for lib in blas.lib_controllers if lib.filepath.startswith(bundled)]
    libs = own or blas.lib_controllers
    for lib in libs:
        lib.set_num_threads(1)
    return tuple(lib.filepath for lib in libs)
