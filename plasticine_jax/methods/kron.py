"""PSGD Kron (Li 2018; psgd_jax ``scale_by_kron``), written for this library.

Each parameter ``G`` (a matrix ``[m, n]``; vectors and scalars use one factor; higher-order
kernels are flattened to ``[prod(shape[:-1]), shape[-1]]``) gets a preconditioner
``P = Qᵀ Q`` with ``Q = Q_l ⊗ Q_r``. ``Q_i`` is upper triangular, or diagonal where the
dimension is 1, larger than ``max_size_triangular`` or the leaf has fewer than
``min_ndim_triangular`` dimensions. Every step:

    m      ← b1·m + (1 − b1)·g                                   (momentum, not debiased)
    with probability p_t (psgd's schedule: 1 for ``flat_start`` steps, then
    exp-decay at rate ``decay`` down to ``min_prob``), draw V ~ N(0, I) and for each factor
        A      = Q_l m Q_rᵀ,          B = Q_l⁻ᵀ V Q_r⁻¹
        Q_l   ← Q_l − lr_P / ‖AAᵀ + BBᵀ‖ · triu(AAᵀ − BBᵀ) Q_l    (‖·‖: spectral lower bound)
        (diagonal factors: Q ← Q − lr_P / max|a² + b²| · (a² − b²) Q, sums over other dims)
    then rebalance the factors to equal max-norms (P unchanged);
    u      = Q_lᵀ Q_l m Q_rᵀ Q_r, globally clipped to norm √(#params), then to [−1, 1].

The randomness (V and the update coin) comes from the per-step ``key`` extra argument, so
vmapped seeds draw independently (psgd_jax folds a fixed key with the step count instead).

As a method, Kron *replaces* the agent's base optimizer's update direction: the wrapper
still runs the base transform (so its learning-rate schedule advances) and reads the current
``learning_rate`` from the base's ``inject_hyperparams`` state, then returns ``−lr · u``.
Gradient clipping in the base does not apply to Kron's input (Kron clips its own output).
If the base has no injected learning rate, the ``lr`` hyperparameter is used. ``enabled``
(1.0) is a traced switch: at 0.0 the base update passes through unchanged.

Defaults (psgd_jax): b1 = 0.9, precond_lr = 0.1, Q₀ = I, max_size_triangular = 8192,
min_ndim_triangular = 2, flat_start = 200, decay = 0.001, min_prob = 0.03.

Hyperparameters: ``enabled``, ``lr``, ``b1``, ``precond_lr``, ``flat_start``, ``decay``,
``min_prob`` (defaults above; ``lr`` = 2.5e-4 is used only without an injected rate).
Options: ``max_size_triangular``, ``min_ndim_triangular``.

Registry name: ``kron``.

References:
  Li, "Preconditioner on matrix Lie group for SGD", ICLR 2019.
  https://arxiv.org/abs/1809.10232 ; https://github.com/lixilinx/psgd_torch ;
  https://github.com/evanatyourservice/psgd_jax (``kron.py``)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.methods.base import HP, Method

KRON_HP = {
    "enabled": 1.0,
    "lr": 2.5e-4,
    "b1": 0.9,
    "precond_lr": 0.1,
    "flat_start": 200.0,
    "decay": 0.001,
    "min_prob": 0.03,
}


class KronState(NamedTuple):
    count: jax.Array
    mu: Any
    qs: Any  # per leaf: a tuple of factors (matrices or vectors)

    # An optimizer-state reset zeroes the momentum and restarts the update-probability
    # schedule (``count``), so the preconditioner re-adapts at full rate, but keeps the
    # factors: they start at I, not 0, and zeroed factors would stop Kron for good.
    persist_fields = ("qs",)


def _as_matrix(x: jax.Array) -> jax.Array:
    if x.ndim <= 2:
        return x
    return x.reshape((-1, x.shape[-1]))


def _init_factors(x: jax.Array, max_size: int, min_ndim: int) -> tuple[jax.Array, ...]:
    g = _as_matrix(x)
    if g.ndim == 0:
        return (jnp.ones((), x.dtype),)
    out = []
    for size in g.shape:
        diag = size == 1 or size > max_size or g.ndim < min_ndim
        out.append(jnp.ones((size,), x.dtype) if diag else jnp.eye(size, dtype=x.dtype))
    return tuple(out)


def _norm_lower_bound(a: jax.Array) -> jax.Array:
    """A cheap lower bound on the spectral norm of a symmetric ``a`` (psgd's estimate)."""
    max_abs = jnp.max(jnp.abs(a))
    scaled = a / jnp.maximum(max_abs, 1e-30)
    i = jnp.argmax(jnp.sum(scaled * scaled, axis=0))
    x = scaled[:, i] @ scaled
    est = jnp.linalg.norm((x / jnp.maximum(jnp.linalg.norm(x), 1e-30)) @ scaled.T)
    return max_abs * est


def _apply_q(q: jax.Array, g: jax.Array, axis: int) -> jax.Array:
    """Multiplies ``g`` along ``axis`` by factor ``q`` (matrix: Q·, vector: elementwise)."""
    if q.ndim < 2:
        shape = [1] * g.ndim
        shape[axis] = -1
        return g * q.reshape(shape)
    return jnp.moveaxis(jnp.tensordot(q, g, axes=(1, axis)), 0, axis)


def _apply_q_inv_t(q: jax.Array, v: jax.Array, axis: int) -> jax.Array:
    """Multiplies ``v`` along ``axis`` by ``Q⁻ᵀ`` (triangular solve; vector: division)."""
    if q.ndim < 2:
        shape = [1] * v.ndim
        shape[axis] = -1
        return v / q.reshape(shape)
    moved = jnp.moveaxis(v, axis, 0)
    flat = moved.reshape((moved.shape[0], -1))
    # Qᵀ X = V with Q upper triangular.
    sol = jax.lax.linalg.triangular_solve(q, flat, left_side=True, lower=False, transpose_a=True)
    return jnp.moveaxis(sol.reshape(moved.shape), 0, axis)


def _update_factors(qs, g, v, precond_lr):
    """One PSGD Kron preconditioner step for one leaf (``g``, ``v`` as matrices)."""
    if g.ndim == 0:
        g, v = g.reshape((1,)), v.reshape((1,))
        qs = (qs[0].reshape((1,)),)
        new = _update_factors(qs, g, v, precond_lr)
        return (new[0].reshape(()),)
    a, b = g, v
    for axis, q in enumerate(qs):
        a = _apply_q(q, a, axis)
        b = _apply_q_inv_t(q, b, axis)
    new = []
    for axis, q in enumerate(qs):
        others = tuple(d for d in range(g.ndim) if d != axis)
        if q.ndim < 2:
            t1 = jnp.sum(a * a, axis=others)
            t2 = jnp.sum(b * b, axis=others)
            step = precond_lr / jnp.maximum(jnp.max(jnp.abs(t1 + t2)), 1e-30)
            new.append(q - step * (t1 - t2) * q)
        else:
            am, bm = jnp.moveaxis(a, axis, 0), jnp.moveaxis(b, axis, 0)
            am, bm = am.reshape((am.shape[0], -1)), bm.reshape((bm.shape[0], -1))
            t1, t2 = am @ am.T, bm @ bm.T
            step = precond_lr / jnp.maximum(_norm_lower_bound(t1 + t2), 1e-30)
            new.append(q - step * jnp.triu(t1 - t2) @ q)
    norms = jnp.stack([jnp.max(jnp.abs(q)) for q in new])
    gmean = jnp.exp(jnp.mean(jnp.log(jnp.maximum(norms, 1e-30))))
    return tuple(q * (gmean / jnp.maximum(n, 1e-30)) for q, n in zip(new, norms, strict=True))


def _precondition(qs, g):
    """``Qᵀ Q g`` for one leaf (as a matrix)."""
    if g.ndim == 0:
        return qs[0] * qs[0] * g
    out = g
    for axis, q in enumerate(qs):
        out = _apply_q(q, out, axis)
    for axis, q in enumerate(qs):
        out = _apply_q(q.T if q.ndim == 2 else q, out, axis)
    return out


def scale_by_kron(
    hp: HP, max_size_triangular: int = 8192, min_ndim_triangular: int = 2
) -> optax.GradientTransformationExtraArgs:
    """PSGD Kron direction (no learning rate, no sign flip); needs ``key=`` in ``update``."""

    def init_fn(params):
        return KronState(
            count=jnp.zeros((), jnp.int32),
            mu=jax.tree.map(jnp.zeros_like, params),
            qs=jax.tree.map(
                lambda x: _init_factors(x, max_size_triangular, min_ndim_triangular), params
            ),
        )

    def update_fn(updates, state, params=None, *, key=None, **extra):
        del params, extra
        if key is None:
            raise ValueError("kron needs the per-step PRNG key: tx.update(..., key=key)")
        count = state.count + 1
        b1 = hp["b1"]
        mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, updates)
        leaves, treedef = jax.tree.flatten(mu)
        qs = treedef.flatten_up_to(state.qs)
        k_coin, k_v = jax.random.split(key)
        n = count.astype(jnp.float32)
        prob = jnp.clip(jnp.exp(-hp["decay"] * (n - hp["flat_start"])), hp["min_prob"], 1.0)
        do_update = jax.random.uniform(k_coin) < prob
        v_keys = jax.random.split(k_v, len(leaves))

        def refresh(qs):
            out = []
            for q, m, k in zip(qs, leaves, v_keys, strict=True):
                g = _as_matrix(m)
                v = jax.random.normal(k, g.shape, g.dtype)
                out.append(_update_factors(q, g, v, hp["precond_lr"]))
            return out

        qs = jax.lax.cond(do_update, refresh, lambda qs: list(qs), list(qs))
        pg = [
            _precondition(q, _as_matrix(m)).reshape(m.shape)
            for q, m in zip(qs, leaves, strict=True)
        ]
        max_norm = math.sqrt(sum(x.size for x in leaves))
        norm = optax.global_norm(pg)
        pg = [jnp.clip(x * (max_norm / jnp.maximum(norm, max_norm)), -1.0, 1.0) for x in pg]
        return (
            jax.tree.unflatten(treedef, pg),
            KronState(count, mu, jax.tree.unflatten(treedef, [tuple(q) for q in qs])),
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def base_learning_rate(state: optax.OptState, default: jax.Array) -> jax.Array:
    """The first injected ``learning_rate`` value in ``state`` (``default`` if none)."""
    found = optax.tree_utils.tree_get_all_with_path(
        state, "learning_rate", filtering=lambda _, v: not isinstance(v, tuple)
    )
    return found[0][1] if found else default


class KronWrapState(NamedTuple):
    inner: optax.OptState
    kron: KronState


def kron_tx(
    inner: optax.GradientTransformation,
    hp: HP,
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
) -> optax.GradientTransformationExtraArgs:
    """Replaces ``inner``'s update by ``−lr · kron(g)``, ``lr`` read from ``inner``'s state."""
    inner = optax.with_extra_args_support(inner)
    direction = scale_by_kron(hp, max_size_triangular, min_ndim_triangular)

    def init_fn(params):
        return KronWrapState(inner.init(params), direction.init(params))

    def update_fn(grads, state, params=None, *, key=None, **extra):
        u, inner_state = inner.update(grads, state.inner, params, key=key, **extra)
        d, kron_state = direction.update(grads, state.kron, params, key=key)
        lr = base_learning_rate(inner_state, hp["lr"])
        on = hp["enabled"] > 0.5
        out = jax.tree.map(lambda di, ui: jnp.where(on, -lr * di, ui), d, u)
        return out, KronWrapState(inner_state, kron_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def kron(max_size_triangular: int = 8192, min_ndim_triangular: int = 2) -> Method:
    """Registry factory. Options: ``max_size_triangular``, ``min_ndim_triangular``."""
    return Method(
        name="kron",
        hp=dict(KRON_HP),
        identity_hp={**KRON_HP, "enabled": 0.0},
        optimizer=lambda tx, hp: kron_tx(tx, hp, max_size_triangular, min_ndim_triangular),
    )
