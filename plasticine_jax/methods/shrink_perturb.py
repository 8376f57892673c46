"""Shrink & Perturb (Ash & Adams 2020) as an optimizer wrapper.

After every optimizer step (every minibatch), each parameter becomes

    θ ← λ·θ + σ·θ_p

where θ_p is a *fresh* draw from the initial distribution (``perturb="fresh"``, default) or
the stored initial parameters θ₀ (``perturb="init"``). The two Plasticine trees differ here:

* ``"fresh"`` (default) follows Plasticine's 2025 tree: its ``shrink_perturb``
  (``standard/ppo_procgen_snp.py`` and the other ``*_snp.py`` scripts) builds new, randomly
  initialised modules (``gen_encoder()``, ``gen_value()``, ``gen_policy()``) on every call.
* ``"init"`` follows its current tree: ``plasticine_shrink_and_perturb``
  (``ppo_continual_*_base.py``) mixes in ``init_encoder`` / ``init_actor`` /
  ``init_critic``, deep copies of the modules at construction, i.e. θ ← λθ + σθ₀. It is
  also cheaper and deterministic.

Both trees run "soft" S&P after every optimizer step (every minibatch) with λ = 0.999999 and
σ = 1 − λ = 1e-6, our defaults.

A fresh draw uses the step's PRNG ``key`` (distinct per vmapped seed) and reproduces the
network's initialisers without rebuilding the network: a leaf that was constant at
initialisation (zero biases, LayerNorm scales) is drawn as that constant; any other leaf is a
random orthogonal matrix (``networks.init.orthogonal``) scaled to θ₀'s Frobenius norm, which
is exactly the distribution of an orthogonal initialiser with θ₀'s gain.

The step is written as ``u' = u + (λ − 1)(θ + u) + σ·θ_p`` so that λ = 1, σ = 0 returns the
inner update ``u`` bit for bit (the method's identity).

Hyperparameters: ``shrink`` (λ, default 0.999999) and ``perturb`` (σ, default 1e-6);
λ = 1, σ = 0 is the identity. Option ``perturb``: ``"fresh"`` (default) or ``"init"`` (the
option and the hyperparameter share a name: the option picks θ_p, the hyperparameter is σ).

Target networks (DQN, C51): every entry shrink & perturb rewrites is copied into the
target network too (``agents.dqn.mirror_interventions``).

Registry name: ``shrink_perturb``.

References:
  Ash & Adams, "On warm-starting neural network training", NeurIPS 2020.
  https://arxiv.org/abs/1910.08475
  Plasticine, arXiv 2504.17490, https://github.com/RLE-Foundation/Plasticine.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from plasticine_jax.methods.base import HP, Method
from plasticine_jax.networks.init import orthogonal

PERTURB = ("fresh", "init")


class ShrinkPerturbState(NamedTuple):
    inner: optax.OptState
    init_params: Any  # θ₀: the "init" target, and the gains / constants for "fresh" draws

    # An anchor, not a statistic: optimizer-state resets and moment zeroing keep it
    # (``_surgery.reset_opt_state`` / ``zero_moments``); zeroing it would shrink towards 0.
    persist_fields = ("init_params",)


def fresh_like(key: jax.Array, theta0: jax.Array) -> jax.Array:
    """A fresh draw from θ₀'s initial distribution (see the module docstring)."""
    if theta0.ndim < 2:
        first = theta0.reshape(-1)[:1]
        constant = jnp.all(theta0 == first)
        noise = jax.random.normal(key, theta0.shape, theta0.dtype) * jnp.std(theta0)
        return jnp.where(constant, theta0, noise)
    q = orthogonal(1.0)(key, theta0.shape, theta0.dtype)
    scale = jnp.linalg.norm(theta0) / jnp.maximum(jnp.linalg.norm(q), 1e-12)
    return q * scale


def shrink_perturb_tx(
    inner: optax.GradientTransformation, hp: HP, perturb: str = "fresh"
) -> optax.GradientTransformationExtraArgs:
    """Wraps ``inner``: applies θ ← λθ + σθ_p after each of its updates."""
    inner = optax.with_extra_args_support(inner)

    def init_fn(params):
        return ShrinkPerturbState(inner.init(params), params)

    def update_fn(updates, state, params=None, *, key=None, **extra):
        if params is None:
            raise ValueError("shrink_perturb needs params")
        u, inner_state = inner.update(updates, state.inner, params, key=key, **extra)
        lam, sigma = hp["shrink"], hp["perturb"]
        if perturb == "fresh":
            if key is None:
                raise ValueError("shrink_perturb(perturb='fresh') needs the per-step key")
            leaves, treedef = jax.tree.flatten(state.init_params)
            keys = jax.random.split(jax.random.fold_in(key, 0x5AFE), len(leaves))
            target = jax.tree.unflatten(
                treedef, [fresh_like(k, x) for k, x in zip(keys, leaves, strict=True)]
            )
        else:
            target = state.init_params
        new_u = jax.tree.map(
            lambda ui, p, t: ui + (lam - 1.0) * (p + ui) + sigma * t, u, params, target
        )
        return new_u, ShrinkPerturbState(inner_state, state.init_params)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def shrink_perturb(perturb: str = "fresh") -> Method:
    """Registry factory. Options: ``perturb`` in ``("fresh", "init")``."""
    if perturb not in PERTURB:
        raise ValueError(f"shrink_perturb: perturb must be one of {PERTURB}, got {perturb!r}")
    return Method(
        name="shrink_perturb",
        hp={"shrink": 0.999999, "perturb": 1e-6},
        identity_hp={"shrink": 1.0, "perturb": 0.0},
        optimizer=lambda tx, hp: shrink_perturb_tx(tx, hp, perturb),
    )
