"""The agents' shared gradient-step pieces (``agents.common``): the global norm and its clip,
checked against numpy (float64) and against optax's transform."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plasticine_jax.agents.common import clip_by_global_norm, global_norm, gradient_clip


def _tree(seed: int, scale: float) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "dense": {"kernel": rng.normal(size=(4, 8)) * scale, "bias": rng.normal(size=8) * scale},
        "head": {"kernel": rng.normal(size=(8, 2)) * scale, "bias": rng.normal(size=2) * scale},
    }


def _norm64(tree: dict) -> float:
    return float(np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2)
                             for x in jax.tree.leaves(tree))))  # fmt: skip


def test_global_norm_is_the_l2_norm_of_all_leaves():
    tree = _tree(0, 1.0)
    got = global_norm(jax.tree.map(jnp.float32, tree))
    np.testing.assert_allclose(float(got), _norm64(tree), rtol=1e-6)
    assert float(global_norm({})) == 0.0


@pytest.mark.parametrize("scale", [0.01, 10.0])
def test_clip_by_global_norm_scales_by_min_one_max_over_norm(scale):
    tree = _tree(1, scale)
    max_norm = 1.0
    norm = _norm64(tree)
    expected = jax.tree.map(lambda x: np.asarray(x) * min(1.0, max_norm / norm), tree)
    g = jax.tree.map(jnp.float32, tree)
    tx = clip_by_global_norm(jnp.float32(max_norm))
    got, _ = jax.jit(tx.update)(g, tx.init(g))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-6, atol=1e-7)
    if norm < max_norm:  # below the threshold the updates pass through unchanged
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(g), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # optax's own transform, for the same inputs: equal up to rounding, and the same state
    ref_tx = optax.clip_by_global_norm(max_norm)
    ref, ref_state = ref_tx.update(g, ref_tx.init(g))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    assert jax.tree.structure(tx.init(g)) == jax.tree.structure(ref_state)


def test_elementwise_clip_clips_each_entry_to_plus_minus_max():
    tree = _tree(2, 3.0)
    g = jax.tree.map(jnp.float32, tree)
    tx = gradient_clip("elementwise", jnp.float32(1.5))
    got, state = jax.jit(tx.update)(g, tx.init(g))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(tree), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.clip(np.asarray(b, np.float32), -1.5, 1.5))
    assert isinstance(state, optax.EmptyState)
    with pytest.raises(ValueError, match="choose 'global_norm' or 'elementwise'"):
        gradient_clip("l2", 1.0)
