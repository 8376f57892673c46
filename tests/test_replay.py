"""The replay buffer against plain Python references: n-step targets, wrap-around, uniform
sampling of startable rows only, vmap over members, exact obs storage, O(batch) sampling."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plasticine_jax.agents import replay as R

T, N = 8, 3  # rows, env columns


def nstep_loop(buf, t, c, n, gamma):
    """Reference: the n-step target of start row ``t``, column ``c``, from the definition."""
    rows = buf.reward.shape[0]
    r, term, trunc, valid = (np.asarray(x) for x in buf[2:6])
    weight = 1.0
    if trunc[t, c] and not term[t, c]:
        weight = 0.0  # its successor obs is not stored
    reward, m, discount = 0.0, n, gamma**n
    for j in range(n):
        row = (t + j) % rows
        if j > 0 and trunc[row, c] and not term[row, c]:
            m, discount = j, gamma**j  # bootstrap from the last obs before the time limit
            break
        if not valid[row, c]:
            weight = 0.0
        reward += gamma**j * r[row, c]
        if term[row, c]:
            m, discount = j + 1, 0.0
            break
    next_obs = np.asarray(buf.obs)[(t + m) % rows, c]
    return reward, discount, next_obs, weight


def episode_flags(steps):
    """Terminations, truncations and deferred-reset rows for ``steps`` global steps, [K, N].

    Column 0: terminations (one at the first step) and a truncation, each followed by an
    invalid (action-ignored) row, as envpool's deferred resets produce them.
    Column 1: truncations mid-window and back to back. Column 2: a step both terminated and
    truncated (the termination counts), and one stray invalid row, not after an episode end:
    the case the window guard exists for.
    """
    term = np.zeros((11, N), bool)
    trunc = np.zeros((11, N), bool)
    valid = np.ones((11, N), bool)
    term[[0, 4, 9], 0] = True
    trunc[7, 0] = True
    valid[[1, 5, 8, 10], 0] = False  # the steps after column 0's episode ends
    trunc[[3, 6, 7], 1] = True
    term[4, 2] = trunc[4, 2] = True
    valid[8, 2] = False
    return term[:steps], trunc[:steps], valid[:steps]


def filled_buffer(steps, obs_dtype=jnp.float32):
    """``steps`` rows added through ``add_rows`` in two chunks; obs = (global step, column)."""
    k = np.arange(steps)
    obs = np.stack(np.broadcast_arrays(k[:, None], np.arange(N)[None]), -1).astype(np.float32)
    action = (10 * k[:, None] + np.arange(N)).astype(np.int32)
    reward = np.random.default_rng(0).normal(size=(steps, N)).astype(np.float32)
    term, trunc, valid = episode_flags(steps)
    buf = R.init_buffer(T * N, N, (2,), obs_dtype)
    half = steps // 2
    for sl in (slice(0, half), slice(half, steps)):
        buf = jit_add_rows(buf, obs[sl], action[sl], reward[sl], term[sl], trunc[sl], valid[sl])
    return buf


@functools.partial(jax.jit, static_argnums=(2, 3))
def jit_sample(buf, key, batch_size, n_step, gamma):
    return R.sample(buf, key, batch_size, n_step, gamma)


jit_add, jit_add_rows = jax.jit(R.add), jax.jit(R.add_rows)


@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("gamma", [0.9, 0.5])
@pytest.mark.parametrize("steps", [11, 6])  # wrapped (T=8) and partly filled
def test_nstep_targets_match_python_loop(n_step, gamma, steps):
    buf = filled_buffer(steps)
    size = min(steps, T)
    assert int(buf.size) == size and int(buf.pos) == steps % T
    batch = jit_sample(buf, jax.random.PRNGKey(steps), 1024, n_step, jnp.float32(gamma))
    batch = jax.tree.map(np.asarray, batch)
    obs = batch.obs.astype(int)
    step, col = obs[:, 0], obs[:, 1]
    oldest_step = steps - size
    # Only startable rows: written, with n successors written.
    assert step.min() >= oldest_step and step.max() < steps - n_step
    # Uniform-ish: every startable (row, column) is drawn, none outside.
    startable = {(s, c) for s in range(oldest_step, steps - n_step) for c in range(N)}
    assert set(zip(step.tolist(), col.tolist(), strict=True)) == startable
    np.testing.assert_array_equal(batch.action, 10 * step + col)
    host = jax.tree.map(np.asarray, buf)
    want = [nstep_loop(host, s % T, c, n_step, gamma) for s, c in zip(step, col, strict=True)]
    reward, discount, next_obs, weight = (np.array(x) for x in zip(*want, strict=True))
    np.testing.assert_allclose(batch.reward, reward, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(batch.discount, discount, rtol=1e-6)
    np.testing.assert_array_equal(batch.next_obs, next_obs)
    np.testing.assert_array_equal(batch.weight, weight)


def test_hand_cases():
    """A few targets written out by hand (n=3, gamma=0.5, no wrap)."""
    buf = filled_buffer(7)
    r = np.asarray(buf.reward)

    def target(step, col):
        batch = jit_sample(buf, jax.random.PRNGKey(0), 4096, 3, 0.5)
        obs = np.asarray(batch.obs).astype(int)
        i = np.flatnonzero((obs[:, 0] == step) & (obs[:, 1] == col))[0]
        return jax.tree.map(lambda x: np.asarray(x[i]), batch)

    # Column 1, start 1: truncation at step 3 (j=2) stops before it; bootstrap from s_3.
    b = target(1, 1)
    np.testing.assert_allclose(b.reward, r[1, 1] + 0.5 * r[2, 1], rtol=1e-6)
    assert b.discount == 0.25 and b.next_obs[0] == 3 and b.weight == 1
    # Column 1, start 3: the start row itself is truncated: no target.
    assert target(3, 1).weight == 0
    # Column 0, start 2: termination at step 4 (j=2): three rewards, no bootstrap.
    b = target(2, 0)
    np.testing.assert_allclose(b.reward, r[2, 0] + 0.5 * r[3, 0] + 0.25 * r[4, 0], rtol=1e-6)
    assert b.discount == 0 and b.weight == 1
    # Column 0, start 1: the action was ignored (deferred reset): no target.
    assert target(1, 0).weight == 0
    # Column 2, start 0: full window, bootstrap from s_3 with gamma^3.
    b = target(0, 2)
    assert b.discount == 0.125 and b.next_obs[0] == 3 and b.weight == 1


def test_wraps_and_overwrites_oldest():
    obs = np.arange(11, dtype=np.float32)[:, None, None] * np.ones((1, N, 2), np.float32)
    zeros = np.zeros((11, N), np.float32)
    flags = np.zeros((11, N), bool)
    one_by_one = R.init_buffer(T * N, N, (2,), jnp.float32)
    for k in range(11):
        one_by_one = jit_add(one_by_one, obs[k], zeros[k].astype(np.int32), zeros[k], flags[k],
                           flags[k])  # fmt: skip
        assert int(one_by_one.pos) == (k + 1) % T and int(one_by_one.size) == min(k + 1, T)
    # Rows 0..2 hold steps 8..10, rows 3..7 steps 3..7.
    np.testing.assert_array_equal(np.asarray(one_by_one.obs)[:, 0, 0], [8, 9, 10, 3, 4, 5, 6, 7])
    for chunks in ([11], [3, 8], [5, 6], [2, 9]):  # K > T included (11 > 8)
        buf = R.init_buffer(T * N, N, (2,), jnp.float32)
        start = 0
        for k in chunks:
            sl = slice(start, start + k)
            buf = jit_add_rows(buf, obs[sl], zeros[sl].astype(np.int32), zeros[sl], flags[sl],
                             flags[sl])  # fmt: skip
            start += k
        chex.assert_trees_all_equal(buf, one_by_one)


def test_can_sample_and_early_samples_are_weighted_out():
    buf = R.init_buffer(T * N, N, (2,), jnp.float32)
    row = (np.zeros((N, 2), np.float32), np.zeros(N, np.int32), np.zeros(N, np.float32),
           np.zeros(N, bool), np.zeros(N, bool))  # fmt: skip
    for k in range(4):
        assert bool(R.can_sample(buf, 3)) == (k > 3)
        assert float(jnp.max(jit_sample(buf, jax.random.PRNGKey(k), 16, 3, 0.9).weight)) == 0
        buf = jit_add(buf, *row)
    assert bool(R.can_sample(buf, 3))
    assert float(jnp.min(jit_sample(buf, jax.random.PRNGKey(0), 16, 3, 0.9).weight)) == 1


def test_vmapped_member_equals_member_alone():
    members, steps = 3, 11
    rng = np.random.default_rng(1)
    data = (
        rng.integers(0, 2, (members, steps, N, 4, 4, 2)).astype(np.float32),
        rng.integers(0, 5, (members, steps, N)).astype(np.int32),
        rng.normal(size=(members, steps, N)).astype(np.float32),
        rng.random((members, steps, N)) < 0.1,
        rng.random((members, steps, N)) < 0.1,
        rng.random((members, steps, N)) < 0.9,
    )
    gammas = jnp.array([0.9, 0.99, 0.5], jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(3), members)

    def member(data, key, gamma):
        buf = R.init_buffer(T * N, N, (4, 4, 2), jnp.uint8)
        buf = R.add_rows(buf, *(x[:5] for x in data))
        buf = R.add(buf, *(x[5] for x in data))
        buf = R.add_rows(buf, *(x[6:] for x in data))
        return buf, R.sample(buf, key, 64, 3, gamma)

    together = jax.jit(jax.vmap(member))(data, keys, gammas)
    alone = jax.jit(member)
    for i in range(members):
        one = jax.tree.map(lambda x, i=i: x[i], (data, keys, gammas))
        chex.assert_trees_all_equal(jax.tree.map(lambda x, i=i: x[i], together), alone(*one))


def test_obs_storage_is_exact_for_minatar():
    import gymnax

    env, params = gymnax.make("Breakout-MinAtar")
    space = env.observation_space(params)
    dtype = R.obs_storage_dtype(space.dtype, space.low, space.high, integer_valued=True)
    assert dtype == jnp.uint8
    # Reset observations (0/1 float32 grids; the ball starts on either side) of 2N envs.
    keys = jax.random.split(jax.random.key(0), 2 * N)
    frames = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)[0]
    frames = frames.reshape(2, N, 10, 10, 4)
    assert frames.dtype == jnp.float32 and set(np.unique(frames)) <= {0.0, 1.0}
    ids = jnp.arange(2)[:, None] * N + jnp.arange(N)  # the action names the stored cell
    zeros = jnp.zeros((2, N))
    buf = R.add_rows(R.init_buffer(4 * N, N, (10, 10, 4), dtype), frames, ids, zeros,
                     zeros > 0, zeros > 0)  # fmt: skip
    assert buf.obs.dtype == jnp.uint8
    batch = jit_sample(buf, jax.random.PRNGKey(1), 32, 1, 0.99)
    row, col = np.divmod(np.asarray(batch.action), N)
    assert batch.obs.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(batch.obs), np.asarray(frames)[row, col])
    np.testing.assert_array_equal(np.asarray(batch.next_obs), np.asarray(frames)[row + 1, col])


def test_obs_storage_policy():
    assert R.obs_storage_dtype(jnp.float32, 0.0, 1.0) == jnp.float32  # not known integral
    assert R.obs_storage_dtype(jnp.float32, -1.0, 1.0, integer_valued=True) == jnp.float32
    assert R.obs_storage_dtype(jnp.bool_, 0, 1) == jnp.uint8
    assert R.obs_storage_dtype(jnp.uint8, 0, 255) == jnp.uint8
    assert R.obs_storage_dtype(jnp.int32, -5, 5) == jnp.int32
    assert R.obs_storage_dtype(jnp.float32, np.zeros(3), np.full(3, 255.0), True) == jnp.uint8


def test_capacity_must_be_a_multiple_of_num_envs():
    with pytest.raises(ValueError, match=r"100.*num_envs 8"):
        R.init_buffer(100, 8, (4,), jnp.float32)


def test_buffer_bytes_minatar():
    shapes = jax.eval_shape(lambda: R.init_buffer(100_000, 8, (10, 10, 4), jnp.uint8))
    # uint8 obs 400 B, int32 action 4, float32 reward 4, three bool flags, two int32 scalars.
    assert R.buffer_bytes(shapes) == 100_000 * (400 + 4 + 4 + 3) + 8
    small = R.init_buffer(T * N, N, (2,), jnp.float32)
    assert R.buffer_bytes(small) == R.buffer_bytes(jax.eval_shape(lambda: small))


def largest_intermediate(fn, *args):
    """Elements of the largest array any equation of ``fn``'s jaxpr (nested ones too) makes."""

    def walk(jaxpr):
        sizes = [0]
        for eqn in jaxpr.eqns:
            sizes += [int(np.prod(v.aval.shape)) for v in eqn.outvars if hasattr(v.aval, "shape")]
            for param in eqn.params.values():
                for sub in param if isinstance(param, (tuple, list)) else (param,):
                    inner = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr holds a Jaxpr
                    if hasattr(inner, "eqns"):
                        sizes.append(walk(inner))
        return max(sizes)

    return walk(jax.make_jaxpr(fn)(*args).jaxpr)


