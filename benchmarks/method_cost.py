"""Cost of each method: PPO throughput relative to vanilla PPO on Breakout-MinAtar, 8 seeds.

    python benchmarks/method_cost.py [--methods l2 trac ...] [--updates 2] [--repeats 3]

Builds the vanilla program once and, for each method (default: every registered method, at
its defaults), one program of ``--seeds`` vmapped seeds (metrics off). After a compiling
chunk each, it *alternates* timed chunks of vanilla and the method, ``--repeats`` times, and
reports the ratio of median chunk times, so that slow drifts in machine load (a shared CPU)
cancel out. Prints a markdown table; copy it into benchmarks/RESULTS.md with machine and
date.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time

import jax

from plasticine_jax.config import load_config
from plasticine_jax.config.schema import MethodConfig
from plasticine_jax.methods import REGISTRY
from plasticine_jax.runner.plan import plan
from plasticine_jax.runner.program import Program

BREAKOUT = [
    "env.id=Breakout-MinAtar",
    "env.num_envs=8",
    "agent.num_steps=128",
    "agent.num_minibatches=4",
    "agent.network.torso=minatar_cnn",
    "agent.network.hidden_sizes=[128]",
    "agent.network.activation=relu",
    "agent.network.shared_torso=true",
]


class Timed:
    """One program, its states, and a method to time one more chunk."""

    def __init__(self, method: str | None, seeds: int, updates: int, repeats: int):
        steps = updates * 8 * 128 * (repeats + 2)
        cfg = load_config(
            "configs/cartpole_ppo.yaml",
            [
                *BREAKOUT,
                f"run.num_seeds={seeds}",
                f"run.total_timesteps={steps}",
                f"run.chunk_updates={updates}",
                "metrics.every=0",
            ],
        )
        methods = () if method is None else (MethodConfig(name=method),)
        (group,) = plan(dataclasses.replace(cfg, methods=methods))
        self.program = Program(group)
        self.states = self.program.init()
        self.start = 0
        self.steps_per_chunk = updates * self.program.steps_per_update * seeds
        self.compile_s = self.chunk()

    def chunk(self) -> float:
        jax.block_until_ready(self.states)
        t0 = time.perf_counter()
        self.states, _ = self.program.run_chunk(self.states, self.start)
        jax.block_until_ready(self.states)
        self.start += self.program.chunk
        return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--methods", nargs="+", default=sorted(REGISTRY))
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--updates", type=int, default=2, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"# {platform.node()} · {jax.devices()[0].device_kind} · jax {jax.__version__}")
    print("| method | first chunk (s) | env steps/s (all seeds) | relative to vanilla |")
    print("|---|---|---|---|")
    vanilla = Timed(None, args.seeds, args.updates, 10**6)
    print(f"| vanilla | {vanilla.compile_s:.1f} | | 1.00 |", flush=True)
    for name in args.methods:
        try:
            m = Timed(name, args.seeds, args.updates, args.repeats)
            tv, tm = [], []
            for _ in range(args.repeats):
                tv.append(vanilla.chunk())
                tm.append(m.chunk())
        except Exception as e:  # noqa: BLE001 - report and go on to the next method
            print(f"| {name} | – | – | failed: {type(e).__name__}: {str(e)[:80]} |", flush=True)
            continue
        rate = m.steps_per_chunk / statistics.median(tm)
        rel = statistics.median(tv) / statistics.median(tm)
        print(f"| {name} | {m.compile_s:.1f} | {rate:,.0f} | {rel:.2f} |", flush=True)


if __name__ == "__main__":
    main()
