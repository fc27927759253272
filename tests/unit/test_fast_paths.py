"""The analysis' fast paths against the routes they replaced: the same numbers, bit for bit.

Every fast path here does the same arithmetic on the same numbers in another order of work (row by row, one
order at a time, counts kept once, permutations drawn once, rows split between threads), so the comparisons
are exact (``assert_array_equal``), not to a tolerance.
"""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from ua_helpers.analysis import bootstrap, confounds, metrics, multiplicity


@pytest.fixture(scope="module")
def family():
    """45 tests x 301 pairs (an n not divisible by 4), a preference, covariates with categories."""
    rng = np.random.default_rng(11)
    n = 301
    x = rng.normal(size=(45, n)) + rng.normal(size=(45, 1))
    x[3] = np.round(x[3], 1)  # ties: the Spearman route for tied rows runs beside the fast one
    y = 0.3 * x[0] + rng.normal(size=n)
    cats = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    cov = np.column_stack([rng.integers(-3, 4, n), confounds.category_dummies(cats)]).astype(float)
    return x, y, cov


@pytest.mark.parametrize("n", [97, 600])
def test_resample_counts_row_by_row_equal_one_flat_bincount(n):
    rng = np.random.default_rng(0)
    b = 40
    idx = rng.integers(0, n, size=(b, n))
    flat = (idx + n * np.arange(b)[:, None]).ravel()  # the route before: one bincount over offset indices
    assert_array_equal(bootstrap.resample_counts(idx, n), np.bincount(flat, minlength=b * n).reshape(b, n))


