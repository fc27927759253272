"""Bootstrap Pearson/Spearman, jackknife, percentile and BCa intervals against loops, SciPy and ua_helpers.analysis.stats."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats as sps

from inference_data import (EPS64, LAYERS, METRICS, N, corr_tolerance, count_matrix_rs, flat_tests, make_data,
                            p_value_rtol, peak_bytes, resample_r_tolerance, run_extended)
from ua_helpers.analysis import bootstrap, stats


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def result(data):
    return run_extended(data)


# ----------------------------------------------------------------------------------------------------------------
# Bootstrap: Pearson, Spearman, BCa
# ----------------------------------------------------------------------------------------------------------------

def test_bootstrap_pearson_matches_the_full_count_matrix_and_correlation_table(data, result):
    x, y = flat_tests(data["values"]), data["preference"]
    idx = stats.bootstrap_indices(N, 500, seed=1)
    ref = count_matrix_rs(x, y, idx)  # the path before chunking
    tol = resample_r_tolerance(x, y, idx)
    assert_allclose(bootstrap.bootstrap_pearson(x, y, idx, chunk_size=128), ref, rtol=0, atol=tol)
    for chunk_size in (1, 7, None):
        lazy = bootstrap.bootstrap_pearson(x, y, bootstrap.Resamples(N, 500, seed=1), chunk_size=chunk_size)
        assert_allclose(lazy, ref, rtol=0, atol=tol)
    table = stats.correlation_table(data["values"], y, LAYERS, METRICS, n_bootstrap=2000, seed=7)
    # the same code on the same resamples: r and p to a few roundings of n-term sums of unit-scale values; CI
    # bounds are bootstrap r's (resample_r_tolerance bounds their differences)
    dr = corr_tolerance(x, y)
    assert_allclose(result.tests["r"], table["r"], rtol=0, atol=dr)
    assert_allclose(result.tests["p_value"], table["p_value"], rtol=p_value_rtol(table["r"], N, dr), atol=0)
    tol = resample_r_tolerance(x, y, stats.bootstrap_indices(N, 2000, seed=7))
    for col in ("ci_lower", "ci_upper"):
        assert_allclose(result.tests[col], table[col], rtol=0, atol=tol)
    assert_array_equal(result.tests["excludes_zero"], ~table["includes_zero"])


@pytest.mark.parametrize("n", [7, 230])
@pytest.mark.parametrize("chunk_size", [1, 3, 64, 5000])
def test_resamples_in_chunks_are_the_rows_of_bootstrap_indices(n, chunk_size):
    full = bootstrap.bootstrap_indices(n, 301, seed=11)
    lazy = bootstrap.Resamples(n, 301, seed=11)
    assert lazy.shape == full.shape
    assert_array_equal(np.concatenate(list(lazy.chunks(chunk_size))), full)


def test_resampling_memory_does_not_grow_with_n_bootstrap_times_n_pairs(monkeypatch):
    """1,000 resamples of 20,000 pairs with a chunk budget of 2**18 elements (the package's is
    ``CHUNK_ELEMENTS`` = 2**22; the budget is made 16x smaller so the test draws 16x fewer indices): the index
    matrix alone would take 160 MB; chunks keep each array within the budget (one chunk at a time here;
    ``CHUNK_THREADS`` threads hold that many chunks at once)."""
    real_chunk_rows = bootstrap.chunk_rows
    n, n_boot, budget = 20_000, 1_000, 2**18
    assert real_chunk_rows(n) == bootstrap.CHUNK_ELEMENTS // n  # the default budget is CHUNK_ELEMENTS
    monkeypatch.setattr(bootstrap, "CHUNK_THREADS", 1)
    monkeypatch.setattr(bootstrap, "chunk_rows",  # a smaller budget, also where a caller asks for its own
                        lambda n, per_row=1, limit=budget: real_chunk_rows(n, per_row, min(limit, budget)))
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2, n)), rng.normal(size=n)
    whole = n_boot * n * 8
    peak = peak_bytes(lambda: bootstrap.bootstrap_pearson(x, y, bootstrap.Resamples(n, n_boot, seed=0)))
    # a chunk's drawn indices, their offsets, counts and weights: 4 arrays of the budget (measured 10 MB), plus the
    # output and a few n-vectors
    assert peak < 6 * budget * 8 + 2 * n_boot * 8 + 8 * n * 8 < whole / 5
    n_spearman = 200  # Spearman's chunk: 3 rank arrays per resample (measured 4 MB)
    peak = peak_bytes(lambda: bootstrap.bootstrap_spearman(x, y, bootstrap.Resamples(n, n_spearman, seed=0)))
    assert peak < 8 * budget * 8 < n_spearman * n * 8


def test_spearman_rho_matches_scipy(data, result):
    x, y = flat_tests(data["values"]), data["preference"]
    ref = [sps.spearmanr(row, y) for row in x]
    rho = [r.statistic for r in ref]
    dr = corr_tolerance(sps.rankdata(x, axis=1), sps.rankdata(y))  # Pearson r of the ranks
    assert_allclose(result.tests["spearman_rho"], rho, rtol=0, atol=dr)
    assert_allclose(result.tests["spearman_p_value"], [r.pvalue for r in ref], rtol=p_value_rtol(rho, N, dr))


@pytest.mark.parametrize("ties", [False, True])
def test_bootstrap_spearman_matches_rankdata_loop(data, ties):
    x, y = flat_tests(data["values"])[:6].copy(), data["preference"].copy()
    if ties:  # ties in the original data, on top of those that resampling creates
        x[1] = np.round(x[1], 1)
        x[4] = np.round(x[4] * 2)
        y = np.round(y, 1)
    idx = stats.bootstrap_indices(N, 150, seed=4)
    ours = bootstrap.bootstrap_spearman(x, y, idx, chunk_size=40)
    ref = np.empty_like(ours)
    for b, i in enumerate(idx):
        ry = sps.rankdata(y[i])
        for t in range(len(x)):
            ref[t, b] = np.corrcoef(sps.rankdata(x[t, i]), ry)[0, 1]
    # ours is exact integer arithmetic up to one division; the references are Pearson r of ranks (|z| <= sqrt 3)
    dr = 8 * N * EPS64 * 3
    assert_allclose(ours, ref, rtol=0, atol=dr)
    assert_allclose(ours[:, :5], [[sps.spearmanr(x[t, i], y[i]).statistic for i in idx[:5]]
                                  for t in range(len(x))], rtol=0, atol=dr)


def test_jackknife_pearson_matches_loop(data):
    x, y = flat_tests(data["values"])[:3], data["preference"]
    jack = bootstrap.jackknife_pearson(x, y)
    keep = ~np.eye(N, dtype=bool)
    ref = np.array([[sps.pearsonr(row[keep[i]], y[keep[i]])[0] for i in range(N)] for row in x])
    assert_allclose(jack, ref, rtol=0, atol=corr_tolerance(x, y))


def quantile_tolerance(boot) -> float:
    """Two linear-interpolation quantiles of one sorted distribution whose levels differ by a few eps (from
    ndtr/ndtri of z0 and a): the level error times the count times the widest gap, plus the interpolation's
    own rounding."""
    s = np.sort(np.asarray(boot)[np.isfinite(boot)])
    return 64 * EPS64 * len(s) * float(np.diff(s).max()) + 4 * EPS64 * float(np.abs(s).max())


def _pearson_axis(x, y, axis=-1):
    xc = x - x.mean(axis=axis, keepdims=True)
    yc = y - y.mean(axis=axis, keepdims=True)
    return (xc * yc).sum(axis=axis) / np.sqrt((xc**2).sum(axis=axis) * (yc**2).sum(axis=axis))


def test_bca_matches_scipy_given_its_bootstrap_distribution(data):
    x, y = data["values"][4, 0], data["preference"]
    res = sps.bootstrap((x, y), _pearson_axis, paired=True, vectorized=True, n_resamples=3000,
                        method="BCa", rng=np.random.default_rng(99))
    lo, hi = bootstrap.bca_interval(sps.pearsonr(x, y)[0], res.bootstrap_distribution,
                                    bootstrap.jackknife_pearson(x, y))
    # the same distribution, interpolated at levels from z0 and a (which agree to a few eps)
    tol = quantile_tolerance(res.bootstrap_distribution)
    assert lo[0] == pytest.approx(res.confidence_interval.low, abs=tol)
    assert hi[0] == pytest.approx(res.confidence_interval.high, abs=tol)
    lo90, hi90 = bootstrap.bca_interval(sps.pearsonr(x, y)[0], res.bootstrap_distribution,
                                        bootstrap.jackknife_pearson(x, y), ci_level=0.9)
    res90 = sps.bootstrap((x, y), _pearson_axis, paired=True, vectorized=True, n_resamples=0, method="BCa",
                          bootstrap_result=res, confidence_level=0.9)
    assert (lo90[0], hi90[0]) == pytest.approx(tuple(res90.confidence_interval), abs=tol)


def test_bca_reproduces_scipy_on_the_same_resamples(data, result):
    """scipy draws ``rng.integers(0, n, (n_resamples, n))`` in one batch: exactly stats.bootstrap_indices."""
    y = data["preference"]
    for t in (0, 22):
        x = flat_tests(data["values"])[t]
        res = sps.bootstrap((x, y), _pearson_axis, paired=True, vectorized=True, n_resamples=2000,
                            method="BCa", rng=np.random.default_rng(7))
        idx = stats.bootstrap_indices(N, 2000, seed=7)
        ours = bootstrap.bootstrap_pearson(x, y, idx)[0]
        dr = resample_r_tolerance(x, y, idx)
        assert_allclose(ours, res.bootstrap_distribution, rtol=0, atol=dr)
        # the intervals then agree to dr plus the quantile arithmetic, unless a resample's r lies within dr of
        # r itself (z0 would count it on the other side): check that it does not
        assert np.min(np.abs(ours - sps.pearsonr(x, y)[0])) > 2 * dr
        tol = dr + quantile_tolerance(ours)
        row = result.tests.iloc[t]
        assert row["bca_lower"] == pytest.approx(res.confidence_interval.low, abs=tol)
        assert row["bca_upper"] == pytest.approx(res.confidence_interval.high, abs=tol)


def test_percentile_interval_matches_numpy():
    rng = np.random.default_rng(0)
    boot = rng.normal(size=(4, 999))
    boot[1, ::7] = np.nan
    lo, hi = bootstrap.percentile_interval(boot, 0.9)
    # the same linear interpolation a + (b - a) g: a few roundings of values up to max|boot|
    tol = 4 * EPS64 * np.nanmax(np.abs(boot))
    assert_allclose(lo, np.nanpercentile(boot, 5, axis=1), rtol=0, atol=tol)
    assert_allclose(hi, np.nanpercentile(boot, 95, axis=1), rtol=0, atol=tol)




def test_resamples_must_match_the_data():
    x, y = np.arange(5.0), np.arange(5.0) ** 2
    with pytest.raises(ValueError, match="resamples are of 10 items; expected 5"):
        bootstrap.bootstrap_pearson(x, y, bootstrap.Resamples(10, 50))
    with pytest.raises(ValueError, match="n_bootstrap must be a positive integer"):
        bootstrap.Resamples(5, 0)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        bootstrap.bootstrap_pearson(x, y, bootstrap.Resamples(5, 50), chunk_size=0)


def test_threaded_chunks_give_the_serial_numbers(monkeypatch):
    """Chunks computed on several threads are the serial loop's numbers, bit for bit (same resamples, same
    arithmetic per chunk, stored in order)."""
    from ua_helpers.analysis import confounds, multiplicity

    rng = np.random.default_rng(8)
    n = 300
    x, y, cov = rng.normal(size=(7, n)), rng.normal(size=n), rng.normal(size=(n, 2))
    res = bootstrap.Resamples(n, 500, seed=1)

    def run():
        return (bootstrap.bootstrap_pearson(x, y, res, chunk_size=37),
                bootstrap.bootstrap_spearman(x, y, res, chunk_size=23),
                confounds.bootstrap_partial(x, y, cov, res, chunk_size=41),
                multiplicity.max_stat_permutation(x, y, 400, seed=2, chunk_size=29).null_max)

    monkeypatch.setattr(bootstrap, "CHUNK_THREADS", 1)
    serial = run()
    monkeypatch.setattr(bootstrap, "CHUNK_THREADS", 3)
    for one, threaded in zip(serial, run()):
        np.testing.assert_array_equal(threaded, one)
    seen = [int(c[0, 0]) for c, _ in bootstrap.map_chunks(lambda c: None, res.chunks(50), n_threads=4)]
    assert seen == [int(c[0, 0]) for c in res.chunks(50)]  # chunks come back in order
