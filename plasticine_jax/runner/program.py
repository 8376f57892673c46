"""One compile group -> its compiled functions: ``init`` over members and ``run_chunk``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from plasticine_jax.agents.ppo import PPO, TrainState
from plasticine_jax.config.load import chunk_updates
from plasticine_jax.envs.registry import make_env
from plasticine_jax.runner.plan import CompileGroup


class Program:
    """The compiled program of one group: every member advances in lock-step.

    ``run_chunk(states, start)`` is ``lax.scan`` over ``chunk`` updates whose body vmaps
    ``PPO.update`` over the member axis, with the update index unbatched. Member states are
    sharded over all local devices when the member count divides evenly.

    """

    def __init__(self, group: CompileGroup):
        cfg = group.cfg
        env = make_env(
            cfg.env.backend,
            cfg.env.id,
            cfg.env.num_envs,
            cfg.env.options,
            cfg.env.scenario,
            cfg.env.scenario_options,
        )
        self.group = group
        self.agent = PPO(cfg, env, group.methods)
        self.chunk = chunk_updates(cfg)
        self.num_updates = self.agent.num_updates
        self.steps_per_update = cfg.env.num_envs * cfg.agent.num_steps
        self.sharding = _member_sharding(len(group.members))
        self._run_chunk = jax.jit(self._chunk, donate_argnums=0)
        self._init = jax.jit(jax.vmap(self.agent.init))

    @property
    def compiles(self) -> int:
        """Programs compiled for ``run_chunk`` so far (one per distinct input structure)."""
        return self._run_chunk._cache_size()

    def metric_names(self) -> list[str]:
        """Names of the per-update scalars, found by tracing only (nothing compiled)."""
        states = jax.eval_shape(self._init, self._keys(), self.group.hp)
        _, out = jax.eval_shape(self._chunk, states, jnp.int32(0))
        return sorted(out)

    def _keys(self) -> jax.Array:
        return jnp.stack([jax.random.PRNGKey(m.seed) for m in self.group.members])

    def init(self) -> TrainState:
        hp = self.group.hp
        keys = self._keys()
        if self.sharding is not None:
            keys, hp = jax.device_put((keys, hp), self.sharding)
        return self._init(keys, hp)

    def _chunk(self, states: TrainState, start: jax.Array) -> tuple[TrainState, dict[str, Any]]:
        update = jax.vmap(self.agent.update, in_axes=(0, None))

        def body(states, i):
            return update(states, start + i)

        return jax.lax.scan(body, states, jnp.arange(self.chunk, dtype=jnp.int32))

    def run_chunk(self, states: TrainState, start: int) -> tuple[TrainState, dict[str, np.ndarray]]:
        """Advances every member by ``chunk`` updates; metrics come back ``[chunk, M]``."""
        states, out = self._run_chunk(states, jnp.int32(start))
        return states, jax.tree.map(np.asarray, out)


def _member_sharding(num_members: int) -> NamedSharding | None:
    devices = jax.devices()
    if len(devices) < 2 or num_members % len(devices):
        return None
    mesh = Mesh(np.asarray(devices), ("members",))
    return NamedSharding(mesh, PartitionSpec("members"))