def mask_sampler(buf, key, batch_size, n_step, gamma):
    """What ``sample`` must not be: a choice weighted by a mask over the whole buffer."""
    del gamma
    rows, cols = buf.reward.shape
    startable = (jnp.arange(rows) < buf.size - n_step)[:, None] & jnp.ones((1, cols), bool)
    flat = jax.random.choice(key, rows * cols, (batch_size,), p=startable.ravel() / 1.0)
    return buf.obs.reshape(rows * cols, -1)[flat].astype(jnp.float32)


def test_sample_is_o_batch():
    obs_shape, batch_size, n_step = (5, 5, 2), 4, 3
    buf = R.init_buffer(4096 * 2, 2, obs_shape, jnp.uint8)
    bound = batch_size * (n_step + 1) * int(np.prod(obs_shape))
    args = (buf, jax.random.PRNGKey(0))
    sampler = lambda fn: lambda b, k: fn(b, k, batch_size, n_step, jnp.float32(0.9))
    assert largest_intermediate(sampler(R.sample), *args) <= bound
    assert largest_intermediate(sampler(mask_sampler), *args) > bound  # the check can fail
    # ... and so would a sampler that casts the whole obs array before gathering.
    cast_first = lambda b, k: b.obs.astype(jnp.float32)[0, :batch_size]
    assert largest_intermediate(cast_first, *args) > bound
