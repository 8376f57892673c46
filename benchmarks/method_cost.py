"""Cost of each method: PPO throughput relative to vanilla PPO on Breakout-MinAtar, 8 seeds.

    python benchmarks/method_cost.py [--methods l2 trac ...] [--updates 2] [--repeats 3]

Builds the vanilla program once and, for each method (default: every registered method, at
its defaults or, where those cannot run on one task, at ``SETTINGS``), one program of
``--seeds`` vmapped seeds (metrics off). After a compiling chunk each, it alternates timed
chunks of vanilla and the method (``benchmarks.common``) and reports the ratio of median
chunk times. Prints a markdown table; copy it into
benchmarks/RESULTS.md with machine and date.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timed, header, interleave  # noqa: E402

from plasticine_jax.config.schema import MethodConfig  # noqa: E402
from plasticine_jax.methods import REGISTRY  # noqa: E402

# Methods whose defaults cannot run on this single-task benchmark (the config checks refuse
# them) are timed at the nearest settings that can: the resets and the injection on a
# schedule that fires (every 10 updates, as ReDo's default; the injection once, after the
# first update), HL-Gauss with a support. Everything else runs at its defaults.
SETTINGS = {
    "hl_gauss": {"hp": {"v_min": -10.0, "v_max": 10.0}},
    "layer_reset": {"options": {"schedule": "every_k_updates"}, "hp": {"period": 10.0}},
    "opt_reset": {"options": {"schedule": "every_k_updates"}, "hp": {"period": 10.0}},
    "plasticity_injection": {"options": {"schedule": "at_update"}, "hp": {"at": 1.0}},
}


def method(name: str) -> MethodConfig:
    """``name`` at its defaults, or at its ``SETTINGS``."""
    return MethodConfig(name=name, **SETTINGS.get(name, {}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--methods", nargs="+", default=sorted(REGISTRY))
    p.add_argument("--env", default="breakout")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--updates", type=int, default=2, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(header())
    print("| method | first chunk (s) | env steps/s (all seeds) | throughput relative to vanilla |")
    print("|---|---|---|---|")
    vanilla = Timed(args.env, args.seeds, args.updates)
    print(f"| vanilla | {vanilla.compile_s:.1f} | | 1.00 |", flush=True)
    for name in args.methods:
        try:
            m = Timed(args.env, args.seeds, args.updates, methods=(method(name),))
            tv, tm = interleave(vanilla, m, args.repeats)
        except Exception as e:  # noqa: BLE001 - report and go on to the next method
            print(f"| {name} | – | – | failed: {type(e).__name__}: {str(e)[:80]} |", flush=True)
            continue
        rate = m.steps_per_chunk / statistics.median(tm)
        rel = statistics.median(tv) / statistics.median(tm)
        print(f"| {name} | {m.compile_s:.1f} | {rate:,.0f} | {rel:.2f} |", flush=True)


if __name__ == "__main__":
    main()
