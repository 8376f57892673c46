"""Random-policy environment throughput per backend, compile time apart.

Runs ``jit(vmap(rollout))`` (seeds x num_envs envs, ``lax.scan`` over steps) for each named
environment and prints a markdown table of compile seconds (lowering + XLA compile, default
optimisation level), the best of ``--repeats`` timed runs after one warm-up run, and env
steps per second of that run. Example:

    python benchmarks/env_throughput.py --envs cartpole minatar_breakout brax_ant \
        atari_pong atari_pong_callback craftax_classic_symbolic --num-envs 64 --seeds 2 --steps 256
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import yaml

from plasticine_jax.envs.registry import list_envs, make_env
from plasticine_jax.envs.testing import rollout

DEFAULT_ENVS = [
    "cartpole",
    "minatar_breakout",
    "minatar_game_sequence",
    "brax_ant",
    "atari_pong",
    "atari_pong_callback",
    "craftax_classic_symbolic",
    "craftax_symbolic",
]


def measure(name: str, num_envs: int, seeds: int, steps: int, repeats: int) -> dict:
    entry = {e.name: e for e in list_envs()}[name]
    if not entry.installed:
        return {"name": name, "backend": entry.backend, "skipped": "extra not installed"}
    with open(entry.path) as f:
        cfg = yaml.safe_load(f)["env"]
    env = make_env(
        cfg["backend"],
        cfg["id"],
        num_envs,
        cfg["options"],
        cfg["scenario"],
        cfg["scenario_options"],
    )
    fn = jax.jit(jax.vmap(lambda k: rollout(env, k, steps)[1].reward))
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    start = time.perf_counter()
    compiled = fn.lower(keys).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(keys))  # warm-up (envpool builds its pool here)
    best = float("inf")
    for r in range(repeats):
        ks = jax.random.split(jax.random.PRNGKey(r + 1), seeds)
        start = time.perf_counter()
        jax.block_until_ready(compiled(ks))
        best = min(best, time.perf_counter() - start)
    return {
        "name": name,
        "backend": entry.backend,
        "compile_s": compile_s,
        "run_s": best,
        "steps_per_s": seeds * num_envs * steps / best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=DEFAULT_ENVS)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(
        f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"{platform.processor() or platform.machine()}; seeds={args.seeds}, "
        f"num_envs={args.num_envs}, steps={args.steps}; random policy\n"
    )
    print("| env | backend | compile (s) | run (s) | env steps/s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name in args.envs:
        row = measure(name, args.num_envs, args.seeds, args.steps, args.repeats)
        if "skipped" in row:
            print(f"| {name} | {row['backend']} | - | - | {row['skipped']} |")
        else:
            print(
                f"| {name} | {row['backend']} | {row['compile_s']:.1f} | {row['run_s']:.3f} | "
                f"{row['steps_per_s']:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
