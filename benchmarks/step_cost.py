"""What the global-norm clip costs a minibatch gradient step: the shipped clip against
optax's, alternated in one process.

The shipped step (``agents.common``) clips by the global norm with one scalar scale and one
reduction over the concatenated leaves (``clip_by_global_norm``, ``global_norm``). The
previous step, rebuilt here by patching those names back for one program:
``optax.clip_by_global_norm`` (a reduction and a float division per leaf, which XLA does
not duplicate into Adam's fused update) and ``optax.global_norm`` for the logged gradient
norm. The values are the same up to rounding.

Cases: ``ppo`` at PureJaxRL's CartPole settings (``update_cost.py``, 4 epochs x 4
minibatches); ``pqn`` at rejax's CartPole settings (``value_agents.py`` case
``pqn_cartpole_rejax``, 5 epochs x 16 minibatches of 128). Metrics off, cache off; after a
compiling chunk each, ``--repeats`` timed chunks alternate between the two programs;
medians in ms per update, and the ratio shipped / previous.

    python benchmarks/step_cost.py --cases ppo pqn --seeds 8 --repeats 9
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
from pathlib import Path

os.environ["PLASTICINE_JAX_CACHE_DIR"] = "off"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import optax  # noqa: E402
from common import header  # noqa: E402
from update_cost import Variant  # noqa: E402
from value_agents import EXTRA, TimedCase  # noqa: E402

from plasticine_jax.agents import common as agent_common  # noqa: E402


@contextlib.contextmanager
def previous_step():
    """The gradient step as it was before the fused clip."""
    saved = (agent_common.clip_by_global_norm, agent_common.global_norm)
    agent_common.clip_by_global_norm = optax.clip_by_global_norm
    agent_common.global_norm = optax.global_norm
    try:
        yield
    finally:
        agent_common.clip_by_global_norm, agent_common.global_norm = saved


def build(case: str, seeds: int, updates: int):
    """One timed program of ``case`` (its first, compiling chunk already run)."""
    if case == "ppo":
        return Variant(seeds, updates, 0)
    # the global-norm clip is what is compared, whatever clip the rejax case names
    return TimedCase(EXTRA["pqn_cartpole_rejax"], seeds, updates,
                     overrides=("agent.grad_clip=global_norm",))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=["ppo", "pqn"], choices=["ppo", "pqn"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[8])
    ap.add_argument("--updates", type=int, default=10, help="updates per timed chunk")
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    print(header(), flush=True)
    print("| case | seeds | previous (ms / update) | shipped (ms / update) | shipped / previous "
          "| per round |")
    print("|---|---|---|---|---|---|")
    for case in args.cases:
        for seeds in args.seeds:
            with previous_step():
                old = build(case, seeds, args.updates)
            new = build(case, seeds, args.updates)
            t_old, t_new = [], []
            for i in range(args.repeats):  # alternate, and swap the order every round
                pair = (old, new) if i % 2 == 0 else (new, old)
                for v in pair:
                    (t_old if v is old else t_new).append(v.chunk())
            m_old, m_new = statistics.median(t_old), statistics.median(t_new)
            per = ", ".join(f"{b / a:.2f}" for a, b in zip(t_old, t_new, strict=True))
            print(f"| {case} | {seeds} | {m_old / args.updates * 1e3:.1f} | "
                  f"{m_new / args.updates * 1e3:.1f} | {m_new / m_old:.3f} | {per} |", flush=True)
            del old, new


if __name__ == "__main__":
    main()