@pytest.mark.parametrize("n", [1, 4, 9, 301])
def test_int16_lane_cumsum_equals_cumsum(n):
    rng = np.random.default_rng(n)
    width = -(-n // 4) * 4
    c = np.zeros((6, width), np.int16)
    c[:, :n] = rng.multinomial(min(n, 32767), np.ones(n) / n, size=6)  # row sums <= n, as resample counts
    c[5, :n] = 0
    c[5, 0] = min(n, 32767)  # every draw on the first item: the largest lane value, carried through every word
    ref = np.cumsum(c, axis=1)
    bootstrap._cumsum_int16_lanes(c)
    assert_array_equal(c, ref)


@pytest.mark.parametrize("ctype", [np.int16, np.int32])
@pytest.mark.parametrize("n", [7, 301])
def test_sorted_cumsum_dot_equals_all_orders_gathered_at_once(ctype, n):
    rng = np.random.default_rng(3)
    c = rng.multinomial(n, np.ones(n) / n, size=9).astype(ctype)  # [B, n] counts of 9 resamples
    v = rng.integers(-n * 5, n * 5, size=(9, n)).astype(np.int32)
    orders = np.argsort(rng.normal(size=(13, n)), axis=1)
    # the route before: every order gathered at once, (B, T, n), one cumulative sum and one einsum
    cum = np.cumsum(np.take(c, orders, axis=1), axis=-1, dtype=np.int32)
    ref = np.einsum("btn,btn->bt", cum, np.take(v, orders, axis=1), dtype=np.int64)
    assert_array_equal(bootstrap._sorted_cumsum_dot(c, v, orders), ref)


def test_spearman_bootstrap_does_not_depend_on_the_chunk_size(family):
    """Exact integer sums up to one division: any chunking gives the same rho (the default is cache-sized)."""
    x, y, _ = family
    res = bootstrap.Resamples(x.shape[1], 120, seed=5)
    ref = bootstrap.bootstrap_spearman(x, y, res, chunk_size=120)
    for chunk_size in (1, 7, None):
        assert_array_equal(bootstrap.bootstrap_spearman(x, y, res, chunk_size=chunk_size), ref)


def test_kept_counts_give_every_bootstrap_the_same_numbers(family):
    x, y, cov = family
    n = x.shape[1]
    plain, kept = bootstrap.Resamples(n, 250, seed=9), bootstrap.Resamples(n, 250, seed=9, keep_counts=True)
    counts = kept.counts()
    assert counts.dtype == np.uint8 and counts.shape == (250, n)
    assert_array_equal(counts, bootstrap.resample_counts(bootstrap.bootstrap_indices(n, 250, seed=9), n))
    assert kept.counts() is counts  # drawn and counted once
    for chunk_size in (None, 17):
        assert_array_equal(bootstrap.bootstrap_pearson(x, y, kept, chunk_size=chunk_size),
                           bootstrap.bootstrap_pearson(x, y, plain, chunk_size=chunk_size))
        assert_array_equal(bootstrap.bootstrap_spearman(x, y, kept, chunk_size=chunk_size),
                           bootstrap.bootstrap_spearman(x, y, plain, chunk_size=chunk_size))
        assert_array_equal(confounds.bootstrap_partial(x, y, cov, kept, chunk_size=chunk_size),
                           confounds.bootstrap_partial(x, y, cov, plain, chunk_size=chunk_size))



def test_a_set_spanning_the_shared_design_gets_its_own_runs_numbers(family):
    """The covariate sets share one product per chunk; a set whose columns are the shared design's, in order,
    gets the numbers of a run on that set alone (the same products, the same arithmetic)."""
    x, y, cov = family
    n = x.shape[1]
    sets = {"first": cov[:, :1], "dummies": cov[:, 1:], "all": cov, "first again": cov[:, :1]}
    res = bootstrap.Resamples(n, 90, seed=6, keep_counts=True)
    shared = confounds.bootstrap_partial_sets(x, y, sets, res, chunk_size=40)
    assert_array_equal(shared["all"], confounds.bootstrap_partial(x, y, cov, res, chunk_size=40))
    assert_array_equal(shared["first again"], shared["first"])

def test_kept_counts_widen_when_an_item_is_drawn_more_than_255_times(monkeypatch):
    n = 400
    idx = np.random.default_rng(1).integers(0, n, size=(3, n))
    idx[1, :300] = 7  # item 7 drawn 300 times (at least) in the second resample
    monkeypatch.setattr(bootstrap.Resamples, "chunks", lambda self, chunk_size: iter([idx[:2], idx[2:]]))
    counts = bootstrap.Resamples(n, 3, seed=0, keep_counts=True).counts()
    assert counts.dtype == np.uint16
    assert_array_equal(counts, bootstrap.resample_counts(idx, n))


def test_counts_are_kept_only_on_request():
    with pytest.raises(ValueError, match="keep_counts=True"):
        bootstrap.Resamples(10, 5).counts()
    assert "keep_counts=True" in repr(bootstrap.Resamples(10, 5, keep_counts=True))


def test_families_on_shared_permutations_equal_one_call_each(family):
    x, y, _ = family
    ranked = np.argsort(np.argsort(x, axis=1), axis=1).astype(float)
    ranked[5] = np.nan  # a left-out test in one family only
    both = multiplicity.max_stat_permutations([(x, y), (ranked, np.argsort(np.argsort(y)))], 300, seed=4,
                                              chunk_size=70)
    for got, (values, pref) in zip(both, [(x, y), (ranked, np.argsort(np.argsort(y)))]):
        ref = multiplicity.max_stat_permutation(values, pref, 300, seed=4, chunk_size=70)
        for field in ("r", "p_perm", "p_maxstat", "null_max"):
            assert_array_equal(getattr(got, field), getattr(ref, field))
        assert got.critical_value == ref.critical_value
    with pytest.raises(ValueError, match="same n_pairs"):
        multiplicity.max_stat_permutations([(x, y), (x[:, :-1], y[:-1])], 10)


def previous_knn_density(x, k, block_rows):
    """The kNN density before the tiles: every row's products with all rows, in blocks of rows, partitioned whole."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    neg_xn = -xn
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], block_rows):
        neg_cos = xn[start:start + block_rows] @ neg_xn.T
        neg_cos.partition(k - 1, axis=1)
        out[start:start + block_rows] = 1.0 / (np.clip(1.0 + neg_cos[:, :k], 0.0, 2.0).mean(axis=1) + metrics.EPS)
    return out


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("tile", [7, 64, 699, 700])
def test_knn_density_by_tiles_equals_the_previous_loop(monkeypatch, threads, tile):
    """Half the products, each row's k smallest kept across tiles, with one thread or two: the distances are the
    same dot products (below the diagonal from the transposed tile, which BLAS may round differently: a
    distance error delta moves D by D^2 delta) and the same k of them are kept, summed in another order (2 (k - 1)
    eps relative)."""
    x = np.random.default_rng(5).normal(size=(700, 48)) + 0.2
    x[3] = x[2]  # a duplicate row: distances that round to or below 0 (clipped)
    monkeypatch.setattr(metrics, "KNN_THREADS", threads)
    k, eps = 10, np.finfo(np.float64).eps
    ref = previous_knn_density(x, k, 64)
    assert_allclose(metrics.knn_density(x, k, tile=tile), ref, rtol=2 * (k - 1) * eps,
                    atol=ref.max() ** 2 * 4 * x.shape[1] * eps)


def test_pair_metrics_with_norms_once_equal_the_norm_at_every_use():
    rng = np.random.default_rng(8)
    a = (rng.normal(size=(150, 40)) + 1).astype(np.float32)
    b = (rng.normal(size=(150, 40)) + 1.3).astype(np.float32)
    ours = metrics.compute_pair_metrics(a, b, k=10)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ca, cb = a64.mean(axis=0), b64.mean(axis=0)
    mid = (ca + cb) / 2
    within = np.einsum("nd,nd->n", a64, b64) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
                                                 + metrics.EPS)
    ref = {  # the expressions before: np.linalg.norm recomputed at each use
        "centroid_asymmetry": metrics.cos_to(a64, ca) - metrics.cos_to(b64, cb),
        "cross_centroid": metrics.cos_to(a64, cb) - metrics.cos_to(b64, ca),
        "within_pair_sim": within,
        "knn_density_asymmetry": metrics.zscore(metrics.knn_density(a64, 10))
        - metrics.zscore(metrics.knn_density(b64, 10)),
        "margin_asymmetry": np.linalg.norm(a64 - mid, axis=1) - np.linalg.norm(b64 - mid, axis=1),
    }
    for name in metrics.METRIC_NAMES:
        assert_array_equal(ours[name], ref[name], err_msg=name)
