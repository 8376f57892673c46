"""PSGD Kron (Li 2018) in two variants: kron_torch (Plasticine's, the default) and psgd_jax.

Each parameter ``G`` (vectors and scalars use one factor; leaves of three or more dimensions
are merged into a matrix) gets a preconditioner ``P = Qᵀ Q`` with ``Q = Q_l ⊗ Q_r``. ``Q_i``
starts at ``I`` and is upper triangular, or diagonal where the dimension is 1, larger than
``max_size_triangular`` or the (merged) leaf has fewer than ``min_ndim_triangular`` dims. A
preconditioner update with momentum ``m`` and a probe ``V ~ N(0, I)`` is, per factor,

    A = Q_l m Q_rᵀ,   B = Q_l⁻ᵀ V Q_r⁻¹
    Q_l ← Q_l − precond_lr / ‖AAᵀ + BBᵀ‖ · triu(AAᵀ − BBᵀ) Q_l      (‖·‖: spectral lower bound)
    (diagonal: Q ← Q − precond_lr / max|a² + b²| · (a² − b²) Q, sums over the other dims)

and the update is ``−lr · clip(Qᵀ Q m)``. The variants (option ``variant``) differ as below.

**kron_torch** (default) follows ``kron_torch/kron.py`` of kron-torch 0.3.3 (PyPI, March
2025; unchanged in behaviour at github.com/evanatyourservice/kron_torch 884427c, July 2025),
which Plasticine (github.com/RLE-Foundation/Plasticine aa00b4b, ``plasticine/ppo_continual_
{procgen,dmc}_plasticine.py``) builds as ``Kron(agent.parameters(), lr=args.learning_rate)``
with every other argument at its default. Per step ``t = 1, 2, ...``:

    m ← b1·m + (1 − b1)·g;   m̂ = m / (1 − b1ᵗ)                   (debiased momentum)
    p = clip(exp(−decay·(t − 1 − flat_start)), min_prob, 1)       (precond_update_prob_schedule)
    c ← c + 1;  update the preconditioner iff c ≥ 1/p, then c ← 0  (a counter, not a coin)
    on an update: m̂ ← m̂ + √ε₃₂·mean|m̂|·V (the probe's damping; the reference perturbs m̂
      in place, so the update step also preconditions the perturbed m̂); with probability
      0.01 first rebalance the factors to equal max-norms (P unchanged); then update Q
      from (m̂, V) as above
    u = Qᵀ Q m̂ · min(1, 1.1 / (RMS(Qᵀ Q m̂) + 1e-12))                    (per-leaf RMS clip)

So the first update is ``−lr·P·g``, ten times psgd_jax's ``−lr·P·0.1g``, and the
preconditioner is refreshed every step for the first 501 steps (``t − 1 ≤ flat_start``),
then every 2nd, ..., down to every 34th (``min_prob`` 0.03). Differences from the reference,
each either matched or stated:

* momentum debiasing, deterministic counter, schedule (t − 1 with ``flat_start`` = 500),
  probe damping, RMS clip 1.1: matched (``flat_start``, ``decay``, ``min_prob`` traced).
* precond_lr 0.1, Q₀ = I (``precond_init_scale`` 1), b1 0.9, ``momentum_into_precond_
  update`` (m̂ feeds the preconditioner), ``memory_save_mode`` None: matched, not
  configurable beyond the hyperparameters and options below.
* dtype: factors in float32 (``precond_dtype``), momentum in the parameter's dtype
  (``mu_dtype`` None), the update cast back to the parameter's dtype: matched.
* merging: a leaf of ≥ 3 dims becomes ``[prod(s[:-1]), s[-1]]``. The reference's rule
  (``merge_dims``) takes that or ``[s[0], prod(s[1:])]``, whichever has the smaller signed
  ``cols − rows``, which is always the first (with ``M`` the middle dims' product, the second
  wins only if ``(1 − M)·s[-1] > (M − 1)·s[0]``: never). In our layout a flax conv kernel
  ``[kh, kw, in, out]`` merges to ``[kh·kw·in, out]``, where kron_torch's
  ``[out, in, kh, kw]`` becomes ``[out·in·kh, kw]``, so conv layers get different factors
  than in Plasticine (dense layers match: transposing ``G`` only swaps the two factors).
  Scalars get one diagonal factor, as in the reference's init.
* randomness: ``V`` and the rebalance coin come from the per-step ``key`` (the reference:
  torch's global RNG and ``random.Random(42)``). Rebalancing leaves P unchanged, so only
  rounding depends on it.
* learning rate: the base optimizer's injected rate (PPO: ``agent.hp.lr`` with its anneal),
  as Plasticine passes the agent's rate (its Procgen PPO 1e-3, DMC PPO 3e-4). Weight decay:
  not offered (the reference's default 0.0, which Plasticine keeps).
* input: Plasticine clips the gradient to ``max_grad_norm`` (torch's ``clip_grad_norm_``)
  before ``Kron.step``. Our agent's clip sits inside the base the wrapper wraps, so the
  wrapper receives the raw gradient and clips it itself to the threshold the agent passes as
  the extra argument ``max_grad_norm`` (``optax.clip_by_global_norm``; torch's adds 1e-6 to
  the norm). Without that argument Kron reads the gradient as given.

**psgd_jax** follows ``psgd_jax/kron.py`` between cccb8a8 (1 Oct 2024, "no bias correction")
and fa39c2a (13 Oct 2024): momentum not debiased; the preconditioner updated with
probability ``p = clip(exp(−decay·(t − flat_start)), min_prob, 1)`` (a coin from ``key``;
``flat_start`` = 200), from ``m`` without damping; ≥ 3-dim leaves merged as above (psgd_jax
keeps one factor per dimension); factors rebalanced after every update (psgd_jax: before,
with probability 0.01); the update clipped to global norm ``√(#params)`` and then to
``[−1, 1]`` elementwise; factors in the leaf's dtype; the gradient read unclipped
(``max_grad_norm`` is not applied). This is the behaviour the library had before kron_torch
became the default.

As a method, Kron *replaces* the agent's base optimizer's update: the wrapper still runs the
base (so its schedules and counters advance), reads the base's current ``learning_rate``
from its ``inject_hyperparams`` state and returns ``−lr · u``. Kron has no learning-rate
hyperparameter of its own: set the agent's. A base without an injected rate gets learning
rate 1 and a warning (the update is then ``−u``). ``enabled`` (1.0) is a traced switch: at
0.0 the base update passes through unchanged.

Hyperparameters (traced): ``enabled``, ``b1`` (0.9), ``precond_lr`` (0.1), ``flat_start``
(500 kron_torch, 200 psgd_jax), ``decay`` (0.001), ``min_prob`` (0.03).
Options (static): ``variant`` (``kron_torch`` | ``psgd_jax``), ``max_size_triangular``
(8192), ``min_ndim_triangular`` (2).

Registry name: ``kron``.

References:
  Li, "Preconditioner on matrix Lie group for SGD", ICLR 2019.
  https://arxiv.org/abs/1809.10232 ; https://github.com/lixilinx/psgd_torch ;
  https://github.com/evanatyourservice/kron_torch ; https://github.com/evanatyourservice/psgd_jax
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.methods.base import HP, Method

VARIANTS = ("kron_torch", "psgd_jax")
_SHARED_HP = {"enabled": 1.0, "b1": 0.9, "precond_lr": 0.1, "decay": 0.001, "min_prob": 0.03}
KRON_HP = {
    "kron_torch": {**_SHARED_HP, "flat_start": 500.0},
    "psgd_jax": {**_SHARED_HP, "flat_start": 200.0},
}
_TINY = float(jnp.finfo(jnp.float32).tiny)
_SQRT_EPS = math.sqrt(float(jnp.finfo(jnp.float32).eps))


class KronState(NamedTuple):
    """Kron's state.

    Attributes:
      count: int32, steps taken.
      mu: momentum, like the parameters (not debiased).
      qs: per leaf, a tuple of factors (matrices or vectors).
      counter: int32, steps since the last preconditioner update (kron_torch's
        ``_update_counter``; stays 0 under psgd_jax).
    """

    count: jax.Array
    mu: Any
    qs: Any
    counter: jax.Array

    # An optimizer-state reset zeroes the momentum and restarts the update-probability
    # schedule (``count``, ``counter``), so the preconditioner re-adapts at full rate, but
    # keeps the factors: they start at I, not 0, and zeroed factors would stop Kron for good.
    persist_fields = ("qs",)


def _matrix_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a leaf is preconditioned in (see the module docstring, "merging")."""
    if len(shape) <= 2:
        return shape
    return (math.prod(shape[:-1]), shape[-1])


