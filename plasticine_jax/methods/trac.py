"""TRAC (Muppidi, Zhang & Yang 2024): a parameter-free wrapper around a base optimizer.

Following the authors' PyTorch ``trac_optimizer`` (``_step``; Plasticine vendors it unchanged
as ``plasticine/trac.py`` in both its 2025 and current trees) and optax's ``mechanize`` (the
base optimizer's state kept inside). With x_t the parameters, θ_ref the parameters at TRAC's
first step, S_{t-1} = Σ_i s_i, u_t the base optimizer's update and ĝ_t the *clipped* gradient:

    Δ_{t-1} = (x_t − θ_ref) / (S_{t-1} + ε)
    h_t     = ⟨ĝ_t, Δ_{t-1}⟩                       (over all parameters)
    Δ_t     = Δ_{t-1} + u_t
    v_i     ← β_i² v_i + h_t²
    σ_i     ← β_i σ_i − h_t
    s_i     = (s_prev / erfi(1/√2)) · erfi(σ_i / (√2 · √v_i + ε))
    x_{t+1} = θ_ref + max(Σ_i s_i, 0) · Δ_t

for the betas (0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999), s_prev = 1e-8, ε = 1e-8,
initial s = 0, σ = 1e-8, v = 0 (the PyTorch defaults). ``betas`` is a static option;
``s_prev`` and ``eps`` are traced hyperparameters. ``enabled`` (1.0) is a traced switch: at
0.0 the wrapper returns the base optimizer's update unchanged (its own statistics still run),
so TRAC can share a compiled program with plain members.

The clipped gradient: the reference reads ``p.grad`` inside ``optimizer.step()``, which
Plasticine's PPO calls after ``clip_grad_norm_``, so h_t uses the gradient the base Adam
consumes. Our agent's clip sits inside the base optimizer TRAC wraps (``chain(clip, adam)``),
so TRAC receives the raw gradient; it clips it for h_t with the threshold the agent passes as
the extra argument ``max_grad_norm`` (``optax.clip_by_global_norm``, the agent's own clip;
torch's adds 1e-6 to the norm). Without that argument h_t uses the gradient as given.

θ_ref is taken at TRAC's first update (``count == 0``), as the reference's lazy
``_init_state`` records the parameters on the first ``step()``; ``count`` (steps taken)
survives optimizer-state resets, so a reset never moves the reference point.

The two epsilons, where Plasticine's differ from ours:

* TRAC's own ε (hyperparameter ``eps``, default 1e-8) follows Plasticine's current tree
  (``ppo_continual_*_plasticine.py``: ``start_trac``'s default) and its 2025 ``standard/``
  scripts. Its 2025 ``continual/ppo_procgen_trac.py`` and ``open/ppo_craftax_trac.py`` pass
  ``eps=1e-5`` to ``start_trac``, which sets this ε, not Adam's: ``hp: {eps: 1.0e-5}``.
* The base Adam's ε is the agent's ``agent.hp.adam_eps`` (default 1e-5: CleanRL's, and
  Plasticine's plain PPO in both trees). Every Plasticine TRAC run, in both trees, builds
  ``torch.optim.Adam`` without ``eps``, i.e. torch's 1e-8: set ``agent.hp.adam_eps: 1.0e-8``
  to match. The default stays the agent's so that TRAC at ``enabled = 0`` is exactly plain
  PPO and shares its compiled program (``methods.plan``).

erfi has no JAX primitive: we sum its Taylor series for |x| ≤ 5 and use the asymptotic
expansion e^{x²}/(x√π)·(1 + 1/(2x²) + 3/(4x⁴) + 15/(8x⁶) + 105/(16x⁸)) beyond; the argument
is clipped to |x| ≤ 9 so the result stays finite in float32 (the reference overflows there).

Hyperparameters: ``enabled`` (1.0), ``s_prev`` (1e-8), ``eps`` (1e-8). Option: ``betas``.

Registry name: ``trac``.

References:
  Muppidi, Zhang & Yang, "Fast TRAC: a parameter-free optimizer for lifelong reinforcement
  learning", NeurIPS 2024. https://arxiv.org/abs/2405.16642
  Code: https://github.com/ComputationalRobotics/TRAC; Plasticine's copy and its callers,
  https://github.com/RLE-Foundation/Plasticine (``plasticine/trac.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.methods.base import HP, Method

BETAS = (0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999)

_SWITCH = 5.0  # series below, asymptotic expansion above


def erfi(x: jax.Array) -> jax.Array:
    """Imaginary error function ``erfi(x) = −i·erf(ix) = 2/√π ∫₀ˣ e^{t²} dt``."""
    x = jnp.clip(jnp.asarray(x, jnp.float32), -9.0, 9.0)
    ax = jnp.abs(x)
    small = jnp.minimum(ax, _SWITCH)
    x2 = small * small
    # Σ_n x^{2n+1} / (n! (2n+1)), each term from the last so no coefficient underflows.
    term, total = small, small
    for k in range(1, 90):
        term = term * x2 / k
        total = total + term / (2 * k + 1)
    series = total * (2.0 / math.sqrt(math.pi))
    big = jnp.maximum(ax, _SWITCH)
    inv = 1.0 / (big * big)
    tail = 1.0 + inv * (0.5 + inv * (0.75 + inv * (1.875 + inv * 6.5625)))
    asym = jnp.exp(big * big) / (big * math.sqrt(math.pi)) * tail
    return jnp.sign(x) * jnp.where(ax <= _SWITCH, series, asym)


class TracState(NamedTuple):
    inner: optax.OptState
    theta_ref: Any
    s: jax.Array  # [num_betas]
    sigma: jax.Array  # [num_betas]
    variance: jax.Array  # [num_betas]
    count: jax.Array  # TRAC steps taken; θ_ref is taken at the first

    # An optimizer-state reset restarts the base optimizer only. TRAC's own state is kept:
    # zeroing θ_ref would pull the weights to 0, and restarting the tuners alone would break
    # x_t = θ_ref + S_{t-1}·Δ_{t-1} (with S = 0, Δ = (x − θ_ref)/ε and the weights jump).
    persist_fields = ("theta_ref", "s", "sigma", "variance", "count")


def trac_tx(
    inner: optax.GradientTransformation, hp: HP, betas: Sequence[float] = BETAS
) -> optax.GradientTransformationExtraArgs:
    """Wraps ``inner`` with TRAC (see the module docstring).

    Args:
      inner: the base optimizer (the agent's ``chain(clip, adam)``).
      hp: ``enabled``, ``s_prev``, ``eps`` (traced scalars).
      betas: the tuners' discount factors (static).

    Returns:
      A transform whose ``update`` takes the extra argument ``max_grad_norm`` (the agent's
      clip threshold; h_t then uses the clipped gradient) and passes every extra argument on.
    """
    inner = optax.with_extra_args_support(inner)
    b = jnp.asarray(betas, jnp.float32)
    n = len(betas)

    def init_fn(params):
        return TracState(
            inner=inner.init(params),
            theta_ref=params,
            s=jnp.zeros((n,), jnp.float32),
            sigma=jnp.full((n,), 1e-8, jnp.float32),
            variance=jnp.zeros((n,), jnp.float32),
            count=jnp.zeros((), jnp.int32),
        )

    def update_fn(grads, state, params=None, *, max_grad_norm=None, **extra):
        if params is None:
            raise ValueError("trac needs params")
        eps, s_prev = hp["eps"], hp["s_prev"]
        u, inner_state = inner.update(
            grads, state.inner, params, max_grad_norm=max_grad_norm, **extra
        )
        g = grads
        if max_grad_norm is not None:
            g, _ = optax.clip_by_global_norm(max_grad_norm).update(grads, optax.EmptyState())
        first = state.count == 0
        theta_ref = jax.tree.map(lambda x, r: jnp.where(first, x, r), params, state.theta_ref)
        s_sum = jnp.sum(state.s)
        delta_prev = jax.tree.map(lambda x, r: (x - r) / (s_sum + eps), params, theta_ref)
        h = optax.tree.vdot(g, delta_prev)
        delta = jax.tree.map(jnp.add, delta_prev, u)
        variance = b**2 * state.variance + h**2
        sigma = b * state.sigma - h
        s = (s_prev / erfi(1.0 / math.sqrt(2.0))) * erfi(
            sigma / (math.sqrt(2.0) * jnp.sqrt(variance) + eps)
        )
        scale = jnp.maximum(jnp.sum(s), 0.0)
        trac_u = jax.tree.map(lambda r, d, x: r + scale * d - x, theta_ref, delta, params)
        on = hp["enabled"] > 0.5
        out = jax.tree.map(lambda t, ui: jnp.where(on, t, ui), trac_u, u)
        count = optax.safe_increment(state.count)
        return out, TracState(inner_state, theta_ref, s, sigma, variance, count)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def trac(betas: Sequence[float] = BETAS) -> Method:
    """Registry factory. Options: ``betas`` (tuple of floats; the number of tuners is static)."""
    betas = tuple(float(x) for x in betas)
    return Method(
        name="trac",
        hp={"enabled": 1.0, "s_prev": 1e-8, "eps": 1e-8},
        identity_hp={"enabled": 0.0, "s_prev": 1e-8, "eps": 1e-8},
        optimizer=lambda tx, hp: trac_tx(tx, hp, betas),
        reads_max_grad_norm=True,
    )
