"""Shared fixtures: tiny configs and compiled programs reused across tests."""

from __future__ import annotations

import os
from pathlib import Path

# Tests see one CPU device unless a test asks for more in a subprocess. Tests compile many
# small programs and run each for a few updates, so compile time dominates: XLA's backend
# optimisation level 0 halves it on this machine, and XLA:CPU's older (non-MLIR) fusion
# emitters compile in about half the time again on Brax's pipelines, a third less on PPO
# programs (numerics are unchanged in kind; long runs such as the learning test go through a
# subprocess with the default settings). XLA aborts on flags it does not know: if a jaxlib
# upgrade drops one of these, drop it here.
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_cpu_multi_thread_eigen=false --xla_backend_optimization_level=0"
    " --xla_cpu_use_fusion_emitters=false",
)
os.environ.setdefault("WANDB_SILENT", "true")
# Many tests build the same small programs again (a run and its resumed copy, a config and
# its shrunk twin): JAX's persistent compilation cache serves the second compile from disk
# (measured: a tiny PPO chunk's first call 82 s -> 34 s on a loaded 2-core machine, results
# bit-identical). Keyed by the program, the flags and jaxlib, so a stale entry never serves.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "xla")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402
import pytest  # noqa: E402

# In case a plugin imported jax before the variables above were set.
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)

from plasticine_jax.config import load_config  # noqa: E402


def tiny(**sections):
    """A CartPole config small enough to compile in seconds (4 envs x 16 steps)."""
    data = {
        "name": "tiny",
        "env": {"backend": "gymnax", "id": "CartPole-v1", "num_envs": 4},
        "agent": {
            "num_steps": 16,
            "num_minibatches": 2,
            "update_epochs": 2,
            "network": {"hidden_sizes": [16, 16]},
        },
        "metrics": {"every": 2, "probe_size": 32},
        "run": {"total_timesteps": 4 * 16 * 4, "num_seeds": 2, "chunk_updates": 2,
                "progress": False},
    }
    for k, v in sections.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return data


def one_minibatch(agent, advantage=(-1.0, 1.0), ret=1.0):
    """A copy of a CartPole PPO ``agent`` that learns one epoch of one fixed minibatch of 6,
    and that batch (``agent._learn(learner, batch, hp, key)`` is then one optimizer step)."""
    import copy
    import dataclasses

    import jax.numpy as jnp

    agent = copy.copy(agent)
    agent.batch_size = agent.minibatch_size = 6
    one = dataclasses.replace(agent.cfg.agent, num_minibatches=1, update_epochs=1)
    agent.cfg = dataclasses.replace(agent.cfg, agent=one)
    batch = {
        "obs": jnp.linspace(-1, 1, 6 * 4).reshape(6, 4),
        "action": jnp.array([0, 1, 0, 1, 1, 0]),
        "log_prob": jnp.full(6, -0.69),
        "value": jnp.zeros(6),
        "advantage": jnp.linspace(*advantage, 6),
        "return": jnp.full(6, ret),
    }
    return agent, batch


@pytest.fixture
def tiny_config():
    return lambda **kw: load_config(data=tiny(**kw))
