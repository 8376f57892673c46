"""PPO throughput: env steps per second over all members, compile time reported apart.

    python benchmarks/throughput.py [--updates N] [--seeds 1 8 32] [--envs cartpole breakout]

For each environment, seed count and metrics setting (off, every 10 updates) it builds
one program, times the first chunk (compile + run) and then ``--repeats`` further chunks
(run only), and prints a markdown table. Copy it into benchmarks/RESULTS.md with the
machine and the date.
"""

from __future__ import annotations

import argparse
import platform
import time

import jax

from plasticine_jax.config import load_config
from plasticine_jax.runner.plan import plan
from plasticine_jax.runner.program import Program

ENVS = {
    "cartpole": ["env.id=CartPole-v1", "env.num_envs=8", "agent.num_steps=128"],
    "breakout": [
        "env.id=Breakout-MinAtar",
        "env.num_envs=8",
        "agent.num_steps=128",
        "agent.num_minibatches=4",
        "agent.network.torso=minatar_cnn",
        "agent.network.hidden_sizes=[128]",
        "agent.network.activation=relu",
        "agent.network.shared_torso=true",
    ],
}


def measure(env: str, seeds: int, metrics_every: int, updates: int, repeats: int) -> dict:
    steps = updates * 8 * 128 * (repeats + 1)
    cfg = load_config(
        "configs/cartpole_ppo.yaml",
        [
            *ENVS[env],
            f"run.num_seeds={seeds}",
            f"run.total_timesteps={steps}",
            f"run.chunk_updates={updates}",
            f"metrics.every={metrics_every}",
            "metrics.probe_size=256",
        ],
    )
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
    run_s = (time.perf_counter() - t0) / repeats
    per_chunk = updates * program.steps_per_update * seeds
    return {
        "env": env,
        "seeds": seeds,
        "metrics": "every 10" if metrics_every else "off",
        "compile_s": first - run_s,
        "steps_per_s": per_chunk / run_s,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--updates", type=int, default=10, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--envs", nargs="+", default=list(ENVS))
    args = p.parse_args()
    print(f"# {platform.node()} · {jax.devices()[0].device_kind} · jax {jax.__version__}")
    print("| env | seeds | metrics | compile (s) | env steps/s | metrics cost |")
    print("|---|---|---|---|---|---|")
    for env in args.envs:
        for seeds in args.seeds:
            off = measure(env, seeds, 0, args.updates, args.repeats)
            on = measure(env, seeds, 10, args.updates, args.repeats)
            for row in (off, on):
                cost = 1 - on["steps_per_s"] / off["steps_per_s"] if row is on else 0.0
                print(
                    f"| {row['env']} | {seeds} | {row['metrics']} | {row['compile_s']:.1f} | "
                    f"{row['steps_per_s']:,.0f} | {'' if row is off else f'{cost:+.1%}'} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
