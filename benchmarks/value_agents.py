"""Value-based agents' throughput and memory: DQN and PQN on CartPole-v1 and Breakout-MinAtar.

    python benchmarks/value_agents.py [--cases dqn_cartpole pqn_cartpole dqn_breakout
                                               pqn_breakout] [--seeds 1 8 32] [--repeats 3]
                                      [--updates N]

Each case is a shipped config with the settings it is compared at (``CASES``). For each case
and seed count it builds two programs, metrics off and metrics on (every 10 updates), times
the first chunk of each (compile + run; the compile column is first chunk - median chunk,
the compile of ``run_chunk`` alone: ``init``, which holds DQN's prefill, is compiled and run
before it and not counted), then alternates ``--repeats`` timed chunks between them
(``benchmarks.common``) and reports median env steps/s summed over seeds, without the
prefill. Evaluation is off (``eval.every=0``) so that every chunk does the same work.

Compile times are real compiles: the package's persistent compilation cache is turned off
(``PLASTICINE_JAX_CACHE_DIR=off``) unless ``--cache`` is given.

Memory per member, from ``jax.eval_shape`` of the program's ``init`` (nothing allocated):
the replay buffer (``agents.replay.buffer_bytes``) and the whole member state (parameters,
optimizer state, target network, buffer, env state), each divided by the member count.
Prints a markdown table; copy it into benchmarks/RESULTS.md with the machine and the date.

``--profile`` (DQN cases) says where an update's time goes instead: the case as configured,
without the divergence guard (``guard_cost.bare``), with one gradient step per update, and
with a buffer a tenth of the size, their timed chunks alternated round-robin.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timed, header, interleave  # noqa: E402
from guard_cost import bare  # noqa: E402

from plasticine_jax.agents.replay import buffer_bytes  # noqa: E402
from plasticine_jax.config import load_config  # noqa: E402
from plasticine_jax.runner.plan import plan  # noqa: E402
from plasticine_jax.runner.program import Program  # noqa: E402

# rejax's tuned CartPole DQN (keraJLi/rejax configs/gymnax/cartpole.yaml, `dqn:`) on our keys:
#   agent DuelingQNetwork, swish      -> agent.dueling=true, activation=silu, hidden [64, 64]
#   num_envs 10, one step a iteration -> env.num_envs=10, agent.num_steps=1
#   num_epochs 5 (grad steps / iter.) -> agent.replay_ratio=0.5 (5 per 10 env steps)
#   buffer_size 50000, fill_buffer 5000, batch_size 100 -> buffer_size, learning_starts,
#                                                          batch_size
#   polyak 0.98 every iteration       -> agent.hp.tau=0.02, agent.hp.target_every=10
#   ddqn true                         -> agent.double=true
#   learning_rate 1e-3 on optax.l2_loss (0.5 td^2) -> agent.hp.lr=1e-3 on our mse (td^2):
#       Adam's step does not change when the loss is scaled (up to its eps), so the rates are
#       the same, not halved
#   max_grad_norm 10 (rejax: optax.clip, each gradient entry to [-10, 10]) -> clip_grad_norm
#       with max_grad_norm=10 and grad_clip=elementwise (optax.clip too)
#   eps 1 -> 0.05 over half of the run, gamma 0.99, 1e5 steps -> the same keys
REJAX_DQN_CARTPOLE = [
    "env.num_envs=10", "agent.num_steps=1", "agent.replay_ratio=0.5", "agent.batch_size=100",
    "agent.buffer_size=50000", "agent.learning_starts=5000", "agent.double=true",
    "agent.dueling=true", "agent.clip_grad_norm=true", "agent.grad_clip=elementwise",
    "agent.network.hidden_sizes=[64, 64]",
    "agent.network.activation=silu", "agent.hp.lr=1e-3", "agent.hp.tau=0.02",
    "agent.hp.target_every=10", "agent.hp.max_grad_norm=10", "agent.hp.eps_end=0.05",
    "agent.hp.exploration_fraction=0.5", "run.total_timesteps=100000", "metrics.probe_size=100",
]  # fmt: skip
# (The shipped probe of 128 observations exceeds rejax's batch of 100.)

# rejax's tuned CartPole PQN (the same file, `pqn:`) on our keys:
#   num_envs 16, num_steps 128              -> env.num_envs=16, agent.num_steps=128
#   num_minibatches 16, num_epochs 5        -> agent.num_minibatches=16, agent.update_epochs=5
#   learning_rate 3e-4, constant, Adam      -> agent.hp.lr=3e-4, agent.anneal_lr=false,
#                                              agent.optimizer=adam (our default: RAdam)
#   optax.l2_loss (0.5 td^2)                -> ours is 0.5 td^2 too
#   eps 1 -> 0.05 over half the env steps   -> eps_end=0.05, exploration_fraction=0.5 (of the
#                                              updates: the same points)
#   td_lambda 0.9, gamma 0.99               -> agent.hp.q_lambda=0.9, gamma
#   no reward scaling                       -> agent.hp.reward_scale=1.0 (ours: 0.1)
#   DiscreteQNetwork (64, 64), Dense -> LayerNorm -> ReLU -> hidden_sizes=[64, 64],
#                                              activation=relu, norm=layernorm (named: an
#                                              agent.network.* override replaces the PQN
#                                              network defaults with NetworkConfig's, tanh
#                                              and no norm)
#   max_grad_norm 10, rejax's element-wise optax.clip -> agent.hp.max_grad_norm=10,
#                                              agent.grad_clip=elementwise (our default: the
#                                              global norm, as purejaxql)
# Cannot match: rejax ends the lambda trace and bootstraps nothing at a time-limit truncation, ours
# bootstraps from the final observation (one more forward pass a step on each side: rejax's
# next_q, our q_final); initialisation (flax's lecun-normal there, orthogonal here).
REJAX_PQN_CARTPOLE = [
    "agent={name: pqn}", "env.num_envs=16", "agent.num_steps=128",
    "agent.num_minibatches=16", "agent.update_epochs=5", "agent.anneal_lr=false",
    "agent.optimizer=adam", "agent.network.hidden_sizes=[64, 64]",
    "agent.network.activation=relu", "agent.network.norm=layernorm", "agent.hp.lr=3e-4",
    "agent.hp.eps_start=1.0", "agent.hp.eps_end=0.05", "agent.hp.exploration_fraction=0.5",
    "agent.hp.gamma=0.99", "agent.hp.q_lambda=0.9", "agent.hp.reward_scale=1.0",
    "agent.hp.max_grad_norm=10", "agent.grad_clip=elementwise", "run.total_timesteps=524288",
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Case:
    """A shipped config with the overrides it is measured at.

    Attributes:
      config: the YAML under ``configs/``.
      overrides: ``key=value`` overrides.
      env_id: the group to take when the config sweeps over games.
      updates: default updates per timed chunk (a multiple of 10: metrics every 10).
    """

    config: str
    overrides: tuple[str, ...]
    env_id: str
    updates: int


CASES = {
    # DQN CartPole at rejax's tuned settings, so the table matches value_vs_rejax.py.
    # (The shipped probe of 128 observations exceeds rejax's batch of 100.)
    "dqn_cartpole": Case("configs/dqn_cartpole.yaml", tuple(REJAX_DQN_CARTPOLE), "CartPole-v1",
                         500),
    # PQN CartPole as purejaxql's pqn_cartpole.yaml: the agent's defaults (16 minibatches x
    # 4 epochs, 256-256 LayerNorm ReLU, RAdam 1e-4) with 32 envs x 64 steps, 5e5 steps.
    "pqn_cartpole": Case("configs/dqn_cartpole.yaml",
                         ("agent={name: pqn}", "env.num_envs=32", "agent.num_steps=64",
                          "run.total_timesteps=500000"), "CartPole-v1", 10),
    "dqn_breakout": Case("configs/dqn_minatar_breakout.yaml", (), "Breakout-MinAtar", 500),
    # configs/pqn_minatar.yaml sweeps the five games; its Breakout group.
    "pqn_breakout": Case("configs/pqn_minatar.yaml", (), "Breakout-MinAtar", 10),
}
# PQN at rejax's tuned CartPole settings (value_vs_rejax.py), for --profile.
EXTRA = {"pqn_cartpole_rejax": Case("configs/dqn_cartpole.yaml", tuple(REJAX_PQN_CARTPOLE),
                                    "CartPole-v1", 10)}
NAMES = {"cartpole": "CartPole-v1", "breakout": "Breakout-MinAtar"}


def build_group(case: Case, overrides: list[str]):
    """The compile group of ``case`` (its ``env_id`` group if the config sweeps)."""
    cfg = load_config(case.config, [*case.overrides, *overrides])
    groups = [g for g in plan(cfg) if g.cfg.env.id == case.env_id]
    if len(groups) != 1:
        raise ValueError(f"{case.config}: {len(groups)} groups for {case.env_id}")
    return groups[0]


class TimedCase(Timed):
    """``common.Timed`` for a shipped value-based config: one program, timed chunk by chunk.

    Args:
      case: a ``Case``.
      seeds: vmapped seeds.
      updates: updates per chunk.
      metrics_every: ``metrics.every`` (0: plasticity metrics off).
    """

    def __init__(self, case: Case, seeds: int, updates: int, metrics_every: int = 0,
                 overrides: tuple[str, ...] = ()):
        group = build_group(case, [
            f"run.num_seeds={seeds}", f"run.chunk_updates={updates}",
            f"metrics.every={metrics_every}", "eval.every=0", *overrides,
        ])  # fmt: skip
        self.program = Program(group)
        if self.program.num_updates < 4 * updates:
            raise ValueError(f"{self.program.num_updates} updates in the run, chunks of {updates}")
        t0 = time.perf_counter()
        self.states = jax.block_until_ready(self.program.init())
        self.init_s = time.perf_counter() - t0  # compile + run of init (DQN: the prefill)
        self.start = 0
        self.steps_per_chunk = updates * self.program.steps_per_update * seeds
        self.compile_s = self.chunk()  # first chunk: compile + run


def member_bytes(program: Program) -> tuple[float, float]:
    """``(buffer, whole state)`` bytes per member, from ``jax.eval_shape`` of ``init``."""
    members = program.init_shapes().members
    m = len(program.group.members)
    buffer = getattr(members, "buffer", None)
    buf = buffer_bytes(buffer) / m if buffer is not None else 0.0
    return buf, buffer_bytes(members) / m


def profile(name: str, seeds: int, updates: int, repeats: int) -> None:
    """Where an update's time goes: variants of ``name`` (metrics off), their timed chunks
    alternated round-robin; median ms per update and time relative to the shipped program.
    Variants: the guard removed (``guard_cost.bare``); for DQN also one gradient step per
    update instead of ``replay_ratio * num_envs * num_steps``, and a buffer a tenth of the
    size; for PQN one epoch instead of ``update_epochs`` (the rollout and one pass)."""
    case = {**CASES, **EXTRA}[name]
    a = build_group(case, ["metrics.every=0"]).cfg.agent
    spu = build_group(case, ["metrics.every=0"]).cfg.env.num_envs * a.num_steps
    variants = {
        "as configured": TimedCase(case, seeds, updates),
        "no guard": bare(TimedCase(case, seeds, updates)),
    }
    if a.name == "pqn":
        variants["one epoch"] = TimedCase(case, seeds, updates,
                                          overrides=("agent.update_epochs=1",))
        variants["no guard, one epoch"] = bare(TimedCase(
            case, seeds, updates, overrides=("agent.update_epochs=1",)))
    else:
        if round(a.replay_ratio * spu) > 1:
            variants["one gradient step / update"] = TimedCase(
                case, seeds, updates, overrides=(f"agent.replay_ratio={1 / spu}",)
            )
        small = (f"agent.buffer_size={a.buffer_size // 10}",)
        variants |= {
            "buffer / 10": TimedCase(case, seeds, updates, overrides=small),
            "no guard, buffer / 10": bare(TimedCase(case, seeds, updates, overrides=small)),
        }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, t in variants.items():
            times[k].append(t.chunk())
    base = statistics.median(times["as configured"])
    print(f"\n{name}, {seeds} seeds, {updates} updates a chunk, {repeats} rounds, metrics off")
    print("| variant | gradient steps / update | ms / update | env steps/s | "
          "time vs as configured |")
    print("|---|---|---|---|---|")
    for k, t in variants.items():
        m = statistics.median(times[k])
        grad_steps = getattr(t.program.agent, "grad_steps", None)
        if grad_steps is None:  # PQN: epochs x minibatches
            grad_steps = t.program.group.cfg.agent.update_epochs * a.num_minibatches
        print(f"| {k} | {grad_steps} | {1e3 * m / updates:.2f} | "
              f"{t.steps_per_chunk / m:,.0f} | {m / base:.2f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=[*CASES, *EXTRA])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--updates", type=int, default=0, help="updates per chunk; 0: the case's")
    p.add_argument("--cache", action="store_true",
                   help="keep JAX's persistent compilation cache on (default: off, so the "
                        "compile column is a real compile, not a cache hit)")
    p.add_argument("--profile", action="store_true",
                   help="DQN cases: time variants (no guard, one gradient step, smaller buffer)")
    args = p.parse_args()
    if not args.cache:
        os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
        os.environ["PLASTICINE_JAX_CACHE_DIR"] = "off"
    if args.profile:
        print(header())
        for name in args.cases:
            for seeds in args.seeds:
                profile(name, seeds, args.updates or {**CASES, **EXTRA}[name].updates, args.repeats)
        return
    if args.updates % 10:
        p.error("--updates must be a multiple of 10 (metrics run every 10 updates)")
    print(header())
    print("| agent | env | seeds | updates / chunk | compile off / on (s) | init (s) | "
          "env steps/s, metrics off | env steps/s, metrics every 10 | metrics cost | "
          "buffer MB / member | state MB / member |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.cases:
        case = CASES[name]
        updates = args.updates or case.updates
        agent, env = name.split("_")
        for seeds in args.seeds:
            off = TimedCase(case, seeds, updates, metrics_every=0)
            on = TimedCase(case, seeds, updates, metrics_every=10)
            t_off, t_on = interleave(off, on, args.repeats)
            m_off, m_on = statistics.median(t_off), statistics.median(t_on)
            buf, state = member_bytes(off.program)
            print(
                f"| {agent.upper()} | {NAMES[env]} | {seeds} | {updates} | "
                f"{off.compile_s - m_off:.1f} / {on.compile_s - m_on:.1f} | {off.init_s:.1f} | "
                f"{off.steps_per_chunk / m_off:,.0f} | {on.steps_per_chunk / m_on:,.0f} | "
                f"{1 - m_off / m_on:+.1%} | {buf / 1e6:.2f} | {state / 1e6:.2f} |",
                flush=True,
            )
            del off, on


if __name__ == "__main__":
    main()
