"""The agents' shared gradient-step pieces (``agents.common``): the global norm, its clip,
and the PRNG chain of ``minibatch_epochs``, checked against numpy and by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from plasticine_jax.agents.common import clip_by_global_norm, global_norm, minibatch_epochs
from plasticine_jax.methods import compose
from plasticine_jax.methods.base import LearnerState
from plasticine_jax.methods.registry import make_method


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


def test_optimizer_reads_key_only_when_a_method_wraps_the_optimizer():
    assert not compose.optimizer_reads_key([])
    assert not compose.optimizer_reads_key([make_method("redo")])  # an intervention only
    assert compose.optimizer_reads_key([make_method("shrink_perturb")])


class _Recorder:
    """A transform that records (at trace time) the ``key`` it is given and adds nothing."""

    def __init__(self):
        self.keys = []

    def tx(self) -> optax.GradientTransformationExtraArgs:
        def update(updates, state, params=None, *, key=None, **extra):
            self.keys.append(key)
            return jax.tree.map(jnp.zeros_like, updates), state

        return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)


def _epochs(step_keys: bool, rec: _Recorder, key, epochs=3, num_minibatches=4):
    x = jnp.arange(16, dtype=jnp.float32)
    params = {"w": jnp.zeros(())}
    tx = rec.tx()
    learner = LearnerState(params, tx.init(params), params, {})

    def loss(p, mb):
        return p["w"] * jnp.sum(mb["x"]), {"first": mb["x"][0]}

    _, aux = minibatch_epochs(learner, {"x": x}, tx, loss, key, epochs, num_minibatches,
                              jnp.float32(1.0), step_keys)  # fmt: skip
    return aux


def test_without_step_keys_the_epochs_follow_purejaxrls_key_chain():
    key = jax.random.PRNGKey(3)
    rec = _Recorder()
    aux = _epochs(False, rec, key)
    assert rec.keys and all(k is None for k in rec.keys)
    # PureJaxRL's _update_epoch: rng, _rng = split(rng); permutation(_rng, batch), per epoch
    firsts, k = [], key
    for _ in range(3):
        k, k_perm = jax.random.split(k)
        perm = np.asarray(jax.random.permutation(k_perm, 16))
        firsts += [float(perm[j * 4]) for j in range(4)]
    np.testing.assert_allclose(float(aux["first"]), np.mean(firsts), rtol=1e-6)


def test_with_step_keys_every_step_gets_a_key():
    rec = _Recorder()
    _epochs(True, rec, jax.random.PRNGKey(3))
    assert rec.keys and all(k is not None for k in rec.keys)
