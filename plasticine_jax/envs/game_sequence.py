"""MinAtar games one after another, on one observation and action space.

In the spirit of Abbas et al. (2023, "Loss of plasticity in continual deep reinforcement
learning", sequential Atari): the agent plays game ``games[k]`` during task ``k``.

Shared spaces (the mapping, fixed and documented because agents depend on it):
- **Actions**: every game is built with MinAtar's *full* action set, the six actions
  ``[no-op, left, up, right, down, fire]`` (``use_minimal_action_set=False``), so action
  ``a`` means the same thing in every game; a game ignores the actions it does not use
  (MinAtar treats them as no-ops). The shared space is ``DiscreteActions(6)``, the maximum.
- **Observations**: every game is ``10x10xC_k`` booleans. With ``channels="padded"``
  (default) game ``k``'s channel ``i`` goes to slot ``i`` and the rest are zero, giving
  ``10x10xmax_k C_k`` (10 with Seaquest). With ``channels="disjoint"`` each game owns its
  own block of slots (``10x10x sum_k C_k``), so no two games share an input unit.

At the end of a task the running episode is cut (``truncated=True``, ``final_obs`` from the
old game) and every env starts a fresh episode of the next game.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from plasticine_jax.envs.continual import TaskSchedule
from plasticine_jax.envs.core import DiscreteActions, Environment, EnvSpec, EpisodeStats, StepInfo

MINATAR_GAMES = ("Breakout", "SpaceInvaders", "Freeway", "Asterix", "Seaquest")
CHANNEL_LAYOUTS = ("padded", "disjoint")
NUM_FULL_ACTIONS = 6


class GameSequenceState(NamedTuple):
    games: tuple[Any, ...]  # one batched gymnax state per game, all kept alive
    stats: EpisodeStats
    step_count: jax.Array  # int32 scalar


def _game_id(name: str) -> str:
    return name if name.endswith("-MinAtar") else f"{name}-MinAtar"


class MinAtarGameSequence(Environment):
    """``num_envs`` MinAtar envs whose game changes with the task.

    Args:
      games: MinAtar game names in task order (``"Breakout"`` or ``"Breakout-MinAtar"``);
        task ``k`` plays ``games[k % len(games)]``.
      num_envs: batch size.
      schedule: task count and per-env steps per task.
      channels: ``"padded"`` or ``"disjoint"`` (see module docstring).
    """

    def __init__(
        self,
        games: tuple[str, ...],
        num_envs: int,
        schedule: TaskSchedule,
        channels: str = "padded",
    ):
        from plasticine_jax.envs.gymnax_import import import_gymnax

        gymnax = import_gymnax()

        if channels not in CHANNEL_LAYOUTS:
            raise ValueError(f"channels {channels!r}; choose one of {list(CHANNEL_LAYOUTS)}")
        if not games:
            raise ValueError("game_sequence needs at least one game")
        self._games = tuple(_game_id(g) for g in games)
        self._envs = []
        for gid in self._games:
            env, params = gymnax.make(gid, use_minimal_action_set=False)
            if env.num_actions != NUM_FULL_ACTIONS:
                raise ValueError(f"{gid} has {env.num_actions} actions, expected the full 6")
            self._envs.append((env, params))
        depths = [env.obs_shape[-1] for env, _ in self._envs]
        if channels == "padded":
            self._offsets = [0] * len(depths)
            total = max(depths)
        else:
            self._offsets = [sum(depths[:k]) for k in range(len(depths))]
            total = sum(depths)
        self._depths = depths
        self._total = total
        self._schedule = schedule
        self.spec = EnvSpec(
            name="MinAtar/game_sequence:" + ",".join(g.removesuffix("-MinAtar") for g in games),
            num_envs=num_envs,
            obs_shape=(10, 10, total),
            action_space=DiscreteActions(NUM_FULL_ACTIONS),
            num_tasks=schedule.num_tasks,
            steps_per_task=schedule.steps_per_task,
        )

    def _game_index(self, task: jax.Array) -> jax.Array:
        return task % len(self._envs)

    def _pad(self, game: int, obs: jax.Array) -> jax.Array:
        obs = obs.astype(jnp.float32)
        lo = self._offsets[game]
        hi = self._total - lo - self._depths[game]
        return jnp.pad(obs, [(0, 0)] * (obs.ndim - 1) + [(lo, hi)])

    def _reset_game(self, game: int, key: jax.Array, games: tuple[Any, ...]):
        env, params = self._envs[game]
        keys = jax.random.split(key, self.spec.num_envs)
        obs, fresh = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
        games = games[:game] + (fresh,) + games[game + 1 :]
        return self._pad(game, obs), games

    def _step_game(self, game: int, key, games, action):
        env, params = self._envs[game]
        keys = jax.random.split(key, self.spec.num_envs)
        obs, new, reward, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            keys, games[game], action, params
        )
        games = games[:game] + (new,) + games[game + 1 :]
        final = self._pad(game, info["final_observation"])
        return self._pad(game, obs), games, reward.astype(jnp.float32), term, trunc, final

    def reset(self, key: jax.Array) -> tuple[jax.Array, GameSequenceState]:
        keys = jax.random.split(key, len(self._envs))
        games: tuple[Any, ...] = tuple(
            jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k, self.spec.num_envs), p)[1]
            for k, (env, p) in zip(keys, self._envs, strict=True)
        )
        count = jnp.zeros((), jnp.int32)
        game = self._game_index(self._schedule.task_of(count))
        obs, games = jax.lax.switch(
            game,
            [lambda k, g, i=i: self._reset_game(i, k, g) for i in range(len(self._envs))],
            key,
            games,
        )
        return obs, GameSequenceState(games, EpisodeStats.zeros(self.spec.num_envs), count)

    def step(self, key: jax.Array, state: GameSequenceState, action: jax.Array):
        step_key, reset_key = jax.random.split(key)
        count = state.step_count
        task = self._schedule.task_of(count)
        n_games = len(self._envs)
        obs, games, reward, term, trunc, final = jax.lax.switch(
            self._game_index(task),
            [lambda k, g, a, i=i: self._step_game(i, k, g, a) for i in range(n_games)],
            step_key,
            state.games,
            action,
        )
        term = term.astype(bool)
        trunc = trunc.astype(bool) & ~term
        ends = self._schedule.ends_task(count)

        def next_game(args):
            obs, games = args
            return jax.lax.switch(
                self._game_index(self._schedule.task_of(count + 1)),
                [lambda k, g, i=i: self._reset_game(i, k, g) for i in range(n_games)],
                reset_key,
                games,
            )

        obs, games = jax.lax.cond(ends, next_game, lambda args: args, (obs, games))
        trunc = trunc | (ends & ~term)
        stats, ep_ret, ep_len = state.stats.update(reward, term | trunc)
        n = self.spec.num_envs
        info = StepInfo(
            final_obs=final,
            task_id=jnp.full(n, task, jnp.int32),
            task_switched=jnp.full(n, self._schedule.switched(count)),
            episode_return=ep_ret,
            episode_length=ep_len,
            extras={"game": jnp.full(n, self._game_index(task), jnp.int32)},
        )
        return obs, GameSequenceState(games, stats, count + 1), reward, term, trunc, info
