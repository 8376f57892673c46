"""Two pieces of a cold start, each against what it replaced, alternated.

``imports``: importing gymnax in a fresh interpreter (jax imported first, untimed), plainly
against ``envs.gymnax_import.import_gymnax`` (seaborn and ``matplotlib.pyplot`` deferred).
``init``: compiling a PPO program's ``init`` (PureJaxRL's CartPole settings, cache off, JAX's
in-memory caches cleared before each compile) with XLA's default options against ``runner.program.
init_compiler_options(0)`` (backend optimisation level 0), with each executable's run time.

    python benchmarks/startup_parts.py --seeds 8 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ["PLASTICINE_JAX_CACHE_DIR"] = "off"
sys.path.insert(0, str(Path(__file__).resolve().parent))

IMPORT = {
    "plain": "import gymnax",
    "deferred": "from plasticine_jax.envs.gymnax_import import import_gymnax; import_gymnax()",
}
TIMED = "import jax, time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"


def imports(repeats: int) -> None:
    times: dict[str, list[float]] = {k: [] for k in IMPORT}
    for i in range(repeats):
        for name in IMPORT if i % 2 == 0 else list(IMPORT)[::-1]:
            out = subprocess.run([sys.executable, "-c", TIMED.format(IMPORT[name])],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            times[name].append(float(out.stdout.strip().splitlines()[-1]))
    for name, ts in times.items():
        print(f"| import gymnax, {name} | {statistics.median(ts):.2f} s | "
              f"{', '.join(f'{t:.2f}' for t in ts)} |", flush=True)


def init(seeds: int, repeats: int) -> None:
    import jax
    from update_cost import REPO, overrides

    from plasticine_jax.config import load_config
    from plasticine_jax.runner.plan import plan
    from plasticine_jax.runner.program import Program, init_compiler_options

    cfg = load_config(REPO / "configs/cartpole_ppo.yaml", overrides(seeds, 50, 10))
    program = Program(plan(cfg)[0])
    keys, hp = program._keys(), program.group.hp
    fn = lambda k, h: jax.vmap(program.agent.init)(k, h)  # noqa: E731
    options = {"default": None, "level 0": init_compiler_options(0)}
    compile_s: dict[str, list[float]] = {k: [] for k in options}
    run_s: dict[str, list[float]] = {k: [] for k in options}
    for i in range(repeats):
        for name in options if i % 2 == 0 else list(options)[::-1]:
            jax.clear_caches()  # else a repeat is served from the in-memory executable cache
            lowered = jax.jit(fn, compiler_options=options[name]).lower(keys, hp)
            t0 = time.perf_counter()
            compiled = lowered.compile()
            compile_s[name].append(time.perf_counter() - t0)
            jax.block_until_ready(compiled(keys, hp))
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(keys, hp))
            run_s[name].append(time.perf_counter() - t0)
    for name in options:
        print(f"| init, {name} | compile {statistics.median(compile_s[name]):.2f} s | run "
              f"{statistics.median(run_s[name]) * 1e3:.1f} ms |", flush=True)


def main() -> None:
    from common import header

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", nargs="+", default=["imports", "init"], choices=["imports", "init"])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(header(), flush=True)
    if "imports" in args.parts:
        imports(args.repeats)
    if "init" in args.parts:
        init(args.seeds, args.repeats)


if __name__ == "__main__":
    main()
