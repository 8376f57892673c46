"""What SciPy's OpenBLAS pool costs the PPO update when XLA:CPU calls LAPACK from its own
workers (``runner/lapack_threads.py``), alternated in one process.

Programs at PureJaxRL's CartPole settings (``update_cost.py``), metrics every update, every
10 updates and off, cache off; after a compiling chunk each, every round runs one chunk of
each program with SciPy's BLAS at its default pool (one thread per core) and one with a
single thread, the order swapped every round. Prints medians in ms per update and the
per-round ratio one thread / default.

    python benchmarks/lapack_threads.py --seeds 32 --repeats 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ["PLASTICINE_JAX_CACHE_DIR"] = "off"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import header  # noqa: E402
from update_cost import Variant  # noqa: E402


def scipy_blas():
    """threadpoolctl's controller of the BLAS SciPy's LAPACK runs on."""
    import scipy
    import scipy.linalg.cython_lapack  # noqa: F401
    from threadpoolctl import ThreadpoolController

    root = os.path.dirname(os.path.abspath(scipy.__file__))
    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    own = [lib for lib in libs if lib.filepath.startswith((root + os.sep, root + ".libs" + os.sep))]
    if not own:
        raise SystemExit("no BLAS bundled with SciPy here (a conda install?): nothing to compare")
    return own[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--updates", type=int, default=10, help="updates per timed chunk")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    print(header(), flush=True)
    lib = scipy_blas()
    default = os.cpu_count() or 1
    variants = {every: Variant(args.seeds, args.updates, every) for every in (1, 10, 0)}
    times = {(every, n): [] for every in variants for n in (default, 1)}
    for i in range(args.repeats):
        for n in (default, 1) if i % 2 == 0 else (1, default):
            lib.set_num_threads(n)
            for every, v in variants.items():
                times[(every, n)].append(v.chunk())
    print(f"| metrics every | BLAS threads {default} (ms / update) | 1 thread (ms / update) "
          "| 1 / default, per-round median (quartiles) |")
    print("|---|---|---|---|")
    for every in variants:
        a, b = times[(every, default)], times[(every, 1)]
        ratios = [y / x for x, y in zip(a, b, strict=True)]
        q = statistics.quantiles(ratios, n=4)
        print(f"| {every or 'off'} | {statistics.median(a) / args.updates * 1e3:.1f} | "
              f"{statistics.median(b) / args.updates * 1e3:.1f} | {statistics.median(ratios):.3f} "
              f"({q[0]:.3f} to {q[2]:.3f}) |", flush=True)


if __name__ == "__main__":
    main()
