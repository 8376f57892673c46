"""Hand-computed values for every metric, under jit and vmap, and no NaN on zeros."""

from __future__ import annotations

import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plasticine_jax import metrics
from plasticine_jax.metrics import (
    ACTIVE_RULES,
    METRICS,
    active_fraction,
    categorical_entropy,
    dormant_mask,
    dormant_ratio,
    dormant_scores,
    effective_rank,
    feature_norm,
    feature_variance,
    gaussian_entropy,
    global_norm,
    plasticity_metrics,
    stable_rank,
    weight_change,
    weight_magnitude,
)
from plasticine_jax.networks import ACTIVATIONS

# 4 units over a batch of 2. Mean |a| per unit: [0, 0.01, 1, 2.99]; their mean is 1, so the
# scores equal these means. With tau = 0.025: units 0 and 1 are dormant; with tau = 0 only 0.
DENSE = jnp.array([[0.0, 0.02, 1.0, 2.98], [0.0, 0.0, -1.0, 3.0]])
DENSE_SCORES = np.array([0.0, 0.01, 1.0, 2.99])


def _conv_activation() -> jax.Array:
    """[B=2, H=2, W=2, C=2]; channel 0 is silent, channel 1 has mean |a| = 1."""
    a = np.zeros((2, 2, 2, 2), np.float32)
    a[..., 1] = np.array([[[1.0, -1.0], [2.0, 0.0]], [[0.5, 1.5], [1.0, 1.0]]])
    return jnp.asarray(a)


def _diag(singular_values, rows: int, cols: int) -> jax.Array:
    x = np.zeros((rows, cols), np.float32)
    for i, s in enumerate(singular_values):
        x[i, i] = s
    return jnp.asarray(x)


# ---------------------------------------------------------------- dormant


def test_dormant_scores_dense_by_hand():
    np.testing.assert_allclose(dormant_scores(DENSE), DENSE_SCORES, rtol=1e-6)


def test_dormant_scores_normalise_by_layer_mean():
    np.testing.assert_allclose(dormant_scores(3.0 * DENSE), DENSE_SCORES, rtol=1e-6)


def test_dormant_scores_conv_average_spatial_axes():
    # channel means: [0, 1]; layer mean 0.5 -> scores [0, 2].
    np.testing.assert_allclose(dormant_scores(_conv_activation()), [0.0, 2.0], rtol=1e-6)


def test_dormant_mask_thresholds():
    np.testing.assert_array_equal(dormant_mask(DENSE, 0.025), [True, True, False, False])
    np.testing.assert_array_equal(dormant_mask(DENSE, 0.0), [True, False, False, False])
    np.testing.assert_array_equal(dormant_mask(DENSE, 1.0), [True, True, True, False])
    assert dormant_mask(DENSE, 0.0).dtype == jnp.bool_


def test_dormant_mask_tau_zero_tolerates_float_noise():
    a = DENSE.at[:, 0].set(jnp.array([1e-12, -1e-12]))
    np.testing.assert_array_equal(dormant_mask(a, 0.0), [True, False, False, False])


def test_dormant_ratio_per_layer_and_mean():
    acts = {"layer_0": _conv_activation(), "layer_1": DENSE}
    ratio, per_layer = dormant_ratio(acts, 0.025)
    assert set(per_layer) == {"layer_0", "layer_1"}
    np.testing.assert_allclose(per_layer["layer_0"], 0.5)
    np.testing.assert_allclose(per_layer["layer_1"], 0.5)
    np.testing.assert_allclose(ratio, 0.5)
    ratio0, per_layer0 = dormant_ratio(acts, 0.0)
    np.testing.assert_allclose(per_layer0["layer_1"], 0.25)
    np.testing.assert_allclose(ratio0, (0.5 + 0.25) / 2)


def test_dormant_ratio_default_tau_is_plasticine():
    ratio, _ = dormant_ratio({"a": DENSE})
    np.testing.assert_allclose(ratio, 0.5)


def test_dormant_ratio_traced_tau_under_jit_and_vmap():
    acts = {"layer_1": DENSE}
    fn = jax.jit(lambda tau: dormant_ratio(acts, tau)[0])
    np.testing.assert_allclose(fn(jnp.float32(0.0)), 0.25)
    np.testing.assert_allclose(fn(jnp.float32(0.025)), 0.5)
    taus = jnp.array([0.0, 0.025, 1.0, 5.0])
    np.testing.assert_allclose(jax.vmap(fn)(taus), [0.25, 0.5, 0.75, 1.0])


