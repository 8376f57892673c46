"""The on-device replay buffer of the value-based agents, with n-step targets.

rlax style: every function works on ONE member's buffer (a ``NamedTuple`` of arrays that
lives in the ``lax.scan`` carry); the runner ``vmap``s over members. Capacity, batch size and
``n_step`` are static; ``gamma`` may be traced.

Layout. Rows in time, one column per env: each field is ``[T, N, ...]`` with
``T = capacity // num_envs`` rows, written circularly at ``pos``. Row ``t`` of column ``e``
holds ``s_t`` (the observation action ``a_t`` was taken in), ``a_t``, ``r_t`` and whether the
episode ended at that step by termination or truncation. Each observation is stored once:
``s_{t+1}`` is the observation in row ``t+1`` of the same column. After an episode end at row
``k`` (the env reset automatically), row ``k+1`` holds the *next* episode's first observation,
so a target never bootstraps across row ``k``; the episode's final observation after a
time-limit truncation is not stored at all (storing it would double the memory).

n-step targets (``sample``), with ``m <= n`` the steps a target uses:
``reward = sum_{j<m} gamma^j r_{t+j}``, ``discount = gamma^m`` (0 if the window ended by
termination), ``next_obs = s_{t+m}``. The walk over rows ``t+j`` stops

- after a termination at ``t+j``: ``m = j+1``, no bootstrap;
- before a truncation at ``t+j`` with ``j > 0``: ``m = j``, bootstrap from ``s_{t+j}``, the
  episode's last stored observation (a shorter target, still unbiased);
- a start row that is itself truncated cannot form a target (its successor observation is
  not stored, and a truncation is never treated as a termination): ``weight = 0``.

Rows whose action the env ignored (envpool's deferred resets, ``valid = False``) get weight
0 as start rows.

Samples cost O(batch * n_step): start rows are drawn uniformly among the rows whose ``n``
successors are already written and read with gathers; nothing touches the whole buffer.

Why our own buffer, not flashbax. flashbax 0.1.3 installs beside jax 0.9.2 (in its own
venv; it is not a dependency) and vmaps over members; its flat/trajectory buffer stores
each observation once too, in the same bytes, and samples in O(batch) too. It returns raw
``[B, n+1]`` sequences, though: the truncation-aware n-step target above (stop before a
mid-window truncation, weight 0 for a truncated or ignored start row) would be written on
top of it anyway, gathering all ``n+1`` observations where we gather two. Its env-major
``[N, T]`` layout makes each per-step ``add`` a strided write; our ``[T, N]`` rows are
contiguous. ``benchmarks/replay.py`` measured on the 2-core CPU VM (``benchmarks/RESULTS.md``):
``add`` 4.6x to 6.5x faster here, one-step ``sample`` 1.04x to 1.14x, 3-step ``sample``
1.33x to 1.37x (flashbax's raw sequences, before any n-step target is computed on them),
memory equal.

Memory (``buffer_bytes``): a 1e5-transition Breakout-MinAtar buffer (obs ``10x10x4`` stored
as uint8, int32 action, float32 reward, three bool flags: 411 bytes a transition) is 41.1 MB
per member, 1.32 GB for 32 members. The naive layout, float32 obs and next_obs both (3,210
bytes a transition), would be 321.0 MB per member, 10.3 GB for 32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class ReplayBuffer(NamedTuple):
    """One member's circular buffer; ``T = capacity // num_envs`` rows of ``N`` envs.

    Attributes:
      obs: ``[T, N, *obs_shape]`` in the storage dtype (see ``obs_storage_dtype``).
      action: ``[T, N, *action_shape]``.
      reward: ``[T, N]`` float32.
      terminated: ``[T, N]`` bool, the MDP ended at this step.
      truncated: ``[T, N]`` bool, a time limit cut the episode at this step.
      valid: ``[T, N]`` bool, False where the env ignored the action (deferred reset).
      pos: int32 scalar, the next row to write.
      size: int32 scalar, rows written so far, capped at ``T``.
    """

    obs: Array
    action: Array
    reward: Array
    terminated: Array
    truncated: Array
    valid: Array
    pos: Array
    size: Array


class NStepBatch(NamedTuple):
    """``B`` sampled n-step transitions.

    Attributes:
      obs: ``[B, *obs_shape]`` float32, ``s_t``.
      action: ``[B, *action_shape]``, ``a_t``.
      reward: ``[B]`` float32, ``sum_{j<m} gamma^j r_{t+j}``.
      discount: ``[B]`` float32, ``gamma^m`` where the target bootstraps, else 0.
      next_obs: ``[B, *obs_shape]`` float32, ``s_{t+m}``.
      weight: ``[B]`` float32, 1.0, or 0.0 where the sample cannot form a target.
    """

    obs: Array
    action: Array
    reward: Array
    discount: Array
    next_obs: Array
    weight: Array


def obs_storage_dtype(
    obs_dtype: Any,
    low: float | np.ndarray,
    high: float | np.ndarray,
    integer_valued: bool = False,
) -> jnp.dtype:
    """The dtype a buffer stores observations in: the smallest one that is exact.

    uint8 when every observation is an integer in ``[0, 255]`` (bool or integer dtypes, or
    float observations the caller knows are integer-valued), the env's own integer dtype for
    wider integer ranges, float32 otherwise. The env adapters all return float32, so
    integer-valuedness is a fact about the env the agent passes in: gymnax's MinAtar games
    (``*-MinAtar``) return 0/1 float32 grids with ``Box(0, 1)`` bounds, so
    ``obs_storage_dtype(jnp.float32, 0, 1, integer_valued=True)`` is uint8, 4x smaller and
    exact; a float ``Box(0, 1)`` that is not known to be integer-valued stays float32.

    Args:
      obs_dtype: dtype of the env's observations.
      low: lower bound of the observation space (scalar or array).
      high: upper bound of the observation space (scalar or array).
      integer_valued: float observations take integer values only.

    Returns:
      The storage dtype.
    """
    dtype = jnp.dtype(obs_dtype)
    integral = integer_valued or dtype == jnp.bool_ or jnp.issubdtype(dtype, jnp.integer)
    if integral and float(np.min(low)) >= 0 and float(np.max(high)) <= 255:
        return jnp.dtype(jnp.uint8)
    if jnp.issubdtype(dtype, jnp.integer):
        return dtype
    return jnp.dtype(jnp.float32)


def init_buffer(
    capacity: int,
    num_envs: int,
    obs_shape: Sequence[int],
    obs_dtype: Any,
    action_shape: Sequence[int] = (),
    action_dtype: Any = jnp.int32,
) -> ReplayBuffer:
    """An empty buffer of ``capacity`` transitions for ``num_envs`` envs.

    Args:
      capacity: transitions held; a multiple of ``num_envs``.
      num_envs: envs stepped together (the buffer's columns).
      obs_shape: shape of one observation.
      obs_dtype: storage dtype of observations (``obs_storage_dtype``).
      action_shape: shape of one action, ``()`` for discrete actions.
      action_dtype: dtype of actions.

    Returns:
      A ``ReplayBuffer`` with ``T = capacity // num_envs`` rows, ``pos = size = 0``.
    """
    if num_envs < 1 or capacity < num_envs or capacity % num_envs:
        raise ValueError(
            f"replay capacity {capacity} must be a positive multiple of num_envs {num_envs}"
        )
    rows = capacity // num_envs
    flags = jnp.zeros((rows, num_envs), bool)
    return ReplayBuffer(
        obs=jnp.zeros((rows, num_envs, *obs_shape), obs_dtype),
        action=jnp.zeros((rows, num_envs, *action_shape), action_dtype),
        reward=jnp.zeros((rows, num_envs), jnp.float32),
        terminated=flags,
        truncated=flags,
        valid=flags,
        pos=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def add(
    buf: ReplayBuffer,
    obs: Array,
    action: Array,
    reward: Array,
    terminated: Array,
    truncated: Array,
    valid: Array | None = None,
) -> ReplayBuffer:
    """Writes one step of all envs as row ``pos``. O(N).

    Args:
      buf: the buffer.
      obs: ``[N, *obs_shape]``, the observations ``s_t`` the actions were taken in.
      action: ``[N, *action_shape]``, ``a_t``.
      reward: ``[N]``, ``r_t``.
      terminated: ``[N]`` bool, the episode terminated at this step.
      truncated: ``[N]`` bool, the episode was truncated at this step.
      valid: ``[N]`` bool, False where the env ignored the action; None: all True.

    Returns:
      The buffer with the row written, ``pos`` advanced and ``size`` grown (capped at T).
    """
    expand = lambda x: None if x is None else x[None]
    return add_rows(
        buf, expand(obs), expand(action), expand(reward), expand(terminated),
        expand(truncated), expand(valid),
    )  # fmt: skip


def add_rows(
    buf: ReplayBuffer,
    obs: Array,
    action: Array,
    reward: Array,
    terminated: Array,
    truncated: Array,
    valid: Array | None = None,
) -> ReplayBuffer:
    """Writes ``K`` consecutive steps (a rollout) at rows ``pos, pos+1, ...`` (mod T). O(K·N).

    Args:
      buf: the buffer.
      obs: ``[K, N, *obs_shape]``.
      action: ``[K, N, *action_shape]``.
      reward: ``[K, N]``.
      terminated: ``[K, N]`` bool.
      truncated: ``[K, N]`` bool.
      valid: ``[K, N]`` bool or None (all True).

    Returns:
      The buffer with the rows written. If ``K > T`` only the last ``T`` rows are kept, as
      if the rows had been added one at a time.
    """
    num_rows, num_envs = buf.reward.shape
    if valid is None:
        valid = jnp.ones(reward.shape, bool)
    k = reward.shape[0]
    chex.assert_shape([reward, terminated, truncated, valid], (k, num_envs))
    chex.assert_shape(obs, (k, num_envs, *buf.obs.shape[2:]))
    chex.assert_shape(action, (k, num_envs, *buf.action.shape[2:]))
    fields = (obs, action, reward, terminated, truncated, valid)
    skipped = max(k - num_rows, 0)
    # Rows older than the last T would be overwritten within this call: drop them (a
    # scatter with repeated indices would leave unspecified which write wins).
    rows = (buf.pos + skipped + jnp.arange(k - skipped, dtype=jnp.int32)) % num_rows
    stored = tuple(
        old.at[rows].set(new[skipped:].astype(old.dtype), unique_indices=True)
        for old, new in zip(buf[:6], fields, strict=True)
    )
    return ReplayBuffer(
        *stored,
        pos=((buf.pos + k) % num_rows).astype(jnp.int32),
        size=jnp.minimum(buf.size + k, num_rows).astype(jnp.int32),
    )


def can_sample(buf: ReplayBuffer, n_step: int) -> Array:
    """Bool scalar: at least one row has its ``n_step`` successor rows written."""
    return buf.size > n_step


def sample(
    buf: ReplayBuffer,
    key: Array,
    batch_size: int,
    n_step: int,
    gamma: Array | float,
) -> NStepBatch:
    """Draws ``batch_size`` n-step transitions uniformly from the startable rows. O(B·n).

    A start row is drawn uniformly among the ``size - n_step`` oldest written rows (those
    whose ``n_step`` successors are written) and an env column uniformly in ``[0, N)``; the
    target then walks rows ``t .. t+n_step-1`` of that column as the module docstring says.
    Sampling before ``can_sample`` returns weight 0 everywhere.

    Args:
      buf: the buffer.
      key: PRNG key.
      batch_size: ``B`` (static).
      n_step: ``n`` (static), 1 for one-step TD targets; ``1 <= n < T``.
      gamma: discount (scalar, may be traced).

    Returns:
      An ``NStepBatch`` of ``B`` transitions.
    """
    num_rows, num_envs = buf.reward.shape
    if not 1 <= n_step < num_rows:
        raise ValueError(f"n_step {n_step} must be in [1, {num_rows}) (the buffer's rows)")
    chex.assert_rank([buf.pos, buf.size], 0)
    row_key, col_key = jax.random.split(key)
    oldest = (buf.pos - buf.size) % num_rows
    # randint(0, hi) with hi <= 0 returns 0: harmless, such samples get weight 0 below.
    u = jax.random.randint(row_key, (batch_size,), 0, buf.size - n_step)
    col = jax.random.randint(col_key, (batch_size,), 0, num_envs)
    j = jnp.arange(n_step)
    rows = (oldest + u[:, None] + jnp.arange(n_step + 1)) % num_rows  # [B, n+1]
    win, c = rows[:, :n_step], col[:, None]
    r = buf.reward[win, c]  # [B, n]
    term = buf.terminated[win, c]
    trunc = buf.truncated[win, c] & ~term  # a step that terminated did not need its limit
    ok = buf.valid[win, c]

    # inc[:, j]: step j adds its reward. It stops after a termination at j' < j, and at a
    # truncation at 0 < j' <= j (the start row's own truncation does not cut the window:
    # that sample is weighted out instead).
    no_term_before = jnp.cumprod(jnp.pad(~term[:, :-1], ((0, 0), (1, 0)), constant_values=True),
                                 axis=1, dtype=jnp.int32)  # fmt: skip
    cut = trunc & (j > 0)
    no_cut_yet = jnp.cumprod(~cut, axis=1, dtype=jnp.int32)
    inc = (no_term_before * no_cut_yet).astype(bool)  # [B, n], inc[:, 0] is True
    m = jnp.sum(inc, axis=1)  # [B] in [1, n]

    powers = jnp.asarray(gamma, jnp.float32) ** jnp.arange(n_step + 1, dtype=jnp.float32)
    reward = jnp.sum(jnp.where(inc, powers[:n_step] * r, 0.0), axis=1)
    terminal = jnp.any(inc & term, axis=1)
    discount = jnp.where(terminal, 0.0, powers[m])

    # Invalid rows follow an episode end (the env ignored the action while restarting), and
    # the walk stops at every episode end, so only a start row can be invalid in a used
    # window; the all() over the window is a guard, not a case we expect.
    usable = ~(trunc[:, 0]) & jnp.all(ok | ~inc, axis=1) & can_sample(buf, n_step)
    next_row = jnp.take_along_axis(rows, m[:, None], axis=1)[:, 0]
    # One gather for s_t and s_{t+m} together: ~15% faster on CPU than two.
    pair = jnp.stack([rows[:, 0], next_row], axis=1)  # [B, 2]
    obs_pair = buf.obs[pair, c].astype(jnp.float32)  # [B, 2, *obs_shape]
    return NStepBatch(
        obs=obs_pair[:, 0],
        action=buf.action[rows[:, 0], col],
        reward=reward,
        discount=discount,
        next_obs=obs_pair[:, 1],
        weight=usable.astype(jnp.float32),
    )


def buffer_bytes(buf: Any) -> int:
    """Bytes held by a buffer's arrays; works on ``jax.eval_shape`` output too."""
    return int(
        sum(
            int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize
            for x in jax.tree_util.tree_leaves(buf)
        )
    )