def _init_factors(shape, dtype, max_size: int, min_ndim: int) -> tuple[jax.Array, ...]:
    if not shape:
        return (jnp.ones((), dtype),)
    out = []
    for size in shape:
        diag = size == 1 or size > max_size or len(shape) < min_ndim
        out.append(jnp.ones((size,), dtype) if diag else jnp.eye(size, dtype=dtype))
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


def _factor_step(qs, g, v, precond_lr, floor):
    """One PSGD Kron step of one leaf's factors from ``(g, v)`` (both in matrix shape)."""
    if g.ndim == 0:
        new = _factor_step(
            (qs[0].reshape((1,)),), g.reshape((1,)), v.reshape((1,)), precond_lr, floor
        )
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
            step = precond_lr / jnp.maximum(jnp.max(jnp.abs(t1 + t2)), floor)
            new.append(q - step * (t1 - t2) * q)
        else:
            am, bm = jnp.moveaxis(a, axis, 0), jnp.moveaxis(b, axis, 0)
            am, bm = am.reshape((am.shape[0], -1)), bm.reshape((bm.shape[0], -1))
            t1, t2 = am @ am.T, bm @ bm.T
            step = precond_lr / jnp.maximum(_norm_lower_bound(t1 + t2), floor)
            new.append(q - step * jnp.triu(t1 - t2) @ q)
    return tuple(new)


