"""Start-up time: the same config run twice, the second time from the persistent compilation
cache (``runner/cache.py``), whole process.

Each cycle makes a fresh, empty cache directory (``PLASTICINE_JAX_CACHE_DIR``) and runs
``plasticine-jax run CONFIG`` twice in fresh processes: ``cold`` compiles and fills the cache,
``warm`` loads from it. For each it records the whole process's wall seconds and, from the
run's ``summary.json``, ``seconds_to_first_chunk`` (from ``run()``'s start: plan, build,
trace, compile or cache load, and the first chunk) and the run loop's ``wall_seconds``.
``cycles`` repeats the pair with a new cache each time; medians are printed.

Usage::

    python benchmarks/startup.py configs/quickstart.yaml --cycles 3 [override ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_run(config: str, overrides: list[str], cache: Path, out: Path) -> dict[str, float]:
    env = {**os.environ, "PLASTICINE_JAX_CACHE_DIR": str(cache)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    cmd = [str(REPO / ".venv/bin/plasticine-jax"), "run", config, *overrides,
           "run.progress=false", "run.report=false", f"run.out_dir={out}"]  # fmt: skip
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"run failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    (summary,) = out.glob("*/summary.json")
    info = json.loads(summary.read_text())
    return {"process_s": wall, "first_chunk_s": info["seconds_to_first_chunk"],
            "loop_s": info["wall_seconds"]}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    for k in range(args.cycles):
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "xla"
            for kind in ("cold", "warm"):
                out = Path(tmp) / kind
                runs[kind].append(one_run(args.config, args.overrides, cache, out))
                r = runs[kind][-1]
                print(f"cycle {k + 1} {kind}: process {r['process_s']:.1f} s, first chunk after "
                      f"{r['first_chunk_s']:.1f} s, loop {r['loop_s']:.1f} s", flush=True)
    med = {kind: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
           for kind, rs in runs.items()}  # fmt: skip
    print(f"\n{'run':5} {'process s':>9} {'first chunk s':>13} {'loop s':>7}")
    for kind, m in med.items():
        print(f"{kind:5} {m['process_s']:9.1f} {m['first_chunk_s']:13.1f} {m['loop_s']:7.1f}")
    out = {"config": args.config, "overrides": args.overrides, "median": med, "runs": runs}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
