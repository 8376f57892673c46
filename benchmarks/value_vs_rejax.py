"""DQN and PQN side by side with rejax (PyPI rejax 0.1.3) at rejax's own tuned CartPole configs.

    python benchmarks/value_vs_rejax.py [--algos dqn pqn] [--seeds 8] [--pairs 3]
        [--rejax-python /tmp/rejaxvenv/bin/python]
        [--rejax-bench /work/shared/peers/rejax_bench.py]

rejax runs from its own venv (jax 0.9.2, rejax 0.1.3, gymnax 0.0.9; /work/shared/peers/
README.md says how) through the peer harness ``rejax_bench.py``, which vmaps rejax's ``train``
over seeds, compiles it ahead of time (``compile_s``: lower + compile) and times one run of
the compiled program (``run_s``: init, fill, training and rejax's two evaluations of 128
episodes). Ours runs in its own process (``--side ours``) the way the CLI runs it, chunk by
chunk of the default chunk length, and is timed to the same split: ``compile_s`` is the
first call's extra time (``init`` called twice, the first chunk against the median of the
others), ``run_s`` everything else (``init`` with DQN's prefill, every chunk). The two
sides alternate A B A B, ``--pairs`` times, and the script prints the medians, the ratios
ours/rejax of run time, steps/s and whole-process wall time, and both final returns.

Final return: rejax's, its final evaluation (128 episodes, epsilon 0.005) averaged over
seeds; ours, the same evaluation configured on our side (``eval.every`` = the run's last
update, 128 envs, epsilon 0.005, 500 steps), so both sides do the final evaluation's work.
rejax also evaluates once before training (``eval_freq`` = the whole run still evaluates at
step 0): 128 episodes of the untrained network, short ones, a small extra on its side.

Compile cache: our package turns JAX's persistent compilation cache on, rejax has none, so a
repeated run of ours would not compile (``compile_s`` ~6 s instead of ~55 s for DQN in a
first try of this script). Our side therefore runs with ``PLASTICINE_JAX_CACHE_DIR=off``
unless ``--cache`` is given, and every pair compiles on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import header  # noqa: E402
from value_agents import (  # noqa: E402
    REJAX_DQN_CARTPOLE,
    REJAX_PQN_CARTPOLE,
    Case,
    build_group,
)

from plasticine_jax.config.load import num_updates  # noqa: E402
from plasticine_jax.runner.program import Program  # noqa: E402

# rejax's configs/gymnax/cartpole.yaml, as rejax_bench.py arguments (`env`, `eval_freq` and
# `total_timesteps` are the harness's own).
REJAX = {
    "dqn": ["agent=DuelingQNetwork", 'agent_kwargs={"activation": "swish"}', "num_envs=10",
            "buffer_size=50000", "fill_buffer=5000", "batch_size=100", "max_grad_norm=10",
            "learning_rate=0.001", "num_epochs=5", "polyak=0.98", "eps_start=1",
            "eps_end=0.05", "exploration_fraction=0.5", "gamma=0.99", "ddqn=true",
            "normalize_observations=false"],
    "pqn": ["num_envs=16", "num_steps=128", "num_minibatches=16", "max_grad_norm=10",
            "learning_rate=0.0003", "num_epochs=5", "eps_start=1", "eps_end=0.05",
            "exploration_fraction=0.5", "gamma=0.99", "td_lambda=0.9",
            "normalize_observations=false"],
}  # fmt: skip
TOTAL = {"dqn": 100_000, "pqn": 524_288}

# rejax's `pqn:` section on our keys, and what cannot match: ``value_agents.REJAX_PQN_CARTPOLE``.
OURS = {
    "dqn": Case("configs/dqn_cartpole.yaml", tuple(REJAX_DQN_CARTPOLE), "CartPole-v1", 0),
    "pqn": Case("configs/dqn_cartpole.yaml", tuple(REJAX_PQN_CARTPOLE), "CartPole-v1", 0),
}


def timed(f):
    """``(f(), wall seconds)``, waiting for the result."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(f())
    return out, time.perf_counter() - t0


def run_ours(algo: str, seeds: int) -> dict:
    """One run of ours in this process, chunk by chunk; the ``RESULT`` dict."""
    case = OURS[algo]
    last = num_updates(build_group(case, ["metrics.every=0"]).cfg)
    # fixed chunks, the largest divisor of the run up to 50 updates (the loop's automatic
    # length until time-sized chunks): the first chunk's extra time is the compile
    chunk = max(d for d in range(1, min(last, 50) + 1) if last % d == 0)
    group = build_group(case, [
        f"run.num_seeds={seeds}", "metrics.every=0", f"run.chunk_updates={chunk}",
        f"eval={{every: {last}, num_envs: 128, epsilon: 0.005, max_steps: 500}}",
    ])  # fmt: skip
    program = Program(group)
    compile_s, run_s, final, times = run_timed(program)
    total = program.prefill_steps + program.num_updates * program.steps_per_update
    return {"system": "ours", "algo": algo, "env": case.env_id, "seeds": seeds,
            "total_timesteps": total, "compile_s": round(compile_s, 2), "run_s": round(run_s, 2),
            "sps": round(seeds * total / run_s), "final_return": round(float(final.mean()), 2),
            "chunks": len(times), "chunk_updates": program.chunk}  # fmt: skip


