"""Bootstrap correlations: the vectorized resamples against the seed's pearsonr loop on the same index matrix."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats as sps

import seed_reference as seed
from inference_data import resample_r_tolerance
from ua_helpers.analysis.bootstrap import bootstrap_pearson
from ua_helpers.analysis.metrics import METRIC_NAMES
from ua_helpers.analysis.stats import CorrelationResult, DegenerateInputWarning, bootstrap_correlation, bootstrap_indices, correlation_table


def _correlated(seed_, n=230, rho=0.3):
    rng = np.random.default_rng(seed_)
    x = rng.normal(size=n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return x, y


@pytest.fixture(scope="module")
def table_inputs():
    """Metric values (3 layers x 5 metrics x 60 pairs) with a range of true correlations, and a preference."""
    rng = np.random.default_rng(2026)
    n = 60
    pref = rng.normal(size=n)
    values = np.empty((3, len(METRIC_NAMES), n))
    for i in range(3):
        for j in range(len(METRIC_NAMES)):
            rho = (i * 5 + j) / 15 - 0.5
            values[i, j] = rho * pref + np.sqrt(1 - rho**2) * rng.normal(size=n) * (j + 1) + 10 * i
    return values, pref, [0, 4, 8]


# --------------------------------------------------------------------------- the same resamples as the seed
@pytest.mark.parametrize("n, n_bootstrap", [(230, 2000), (25, 3000)])
def test_resample_rs_equal_seed_loop(n, n_bootstrap):
    x, y = _correlated(n, n)
    idx = bootstrap_indices(n, n_bootstrap, seed=3)
    ours = bootstrap_pearson(x, y, idx)
    assert ours.shape == (1, n_bootstrap)
    assert_allclose(ours[0], seed.bootstrap_rs(x, y, idx), rtol=0, atol=resample_r_tolerance(x, y, idx))


def test_resample_rs_equal_seed_loop_with_degenerate_resamples():
    """Few distinct values: some resamples are constant; the seed skips them, ours marks them NaN."""
    rng = np.random.default_rng(8)
    n = 6
    x = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 2.0])
    y = rng.normal(size=n)
    idx = bootstrap_indices(n, 2000, seed=5)
    ours, ref = bootstrap_pearson(x, y, idx)[0], seed.bootstrap_rs(x, y, idx)
    assert np.isnan(ref).sum() > 100  # the case really occurs
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    tol = resample_r_tolerance(x, y, idx)
    assert_allclose(ours[~np.isnan(ours)], ref[~np.isnan(ref)], rtol=0, atol=tol)
    # and the CI is the seed's percentile of the resamples it kept (interpolating between two r's within tol)
    r, lo, hi, p = seed.bootstrap_correlation(x, y, idx)
    res = bootstrap_correlation(x, y, n_bootstrap=2000, seed=5)
    assert_allclose([res.ci_lower, res.ci_upper], [lo, hi], rtol=0, atol=tol)


def test_resample_rs_many_tests_at_once():
    rng = np.random.default_rng(4)
    xs, y = rng.normal(size=(7, 40)), rng.normal(size=40)
    idx = bootstrap_indices(40, 500, seed=0)
    ours = bootstrap_pearson(xs, y, idx)
    assert ours.shape == (7, 500)
    for t in range(7):
        assert_allclose(ours[t], seed.bootstrap_rs(xs[t], y, idx), rtol=0, atol=resample_r_tolerance(xs[t], y, idx))


@pytest.mark.parametrize("ci_level", [0.95, 0.9, 0.99, 0.5])
def test_ci_equals_seed_percentiles(ci_level):
    x, y = _correlated(1)
    idx = bootstrap_indices(len(x), 1500, seed=11)
    r, lo, hi, p = seed.bootstrap_correlation(x, y, idx, ci_level)
    res = bootstrap_correlation(x, y, n_bootstrap=1500, ci_level=ci_level, seed=11)
    assert isinstance(res, CorrelationResult)
    assert_allclose([res.ci_lower, res.ci_upper], [lo, hi], rtol=0, atol=resample_r_tolerance(x, y, idx))
    # both call scipy.stats.pearsonr on the same float64 arrays: equal up to the order of its n-term sums
    assert_allclose([res.r, res.p_value], [r, p], rtol=1e-12, atol=0)
    assert res.ci_lower < res.r < res.ci_upper


def test_bootstrap_indices():
    idx = bootstrap_indices(17, 400, seed=9)
    assert idx.shape == (400, 17) and idx.min() >= 0 and idx.max() <= 16
    np.testing.assert_array_equal(idx, np.random.default_rng(9).integers(0, 17, size=(400, 17)))
    with pytest.raises(ValueError, match="n_bootstrap"):
        bootstrap_indices(17, 0)


@pytest.mark.parametrize("rho", [0.0, 0.3, -0.7, 0.99])
def test_r_and_p_equal_scipy(rho):
    x, y = _correlated(int(abs(rho) * 100), 120, rho)
    res = bootstrap_correlation(x, y, n_bootstrap=200)
    ref = sps.pearsonr(x, y)
    # the same scipy call on the same arrays (relative 1e-12: a few roundings of n = 120-term sums, with room)
    assert_allclose([res.r, res.p_value], [ref.statistic, ref.pvalue], rtol=1e-12, atol=0)


def test_accepts_lists_and_float32():
    x, y = _correlated(2, 50)
    a = bootstrap_correlation(list(x), list(y), n_bootstrap=300)
    b = bootstrap_correlation(x.astype(np.float32), y, n_bootstrap=300)
    # float32 input rounds each x by <= eps32 / 2 relative: r moves by <= eps32 max|x| / std(x) (a perturbation
    # of x over its spread), the CI bounds likewise; p moves relatively by |d log p / dr| times that
    dr = float(np.finfo(np.float32).eps) * np.abs(x).max() / x.std()
    assert_allclose(a[:3], b[:3], rtol=0, atol=4 * dr)
    dlogp = (len(x) - 2) * abs(a.r) / (1 - a.r**2) + 1 / max(abs(a.r), 1e-12)  # |d log p / dr| of the t-test
    assert_allclose(a.p_value, b.p_value, rtol=4 * dr * dlogp, atol=0)


# --------------------------------------------------------------------------- the table
def test_table_rows_equal_bootstrap_correlation(table_inputs):
    values, pref, layers = table_inputs
    table = correlation_table(values, pref, layers, METRIC_NAMES, n_bootstrap=1500, seed=21)
    assert list(table.columns) == ["layer", "metric", "r", "ci_lower", "ci_upper", "p_value", "includes_zero",
                                   "n", "note"]
    assert len(table) == 15
    assert list(table["layer"]) == [l for l in layers for _ in METRIC_NAMES]
    assert list(table["metric"]) == list(METRIC_NAMES) * 3
    for row in table.itertuples():
        i, j = layers.index(row.layer), METRIC_NAMES.index(row.metric)
        one = bootstrap_correlation(values[i, j], pref, n_bootstrap=1500, seed=21)
        # the same code on the same resamples; only the number of tests in one matrix product differs
        tol = resample_r_tolerance(values[i, j], pref, bootstrap_indices(60, 1500, seed=21))
        assert_allclose([row.r, row.ci_lower, row.ci_upper], list(one)[:3], rtol=0, atol=tol,
                        err_msg=f"{row.layer} {row.metric}")
        assert_allclose(row.p_value, one.p_value, rtol=1e-12, err_msg=f"{row.layer} {row.metric}")
        assert row.includes_zero == (one.ci_lower <= 0 <= one.ci_upper)  # the seed's rule
        assert row.n == 60 and row.note == ""
    assert table["includes_zero"].any() and not table["includes_zero"].all()


def test_table_equals_seed_loop_on_shared_resamples(table_inputs):
    values, pref, layers = table_inputs
    table = correlation_table(values, pref, layers, METRIC_NAMES, n_bootstrap=400, seed=4)
    idx = bootstrap_indices(len(pref), 400, seed=4)
    for row in table.itertuples():
        x = values[layers.index(row.layer), METRIC_NAMES.index(row.metric)]
        r, lo, hi, p = seed.bootstrap_correlation(x, pref, idx)
        assert_allclose([row.r, row.ci_lower, row.ci_upper], [r, lo, hi], rtol=0,
                        atol=resample_r_tolerance(x, pref, idx))
        assert_allclose(row.p_value, p, rtol=1e-12)  # both scipy.stats.pearsonr on the same arrays


def test_same_seed_same_numbers_different_seed_different(table_inputs):
    values, pref, layers = table_inputs
    a = correlation_table(values, pref, layers, METRIC_NAMES, n_bootstrap=800, seed=1)
    b = correlation_table(values, pref, layers, METRIC_NAMES, n_bootstrap=800, seed=1)
    c = correlation_table(values, pref, layers, METRIC_NAMES, n_bootstrap=800, seed=2)
    np.testing.assert_array_equal(a[["ci_lower", "ci_upper"]].to_numpy(), b[["ci_lower", "ci_upper"]].to_numpy())
    assert not np.array_equal(a["ci_lower"].to_numpy(), c["ci_lower"].to_numpy())
    np.testing.assert_array_equal(a["r"].to_numpy(), c["r"].to_numpy())  # r does not depend on the resamples
    x, y = _correlated(3)
    assert bootstrap_correlation(x, y, 800, seed=7) == bootstrap_correlation(x, y, 800, seed=7)
    assert bootstrap_correlation(x, y, 800, seed=7) != bootstrap_correlation(x, y, 800, seed=8)


def test_no_global_random_state_is_used():
    x, y = _correlated(5)
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    a = bootstrap_correlation(x, y, 500, seed=3)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    np.random.seed(123)
    assert bootstrap_correlation(x, y, 500, seed=3) == a


# --------------------------------------------------------------------------- degenerate input and arguments
@pytest.mark.parametrize("x, reason", [
    (np.full(30, 2.5), "x is constant"),
    (np.r_[np.nan, np.arange(29.0)], "x has non-finite values"),
    (np.r_[np.inf, np.arange(29.0)], "x has non-finite values"),
])
def test_degenerate_input_gives_nan_with_warning(x, reason):
    y = np.arange(30.0) ** 0.5
    with pytest.warns(DegenerateInputWarning, match=reason):
        res = bootstrap_correlation(x, y, n_bootstrap=100)
    assert all(np.isnan(v) for v in res)
    with pytest.warns(DegenerateInputWarning, match=reason.replace("x ", "y ")):
        bootstrap_correlation(y, x, n_bootstrap=100)


def test_table_with_a_constant_metric_gives_a_nan_row_with_a_note(table_inputs):
    values, pref, layers = table_inputs
    values = values.copy()
    values[1, 2] = 0.25  # within_pair_sim of layer 4 is constant
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no crash, no warning storm
        table = correlation_table(values, pref, layers, METRIC_NAMES, n_bootstrap=500)
    bad = table[(table["layer"] == 4) & (table["metric"] == "within_pair_sim")].iloc[0]
    assert np.isnan([bad.r, bad.ci_lower, bad.ci_upper, bad.p_value]).all()
    assert bad.includes_zero and bad.note == "x is constant"
    rest = table.drop(index=bad.name)
    assert np.isfinite(rest[["r", "ci_lower", "ci_upper", "p_value"]].to_numpy()).all()
    assert (rest["note"] == "").all()
    ref = correlation_table(table_inputs[0], pref, layers, METRIC_NAMES, n_bootstrap=500)
    # the same resamples; the tests of one matrix product differ (14 instead of 15): r's within a few roundings
    # of 60-term sums of unit-scale values, amplified by a resample's spread (resample_r_tolerance)
    tol = max(resample_r_tolerance(values[i, j], pref, bootstrap_indices(60, 500, seed=42))
              for i in range(values.shape[0]) for j in range(values.shape[1]) if np.ptp(values[i, j]) > 0)
    assert_allclose(rest["ci_lower"].to_numpy(), ref.drop(index=bad.name)["ci_lower"].to_numpy(), rtol=0, atol=tol)


def test_table_with_constant_preference_is_all_nan(table_inputs):
    values, _, layers = table_inputs
    table = correlation_table(values, np.zeros(values.shape[-1]), layers, METRIC_NAMES, n_bootstrap=100)
    assert table["r"].isna().all() and (table["note"] == "y is constant").all()
    assert table["includes_zero"].all()


@pytest.mark.parametrize("ci_level", [0.0, 1.0, 1.5, -0.1, 95])
def test_ci_level_outside_unit_interval(ci_level, table_inputs):
    x, y = _correlated(0, 30)
    with pytest.raises(ValueError, match="ci_level must be in"):
        bootstrap_correlation(x, y, n_bootstrap=100, ci_level=ci_level)
    values, pref, layers = table_inputs
    with pytest.raises(ValueError, match="ci_level must be in"):
        correlation_table(values, pref, layers, METRIC_NAMES, n_bootstrap=100, ci_level=ci_level)


def test_shape_errors(table_inputs):
    values, pref, layers = table_inputs
    with pytest.raises(ValueError, match="same length"):
        bootstrap_correlation(np.arange(5.0), np.arange(6.0))
    with pytest.raises(ValueError, match="1-D"):
        bootstrap_correlation(np.ones((3, 4)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="does not match"):
        correlation_table(values, pref, layers[:2], METRIC_NAMES)
    with pytest.raises(ValueError, match="does not match"):
        correlation_table(values, pref[:-1], layers, METRIC_NAMES)
    with pytest.raises(ValueError, match="does not match"):
        correlation_table(values, pref, layers, METRIC_NAMES[:4])


# --------------------------------------------------------------------------- Monte Carlo error
def test_ci_stable_between_10k_and_100k_resamples():
    x, y = _correlated(42, 230, 0.3)  # the size and effect of a realistic test
    small = bootstrap_correlation(x, y, n_bootstrap=10_000, seed=1)
    large = bootstrap_correlation(x, y, n_bootstrap=100_000, seed=2)
    assert abs(small.ci_lower - large.ci_lower) < 0.01
    assert abs(small.ci_upper - large.ci_upper) < 0.01


def test_seed_stream_and_ours_agree_within_monte_carlo_error():
    """The seed drew with np.random.choice, we with default_rng: different resamples, the same CI up to noise."""
    x, y = _correlated(7, 230, 0.3)
    r, lo, hi, p = seed.bootstrap_correlation(x, y, seed.seed_indices(230, 5000, seed=42))
    ours = bootstrap_correlation(x, y, n_bootstrap=5000, seed=42)
    assert abs(ours.ci_lower - lo) < 0.02 and abs(ours.ci_upper - hi) < 0.02
    assert ours.r == pytest.approx(r, rel=1e-12)