def _balance(qs):
    """Rescales a leaf's factors to equal max-norms; their Kronecker product is unchanged."""
    norms = jnp.stack([jnp.max(jnp.abs(q)) for q in qs])
    gmean = jnp.exp(jnp.mean(jnp.log(jnp.maximum(norms, 1e-30))))
    return tuple(q * (gmean / jnp.maximum(n, 1e-30)) for q, n in zip(qs, norms, strict=True))


def _precondition(qs, g):
    """``Qᵀ Q g`` for one leaf (in matrix shape)."""
    if g.ndim == 0:
        return qs[0] * qs[0] * g
    out = g
    for axis, q in enumerate(qs):
        out = _apply_q(q, out, axis)
    for axis, q in enumerate(qs):
        out = _apply_q(q.T if q.ndim == 2 else q, out, axis)
    return out


def kron_torch_schedule(
    count: jax.Array, counter: jax.Array, hp: HP
) -> tuple[jax.Array, jax.Array]:
    """kron_torch's deterministic preconditioner-update decision for one step.

    Args:
      count: int32 scalar, steps taken before this one (the reference's ``_prob_step``).
      counter: int32 scalar, steps since the last update (``_update_counter``).
      hp: ``flat_start``, ``decay``, ``min_prob`` (traced).

    Returns:
      ``(fire, counter)``: bool scalar, update the preconditioner this step; the new counter.
    """
    n = count.astype(jnp.float32)
    prob = jnp.clip(jnp.exp(-hp["decay"] * (n - hp["flat_start"])), hp["min_prob"], 1.0)
    counter = counter + 1
    fire = counter.astype(jnp.float32) >= 1.0 / prob
    return fire, jnp.where(fire, 0, counter)


def kron_torch_draws(
    key: jax.Array, shapes: Sequence[tuple[int, ...]]
) -> tuple[jax.Array, list[jax.Array]]:
    """The kron_torch variant's randomness for one step: ``(rebalance, probes)``.

    Args:
      key: the step's PRNG key (the ``key`` extra argument).
      shapes: each leaf's matrix shape.

    Returns:
      A bool scalar (rebalance the factors, probability 0.01) and one ``V ~ N(0, I)``
      (float32) per leaf.
    """
    k_balance, k_probe = jax.random.split(key)
    keys = jax.random.split(k_probe, len(shapes))
    probes = [jax.random.normal(k, s, jnp.float32) for k, s in zip(keys, shapes, strict=True)]
    return jax.random.uniform(k_balance) < 0.01, probes


