"""Where a PPO update's time goes, at PureJaxRL's CartPole settings (``vs_purejaxrl.py``).

``--mode update`` builds three programs in one process (cache off): metrics every 10
updates, metrics off, and metrics off with the divergence guard removed
(``guard_cost.bare``); after a compiling chunk each, it alternates ``--repeats`` timed
chunks of ``--chunk`` updates between them and prints the median milliseconds per update.

``--mode loop`` times the whole run loop (``runner.loop.run``, the persistent cache as the
user has it) with ``run.chunk_updates=--chunk`` (0: sized by time), and prints the chunk
lengths and seconds after the first chunk.

    python benchmarks/update_cost.py --mode update --seeds 8 32
    python benchmarks/update_cost.py --mode loop --seeds 8 --chunk 0
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timed  # noqa: E402
from guard_cost import bare  # noqa: E402
from vs_purejaxrl import CONFIGS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def overrides(seeds: int, chunk: int, every: int) -> list[str]:
    return [*CONFIGS["cartpole"]["ours"], f"run.num_seeds={seeds}", "run.total_timesteps=500000",
            f"run.chunk_updates={chunk}", f"metrics.every={every}"]  # fmt: skip


class Variant:
    def __init__(self, seeds: int, chunk: int, every: int, guard: bool = True):
        import jax  # noqa: F401 - after the cache variable is set

        from plasticine_jax.config import load_config
        from plasticine_jax.runner.plan import plan
        from plasticine_jax.runner.program import Program

        cfg = load_config(REPO / "configs/cartpole_ppo.yaml", overrides(seeds, chunk, every))
        self.program = Program(plan(cfg)[0])
        self.states, self.start = self.program.init(), 0
        self.name = f"metrics every {every}" + ("" if guard else ", no guard")
        if guard:
            self.compile_s = self.chunk()
        else:
            bare(self)  # swaps the guard out; compiles with one chunk

    chunk = Timed.chunk  # the same timed chunk as every benchmark's (common.py)


def update_mode(args) -> None:
    os.environ["PLASTICINE_JAX_CACHE_DIR"] = "off"
    for seeds in args.seeds:
        variants = [Variant(seeds, args.chunk, 10), Variant(seeds, args.chunk, 0),
                    Variant(seeds, args.chunk, 0, guard=False)]  # fmt: skip
        times: dict[str, list[float]] = {v.name: [] for v in variants}
        for _ in range(args.repeats):
            for v in variants:
                times[v.name].append(v.chunk())
        for name, ts in times.items():
            ms = statistics.median(ts) / args.chunk * 1000
            print(f"seeds {seeds}, {name}: {ms:.1f} ms/update (chunks: "
                  f"{', '.join(f'{t:.2f}' for t in ts)} s)", flush=True)  # fmt: skip


def loop_mode(args) -> None:
    from plasticine_jax.config import load_config
    from plasticine_jax.runner.loop import run

    for seeds in args.seeds:
        with tempfile.TemporaryDirectory() as d:
            over = [*overrides(seeds, args.chunk, 10), "run.progress=false", "run.report=false",
                    f"run.out_dir={d}"]  # fmt: skip
            infos: list[dict] = []
            t0 = time.perf_counter()
            run(load_config(REPO / "configs/cartpole_ppo.yaml", over), on_chunk=infos.append)
            total = time.perf_counter() - t0
        ends = [i["update"] for i in infos]
        lengths = [b - a for a, b in zip([0, *ends], ends, strict=False)]
        after = sum(i["seconds"] for i in infos[1:])
        print(f"seeds {seeds}, chunk_updates {args.chunk}: run() {total:.1f} s, {len(infos)} "
              f"chunks, {after:.1f} s after the first; lengths {lengths[:12]}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("update", "loop"), default="update")
    ap.add_argument("--seeds", type=int, nargs="+", default=[8])
    ap.add_argument("--chunk", type=int, default=50, help="updates per chunk (loop: 0 = by time)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    update_mode(args) if args.mode == "update" else loop_mode(args)


if __name__ == "__main__":
    main()
