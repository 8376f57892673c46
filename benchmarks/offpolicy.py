"""SAC and TD3: throughput, compile time and memory, and side by side with rejax.

    python benchmarks/offpolicy.py throughput [--algos sac td3] [--envs pendulum hopper]
        [--seeds 1 8] [--utd 1 8] [--repeats 3]
    python benchmarks/offpolicy.py memory
    python benchmarks/offpolicy.py rejax [--algos sac td3] [--seeds 8] [--utd 1 8] [--pairs 2]
        [--rejax-python /tmp/rejaxvenv/bin/python]

``throughput``: the shipped Pendulum configs (and the same agent on Brax hopper, one env),
64-64 networks, metrics off; per case the first chunk (compile + run; the compile column is
first chunk - median chunk) and the median of ``--repeats`` timed chunks (``value_agents.
TimedCase``), in env steps/s summed over seeds, prefill excluded.

``memory``: bytes per member of the replay buffer and of the whole member state at
``agent.buffer_size = 1e6`` (Pendulum and Brax hopper), from ``jax.eval_shape`` of ``init``.

``rejax``: our SAC/TD3 and rejax 0.1.3's (its own venv, ``/work/shared/peers/rejax_bench.py``)
at rejax's tuned Pendulum configs (keraJLi/rejax ``configs/gymnax/pendulum.yaml``), both
sides 10,000 env steps, alternated A B A B ``--pairs`` times (``value_vs_rejax.one``). UTD
k is rejax's ``num_epochs = k`` and our ``replay_ratio = k``. rejax's settings on our keys:

* SAC: 1 env, buffer 10,000, 256 random steps first, batch 256, swish 64-64, Adam 0.01 for
  actor, critics and temperature, Polyak 0.98 a step (``tau = 0.02``), an actor step every
  critic step (``policy_frequency = 1``); rejax clips gradients element-wise (``optax.clip``,
  ours: none).
* TD3: 1 env, buffer 10,000, 1,000 random steps first, batch 100, swish 64-64, Adam 1e-3,
  Polyak 0.95 (``tau = 0.05``), policy delay 2; rejax's noises are absolute (exploration
  0.3, target 0.2 clipped to 0.5) and ours in units of Pendulum's action scale 2 (0.15, 0.1,
  0.25).
* Observation normalisation off on both sides (rejax's config has it on, normalising each
  sampled batch with running statistics; ours normalises in the env wrapper: a different
  computation, so the throughput comparison leaves it out).

Final returns are each side's own evaluation of the last policy: rejax's (``eval_freq`` =
the run), ours ``eval/episode_return`` of 128 greedy episodes at the last update.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import header, named_env  # noqa: E402
from value_agents import Case, TimedCase, build_group, member_bytes  # noqa: E402
from value_vs_rejax import one, run_timed  # noqa: E402

from plasticine_jax.config.load import num_updates  # noqa: E402
from plasticine_jax.runner.program import Program  # noqa: E402

SMALL = ("agent.network.hidden_sizes=[64, 64]",)
HOPPER = (*named_env("brax_hopper"), "env.num_envs=1")
ENV_IDS = {"pendulum": "Pendulum-v1", "hopper": "hopper"}

REJAX = {
    "sac": ["agent_kwargs={\"activation\": \"swish\"}", "num_envs=1", "buffer_size=10000",
            "fill_buffer=256", "batch_size=256", "learning_rate=0.01", "gamma=0.99",
            "polyak=0.98", "normalize_observations=false"],
    "td3": ["actor_kwargs={\"activation\": \"swish\"}", "critic_kwargs={\"activation\": \"swish\"}",
            "num_envs=1", "buffer_size=10000", "fill_buffer=1000", "batch_size=100",
            "learning_rate=0.001", "gamma=0.99", "polyak=0.95", "max_grad_norm=100",
            "exploration_noise=0.3", "target_noise=0.2", "target_noise_clip=0.5",
            "policy_delay=2", "normalize_observations=false"],
}  # fmt: skip
OURS = {
    "sac": ("configs/sac_pendulum.yaml", (
        *SMALL, "agent.network.activation=silu", "agent.buffer_size=10000",
        "agent.learning_starts=256", "agent.batch_size=256", "agent.policy_frequency=1",
        "agent.hp.policy_lr=0.01", "agent.hp.q_lr=0.01", "agent.hp.tau=0.02",
    )),
    "td3": ("configs/td3_pendulum.yaml", (
        *SMALL, "agent.network.activation=silu", "agent.buffer_size=10000",
        "agent.learning_starts=1000", "agent.batch_size=100", "agent.hp.policy_lr=1e-3",
        "agent.hp.q_lr=1e-3", "agent.hp.tau=0.05", "agent.hp.exploration_noise=0.15",
        "agent.hp.policy_noise=0.1", "agent.hp.noise_clip=0.25",
    )),
}  # fmt: skip
TOTAL = 10_000


def case(algo: str, env: str, utd: float, extra: tuple[str, ...] = ()) -> Case:
    config, over = OURS[algo]
    env_over = HOPPER if env == "hopper" else ()
    return Case(config, (*over, *env_over, f"agent.replay_ratio={utd}", *extra),
                ENV_IDS[env], 200)  # fmt: skip


def run_ours(algo: str, seeds: int, utd: float) -> dict:
    """One run of ours in this process, chunk by chunk (``value_vs_rejax.run_ours``'s split
    of compile and run time); the ``RESULT`` dict."""
    c = case(algo, "pendulum", utd, (f"run.total_timesteps={TOTAL}", "run.chunk_updates=1000"))
    last = num_updates(build_group(c, ["metrics.every=0"]).cfg)
    group = build_group(c, [
        f"run.num_seeds={seeds}", "metrics.every=0",
        f"eval={{every: {last}, num_envs: 128, max_steps: 200}}",
    ])  # fmt: skip
    compile_s, run_s, final, _ = run_timed(Program(group))
    return {"system": "ours", "algo": algo, "seeds": seeds, "utd": utd, "total_timesteps": TOTAL,
            "compile_s": round(compile_s, 2), "run_s": round(run_s, 2),
            "sps": round(seeds * TOTAL / run_s),
            "final_return": round(float(final.mean()), 1)}  # fmt: skip


def throughput(args) -> None:
    print("| agent | env | seeds | UTD | compile (s) | init (s) | env steps/s |")
    print("|---|---|---|---|---|---|---|")
    for algo in args.algos:
        for env in args.envs:
            for seeds in args.seeds:
                for utd in args.utd:
                    c = case(algo, env, utd, ("run.total_timesteps=100000",))
                    t = TimedCase(c, seeds, c.updates)
                    times = [t.chunk() for _ in range(args.repeats)]
                    m = statistics.median(times)
                    print(f"| {algo.upper()} | {ENV_IDS[env]} | {seeds} | {utd:g} | "
                          f"{t.compile_s - m:.1f} | {t.init_s:.1f} | "
                          f"{t.steps_per_chunk / m:,.0f} |", flush=True)  # fmt: skip
                    del t


def memory(args) -> None:
    print("| agent | env | buffer | buffer MB / member | state MB / member |")
    print("|---|---|---|---|---|")
    for algo in ("sac", "td3"):
        for env in ("pendulum", "hopper"):
            c = case(algo, env, 1.0, ("agent.buffer_size=1000000",))
            program = Program(build_group(c, ["run.num_seeds=1", "metrics.every=0"]))
            buf, state = member_bytes(program)
            print(f"| {algo.upper()} | {ENV_IDS[env]} | 1e6 | {buf / 1e6:.1f} | "
                  f"{state / 1e6:.1f} |", flush=True)  # fmt: skip


def side_by_side(args) -> None:
    rows = []
    for algo in args.algos:
        for seeds in args.seeds:
            for utd in args.utd:
                ours_cmd = [sys.executable, __file__, "ours", "--algos", algo,
                            "--seeds", str(seeds), "--utd", str(utd)]  # fmt: skip
                peer_cmd = [args.rejax_python, args.rejax_bench, algo, "Pendulum-v1",
                            str(seeds), str(TOTAL), *REJAX[algo],
                            f"num_epochs={int(utd)}"]  # fmt: skip
                runs = {"ours": [], "rejax": []}
                for i in range(args.pairs):
                    for side, cmd in (("ours", ours_cmd), ("rejax", peer_cmd)):
                        res, wall = one(cmd)
                        res["wall_s"] = round(wall, 1)
                        runs[side].append(res)
                        print(f"{algo} {seeds} seeds UTD {utd:g} pair {i + 1} {side}: "
                              + json.dumps(res), flush=True)  # fmt: skip
                rows.append((algo, seeds, utd, runs))
    print("\n| agent | seeds | UTD | side | compile (s) | run (s) | env steps/s | "
          "process wall (s) | final return (per run) |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for algo, seeds, utd, runs in rows:
        med = {}
        for side, rs in runs.items():
            med[side] = {k: statistics.median(r[k] for r in rs)
                         for k in ("compile_s", "run_s", "sps", "wall_s")}  # fmt: skip
            m = med[side]
            finals = ", ".join(f"{r['final_return']:.1f}" for r in rs)
            print(f"| {algo.upper()} | {seeds} | {utd:g} | {side} | {m['compile_s']:.1f} | "
                  f"{m['run_s']:.1f} | {m['sps']:,.0f} | {m['wall_s']:.1f} | {finals} |")
        o, r = med["ours"], med["rejax"]
        ratios.append(f"{algo.upper()} {seeds} seeds UTD {utd:g}: steps/s ours/rejax "
                      f"{o['sps'] / r['sps']:.2f}x, compile ours/rejax "
                      f"{o['compile_s'] / r['compile_s']:.2f}, process wall ours/rejax "
                      f"{o['wall_s'] / r['wall_s']:.2f}")  # fmt: skip
    print("\n" + "\n".join(ratios))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["throughput", "memory", "rejax", "ours"])
    p.add_argument("--algos", nargs="+", default=["sac", "td3"], choices=["sac", "td3"])
    p.add_argument("--envs", nargs="+", default=["pendulum", "hopper"], choices=list(ENV_IDS))
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 8])
    p.add_argument("--utd", type=float, nargs="+", default=[1.0, 8.0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--rejax-python", default="/tmp/rejaxvenv/bin/python")
    p.add_argument("--rejax-bench", default="/work/shared/peers/rejax_bench.py")
    args = p.parse_args()
    if args.mode == "ours":  # internal: one side of the rejax comparison
        res = run_ours(args.algos[0], args.seeds[0], args.utd[0])
        print("RESULT " + json.dumps(res), flush=True)
        return
    print(header(), flush=True)
    {"throughput": throughput, "memory": memory, "rejax": side_by_side}[args.mode](args)
    jax.clear_caches()


if __name__ == "__main__":
    main()