def _psgd_jax_update(hp, state, leaves, qs, key):
    """One psgd_jax-variant step on flattened gradients; returns (directions, state parts)."""
    b1 = hp["b1"]
    mu = [b1 * m + (1.0 - b1) * g for m, g in zip(state.mu, leaves, strict=True)]
    ms = [m.reshape(_matrix_shape(m.shape)) for m in mu]
    count = state.count + 1
    k_coin, k_v = jax.random.split(key)
    n = count.astype(jnp.float32)
    prob = jnp.clip(jnp.exp(-hp["decay"] * (n - hp["flat_start"])), hp["min_prob"], 1.0)
    do_update = jax.random.uniform(k_coin) < prob
    v_keys = jax.random.split(k_v, len(ms))

    def refresh(qs):
        out = []
        for q, g, k in zip(qs, ms, v_keys, strict=True):
            v = jax.random.normal(k, g.shape, g.dtype)
            out.append(_balance(_factor_step(q, g, v, hp["precond_lr"], 1e-30)))
        return out

    qs = jax.lax.cond(do_update, refresh, lambda qs: list(qs), list(qs))
    pg = [_precondition(q, g).reshape(m.shape) for q, g, m in zip(qs, ms, mu, strict=True)]
    max_norm = math.sqrt(sum(x.size for x in pg))
    norm = optax.global_norm(pg)
    pg = [jnp.clip(x * (max_norm / jnp.maximum(norm, max_norm)), -1.0, 1.0) for x in pg]
    return pg, (count, mu, qs, state.counter)


def _kron_torch_update(hp, state, leaves, qs, key):
    """One kron_torch-variant step on flattened gradients; returns (directions, state parts)."""
    fire, counter = kron_torch_schedule(state.count, state.counter, hp)
    count = state.count + 1
    b1 = hp["b1"]
    mu = [(b1 * m + (1.0 - b1) * g).astype(m.dtype) for m, g in zip(state.mu, leaves, strict=True)]
    debias = 1.0 - b1 ** count.astype(jnp.float32)
    ms = [(m / debias).astype(jnp.float32).reshape(_matrix_shape(m.shape)) for m in mu]

    def refresh(qs, ms):
        rebalance, probes = kron_torch_draws(key, [g.shape for g in ms])
        qs = jax.lax.cond(
            rebalance, lambda qs: [_balance(q) if len(q) > 1 else q for q in qs], list, qs
        )
        ms = [g + _SQRT_EPS * jnp.mean(jnp.abs(g)) * v for g, v in zip(ms, probes, strict=True)]
        qs = [
            _factor_step(q, g, v, hp["precond_lr"], _TINY)
            for q, g, v in zip(qs, ms, probes, strict=True)
        ]
        return qs, ms

    qs, ms = jax.lax.cond(fire, refresh, lambda qs, ms: (list(qs), ms), list(qs), ms)
    pg = []
    for q, g, m in zip(qs, ms, mu, strict=True):
        x = _precondition(q, g)
        x = x * jnp.minimum(1.0, 1.1 / (jnp.sqrt(jnp.mean(x * x)) + 1e-12))
        pg.append(x.reshape(m.shape).astype(m.dtype))
    return pg, (count, mu, qs, counter)


_UPDATES = {"kron_torch": _kron_torch_update, "psgd_jax": _psgd_jax_update}


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"kron: unknown variant {variant!r}; choose one of {list(VARIANTS)}")


