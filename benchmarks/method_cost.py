"""Cost of each method: PPO throughput relative to vanilla PPO on Breakout-MinAtar, 8 seeds.

    python benchmarks/method_cost.py [--methods l2 trac ...] [--updates 5] [--repeats 2]

For vanilla and each method (default: every registered method, at its defaults), builds one
program of ``--seeds`` vmapped seeds (metrics off), times the first chunk (compile + run)
and ``--repeats`` further chunks (run only), and prints a markdown table with env steps per
second and the ratio to vanilla. Copy it into benchmarks/RESULTS.md with machine and date.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
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


def measure(method: str | None, seeds: int, updates: int, repeats: int) -> dict:
    steps = updates * 8 * 128 * (repeats + 1)
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
    cfg = dataclasses.replace(cfg, methods=methods)
    (group,) = plan(cfg)
    program = Program(group)
    states = program.init()
    jax.block_until_ready(states)
    t0 = time.perf_counter()
    states, _ = program.run_chunk(states, 0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in range(repeats):
        states, _ = program.run_chunk(states, (r + 1) * updates)
    jax.block_until_ready(states)
    run_s = (time.perf_counter() - t0) / repeats
    return {
        "method": method or "vanilla",
        "compile_s": first - run_s,
        "steps_per_s": updates * program.steps_per_update * seeds / run_s,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--methods", nargs="+", default=sorted(REGISTRY))
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--updates", type=int, default=5, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    print(f"# {platform.node()} · {jax.devices()[0].device_kind} · jax {jax.__version__}")
    print("| method | compile (s) | env steps/s (all seeds) | relative to vanilla |")
    print("|---|---|---|---|")
    base = measure(None, args.seeds, args.updates, args.repeats)
    print(f"| vanilla | {base['compile_s']:.1f} | {base['steps_per_s']:,.0f} | 1.00 |", flush=True)
    for name in args.methods:
        try:
            r = measure(name, args.seeds, args.updates, args.repeats)
        except Exception as e:  # noqa: BLE001 - report and go on to the next method
            print(f"| {name} | – | – | failed: {type(e).__name__}: {str(e)[:80]} |", flush=True)
            continue
        rel = r["steps_per_s"] / base["steps_per_s"]
        print(
            f"| {name} | {r['compile_s']:.1f} | {r['steps_per_s']:,.0f} | {rel:.2f} |", flush=True
        )


if __name__ == "__main__":
    main()
