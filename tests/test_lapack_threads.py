"""``runner.lapack_threads``: XLA:CPU's LAPACK calls run on one BLAS thread.

What it changes is process-wide, so each case runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import tiny

PROBE = textwrap.dedent(
    """
    import json, os
    import numpy, scipy
    import scipy.linalg.cython_lapack
    from threadpoolctl import threadpool_info

    def threads():
        return {i["filepath"]: i["num_threads"] for i in threadpool_info()
                if i["user_api"] == "blas"}

    before = threads()
    from plasticine_jax.runner.lapack_threads import limit_lapack_threads
    limited = limit_lapack_threads()
    print(json.dumps({"before": before, "after": threads(), "limited": list(limited),
                      "scipy_root": os.path.dirname(os.path.abspath(scipy.__file__))}))
    """
)


def _probe(**env) -> dict:
    run_env = {k: v for k, v in os.environ.items()
               if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    run_env.update(env)
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=run_env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_scipy_blas_gets_one_thread_and_numpy_keeps_its_own():
    out = _probe()
    assert out["limited"], "no BLAS library was limited"
    for path in out["limited"]:
        assert out["after"][path] == 1
    root = out["scipy_root"]
    own = [p for p in out["limited"] if p.startswith((root + os.sep, root + ".libs" + os.sep))]
    if own:  # a wheel install: SciPy's bundled BLAS, the others untouched
        assert own == out["limited"]
        for path, n in out["before"].items():
            if path not in own:
                assert out["after"][path] == n


def test_an_explicit_thread_variable_is_left_alone():
    out = _probe(OPENBLAS_NUM_THREADS="2")
    assert out["limited"] == []
    assert out["after"] == out["before"]


def test_every_program_applies_it(monkeypatch):
    from plasticine_jax.config import load_config
    from plasticine_jax.runner import program as program_module
    from plasticine_jax.runner.plan import plan

    calls = []
    monkeypatch.setattr(program_module, "limit_lapack_threads", lambda: calls.append(1))
    program_module.Program(plan(load_config(data=tiny()))[0])
    assert calls == [1]
