"""PPO throughput: env steps per second over all members, compile time reported apart.

    python benchmarks/throughput.py [--updates 10] [--repeats 5] [--seeds 1 8 32]
                                    [--envs cartpole breakout brax_ant atari_pong
                                            atari_pong_callback craftax_classic]

For each environment and seed count it builds two programs, metrics off and metrics on
(every 10 updates, probe of 256 observations), times the first chunk of each (compile +
run), then alternates ``--repeats`` timed chunks between them (``benchmarks.common``) and
reports median throughput and the metrics cost ``1 - median(off) / median(on)`` of chunk
times. ``--updates`` should be a multiple of 10, so every chunk holds the same number of
metrics updates. Prints a markdown table; copy it into benchmarks/RESULTS.md with the
machine and the date.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timed, header, interleave  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--updates", type=int, default=10, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--envs", nargs="+", default=["cartpole", "breakout"])
    args = p.parse_args()
    if args.updates % 10:
        p.error("--updates must be a multiple of 10 (metrics run every 10 updates)")
    print(header())
    print("| env | seeds | compile off / on (s) | env steps/s, metrics off | "
          "env steps/s, metrics every 10 | metrics cost |")
    print("|---|---|---|---|---|---|")
    for env in args.envs:
        for seeds in args.seeds:
            off = Timed(env, seeds, args.updates, metrics_every=0)
            on = Timed(env, seeds, args.updates, metrics_every=10)
            t_off, t_on = interleave(off, on, args.repeats)
            m_off, m_on = statistics.median(t_off), statistics.median(t_on)
            print(
                f"| {env} | {seeds} | {off.compile_s - m_off:.1f} / {on.compile_s - m_on:.1f} | "
                f"{off.steps_per_chunk / m_off:,.0f} | {on.steps_per_chunk / m_on:,.0f} | "
                f"{1 - m_off / m_on:+.1%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
