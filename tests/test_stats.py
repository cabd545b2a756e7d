"""IQM and bootstrap intervals against closed forms and known distributions."""

import math

import numpy as np
import pytest

from algd.analysis.stats import (
    bootstrap_band,
    bootstrap_ci,
    iqm,
    mean,
    stratified_bootstrap,
    trimmed_mean,
)


@pytest.mark.parametrize("values,expected", [
    ([1, 2, 3], 2.0),  # n < 4: nothing trimmed
    ([1, 2, 3, 100], 2.5),  # n = 4: middle two
    ([1, 2, 3, 4, 1000], 3.0),  # n = 5: floor(1.25) = 1 dropped at each end
    ([8, 1, 7, 2, 6, 3, 5, 4], 4.5),  # n = 8: mean of 3, 4, 5, 6
])
def test_iqm_has_scipy_trim_mean_semantics(values, expected):
    assert iqm(np.array(values, dtype=float)) == pytest.approx(expected)


def test_iqm_along_an_axis_and_trimmed_mean_limits():
    x = np.array([[1.0, 2, 3, 4], [10, 20, 30, 400]])
    np.testing.assert_allclose(iqm(x, axis=1), [2.5, 25.0])
    assert trimmed_mean(np.arange(10.0), 0.0) == pytest.approx(4.5)
    with pytest.raises(ValueError):
        trimmed_mean(np.arange(3.0), 0.5)


def test_one_run_has_no_interval_and_constant_runs_a_degenerate_one():
    est = bootstrap_ci(np.array([3.0]))
    assert est.value == 3.0 and not est.has_interval and est.n == 1
    est = bootstrap_ci(np.full(5, 2.0), reps=200)
    assert (est.low, est.value, est.high) == (2.0, 2.0, 2.0)


def test_stratified_resampling_keeps_each_stratum_size():
    """Stratum A is all 0, stratum B all 1: every stratified resample has 3 zeros and 5 ones, so
    the pooled mean is always 5/8 and the interval collapses; an unstratified bootstrap of the
    pooled 8 values would vary."""
    a, b = np.zeros(3), np.ones(5)
    est = stratified_bootstrap([a, b], mean, reps=2000, rng=1)
    assert est.low == pytest.approx(5 / 8) and est.high == pytest.approx(5 / 8)
    pooled = bootstrap_ci(np.concatenate([a, b]), mean, reps=2000, rng=1)
    assert pooled.high - pooled.low > 0.3


def _exponential_iqm() -> float:
    """IQM of Exp(1): E[X | q25 < X < q75] = ((a+1)e^{-a} − (b+1)e^{-b}) / 0.5."""
    a, b = -math.log(0.75), math.log(4.0)
    return ((a + 1) * math.exp(-a) - (b + 1) * math.exp(-b)) / 0.5


@pytest.mark.parametrize("dist,truth", [
    ("normal", 1.5),  # symmetric: the IQM is the centre
    ("exponential", _exponential_iqm()),  # ≈ 0.7384, below the mean 1
])
def test_iqm_interval_covers_the_population_iqm(dist, truth):
    """Coverage of the nominal 95 % percentile interval over 300 independent experiments of 40
    runs each: percentile intervals run slightly narrow at this size, so accept 88–99 %."""
    rng = np.random.default_rng(7)
    hits, n_exp, n = 0, 300, 40
    for _ in range(n_exp):
        x = rng.normal(1.5, 2.0, n) if dist == "normal" else rng.exponential(1.0, n)
        est = bootstrap_ci(x, iqm, reps=1000, rng=rng)
        hits += est.low <= truth <= est.high
    coverage = hits / n_exp
    assert 0.88 <= coverage <= 0.99, coverage


def test_interval_shrinks_like_one_over_sqrt_n():
    rng = np.random.default_rng(3)
    widths = []
    for n in (25, 400):
        est = bootstrap_ci(rng.normal(0.0, 1.0, n), mean, reps=4000, rng=rng)
        widths.append(est.high - est.low)
    # the 95 % interval of a mean is ≈ 2·1.96·σ/√n: 0.784 and 0.196
    assert widths[0] == pytest.approx(2 * 1.96 / 5, rel=0.2)
    assert widths[1] == pytest.approx(2 * 1.96 / 20, rel=0.2)


def test_band_of_curves_brackets_the_mean_and_matches_the_pointwise_bootstrap():
    rng = np.random.default_rng(0)
    curves = rng.normal(size=(6, 1)) + np.linspace(0, 1, 5)  # seed offsets + a common trend
    centre, low, high = bootstrap_band(curves, reps=4000, rng=1)
    np.testing.assert_allclose(centre, curves.mean(0))
    assert np.all(low <= centre) and np.all(centre <= high)
    # every point's interval is the bootstrap interval of that column's mean (same offsets)
    est = bootstrap_ci(curves[:, 2], mean, reps=4000, rng=2)
    assert high[2] - low[2] == pytest.approx(est.high - est.low, rel=0.15)
    centre1, low1, _ = bootstrap_band(curves[:1])
    assert np.all(np.isnan(low1)) and np.allclose(centre1, curves[0])


def test_sample_iqm_converges_to_the_closed_form():
    x = np.random.default_rng(0).exponential(1.0, 400_000)
    assert iqm(x) == pytest.approx(_exponential_iqm(), abs=0.004)