def test_dormant_ratio_zero_layer_all_dormant_no_nan():
    ratio, per_layer = dormant_ratio({"z": jnp.zeros((3, 5)), "c": jnp.zeros((2, 3, 3, 4))})
    np.testing.assert_allclose(ratio, 1.0)
    assert all(bool(jnp.isfinite(v)) for v in per_layer.values())
    assert bool(jnp.all(jnp.isfinite(dormant_scores(jnp.zeros((3, 5))))))


def test_dormant_ratio_empty_is_zero():
    ratio, per_layer = dormant_ratio({})
    assert per_layer == {}
    np.testing.assert_allclose(ratio, 0.0)


def test_dormant_scores_rejects_unbatched():
    with pytest.raises(ValueError, match="batch"):
        dormant_scores(jnp.ones(4))


# ---------------------------------------------------------------- active fraction


@pytest.mark.parametrize(
    ("activation", "features", "expected"),
    [
        ("relu", [[0.0, 1.0], [2.0, 0.0]], 0.5),
        ("relu", [[0.0, 0.0], [0.0, 3.0]], 0.25),
        ("crelu", [[0.0, 1.0, 1.0, 0.0]], 0.5),
        ("leaky_relu", [[-0.01, 0.5], [0.2, -0.3]], 0.5),
        ("gelu", [[-0.1, 0.5], [0.2, 0.3]], 0.75),
        ("silu", [[-0.2, -0.1], [0.0, 0.3]], 0.25),
        ("tanh", [[0.995, -0.999], [0.5, 0.0]], 0.5),
        ("tanh", [[0.99, -0.99], [0.991, 0.0]], 0.75),
        ("fourier", [[1.0, 0.0], [-0.995, 0.7]], 0.5),
        ("sigmoid", [[0.005, 0.5], [0.995, 0.3]], 0.5),
        ("sigmoid", [[0.01, 0.99], [0.999, 0.001]], 0.5),
        ("identity", [[0.0, -2.0], [0.0, 1e-3]], 0.5),
    ],
)
def test_active_fraction_rules(activation, features, expected):
    np.testing.assert_allclose(active_fraction(jnp.array(features), activation), expected)


def test_active_fraction_covers_every_network_activation():
    assert set(ACTIVE_RULES) == set(ACTIVATIONS)


def test_active_fraction_unknown_names_allowed_values():
    with pytest.raises(ValueError, match="relu.*tanh|tanh.*relu"):
        active_fraction(jnp.ones((2, 2)), "swish")


# ---------------------------------------------------------------- rank


SV = [4.0, 3.0, 2.0, 1.0]  # sum 10; cumulative [0.4, 0.7, 0.9, 1.0]
# squares [16, 9, 4, 1], sum 30; cumulative [0.533, 0.833, 0.967, 1.0]


@pytest.mark.parametrize(("rows", "cols"), [(4, 4), (7, 4), (4, 9)])
@pytest.mark.parametrize(
    ("threshold", "squared", "expected"),
    [
        (0.99, False, 4),
        (0.95, False, 4),
        (0.85, False, 3),
        (0.65, False, 2),
        (0.3, False, 1),
        (0.99, True, 4),
        (0.95, True, 3),
        (0.8, True, 2),
        (0.5, True, 1),
    ],
)
def test_stable_rank_diagonal(rows, cols, threshold, squared, expected):
    x = _diag(SV, rows, cols)
    assert float(stable_rank(x, threshold, squared=squared)) == expected


def test_stable_rank_conventions_differ():
    x = _diag(SV, 6, 4)
    # s: cumulative [0.4, 0.7, 0.9, 1.0]; s**2: [0.533, 0.833, 0.967, 1.0]
    assert float(stable_rank(x, 0.95)) == 4
    assert float(stable_rank(x, 0.95, squared=True)) == 3
    assert float(stable_rank(x, 0.8)) == 3
    assert float(stable_rank(x, 0.8, squared=True)) == 2


def test_stable_rank_exact_boundary_counts_as_reached():
    # s = [2, 1, 1]: cumulative [0.5, 0.75, 1.0] exactly; k = #(c < threshold) + 1.
    x = _diag([2.0, 1.0, 1.0], 5, 3)
    assert float(stable_rank(x, 0.5)) == 1
    assert float(stable_rank(x, 0.75)) == 2
    assert float(stable_rank(x, 0.76)) == 3