def scale_by_kron(
    hp: HP,
    variant: str = "kron_torch",
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
) -> optax.GradientTransformationExtraArgs:
    """PSGD Kron direction (no learning rate, no sign flip); needs ``key=`` in ``update``.

    Args:
      hp: traced hyperparameters (``b1``, ``precond_lr``, ``flat_start``, ``decay``,
        ``min_prob``; see the module docstring).
      variant: ``"kron_torch"`` or ``"psgd_jax"``.
      max_size_triangular: dimensions larger than this get a diagonal factor.
      min_ndim_triangular: (merged) leaves with fewer dims get diagonal factors.
    """
    _check_variant(variant)

    def init_fn(params):
        def factors(x):
            dtype = jnp.float32 if variant == "kron_torch" else x.dtype
            shape = _matrix_shape(x.shape)
            return _init_factors(shape, dtype, max_size_triangular, min_ndim_triangular)

        return KronState(
            count=jnp.zeros((), jnp.int32),
            mu=jax.tree.map(jnp.zeros_like, params),
            qs=jax.tree.map(factors, params),
            counter=jnp.zeros((), jnp.int32),
        )

    def update_fn(updates, state, params=None, *, key=None, **extra):
        del params, extra
        if key is None:
            raise ValueError("kron needs the per-step PRNG key: tx.update(..., key=key)")
        leaves, treedef = jax.tree.flatten(updates)
        flat = state._replace(mu=treedef.flatten_up_to(state.mu))
        qs = treedef.flatten_up_to(state.qs)
        pg, (count, mu, qs, counter) = _UPDATES[variant](hp, flat, leaves, qs, key)
        new_state = KronState(
            count,
            jax.tree.unflatten(treedef, mu),
            jax.tree.unflatten(treedef, [tuple(q) for q in qs]),
            counter,
        )
        return jax.tree.unflatten(treedef, pg), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def base_learning_rate(state: optax.OptState) -> jax.Array | None:
    """The first injected ``learning_rate`` value in ``state`` (``None`` if there is none)."""
    found = optax.tree_utils.tree_get_all_with_path(
        state, "learning_rate", filtering=lambda _, v: not isinstance(v, tuple)
    )
    return found[0][1] if found else None


class KronWrapState(NamedTuple):
    inner: optax.OptState
    kron: KronState


def kron_tx(
    inner: optax.GradientTransformation,
    hp: HP,
    variant: str = "kron_torch",
    max_size_triangular: int = 8192,
    min_ndim_triangular: int = 2,
) -> optax.GradientTransformationExtraArgs:
    """Replaces ``inner``'s update by ``−lr · kron(g)``, ``lr`` read from ``inner``'s state.

    Args:
      inner: the base optimizer; its injected ``learning_rate`` (``optax.inject_hyperparams``)
        is Kron's learning rate (learning rate 1, with a warning, if it injects none).
      hp: ``enabled`` and the hyperparameters of ``scale_by_kron``.
      variant / max_size_triangular / min_ndim_triangular: as in ``scale_by_kron``.

    Returns:
      A transform whose ``update`` needs ``key`` and takes the extra argument
      ``max_grad_norm`` (kron_torch: Kron reads the gradient clipped to it); every extra
      argument is passed on to ``inner``.
    """
    inner = optax.with_extra_args_support(inner)
    direction = scale_by_kron(hp, variant, max_size_triangular, min_ndim_triangular)

    def init_fn(params):
        return KronWrapState(inner.init(params), direction.init(params))

    def update_fn(grads, state, params=None, *, key=None, **extra):
        u, inner_state = inner.update(grads, state.inner, params, key=key, **extra)
        g = grads
        if variant == "kron_torch" and extra.get("max_grad_norm") is not None:
            clip = optax.clip_by_global_norm(extra["max_grad_norm"])
            g, _ = clip.update(grads, optax.EmptyState())
        d, kron_state = direction.update(g, state.kron, params, key=key)
        lr = base_learning_rate(inner_state)
        if lr is None:
            warnings.warn(
                "kron: the base optimizer injects no learning_rate, so Kron's update uses "
                "learning rate 1; wrap the base in optax.inject_hyperparams to set one",
                stacklevel=2,
            )
            lr = 1.0
        on = hp["enabled"] > 0.5
        out = jax.tree.map(lambda di, ui: jnp.where(on, -lr * di, ui), d, u)
        return out, KronWrapState(inner_state, kron_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def kron(
    variant: str = "kron_torch", max_size_triangular: int = 8192, min_ndim_triangular: int = 2
) -> Method:
    """Registry factory. Options: ``variant``, ``max_size_triangular``, ``min_ndim_triangular``.

    Raises:
      ValueError: ``variant`` is not one of ``VARIANTS``.
    """
    _check_variant(variant)
    hp = dict(KRON_HP[variant])
    return Method(
        name="kron",
        hp=hp,
        identity_hp={**hp, "enabled": 0.0},
        optimizer=lambda tx, hp: kron_tx(tx, hp, variant, max_size_triangular, min_ndim_triangular),
        reads_max_grad_norm=variant == "kron_torch",
    )
