"""plasticine-jax PPO against upstream PureJaxRL PPO at PureJaxRL's own configs, whole process.

Both sides run as a user runs them, each in a fresh process: ours is ``plasticine-jax run``
(the CLI: plan, build, compile, the chunked host loop with async dispatch, metrics.csv, the
summary and, unless ``--no-checkpoint``, checkpoints); the peer is
``/work/shared/peers/purejaxrl_bench.py`` (upstream ``ppo.py`` unmodified, one jitted
``vmap(make_train)`` over seeds, compiled ahead of time, in its own venv with gymnax 0.0.9;
see ``../shared/peers/README.md``). Runs alternate A B A B, so a drift in machine load hits
both sides alike; the ratio is of median wall times (ours / PureJaxRL: below 1 is faster).
Both sides use the persistent compilation cache as their users get it: ours its default,
PureJaxRL none (it has no such setting), unless ``--no-cache`` turns ours off too, which is the
fair comparison of a first run.

Settings are PureJaxRL's: CartPole = ``ppo.py``'s ``__main__`` defaults (4 envs x 128 steps,
4 epochs x 4 minibatches, tanh 64-64, lr 2.5e-4 annealed, 5e5 steps); MinAtar = its MinAtar
config (64 envs x 128 steps, 4 epochs x 8 minibatches, relu 64-64, lr 5e-3, Breakout-MinAtar).
``--metrics-every`` sets our ``metrics.every`` (0 = plasticity metrics off).

Usage::

    python benchmarks/vs_purejaxrl.py --peer-python /tmp/pjvenv/bin/python \\
        --src /tmp/pjsrc/purejaxrl --env cartpole --seeds 1 8 32 --metrics-every 10 --pairs 3

Prints one line per run and a table of median wall times and ratios per seed count; with
``--json PATH`` writes them too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER_BENCH = Path("/work/shared/peers/purejaxrl_bench.py")

CONFIGS = {
    "cartpole": {
        "steps": 500_000,
        "ours": ["env.id=CartPole-v1", "env.num_envs=4", "agent.num_steps=128",
                 "agent.num_minibatches=4", "agent.update_epochs=4",
                 "agent.network.activation=tanh", "agent.hp.lr=0.00025"],
        "peer": "CartPole-v1",
    },
    "minatar": {
        "steps": 1_000_000,
        "ours": ["env.id=Breakout-MinAtar", "env.num_envs=64", "agent.num_steps=128",
                 "agent.num_minibatches=8", "agent.update_epochs=4",
                 "agent.network.activation=relu", "agent.hp.lr=0.005"],
        "peer": "Breakout-MinAtar",
    },
}  # fmt: skip


def ours_cmd(env: str, seeds: int, steps: int, every: int, out: str, checkpoint: bool):
    cfg = CONFIGS[env]
    return [
        str(REPO / ".venv/bin/plasticine-jax"), "run", str(REPO / "configs/cartpole_ppo.yaml"),
        *cfg["ours"], f"run.num_seeds={seeds}", f"run.total_timesteps={steps}",
        f"metrics.every={every}", "run.progress=false", f"run.checkpoint={str(checkpoint).lower()}",
        "run.report=false", f"run.out_dir={out}",
    ]  # fmt: skip


def peer_cmd(args, env: str, seeds: int, steps: int):
    return [
        args.peer_python, str(PEER_BENCH), "--src", args.src, "--env", CONFIGS[env]["peer"],
        "--seeds", str(seeds), "--total-timesteps", str(steps), "--aot",
    ]  # fmt: skip


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - t0
    if p.returncode:
        tail = f"{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}):\n{tail}")
    return seconds, p.stdout


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer-python", required=True, help="python of the PureJaxRL venv")
    ap.add_argument("--src", required=True, help="purejaxrl/ folder of luchris429/purejaxrl")
    ap.add_argument("--env", choices=sorted(CONFIGS), default="cartpole")
    ap.add_argument("--seeds", type=int, nargs="+", default=[8])
    ap.add_argument("--steps", type=int, default=None, help="env steps per seed")
    ap.add_argument("--metrics-every", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--no-checkpoint", action="store_true", help="run.checkpoint=false on ours")
    ap.add_argument("--no-cache", action="store_true", help="our persistent cache off")
    ap.add_argument("--warm-up", action="store_true",
                    help="run ours once, untimed, before the pairs: the cache a user has after "
                         "one run of the config (else pair 1 may compile ours)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    steps = args.steps or CONFIGS[args.env]["steps"]
    env = dict(os.environ)
    if args.no_cache:
        env["PLASTICINE_JAX_CACHE_DIR"] = "off"
    results = []
    for seeds in args.seeds:
        ours, peer = [], []
        split: dict[str, list[float]] = {
            "ours_first_chunk_s": [], "peer_compile_s": [], "peer_run_s": []}
        if args.warm_up and not args.no_cache:
            with tempfile.TemporaryDirectory() as out:
                timed(ours_cmd(args.env, seeds, steps, args.metrics_every, out,
                               not args.no_checkpoint), env)  # fmt: skip
        for k in range(args.pairs):
            with tempfile.TemporaryDirectory() as out:
                cmd = ours_cmd(args.env, seeds, steps, args.metrics_every, out,
                               not args.no_checkpoint)  # fmt: skip
                ours.append(timed(cmd, env)[0])
                summary = next(Path(out).glob("*/summary.json"))
                first = json.loads(summary.read_text())["seconds_to_first_chunk"]
            peer_s, stdout = timed(peer_cmd(args, args.env, seeds, steps), env)
            peer.append(peer_s)
            result = json.loads(next(x for x in stdout.splitlines()
                                     if x.startswith("RESULT "))[len("RESULT "):])  # fmt: skip
            split["ours_first_chunk_s"].append(first)
            split["peer_compile_s"].append(result["compile_s"])
            split["peer_run_s"].append(result["steady_s"])
            print(f"{args.env} seeds {seeds} pair {k + 1}: ours {ours[-1]:.1f} s (first chunk "
                  f"after {first:.1f} s), PureJaxRL {peer[-1]:.1f} s (compile "
                  f"{result['compile_s']:.1f} s, run {result['steady_s']:.1f} s), ratio "
                  f"{ours[-1] / peer[-1]:.3f}", flush=True)  # fmt: skip
        row = {"env": args.env, "seeds": seeds, "steps": steps,
               "metrics_every": args.metrics_every, "ours_s": ours, "peer_s": peer,
               "ratio": statistics.median(ours) / statistics.median(peer),
               "pair_ratios": [a / b for a, b in zip(ours, peer, strict=True)],
               **split}  # fmt: skip
        results.append(row)
    print(f"\n{'env':9} {'seeds':>5} {'ours s':>8} {'PureJaxRL s':>11} {'ratio':>6}  per pair")
    for r in results:
        pairs = " ".join(f"{x:.2f}" for x in r["pair_ratios"])
        print(f"{r['env']:9} {r['seeds']:>5} {statistics.median(r['ours_s']):8.1f} "
              f"{statistics.median(r['peer_s']):11.1f} {r['ratio']:6.3f}  {pairs}")  # fmt: skip
    out = {"argv": sys.argv[1:] if argv is None else argv, "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