def test_stable_rank_invariant_to_rotation_and_scale():
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (6, 6)))
    x = 5.0 * q @ _diag(SV, 6, 4)
    assert float(stable_rank(x, 0.85)) == 3
    assert float(stable_rank(x, 0.8, squared=True)) == 2


def test_stable_rank_bounds_and_threshold_one():
    x = _diag([1.0, 1.0, 1.0], 3, 3)
    assert float(stable_rank(x, 1.0)) == 3
    assert float(stable_rank(_diag([1.0], 5, 8), 0.99)) == 1


def test_stable_rank_zero_features_is_zero():
    for shape in [(4, 3), (3, 4)]:
        r = stable_rank(jnp.zeros(shape))
        assert r.dtype == jnp.float32
        assert float(r) == 0.0
        assert float(stable_rank(jnp.zeros(shape), squared=True)) == 0.0


def test_stable_rank_rejects_non_matrix():
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        stable_rank(jnp.ones((2, 2, 2)))


def test_effective_rank_identity_and_rank_one():
    np.testing.assert_allclose(effective_rank(jnp.eye(5)), 5.0, rtol=1e-5)
    np.testing.assert_allclose(effective_rank(_diag([2.0, 2.0, 2.0], 3, 7)), 3.0, rtol=1e-5)
    u = jnp.arange(1.0, 7.0)[:, None]
    v = jnp.array([[1.0, -2.0, 0.5]])
    np.testing.assert_allclose(effective_rank(u @ v), 1.0, rtol=1e-4)


def test_effective_rank_by_hand():
    # p = [0.75, 0.25]; H = -(0.75 log 0.75 + 0.25 log 0.25)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    np.testing.assert_allclose(effective_rank(_diag([3.0, 1.0], 2, 5)), math.exp(h), rtol=1e-5)


def test_effective_rank_zero_no_nan():
    r = effective_rank(jnp.zeros((4, 6)))
    assert float(r) == 0.0
    g = jax.grad(lambda x: effective_rank(x))(jnp.eye(3))
    assert bool(jnp.all(jnp.isfinite(g)))


# ---------------------------------------------------------------- stats


def test_feature_norm_and_variance_by_hand():
    f = jnp.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    # norms 5, 0, 1, 2 -> mean 2
    np.testing.assert_allclose(feature_norm(f), 2.0)
    # Plasticine (default): each row's variance over its features, ddof 1:
    # [3,4] -> 0.5, [0,0] -> 0, [1,0] -> 0.5, [0,2] -> 2; mean 0.75
    np.testing.assert_allclose(feature_variance(f), 0.75)
    # over the batch: column 0: [3,0,1,0] mean 1, var (4+1+0+1)/4 = 1.5; column 1: [4,0,0,2]
    # mean 1.5, var (6.25+2.25+2.25+0.25)/4 = 2.75; mean 2.125
    np.testing.assert_allclose(feature_variance(f, over="batch"), 2.125)
    for over in ("features", "batch"):
        np.testing.assert_allclose(feature_variance(jnp.ones((5, 3)), over), 0.0)


def test_feature_variance_conventions_differ_on_collapsed_features():
    # Every sample maps to the same non-constant vector: no spread over the batch, but each
    # sample's features spread (var([1, 3]) = 2 with ddof 1).
    f = jnp.tile(jnp.array([[1.0, 3.0]]), (4, 1))
    np.testing.assert_allclose(feature_variance(f), 2.0)
    np.testing.assert_allclose(feature_variance(f, over="batch"), 0.0)
    np.testing.assert_allclose(feature_variance(jnp.ones((4, 1)) * 7.0), 0.0)  # D = 1: no NaN
    with pytest.raises(ValueError, match="over must be one of"):
        feature_variance(f, over="samples")


