"""Protocol checks shared by every adapter's tests (and usable on user-written envs)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from plasticine_jax.envs.core import ContinuousActions, DiscreteActions, Environment, StepInfo

# Tests compile many small programs on two CPU cores; XLA's backend optimisations cost more
# time than they save there (Asterix: 24 s -> 11 s to compile).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def jit_fast(fn: Any, *args: Any) -> Any:
    """``jax.jit(fn)(*args)``, compiled with ``FAST_COMPILE`` (for tests and checks)."""
    return jax.jit(fn).lower(*args).compile(FAST_COMPILE)(*args)


def random_actions(env: Environment, key: jax.Array) -> jax.Array:
    """Uniform random actions ``[N, ...]`` for ``env.spec.action_space``."""
    space = env.spec.action_space
    n = env.spec.num_envs
    if isinstance(space, DiscreteActions):
        return jax.random.randint(key, (n,), 0, space.n, jnp.int32)
    assert isinstance(space, ContinuousActions)
    low, high = space.bounds()
    return jax.random.uniform(key, (n, *space.shape), jnp.float32, low, high)


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    next_obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    info: StepInfo


def rollout(env: Environment, key: jax.Array, num_steps: int) -> tuple[Any, Transition]:
    """Random-policy rollout of ``num_steps`` with ``lax.scan``; returns final state and
    the stacked transitions ``[T, N, ...]``. Pure: jit and vmap it."""
    reset_key, key = jax.random.split(key)
    obs, state = env.reset(reset_key)

    def body(carry, k):
        obs, state = carry
        ak, sk = jax.random.split(k)
        action = random_actions(env, ak)
        next_obs, state, reward, term, trunc, info = env.step(sk, state, action)
        return (next_obs, state), Transition(obs, action, next_obs, reward, term, trunc, info)

    (_, state), traj = jax.lax.scan(body, (obs, state), jax.random.split(key, num_steps))
    return state, traj


def assert_protocol(env: Environment, traj: Transition, num_seeds: int, num_steps: int):
    """Asserts shapes, dtypes and invariants of a ``[S, T, N, ...]`` rollout of ``env``;
    returns it as numpy arrays."""
    spec = env.spec
    traj = jax.tree.map(np.asarray, traj)
    lead = (num_seeds, num_steps, spec.num_envs)
    assert traj.obs.shape == lead + spec.obs_shape, (traj.obs.shape, spec.obs_shape)
    assert traj.obs.dtype == np.float32
    assert traj.next_obs.shape == lead + spec.obs_shape
    assert traj.info.final_obs.shape == lead + spec.obs_shape
    assert traj.info.final_obs.dtype == np.float32
    assert traj.reward.shape == lead and traj.reward.dtype == np.float32
    for arr, name in (
        (traj.terminated, "terminated"),
        (traj.truncated, "truncated"),
        (traj.info.task_switched, "task_switched"),
    ):
        assert arr.shape == lead and arr.dtype == np.bool_, name
    assert traj.info.task_id.shape == lead and traj.info.task_id.dtype == np.int32
    assert not np.any(traj.terminated & traj.truncated), "terminated and truncated both set"
    assert np.all(np.isfinite(traj.obs)) and np.all(np.isfinite(traj.reward))
    assert np.all((traj.info.task_id >= 0) & (traj.info.task_id < spec.num_tasks))
    for name, arr in traj.info.extras.items():
        assert arr.shape[:3] == lead, (name, arr.shape)
    assert_episode_metrics(env, traj)
    return traj


def assert_episode_metrics(env: Environment, traj: Transition) -> dict[str, np.ndarray]:
    """Checks ``env``'s episode-metric hooks on a ``[S, T, N, ...]`` rollout: each metric is
    ``[S, T, N]``, finite, zero where no episode ended; the summaries of the per-episode
    means (as the agent computes them) are finite scalars when an episode ended. Returns
    the means and summaries."""
    lead = traj.reward.shape
    # An episode ended where the env reports its length (as the agent counts them); that
    # is a subset of terminated | truncated (Atari's lost lives end no episode).
    done = np.asarray(traj.info.episode_length) > 0
    assert not np.any(done & ~np.asarray(traj.terminated | traj.truncated)), (
        "an episode length is reported at a step that neither terminated nor truncated"
    )
    metrics = jax.vmap(jax.vmap(env.episode_metrics))(traj.info)
    means = {}
    for name, arr in metrics.items():
        arr = np.asarray(arr)
        assert arr.shape == lead, f"episode metric {name!r}: shape {arr.shape}, want {lead}"
        assert np.all(np.isfinite(arr)), f"episode metric {name!r} is not finite"
        assert not np.any(arr[~done]), f"episode metric {name!r} is nonzero where no episode ended"
        means[name] = np.float32(arr.sum() / done.sum()) if done.any() else np.float32(np.nan)
    summary = {k: np.asarray(v) for k, v in env.summarize_episode_metrics(means).items()}
    for name, value in summary.items():
        assert value.shape == (), f"summary metric {name!r}: shape {value.shape}, want ()"
        assert not done.any() or np.isfinite(value), f"summary metric {name!r} is not finite"
    return {**means, **summary}


def check_protocol_with_state(
    env: Environment, num_seeds: int = 2, num_steps: int = 4, seed: int = 0
) -> tuple[Any, Transition]:
    """Runs ``jit(vmap(rollout))`` over ``num_seeds`` seeds, asserts the protocol, and
    returns the final (vmapped) state and the transitions ``[S, T, N, ...]`` (numpy)."""
    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    state, traj = jit_fast(jax.vmap(lambda k: rollout(env, k, num_steps)), keys)
    return state, assert_protocol(env, traj, num_seeds, num_steps)


def check_protocol(env: Environment, num_seeds: int = 2, num_steps: int = 4) -> Transition:
    """``check_protocol_with_state`` without the state."""
    return check_protocol_with_state(env, num_seeds, num_steps)[1]
