"""The minibatch shuffle: ``agents.common.permutation`` against ``jax.random.permutation``.

``--mode shuffle`` times the permutation alone, vmapped over ``--seeds`` members, for each
``--sizes``: both compiled once, then ``--repeats`` calls alternated, median milliseconds.

``--mode update`` builds the same program twice in one process (cache off), once with the
shipped shuffle and once with ``jax.random.permutation`` swapped in while it is traced; after
a compiling chunk each, it alternates ``--repeats`` timed chunks (the order swapped every
round) and prints the median ms per update and the per-round ratio shipped / jax. Cases:
``pqn`` is PQN at rejax's CartPole settings (``value_agents.REJAX_PQN_CARTPOLE``, 5 epochs x
16 minibatches of 2048), ``ppo`` PPO at PureJaxRL's CartPole settings (``update_cost.py``).

    python benchmarks/permutation.py --mode shuffle --seeds 1 8 32
    python benchmarks/permutation.py --mode update --cases pqn ppo --seeds 8 --repeats 10
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["PLASTICINE_JAX_CACHE_DIR"] = "off"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
from common import header  # noqa: E402

from plasticine_jax.agents import common as agent_common  # noqa: E402


def timed(fn, arg) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(arg))
    return time.perf_counter() - t0


def shuffle_mode(args) -> None:
    print("| members | n | jax.random.permutation (ms) | permutation (ms) | ours / jax |")
    print("|---|---|---|---|---|")
    for seeds in args.seeds:
        keys = jax.random.split(jax.random.PRNGKey(0), seeds)
        for n in args.sizes:
            fns = {
                "jax": jax.jit(jax.vmap(lambda k, n=n: jax.random.permutation(k, n))),
                "ours": jax.jit(jax.vmap(lambda k, n=n: agent_common.permutation(k, n))),
            }
            for f in fns.values():
                timed(f, keys)  # compile
            times = {k: [] for k in fns}
            for _ in range(args.repeats):
                for k, f in fns.items():
                    times[k].append(timed(f, keys))
            a, b = (statistics.median(times[k]) * 1e3 for k in ("jax", "ours"))
            print(f"| {seeds} | {n} | {a:.3f} | {b:.3f} | {b / a:.2f} |", flush=True)


@contextlib.contextmanager
def jax_shuffle():
    """``jax.random.permutation`` as the minibatch shuffle while a program is traced."""
    shipped = agent_common.permutation
    agent_common.permutation = jax.random.permutation
    try:
        yield
    finally:
        agent_common.permutation = shipped


def build(case: str, seeds: int, updates: int):
    """A timed program of ``case``; its first chunk (the compile) is run here."""
    if case == "pqn":
        from value_agents import EXTRA, TimedCase

        return TimedCase(EXTRA["pqn_cartpole_rejax"], seeds, updates)
    from update_cost import Variant

    return Variant(seeds, updates, 0)


def update_mode(args) -> None:
    for case in args.cases:
        for seeds in args.seeds:
            shipped = build(case, seeds, args.updates)
            with jax_shuffle():
                old = build(case, seeds, args.updates)
            times = {"shipped": [], "jax": []}
            for i in range(args.repeats):
                order = [("shipped", shipped), ("jax", old)]
                for name, t in order if i % 2 == 0 else order[::-1]:
                    times[name].append(t.chunk())
            ratios = [s / j for s, j in zip(times["shipped"], times["jax"], strict=True)]
            q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
            a, b = (statistics.median(times[k]) / args.updates * 1e3 for k in ("jax", "shipped"))
            print(f"| {case} | {seeds} | {a:.1f} | {b:.1f} | {statistics.median(ratios):.3f} "
                  f"({q[0]:.3f} to {q[2]:.3f}) |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["shuffle", "update"], default="shuffle")
    ap.add_argument("--seeds", type=int, nargs="+", default=[8])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 2048, 16384])
    ap.add_argument("--cases", nargs="+", choices=["pqn", "ppo"], default=["pqn", "ppo"])
    ap.add_argument("--updates", type=int, default=10, help="updates per timed chunk")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    print(header(), flush=True)
    if args.mode == "shuffle":
        shuffle_mode(args)
    else:
        print("| case | members | jax.random.permutation (ms / update) | permutation "
              "(ms / update) | ours / jax, per-round median (quartiles) |")
        print("|---|---|---|---|---|")
        update_mode(args)


if __name__ == "__main__":
    main()
