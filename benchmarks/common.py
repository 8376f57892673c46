"""Shared pieces of the benchmarks: the environment settings and an interleaved timer.

Timing on a shared CPU drifts (other jobs come and go), so benchmarks that compare two
programs build both, compile each with one chunk, then *alternate* timed chunks between
them and compare median chunk times: a drift in machine load hits both sides alike.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import jax
import yaml

from plasticine_jax.config import load_config
from plasticine_jax.config.schema import MethodConfig
from plasticine_jax.envs.registry import CONFIG_DIR
from plasticine_jax.runner.plan import plan
from plasticine_jax.runner.program import Program

NUM_ENVS, NUM_STEPS = 8, 128


def named_env(name: str, **options: object) -> list[str]:
    """Config overrides selecting ``configs/envs/<name>.yaml``'s backend, id and options
    (``options`` overriding single entries), so a benchmark runs what users run."""
    with open(CONFIG_DIR / f"{name}.yaml") as f:
        env = yaml.safe_load(f)["env"]
    merged = {**env["options"], **options}
    flow = yaml.safe_dump(merged, default_flow_style=True, width=10**6).strip()
    return [f"env.backend={env['backend']}", f"env.id={env['id']}", f"env.options={flow}"]


ENVS = {
    "cartpole": ["env.id=CartPole-v1"],
    "breakout": [
        "env.id=Breakout-MinAtar",
        "agent.num_minibatches=4",
        "agent.network.torso=minatar_cnn",
        "agent.network.hidden_sizes=[128]",
        "agent.network.activation=relu",
        "agent.network.shared_torso=true",
    ],
    # Brax ant (positional pipeline), Gaussian policy, CleanRL's continuous MLP.
    "brax_ant": [*named_env("brax_ant"), "agent.network.hidden_sizes=[64, 64]"],
    # Atari Pong through envpool (standard preprocessing), CleanRL's Atari network.
    "atari_pong": [
        *named_env("atari_pong"),
        "agent.num_minibatches=4",
        "agent.network.torso=atari_cnn",
        "agent.network.hidden_sizes=[512]",
        "agent.network.activation=relu",
        "agent.network.shared_torso=true",
    ],
    # Craftax-Classic, symbolic observations, optimistic resets.
    "craftax_classic": [
        *named_env("craftax_classic_symbolic", reset_ratio=4),
        "agent.network.hidden_sizes=[256, 256]",
        "agent.network.activation=relu",
    ],
}
ENVS["atari_pong_callback"] = [
    *named_env("atari_pong_callback"),
    *ENVS["atari_pong"][3:],  # the same network
]


class Timed:
    """One compiled program (one compile group) and its member states, timed chunk by chunk.

    Args:
      env: a key of ``ENVS``.
      seeds: vmapped seeds.
      updates: PPO updates per chunk.
      metrics_every: ``metrics.every`` (0: plasticity metrics off).
      methods: method names (at their defaults) or ``MethodConfig``s.
      max_chunks: chunks the run is sized for (the program never runs past its budget).
    """

    def __init__(self, env: str, seeds: int, updates: int, metrics_every: int = 0,
                 methods: Sequence[str | MethodConfig] = (), max_chunks: int = 10**6):
        cfg = load_config(
            "configs/cartpole_ppo.yaml",
            [
                *ENVS[env],
                f"env.num_envs={NUM_ENVS}",
                f"agent.num_steps={NUM_STEPS}",
                f"run.num_seeds={seeds}",
                f"run.total_timesteps={updates * NUM_ENVS * NUM_STEPS * max_chunks}",
                f"run.chunk_updates={updates}",
                f"metrics.every={metrics_every}",
                "metrics.probe_size=256",
            ],
        )
        cfg = dataclasses.replace(cfg, methods=tuple(
            m if isinstance(m, MethodConfig) else MethodConfig(name=m) for m in methods))
        (group,) = plan(cfg)
        self.program = Program(group)
        self.states = self.program.init()
        self.start = 0
        self.steps_per_chunk = updates * self.program.steps_per_update * seeds
        self.compile_s = self.chunk()  # first chunk: compile + run

    def chunk(self) -> float:
        """Runs one more chunk; returns its wall time in seconds."""
        jax.block_until_ready(self.states)
        t0 = time.perf_counter()
        self.states, _ = self.program.run_chunk(self.states, self.start)
        jax.block_until_ready(self.states)
        self.start += self.program.chunk
        return time.perf_counter() - t0


def interleave(a: Timed, b: Timed, repeats: int) -> tuple[list[float], list[float]]:
    """Alternates ``repeats`` timed chunks of ``a`` and ``b``; returns both lists of times."""
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(a.chunk())
        tb.append(b.chunk())
    return ta, tb


def header() -> str:
    import platform

    dev = jax.devices()[0]
    return f"# {platform.node()} · {dev.platform} {dev.device_kind} · jax {jax.__version__}"