@pytest.mark.parametrize("shape", [(64, 16), (8, 32)])
def test_feature_variance_matches_numpy(shape):
    f = np.asarray(jax.random.normal(jax.random.key(7), shape)) * np.linspace(0.5, 3.0, shape[1])
    # torch.mean(torch.var(features, dim=1)) in Plasticine's metrics: unbiased, per sample.
    np.testing.assert_allclose(feature_variance(jnp.asarray(f)), np.var(f, axis=1, ddof=1).mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(feature_variance(jnp.asarray(f), over="batch"),
                               np.var(f, axis=0).mean(), rtol=1e-5)


def test_weight_magnitude_change_global_norm_by_hand():
    before = {"w": jnp.array([[1.0, -1.0], [1.0, -1.0]]), "b": jnp.array([0.0, 2.0])}
    after = {"w": jnp.array([[1.0, 1.0], [1.0, -1.0]]), "b": jnp.array([0.0, 2.0])}
    # squares: 4 ones + 0 + 4 = 8 over 6 entries
    np.testing.assert_allclose(weight_magnitude(before), math.sqrt(8 / 6), rtol=1e-6)
    # one entry changed by 2 -> sqrt(4 / 6)
    np.testing.assert_allclose(weight_change(before, after), math.sqrt(4 / 6), rtol=1e-6)
    np.testing.assert_allclose(weight_change(before, before), 0.0)
    np.testing.assert_allclose(global_norm(before), math.sqrt(8), rtol=1e-6)
    np.testing.assert_allclose(global_norm({"a": jnp.array([3.0]), "b": [jnp.array(4.0)]}), 5.0)
    np.testing.assert_allclose(weight_magnitude({}), 0.0)


def test_weight_change_structure_mismatch_raises():
    with pytest.raises(ValueError):
        weight_change({"a": jnp.ones(2)}, {"b": jnp.ones(2)})


# ---------------------------------------------------------------- entropy


def test_categorical_entropy_by_hand():
    np.testing.assert_allclose(categorical_entropy(jnp.zeros((3, 5))), math.log(5), rtol=1e-6)
    np.testing.assert_allclose(categorical_entropy(jnp.array([[0.0, -jnp.inf]])), 0.0)
    p = np.array([0.5, 0.25, 0.25])
    logits = jnp.asarray(np.log(p) + 7.0)
    h = -(p * np.log(p)).sum()
    rows = jnp.stack([logits, jnp.zeros(3)])
    np.testing.assert_allclose(categorical_entropy(rows), (h + math.log(3)) / 2, rtol=1e-6)


def test_categorical_entropy_peaked_no_nan():
    h = categorical_entropy(jnp.array([[1e4, -1e4, 0.0]]))
    assert bool(jnp.isfinite(h))
    np.testing.assert_allclose(h, 0.0, atol=1e-6)


def test_gaussian_entropy_by_hand():
    c = 0.5 * math.log(2 * math.pi * math.e)
    np.testing.assert_allclose(gaussian_entropy(jnp.zeros(3)), 3 * c, rtol=1e-6)
    np.testing.assert_allclose(
        gaussian_entropy(jnp.array([math.log(2.0), -1.0])), 2 * c + math.log(2.0) - 1.0, rtol=1e-6
    )


# ---------------------------------------------------------------- plasticity_metrics, jit, vmap


def _probe(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "activations": {
            "layer_0": jax.nn.relu(jax.random.normal(k1, (6, 3, 3, 4))),
            "layer_1": jax.nn.relu(jax.random.normal(k2, (6, 8)) - 1.0),
        },
        "features": {"actor": jax.random.normal(k3, (6, 8)), "critic": jnp.zeros((6, 8))},
        "params": {"w": jax.random.normal(k1, (3, 2)), "b": jnp.zeros(2)},
        "params_before": {"w": jnp.zeros((3, 2)), "b": jnp.ones(2)},
    }


def _metrics(probe, tau):
    return plasticity_metrics(**probe, activation="relu", tau=tau)


def test_plasticity_metrics_keys_and_values():
    probe = _probe(jax.random.key(1))
    out = _metrics(probe, 0.025)
    expected = {
        "dormant_ratio",
        "dormant/layer_0",
        "dormant/layer_1",
        "weight_magnitude",
        "weight_change",
    }
    for k in ("actor", "critic"):
        for name in (
            "active_fraction",
            "stable_rank",
            "effective_rank",
            "feature_norm",
            "feature_variance",
        ):
            expected.add(f"{name}/{k}")
    assert set(out) == expected
    for v in out.values():
        chex.assert_shape(v, ())
        assert v.dtype == jnp.float32
        assert bool(jnp.isfinite(v))
    f = probe["features"]["actor"]
    np.testing.assert_allclose(out["stable_rank/actor"], stable_rank(f))
    np.testing.assert_allclose(out["effective_rank/actor"], effective_rank(f), rtol=1e-6)
    np.testing.assert_allclose(out["active_fraction/actor"], jnp.mean(f > 0), rtol=1e-6)
    np.testing.assert_allclose(out["dormant_ratio"], dormant_ratio(probe["activations"])[0])
    assert float(out["stable_rank/critic"]) == 0.0
    assert float(out["effective_rank/critic"]) == 0.0
    np.testing.assert_allclose(
        out["weight_change"], weight_change(probe["params_before"], probe["params"])
    )
    sq = plasticity_metrics(
        **probe, activation="relu", tau=0.0, squared_rank=True, rank_threshold=0.5
    )
    np.testing.assert_allclose(sq["stable_rank/actor"], stable_rank(f, 0.5, squared=True))
    fa = np.asarray(f)
    np.testing.assert_allclose(out["feature_variance/actor"], np.var(fa, 1, ddof=1).mean(),
                               rtol=1e-5)
    by_batch = plasticity_metrics(**probe, activation="relu", tau=0.0, variance_over="batch")
    np.testing.assert_allclose(by_batch["feature_variance/actor"], np.var(fa, 0).mean(),
                               rtol=1e-5)


def test_plasticity_metrics_jit_matches_eager_and_traces_once():
    probe = _probe(jax.random.key(2))
    fn = jax.jit(chex.assert_max_traces(_metrics, n=1))
    jitted = fn(probe, jnp.float32(0.025))
    fn(probe, jnp.float32(0.1))  # new tau value, no retrace
    chex.assert_trees_all_close(jitted, _metrics(probe, 0.025), rtol=1e-5, atol=1e-6)


def test_vmap_over_seeds_equals_each_seed_alone():
    keys = jax.random.split(jax.random.key(3), 3)
    probes = jax.vmap(_probe)(keys)
    taus = jnp.array([0.0, 0.025, 0.5])
    batched = jax.jit(jax.vmap(_metrics))(probes, taus)
    single_fn = jax.jit(_metrics)
    for i in range(3):
        single = single_fn(_probe(keys[i]), taus[i])
        chex.assert_trees_all_close(
            jax.tree.map(lambda x, i=i: x[i], batched), single, rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("shape", [(4, 9), (9, 4)])
def test_rank_vmap_wide_and_tall(shape):
    xs = jnp.stack([_diag(SV, *shape), _diag([1.0, 1.0], *shape), jnp.zeros(shape)])
    np.testing.assert_allclose(jax.vmap(stable_rank)(xs), [4.0, 2.0, 0.0])
    np.testing.assert_allclose(
        jax.vmap(lambda x: stable_rank(x, 0.8, squared=True))(xs), [2.0, 2.0, 0.0]
    )
    np.testing.assert_allclose(jax.vmap(effective_rank)(xs)[1:], [2.0, 0.0], rtol=1e-5)
    for i in range(3):
        np.testing.assert_allclose(
            jax.vmap(effective_rank)(xs)[i], effective_rank(xs[i]), rtol=1e-6
        )


def test_scalar_metrics_under_jit_and_vmap():
    f = jnp.stack([jnp.array([[3.0, 4.0], [0.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])])
    np.testing.assert_allclose(jax.jit(jax.vmap(feature_norm))(f), [2.5, 1.0])
    # per member, each row's variance over its 2 features (ddof 1): [(0.5 + 0) / 2, 0.5]
    np.testing.assert_allclose(jax.jit(jax.vmap(feature_variance))(f), [0.25, 0.5])
    # over the batch, per member: [(2.25 + 4) / 2, (0.25 + 0.25) / 2]
    by_batch = jax.jit(jax.vmap(lambda x: feature_variance(x, "batch")))(f)
    np.testing.assert_allclose(by_batch, [3.125, 0.25])
    np.testing.assert_allclose(
        jax.jit(jax.vmap(lambda x: active_fraction(x, "relu")))(f), [0.5, 0.5]
    )
    logits = jnp.stack([jnp.zeros((2, 4)), jnp.array([[0.0, -jnp.inf, -jnp.inf, -jnp.inf]] * 2)])
    np.testing.assert_allclose(
        jax.jit(jax.vmap(categorical_entropy))(logits), [math.log(4), 0.0], atol=1e-6
    )
    trees = {"w": jnp.array([[3.0, 4.0], [0.0, 0.0]])}
    np.testing.assert_allclose(jax.jit(jax.vmap(global_norm))(trees), [5.0, 0.0])
    np.testing.assert_allclose(
        jax.jit(jax.vmap(weight_magnitude))(trees), [math.sqrt(12.5), 0.0], rtol=1e-6
    )
    log_std = jnp.array([[0.0, 0.0], [1.0, -1.0]])
    c = 0.5 * math.log(2 * math.pi * math.e)
    np.testing.assert_allclose(jax.vmap(gaussian_entropy)(log_std), [2 * c, 2 * c], rtol=1e-6)
    masks = jax.jit(jax.vmap(dormant_mask))(jnp.stack([DENSE, 2 * DENSE]), jnp.array([0.0, 1.0]))
    np.testing.assert_array_equal(masks, [[True, False, False, False], [True, True, True, False]])


def test_metrics_registry_lists_public_functions():
    assert set(METRICS) >= {
        "dormant_ratio",
        "stable_rank",
        "effective_rank",
        "active_fraction",
        "weight_magnitude",
        "weight_change",
        "global_norm",
    }
    for name, description in METRICS.items():
        assert callable(getattr(metrics, name))
        assert description and "\n" not in description


# ------------------------------------------------- SVD under vmap: one matrix at a time


def test_vmapped_singular_values_decompose_one_matrix_per_call():
    """jaxlib's batched CPU SVD can deadlock (two at once hold XLA's thread pool) and ran
    34x slower; under vmap ``singular_values`` calls LAPACK on single matrices in a loop,
    with the values of the per-matrix SVD, nested vmaps and gradients included."""
    from plasticine_jax.metrics.rank import singular_values

    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 12, 5))
    fn = jax.jit(jax.vmap(jax.vmap(singular_values)))
    hlo = fn.lower(x).as_text()
    batch_dims = re.findall(r"@lapack_sgesdd_ffi.*num_batch_dims = \"(\d+)\"", hlo)
    assert batch_dims == ["0"], batch_dims  # one unbatched SVD call, inside the loops
    want = np.stack([[np.linalg.svd(np.asarray(m), compute_uv=False) for m in row] for row in x])
    np.testing.assert_allclose(np.asarray(fn(x)), want, rtol=1e-5, atol=1e-5)
    # The same matrix for every member is decomposed once, unbatched.
    shared = jax.vmap(lambda _: singular_values(x[0, 0]), axis_size=4)(jnp.arange(4))
    np.testing.assert_allclose(np.asarray(shared), np.broadcast_to(want[0, 0], (4, 5)), rtol=1e-5)
    g = jax.vmap(jax.grad(lambda m: singular_values(m).sum()))(x[0])
    assert g.shape == x[0].shape and bool(jnp.all(jnp.isfinite(g)))


@pytest.mark.timeout(240)
def test_concurrent_vmapped_svds_finish():
    """The pattern that hung a PPO run: several independent vmapped SVDs of wide feature
    matrices in one scanned program, run repeatedly (the timeout turns a hang into a
    failure)."""
    from plasticine_jax.metrics.rank import singular_values

    def f(a, b):
        return singular_values(a).sum() + singular_values(jnp.tanh(b)).sum()

    step = jax.jit(
        lambda a, b: jax.lax.scan(
            lambda c, i: (c + jax.vmap(f)(a + i, b - i), None), jnp.zeros(8), jnp.arange(3.0)
        )[0]
    )
    a, b = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 64, 256))
    for i in range(10):
        out = step(a + i, b)
    assert np.all(np.isfinite(np.asarray(out)))


def test_fraction_active_units_counts_entries_over_all_layers_by_hand():
    from plasticine_jax.metrics import fraction_active_units

    # layer 0: 3 of 4 entries > 0; layer 1: 1 of 8. FAU = 4 / 12 (the reference's
    # (act_1 + act_2) / (total_1 + total_2)), not the mean of 3/4 and 1/8.
    acts = {"actor/layer_0": jnp.array([[1.0, 0.0], [2.0, 0.5]]),
            "actor/layer_1": jnp.array([[0.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]])}
    assert float(fraction_active_units(acts, "relu")) == pytest.approx(4 / 12)
    # tanh: saturated entries (|f| > 0.99) are the inactive ones
    t = {"l": jnp.array([[0.995, -0.5, 0.2, -1.0]])}
    assert float(fraction_active_units(t, "tanh")) == pytest.approx(0.5)
