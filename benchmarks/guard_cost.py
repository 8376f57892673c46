"""Cost of the divergence guard: PPO with and without ``runner.program.guard_update``.

    python benchmarks/guard_cost.py [--env cartpole] [--seeds 8] [--updates 4] [--repeats 6]

Builds the same program twice; in the second, the guard (finiteness checks of the loss
terms and trained parameters, and the per-member select of the old or new state) is
replaced by the bare agent update. After a compiling chunk each, it alternates timed
chunks and prints the ratio of median chunk times (guarded / bare). Metrics off.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timed, header, interleave  # noqa: E402


def bare(timed: Timed) -> Timed:
    """``timed`` with its program's guard removed (recompiled by one untimed chunk)."""
    program = timed.program
    update = program.agent.update

    def unguarded(state, diverged_at, i):
        new, out = update(state, i)
        return new, diverged_at, out

    program._guarded = jax.jit(jax.vmap(unguarded, in_axes=(0, 0, None)))
    program._out = None  # the metrics buffer's keys: the bare update's, without the guard's
    program._run_chunk = jax.jit(program._chunk, donate_argnums=0)
    timed.compile_s = timed.chunk()
    return timed


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--env", default="cartpole")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--updates", type=int, default=4, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=6)
    args = p.parse_args()
    print(header())
    guarded = Timed(args.env, args.seeds, args.updates)
    plain = bare(Timed(args.env, args.seeds, args.updates))
    tg, tp = interleave(guarded, plain, args.repeats)
    g, b = statistics.median(tg), statistics.median(tp)
    steps = guarded.steps_per_chunk
    print("| env | seeds | guarded steps/s | bare steps/s | guarded / bare time |")
    print("|---|---|---|---|---|")
    print(f"| {args.env} | {args.seeds} | {steps / g:,.0f} | {steps / b:,.0f} | {g / b:.3f} |")


if __name__ == "__main__":
    main()
