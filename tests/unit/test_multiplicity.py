"""Holm, Benjamini-Hochberg and permutation tests against plain loops and statsmodels; family-wise error."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats as sps

from inference_data import N, corr_tolerance, flat_tests, make_data, peak_bytes
from ua_helpers.analysis import multiplicity
from ua_helpers.analysis.bootstrap import CHUNK_ELEMENTS


@pytest.fixture(scope="module")
def data():
    return make_data()


# ----------------------------------------------------------------------------------------------------------------
# Multiplicity
# ----------------------------------------------------------------------------------------------------------------

def holm_loop(p):
    live = [i for i in range(len(p)) if not math.isnan(p[i])]
    m = len(live)
    out = [math.nan] * len(p)
    running = 0.0
    for rank, i in enumerate(sorted(live, key=lambda i: p[i])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return np.array(out)


def bh_loop(p):
    live = [i for i in range(len(p)) if not math.isnan(p[i])]
    m = len(live)
    order = sorted(live, key=lambda i: p[i])
    out = [math.nan] * len(p)
    running = 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, m * p[i] / (rank + 1))
        out[i] = min(1.0, running)
    return np.array(out)


@pytest.fixture(scope="module")
def pvalues():
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(0, 0.01, 8), rng.uniform(0, 1, 37)])
    p[[4, 20, 33]] = np.nan
    p[10] = p[11]  # a tie
    return p


def test_holm_matches_plain_loop(pvalues):
    # the loop forms the same products (m - j + 1) p and running maxima: equal but for a few ulps of p <= 1
    assert_allclose(multiplicity.holm(pvalues), holm_loop(pvalues), rtol=0, atol=1e-15)


def test_benjamini_hochberg_matches_plain_loop(pvalues):
    # the same quotients m p / j and running minima: a few ulps of p <= 1 (4.4e-16 each)
    assert_allclose(multiplicity.benjamini_hochberg(pvalues), bh_loop(pvalues), rtol=0, atol=1e-15)


def test_multiplicity_matches_statsmodels(pvalues):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    live = ~np.isnan(pvalues)
    for ours, method in ((multiplicity.holm, "holm"), (multiplicity.benjamini_hochberg, "fdr_bh")):
        ref = multitest.multipletests(pvalues[live], method=method)[1]
        assert_allclose(ours(pvalues)[live], ref, rtol=1e-13, atol=0)  # other operation order: a few eps


def test_multiplicity_nan_stays_nan_and_is_not_counted(pvalues):
    live = ~np.isnan(pvalues)
    for fn in (multiplicity.holm, multiplicity.benjamini_hochberg):
        adj = fn(pvalues)
        assert np.array_equal(np.isnan(adj), ~live)
        assert_array_equal(adj[live], fn(pvalues[live]))  # family size m counts only the live tests
        assert np.all(adj[live] >= pvalues[live]) and np.all(adj[live] <= 1)
    # shape is kept
    assert multiplicity.holm(pvalues.reshape(9, 5)).shape == (9, 5)


def test_multiplicity_rejects_invalid_p():
    for bad in ([0.1, 1.2], [-0.1, 0.5], [np.inf, 0.2]):
        with pytest.raises(ValueError):
            multiplicity.holm(bad)
        with pytest.raises(ValueError):
            multiplicity.benjamini_hochberg(bad)


# ----------------------------------------------------------------------------------------------------------------
# Permutations
# ----------------------------------------------------------------------------------------------------------------

def test_permutation_indices_are_seeded_permutations():
    perms = multiplicity.permutation_indices(30, 200, seed=5)
    assert perms.shape == (200, 30)
    assert_array_equal(np.sort(perms, axis=1), np.broadcast_to(np.arange(30), (200, 30)))
    assert_array_equal(perms, multiplicity.permutation_indices(30, 200, seed=5))
    assert not np.array_equal(perms, multiplicity.permutation_indices(30, 200, seed=6))
    with pytest.raises(ValueError):
        multiplicity.permutation_indices(30, 200, seed=None)
    with pytest.raises(ValueError):
        multiplicity.permutation_indices(30, 0, seed=1)


@pytest.mark.parametrize("n", [7, 230])
@pytest.mark.parametrize("chunk_size", [1, 3, 64, 5000])
def test_permutations_in_chunks_are_the_rows_of_one_draw(n, chunk_size):
    """The documented stream: rng.permuted of arange(n) rows, from the child SeedSequence (seed, spawn_key=(1,))."""
    rng = np.random.default_rng(np.random.SeedSequence(5, spawn_key=(1,)))
    whole = rng.permuted(np.broadcast_to(np.arange(n), (301, n)), axis=1)
    assert_array_equal(multiplicity.permutation_indices(n, 301, seed=5), whole)
    assert_array_equal(np.concatenate(list(multiplicity.permutation_chunks(n, 301, 5, chunk_size))), whole)


def test_max_stat_in_small_chunks_equals_one_chunk(data):
    small = multiplicity.max_stat_permutation(data["values"], data["preference"], 500, seed=2, chunk_size=7)
    one = multiplicity.max_stat_permutation(data["values"], data["preference"], 500, seed=2, chunk_size=500)
    # null |r| = |z_x . z_y*| / n: sums of n unit-scale terms, rounded differently at most by BLAS blocking
    assert_allclose(small.null_max, one.null_max, rtol=0, atol=4 * N * np.finfo(np.float64).eps)
    assert_array_equal(small.p_perm, one.p_perm)
    assert_array_equal(small.p_maxstat, one.p_maxstat)


def test_permutation_memory_does_not_grow_with_n_permutations_times_n_pairs(monkeypatch):
    """1,000 permutations of 20,000 pairs with a chunk budget of 2**18 elements (the package's is CHUNK_ELEMENTS =
    2**22; 16x smaller, so the test draws 16x fewer permutations): the permutation matrix alone would take 160 MB."""
    real_chunk_rows = multiplicity.chunk_rows
    n, n_perm, budget = 20_000, 1_000, 2**18
    assert real_chunk_rows(n) == CHUNK_ELEMENTS // n  # the default budget is CHUNK_ELEMENTS
    monkeypatch.setattr(multiplicity, "chunk_rows",  # a smaller budget, also where a caller asks for its own
                        lambda n, per_row=1, limit=budget: real_chunk_rows(n, per_row, min(limit, budget)))
    rng = np.random.default_rng(1)
    values, pref = rng.normal(size=(3, n)), rng.normal(size=n)
    peak = peak_bytes(lambda: multiplicity.max_stat_permutation(values, pref, n_perm, seed=0))
    # a chunk's permutations (int64), permuted z-scores and the null |r| block: ~3 arrays of the budget per thread
    # (measured 10 MB)
    assert peak < 6 * budget * 8 + 4 * n_perm * 8 + 16 * n * 8 < n_perm * n * 8 / 2


def test_permutation_pvalues_match_plain_loop(data):
    x, y = flat_tests(data["values"]), data["preference"]
    n_perm, seed = 400, 11
    perms = multiplicity.permutation_indices(N, n_perm, seed)
    ours = multiplicity.permutation_pvalues(data["values"], y, n_perm, seed)
    assert ours.shape == (9, 5)
    for t in (0, 7, 20, 22, 44):
        r_obs = sps.pearsonr(x[t], y)[0]
        count = 0
        for perm in perms:
            # ">=" up to a relative 1e-13, as the engine's tie tolerance (100 eps) does; a null |r| within
            # corr_tolerance of the observed one would make the count depend on the route (none does here)
            if abs(sps.pearsonr(x[t], y[perm])[0]) >= abs(r_obs) * (1 - 1e-13):
                count += 1
        assert ours.ravel()[t] == (1 + count) / (1 + n_perm)


def test_max_stat_matches_plain_loop(data):
    values, y = data["values"][:3], data["preference"]  # a 3 x 5 family keeps the loop quick
    n_perm, seed = 300, 13
    perms = multiplicity.permutation_indices(N, n_perm, seed)
    res = multiplicity.max_stat_permutation(values, y, n_perm, seed)
    x = flat_tests(values)
    r_obs = np.array([sps.pearsonr(row, y)[0] for row in x])
    null_max = []
    for perm in perms:
        null_max.append(max(abs(sps.pearsonr(row, y[perm])[0]) for row in x))
    null_max = np.array(null_max)
    dr = corr_tolerance(x, y)  # z-scored dot products vs scipy's pearsonr
    assert_allclose(res.null_max, null_max, rtol=0, atol=dr)
    expected = [(1 + sum(m >= abs(r) * (1 - 1e-13) for m in null_max)) / (1 + n_perm) for r in r_obs]
    assert_allclose(res.p_maxstat.ravel(), expected, rtol=0, atol=0)
    assert_allclose(res.r.ravel(), r_obs, rtol=0, atol=dr)
    assert res.critical_value == pytest.approx(np.quantile(null_max, 0.95), abs=2 * dr)


def test_max_stat_is_at_least_per_test_p_and_matches_critical_value(data):
    res = multiplicity.max_stat_permutation(data["values"], data["preference"], 1000, seed=2)
    assert np.all(res.p_maxstat >= res.p_perm)
    assert np.all(res.p_perm >= 1 / 1001)
    strong = np.abs(res.r) > res.critical_value
    assert strong.any()  # the planted effect
    assert np.all(res.p_maxstat[strong] <= 0.05 + 1 / 1001)
    assert np.all(res.p_maxstat[np.abs(res.r) < res.critical_value] >= 0.05)


def test_max_stat_leaves_out_degenerate_tests(data):
    values = data["values"].copy()
    values[2, 3] = 1.0  # constant metric
    res = multiplicity.max_stat_permutation(values, data["preference"], 300, seed=3)
    assert np.isnan(res.p_maxstat[2, 3]) and np.isnan(res.p_perm[2, 3]) and np.isnan(res.r[2, 3])
    assert np.isfinite(np.delete(res.p_maxstat.ravel(), 2 * 5 + 3)).all()
    ref = multiplicity.max_stat_permutation(data["values"], data["preference"], 300, seed=3)
    keep = np.ones((9, 5), bool)
    keep[2, 3] = False
    assert_array_equal(res.p_perm[keep], ref.p_perm[keep])  # per-test p-values do not depend on the family


def test_max_stat_controls_family_wise_error_under_null():
    """Under the null (metrics independent of the preference), P(any p_maxstat < 0.05) stays near 0.05."""
    rng = np.random.default_rng(2024)
    n_families, any_maxstat, any_raw = 200, 0, 0
    for f in range(n_families):
        values = np.cumsum(rng.normal(scale=0.4, size=(4, 3, 40)), axis=0) + rng.normal(size=(1, 3, 40))
        y = rng.normal(size=40)
        res = multiplicity.max_stat_permutation(values, y, 199, seed=f)
        any_maxstat += bool(np.any(res.p_maxstat < 0.05))
        any_raw += bool(np.any(res.p_perm < 0.05))
    assert any_maxstat / n_families <= 0.10
    assert any_raw / n_families > any_maxstat / n_families  # without correction the family errs more often




def test_monte_carlo_standard_error_and_verdicts_near_alpha():
    p = np.array([0.0001, 0.04, 0.05, 0.5, np.nan])
    se = multiplicity.monte_carlo_se(p, 10_000)
    assert_allclose(se[:4], [math.sqrt(x * (1 - x) / 10_000) for x in p[:4]])
    assert np.isnan(se[4])
    # 0.04 is 4.5 standard errors (0.0020) below 0.05: safe; 0.05 itself could flip; NaN is never "near"
    assert multiplicity.near_alpha(p, se, 0.05).tolist() == [False, False, True, False, False]
    assert multiplicity.near_alpha([0.046], [0.0021], 0.05).tolist() == [True]
    with pytest.raises(ValueError, match="n_permutations"):
        multiplicity.monte_carlo_se(p, 0)
