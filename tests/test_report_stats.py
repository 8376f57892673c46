"""report.stats: rliable's estimators and stratified bootstrap, by hand and against rliable.

rliable 1.2.0 is a dev dependency used only here, as the reference. Its bootstrap imports
``arch``; rliable pins ``arch < 8``, and arch 7.2 decorates a method with pandas'
``deprecate_kwarg`` in the pandas 2 signature, which pandas 3 changed (a warning class came
first). ``_import_rliable`` adapts that one call before importing, only under pandas 3.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest
import scipy.stats

from plasticine_jax.report import stats


def _import_rliable():
    import pandas.util._decorators as decorators

    original = decorators.deprecate_kwarg
    if next(iter(inspect.signature(original).parameters)) == "klass":  # pandas >= 3

        @functools.wraps(original)
        def compat(*args, **kwargs):
            if args and isinstance(args[0], str):
                args = (FutureWarning, *args)
            return original(*args, **kwargs)

        decorators.deprecate_kwarg = compat
    from rliable import library, metrics

    return library, metrics


RNG = np.random.default_rng(7)
SCORES = RNG.normal(size=(7, 3)) + np.arange(3)  # 7 runs x 3 tasks
ONE_TASK = RNG.uniform(size=(6, 1))


def test_estimators_by_hand():
    x = np.array([[1.0], [2.0], [3.0], [4.0], [100.0], [-50.0], [5.0], [6.0]])
    # trimmed 25% each side of 8 sorted values [-50,1,2,3,4,5,6,100] -> mean of 2,3,4,5
    assert stats.iqm(x) == pytest.approx(3.5)
    assert stats.mean(x) == pytest.approx(x.mean())
    m = np.array([[1.0, 10.0, 0.0], [3.0, 20.0, 2.0]])  # task means 2, 15, 1
    assert stats.mean(m) == pytest.approx(6.0)
    assert stats.median(m) == pytest.approx(2.0)
    norm = np.array([[0.5, 1.5], [1.0, 0.0]])  # min(., 1) -> .5, 1, 1, 0: mean .625
    assert stats.optimality_gap(norm) == pytest.approx(0.375)
    # P(X > Y): pairs (3>1, 3>2, 3=3, 1<... ) over x=[3,1], y=[1,2,3]
    # 3: >1, >2, =3 -> 2.5 ; 1: =1, <2, <3 -> 0.5 ; total 3 / 6
    px = stats.probability_of_improvement(np.array([[3.0], [1.0]]), np.array([[1.0], [2.0], [3.0]]))
    assert px == pytest.approx(0.5)
    assert stats.probability_of_improvement(np.array([[2.0], [3.0]]), np.array([[1.0]])) == 1.0
    taus = np.array([0.0, 0.5, 1.0])
    prof = stats.score_distribution(np.array([[0.2, 0.7], [1.0, 0.5]]), taus)
    np.testing.assert_allclose(prof, [1.0, 0.5, 0.0])


def test_estimators_are_vectorised_over_leading_axes():
    batch = np.stack([SCORES, SCORES[::-1] * 2])
    for f in stats.AGGREGATES.values():
        np.testing.assert_allclose(f(batch), [f(SCORES), f(SCORES[::-1] * 2)])


def test_interval_covers_point_and_one_run_is_degenerate():
    e = stats.estimate(SCORES, stats.iqm, reps=2000)
    assert e.ci_low <= e.value <= e.ci_high and e.ci_low < e.ci_high
    one = stats.estimate(np.array([[3.0]]), stats.iqm, reps=100)
    assert one == (3.0, 3.0, 3.0)


def test_bootstrap_blocks_do_not_change_the_draws(monkeypatch):
    full = stats.bootstrap(SCORES, stats.iqm, reps=3000, rng=np.random.RandomState(1))
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 500)
    blocked = stats.bootstrap(SCORES, stats.iqm, reps=3000, rng=np.random.RandomState(1))
    np.testing.assert_array_equal(full, blocked)


def test_curve_band_is_the_iqm_per_time():
    v = RNG.normal(size=(5, 40))
    mid, lo, hi = stats.curve_band(v, reps=200)
    np.testing.assert_allclose(mid, scipy.stats.trim_mean(v, 0.25, axis=0))
    assert (lo <= mid + 1e-12).all() and (mid <= hi + 1e-12).all()


# ---- against rliable -------------------------------------------------------------------


@pytest.fixture(scope="module")
def rliable():
    return _import_rliable()


def test_point_estimates_equal_rliable(rliable):
    _, metrics = rliable
    for x in (SCORES, ONE_TASK):
        assert stats.iqm(x) == pytest.approx(metrics.aggregate_iqm(x))
        assert stats.mean(x) == pytest.approx(metrics.aggregate_mean(x))
        assert stats.median(x) == pytest.approx(metrics.aggregate_median(x))
        assert stats.optimality_gap(x) == pytest.approx(metrics.aggregate_optimality_gap(x))
    y = SCORES[:5] + 0.3
    assert stats.probability_of_improvement(SCORES, y) == pytest.approx(
        metrics.probability_of_improvement(SCORES, y)
    )
    ties = np.array([[1.0, 2.0], [1.0, 3.0], [2.0, 2.0]])
    assert stats.probability_of_improvement(ties, ties[::-1]) == pytest.approx(
        metrics.probability_of_improvement(ties, ties[::-1])
    )


@pytest.mark.parametrize("name", list(stats.AGGREGATES))
def test_seed_stratified_interval_equals_rliable(rliable, name):
    """Same RandomState stream -> the very same bootstrap samples and percentiles."""
    library, metrics = rliable
    ref = {"iqm": metrics.aggregate_iqm, "mean": metrics.aggregate_mean,
           "median": metrics.aggregate_median,
           "optimality_gap": metrics.aggregate_optimality_gap}[name]  # fmt: skip
    for x in (SCORES, ONE_TASK):
        np.random.seed(3)  # noqa: NPY002 - rliable draws from the global stream
        point, ci = library.get_interval_estimates(
            {"x": x}, lambda s: np.array([ref(s)]), reps=1000
        )
        ours = stats.bootstrap(x, stats.AGGREGATES[name], reps=1000,
                               rng=np.random.RandomState(3))  # fmt: skip
        np.testing.assert_allclose(ours[0], point["x"][0])
        np.testing.assert_allclose([ours[1], ours[2]], ci["x"][:, 0], rtol=1e-12)


def test_performance_profile_equals_rliable(rliable):
    library, _ = rliable
    taus = np.linspace(-1, 3, 9)
    np.random.seed(5)  # noqa: NPY002 - rliable draws from the global stream
    prof, ci = library.create_performance_profile({"x": SCORES}, taus, reps=500)
    frac, lo, hi = stats.profile(SCORES, taus, reps=500, rng=np.random.RandomState(5))
    np.testing.assert_allclose(frac, prof["x"])
    np.testing.assert_allclose(np.stack([lo, hi]), ci["x"])


def test_task_bootstrap_and_improvement_intervals_match_rliable(rliable):
    """rliable draws these in another order (tasks or the second matrix per replicate), so
    the intervals agree up to Monte Carlo error."""
    library, metrics = rliable
    np.random.seed(0)  # noqa: NPY002 - rliable draws from the global stream
    _, ci = library.get_interval_estimates(
        {"x": SCORES}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=4000,
        task_bootstrap=True,
    )  # fmt: skip
    _, lo, hi = stats.bootstrap(SCORES, stats.iqm, reps=20000, task_bootstrap=True, rng=1)
    spread = np.ptp(SCORES)
    assert abs(lo - ci["x"][0, 0]) < 0.05 * spread and abs(hi - ci["x"][1, 0]) < 0.05 * spread
    x, y = ONE_TASK, ONE_TASK[::-1] * 0.8 + 0.1
    np.random.seed(0)  # noqa: NPY002 - rliable draws from the global stream
    _, ci = library.get_interval_estimates(
        {"xy": [x, y]}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
        reps=2000,
    )  # fmt: skip
    e = stats.improvement(x, y, reps=20000, rng=1)
    assert e.value == pytest.approx(metrics.probability_of_improvement(x, y))
    assert abs(e.ci_low - ci["xy"][0, 0]) < 0.06 and abs(e.ci_high - ci["xy"][1, 0]) < 0.06
