"""Multiplicity: Holm and Benjamini-Hochberg adjusted p-values, and permutation tests (per test and max-|r|).

Permutations come from :func:`permutation_indices` and are shared by every test of a family, which is what makes
the max-statistic test possible.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from .._checks import (
    as_tests,
    as_vector,
    check_positive_int,
    check_seed,
    row_notes,
    zscore_rows,
)
from .bootstrap import chunk_rows, map_chunks

_PERMUTATION_STREAM = 1  # spawn key of the permutations' child SeedSequence (bootstraps use the seed itself)
_EPS_TIE = 100 * np.finfo(np.float64).eps  # relative tolerance for "null statistic >= observed", as SciPy's


def _check_p(p) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    finite = np.isfinite(p)
    if np.any(np.isinf(p)) or np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p-values must lie in [0, 1] (NaN allowed)")
    return p, ~np.isnan(p)


def _adjusted(p, step) -> np.ndarray:
    """Adjust the non-NaN entries of ``p``: ``step`` maps the sorted p-values to adjusted ones; then clip at 1."""
    p, ok = _check_p(p)
    out = np.full(p.shape, np.nan)
    pv = p[ok]
    if pv.size:
        order = np.argsort(pv, kind="stable")
        res = np.empty(pv.size)
        res[order] = np.minimum(step(pv[order]), 1.0)
        out[ok] = res
    return out


def holm(p) -> np.ndarray:
    """Compute Holm step-down adjusted p-values (family-wise error control).

    Parameters
    ----------
    p : array-like of any shape
        Unadjusted p-values in [0, 1]; NaN marks a test that was not run.

    Returns
    -------
    ndarray of the shape of ``p``
        ``p_holm[(i)] = max_{j <= i} min(1, (m - j + 1) p[(j)])`` over the sorted p-values, with ``m`` the
        number of non-NaN p-values. NaN stays NaN and does not count in ``m``.
    """
    return _adjusted(p, lambda s: np.maximum.accumulate((s.size - np.arange(s.size)) * s))


def benjamini_hochberg(p) -> np.ndarray:
    """Compute Benjamini-Hochberg adjusted p-values (q-values; false discovery rate control).

    ``p`` and the result are as in :func:`holm`, with ``p_bh[(i)] = min_{j >= i} min(1, m p[(j)] / j)`` over the
    sorted p-values.
    """
    return _adjusted(p, lambda s: np.minimum.accumulate((s * s.size / np.arange(1, s.size + 1))[::-1])[::-1])


# Permutation tests
# --------------------------------------------------------------------------------------------------------------

def permutation_indices(n: int, n_permutations: int = 10000, seed: int = 42) -> np.ndarray:
    """Draw permutations of ``range(n)``, shape (n_permutations, n), shared by every test of a family.

    The Generator is ``numpy.random.default_rng(numpy.random.SeedSequence(seed, spawn_key=(1,)))`` -- a child
    stream of ``seed``, so the permutations are independent of the bootstrap resamples that
    :func:`ua_helpers.analysis.bootstrap.bootstrap_indices` draws from the same seed. Rows are ``rng.permuted`` of
    ``arange(n)`` along axis 1.

    Parameters
    ----------
    n : int
    n_permutations : int, default=10000
    seed : int, default=42

    Returns
    -------
    ndarray of int64, shape (n_permutations, n)
    """
    n = check_positive_int("n", n)
    n_permutations = check_positive_int("n_permutations", n_permutations)
    return np.concatenate(list(permutation_chunks(n, n_permutations, seed, n_permutations)))


def permutation_chunks(n: int, n_permutations: int = 10000, seed: int = 42,
                       chunk_size: int | None = None) -> Iterator[np.ndarray]:
    """Yield the rows of :func:`permutation_indices` in order, ``chunk_size`` at a time.

    The Generator's stream is the same whether it permutes one ``(n_permutations, n)`` array or consecutive
    chunks (a test checks it), so a loop over chunks sees exactly the permutations of the whole matrix without
    holding it.

    Parameters
    ----------
    n, n_permutations, seed
        As in :func:`permutation_indices`.
    chunk_size : int, optional
        Default :func:`ua_helpers.analysis.bootstrap.chunk_rows` of n.

    Yields
    ------
    ndarray of int64, shape (<= chunk_size, n)
    """
    n = check_positive_int("n", n)
    n_permutations = check_positive_int("n_permutations", n_permutations)
    chunk_size = check_positive_int("chunk_size", chunk_rows(n) if chunk_size is None else chunk_size)
    rng = np.random.default_rng(np.random.SeedSequence(check_seed(seed), spawn_key=(_PERMUTATION_STREAM,)))
    arange = np.arange(n, dtype=np.int64)
    for start in range(0, n_permutations, chunk_size):
        rows = min(chunk_size, n_permutations - start)
        yield rng.permuted(np.broadcast_to(arange, (rows, n)), axis=1)


class MaxStatResult(NamedTuple):
    """Permutation inference for a family of Pearson correlations (see :func:`max_stat_permutation`).

    Attributes
    ----------
    r : ndarray of shape (...)
        Observed Pearson r of each test (the leading shape of ``metric_values``).
    p_perm : ndarray of shape (...)
        Per-test two-sided permutation p-value, ``(1 + #{|r*| >= |r|}) / (1 + n_permutations)``.
    p_maxstat : ndarray of shape (...)
        Family-wise adjusted p-value, ``(1 + #{max_t |r*_t| >= |r|}) / (1 + n_permutations)``.
    null_max : ndarray of shape (n_permutations,)
        Max |r| over the family under each permutation.
    critical_value : float
        The ``1 - alpha`` quantile of ``null_max``: about the |r| a test needs to reach p_maxstat < alpha.
    alpha : float
    n_permutations : int
    seed : int
    """

    r: np.ndarray
    p_perm: np.ndarray
    p_maxstat: np.ndarray
    null_max: np.ndarray
    critical_value: float
    alpha: float
    n_permutations: int
    seed: int


def _permutation_core(families: Sequence[tuple[np.ndarray, np.ndarray]], perms: Iterable[np.ndarray],
                      n_permutations: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Observed r, per-test exceedance counts and the max-|r| null for each family ``(x, y)`` of rows ``x``
    (all non-degenerate), every family on the same permutations (each chunk drawn once)."""
    n = families[0][0].shape[1]
    state = []
    for x, y in families:
        xz = zscore_rows(x)  # [tests, n]
        yz = zscore_rows(y[None])[0]  # [n]
        r_obs = xz @ yz / n  # [tests]
        state.append((xz, yz, r_obs, np.abs(r_obs) * (1 - _EPS_TIE)))
    counts = [np.zeros(x.shape[0], dtype=np.int64) for x, _ in families]
    null_max = [np.empty(n_permutations) for _ in families]

    def null_of(perm: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per family: exceedances per test and the max |r*| per permutation of one chunk."""
        out = []
        for xz, yz, _, thresh in state:
            yp = yz[perm]  # [chunk, n]: permuted z-scores (same mean and sd)
            r_perm = np.abs(xz @ yp.T) / n  # [tests, chunk]
            out.append(((r_perm >= thresh[:, None]).sum(axis=1), r_perm.max(axis=0)))
        return out

    start = 0
    for perm, per_family in map_chunks(null_of, perms):
        for f, (exceed, chunk_max) in enumerate(per_family):
            counts[f] += exceed
            null_max[f][start:start + len(perm)] = chunk_max
        start += len(perm)
    return [(st[2], c, m) for st, c, m in zip(state, counts, null_max)]


def max_stat_permutation(metric_values, preference, n_permutations: int = 10000, seed: int = 42, *,
                         alpha: float = 0.05, chunk_size: int | None = None) -> MaxStatResult:
    """Run the max-|r| permutation test over a family of Pearson correlations with one preference vector.

    Each permutation of ``preference`` (one permutation shared by every test, from :func:`permutation_indices`)
    gives every test a null r; the max |r| over the family is the null distribution that the observed |r| of
    each test is compared with. This controls the family-wise error rate while using the real correlation
    between tests (neighbouring layers are nearly the same test), so it is less conservative than Holm.

    Null correlations are a matrix product: with ``Z`` the z-scored metric rows ``(n_tests, n)`` and ``Y*`` the
    z-scored permuted preferences ``(n, chunk)``, ``r* = Z @ Y* / n``; permutations are drawn and processed in
    chunks of ``chunk_size`` (:func:`permutation_chunks`) so memory stays at ``(n_tests + n) x chunk_size``
    numbers whatever ``n_permutations``.

    Parameters
    ----------
    metric_values : ndarray of shape (..., n_pairs)
        One test per leading index, e.g. (n_layers, n_metrics, n_pairs).
    preference : ndarray of shape (n_pairs,)
    n_permutations : int, default=10000
    seed : int, default=42
    alpha : float, default=0.05
        Level of the reported critical value.
    chunk_size : int, optional
        Permutations per chunk; default at most 1,000, fewer where ``chunk_size x n`` would exceed
        ``bootstrap.CHUNK_ELEMENTS``.

    Returns
    -------
    MaxStatResult
        Arrays of the leading shape of ``metric_values``; NaN for tests whose metric is constant or not finite
        (those are left out of the family).
    """
    return max_stat_permutations([(metric_values, preference)], n_permutations, seed, alpha=alpha,
                                 chunk_size=chunk_size)[0]


def max_stat_permutations(families: Sequence[tuple[Any, Any]], n_permutations: int = 10000, seed: int = 42, *,
                          alpha: float = 0.05, chunk_size: int | None = None) -> list[MaxStatResult]:
    """Run :func:`max_stat_permutation` on several families of the same pairs, on the same permutations.

    Each family's result equals ``max_stat_permutation(metric_values, preference, n_permutations, seed, ...)``
    bit for bit (the same chunks and the same arithmetic per family); the permutations are drawn once for all
    families instead of once per family (drawing them costs about as much as the products at thousands of pairs).

    Parameters
    ----------
    families : sequence of (metric_values, preference)
        As the first two arguments of :func:`max_stat_permutation`, all with the same n_pairs.
    n_permutations, seed, alpha, chunk_size
        As in :func:`max_stat_permutation`.

    Returns
    -------
    list of MaxStatResult
        One per family, in order.
    """
    if len(families) == 0:
        raise ValueError("families is empty")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    n_permutations = check_positive_int("n_permutations", n_permutations)
    seed = check_seed(seed)
    checked = []
    for metric_values, preference in families:
        values = np.asarray(metric_values, dtype=np.float64)
        x = as_tests(values, name="metric_values")
        n = x.shape[1]
        if checked and n != checked[0][1].shape[1]:
            raise ValueError(f"every family must have the same n_pairs; got {checked[0][1].shape[1]} and {n}")
        y = as_vector(preference, n, "preference")
        if np.ptp(y) == 0:
            raise ValueError("preference is constant")
        checked.append((values, x, y, np.array([note == "" for note in row_notes(x)])))
    n = checked[0][1].shape[1]
    chunk_size = check_positive_int("chunk_size", min(1000, chunk_rows(n)) if chunk_size is None else chunk_size)
    live = [f for f, (_, _, _, ok) in enumerate(checked) if ok.any()]
    cores = {}
    if live:
        perms = permutation_chunks(n, n_permutations, seed, chunk_size)
        fams = [(checked[f][1][checked[f][3]], checked[f][2]) for f in live]
        cores = dict(zip(live, _permutation_core(fams, perms, n_permutations)))
    results = []
    for f, (values, x, _, ok) in enumerate(checked):
        r = np.full(x.shape[0], np.nan)
        p_perm = np.full(x.shape[0], np.nan)
        p_max = np.full(x.shape[0], np.nan)
        null_max = np.full(n_permutations, np.nan)
        if f in cores:
            r_obs, counts, null_max = cores[f]
            r[ok] = r_obs
            p_perm[ok] = (1 + counts) / (1 + n_permutations)
            thresh = np.abs(r_obs) * (1 - _EPS_TIE)
            exceed = n_permutations - np.searchsorted(np.sort(null_max), thresh, side="left")
            p_max[ok] = (1 + exceed) / (1 + n_permutations)
        lead = values.shape[:-1]
        crit = float(np.quantile(null_max, 1 - alpha)) if ok.any() else float("nan")
        results.append(MaxStatResult(r.reshape(lead), p_perm.reshape(lead), p_max.reshape(lead), null_max, crit,
                                     float(alpha), int(n_permutations), int(seed)))
    return results


def monte_carlo_se(p, n_permutations: int) -> np.ndarray:
    """Return the Monte Carlo standard error of permutation p-values, ``sqrt(p (1 - p) / n_permutations)``.

    A p-value estimated from ``B`` random permutations is a binomial proportion; its standard error says how
    far another set of ``B`` permutations could move it. NaN stays NaN.
    """
    p, _ = _check_p(p)
    n_permutations = check_positive_int("n_permutations", n_permutations)
    return np.sqrt(p * (1 - p) / n_permutations)


def near_alpha(p, se, alpha: float = 0.05, n_se: float = 2.0) -> np.ndarray:
    """Return whether each p-value lies within ``n_se`` standard errors of ``alpha`` (its verdict could flip).

    False where p or se is NaN.
    """
    p = np.asarray(p, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.abs(p - alpha) <= n_se * se


def permutation_pvalues(metric_values, preference, n_permutations: int = 10000, seed: int = 42) -> np.ndarray:
    """Compute per-test two-sided permutation p-values of Pearson r, ``(1 + #{|r*| >= |r|}) / (1 + P)``.

    The permutations are those of :func:`max_stat_permutation` with the same seed (this returns its
    ``p_perm``).

    Parameters
    ----------
    metric_values : ndarray of shape (..., n_pairs)
    preference : ndarray of shape (n_pairs,)
    n_permutations : int, default=10000
    seed : int, default=42

    Returns
    -------
    ndarray of the leading shape of ``metric_values``
    """
    return max_stat_permutation(metric_values, preference, n_permutations, seed).p_perm