def run_timed(program: Program) -> tuple[float, float, np.ndarray, list[float]]:
    """Runs ``program`` chunk by chunk as the CLI does: ``(compile_s, run_s, final
    eval/episode_return [members], chunk times)``. ``compile_s`` is the first call's extra
    time (``init`` called twice, the first chunk against the median of the others), ``run_s``
    everything else."""
    _, init_1 = timed(program.init)
    states, init_2 = timed(program.init)
    times, evals = [], []
    for start in range(0, program.num_updates, program.chunk):
        length = min(program.chunk, program.num_updates - start)
        (states, out), t = timed(lambda s=states, a=start, n=length: program.run_chunk(s, a, n))
        times.append(t)
        evals.append(out["eval/episode_return"])
    rest = statistics.median(times[1:])
    compile_s = (init_1 - init_2) + (times[0] - rest)
    run_s = init_2 + sum(times) - (times[0] - rest)
    return compile_s, run_s, np.concatenate(evals)[-1], times


def one(cmd: list[str], env: dict[str, str] | None = None) -> tuple[dict, float]:
    """Runs ``cmd``; its ``RESULT`` json and the process's wall seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{cmd[:3]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):]), wall


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--algos", nargs="+", default=["dqn", "pqn"], choices=list(OURS))
    p.add_argument("--seeds", type=int, nargs="+", default=[8])
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--rejax-python", default="/tmp/rejaxvenv/bin/python")
    p.add_argument("--rejax-bench", default="/work/shared/peers/rejax_bench.py")
    p.add_argument("--cache", action="store_true",
                   help="let our side use the persistent compilation cache (default: off, "
                        "as rejax has none, so that every pair compiles on both sides)")
    p.add_argument("--side", choices=["ours"], help="internal: run one side, print RESULT")
    args = p.parse_args()
    if args.side:
        print("RESULT " + json.dumps(run_ours(args.algos[0], args.seeds[0])), flush=True)
        return
    print(header(), flush=True)
    ours_env = dict(os.environ)
    if not args.cache:
        ours_env.pop("JAX_COMPILATION_CACHE_DIR", None)
        ours_env["PLASTICINE_JAX_CACHE_DIR"] = "off"
    rows = []
    for algo in args.algos:
        for seeds in args.seeds:
            ours_cmd = [sys.executable, __file__, "--side", "ours", "--algos", algo,
                        "--seeds", str(seeds)]
            peer_cmd = [args.rejax_python, args.rejax_bench, algo, "CartPole-v1", str(seeds),
                        str(TOTAL[algo]), *REJAX[algo]]
            runs = {"ours": [], "rejax": []}
            for i in range(args.pairs):
                for side, cmd, env in (("ours", ours_cmd, ours_env), ("rejax", peer_cmd, None)):
                    res, wall = one(cmd, env)
                    res["wall_s"] = round(wall, 1)
                    runs[side].append(res)
                    print(f"{algo} {seeds} seeds pair {i + 1} {side}: " + json.dumps(res),
                          flush=True)
            rows.append((algo, seeds, runs))
    print("\n| agent | seeds | side | compile (s) | run (s) | env steps/s | process wall (s) | "
          "final return (per run) |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for algo, seeds, runs in rows:
        med = {}
        for side, rs in runs.items():
            med[side] = {k: statistics.median(r[k] for r in rs)
                         for k in ("compile_s", "run_s", "sps", "wall_s")}
            finals = ", ".join(f"{r['final_return']:.1f}" for r in rs)
            m = med[side]
            print(f"| {algo.upper()} | {seeds} | {side} | {m['compile_s']:.1f} | {m['run_s']:.1f} "
                  f"| {m['sps']:,.0f} | {m['wall_s']:.1f} | {finals} |")
        o, r = med["ours"], med["rejax"]
        ratios.append(
            f"{algo.upper()} {seeds} seeds: run time ours/rejax {o['run_s'] / r['run_s']:.3f}, "
            f"steps/s ours/rejax {o['sps'] / r['sps']:.2f}x, compile ours/rejax "
            f"{o['compile_s'] / r['compile_s']:.2f}, process wall ours/rejax "
            f"{o['wall_s'] / r['wall_s']:.3f}"
        )
    print("\n" + "\n".join(ratios))


if __name__ == "__main__":
    main()
