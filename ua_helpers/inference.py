"""Inference a reviewer asks for: multiplicity, permutation tests, Spearman and BCa intervals, confound control.

The seed reads "the 95% bootstrap CI excludes zero" across all (layer, metric) tests with no correction. This
module adds, for the same family of tests:

- adjusted p-values: Holm (family-wise error), Benjamini-Hochberg (false discovery rate), and the max-statistic
  permutation test (family-wise error that knows how strongly neighbouring layers are correlated);
- per-test two-sided permutation p-values, Spearman correlations with bootstrap CIs, and BCa intervals;
- partial correlations controlling for the token-count difference, the character-length difference and the
  category, with bootstrap CIs, and per-category correlations;
- one entry point, :func:`extended_analysis`, and a figure, :func:`plot_confounds`.

Everything is vectorized over tests and resamples. Bootstrap resamples come from
:func:`ua_helpers.stats.bootstrap_indices` (so the Pearson percentile CIs here equal those of
:func:`ua_helpers.stats.correlation_table` for the same seed) and are shared by every bootstrap statistic; a
resample enters the computation as a count vector (how often each pair is drawn), so each resample's statistic is
a weighted statistic of the original data. Permutations come from :func:`permutation_indices` and are shared by
every test, which is what makes the max-statistic test possible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

import numpy as np
from scipy import special
from scipy import stats as sps

from .stats import bootstrap_indices

if TYPE_CHECKING:
    import pandas as pd

#: Names of the covariate sets of the confound analysis, in table order.
COVARIATE_SETS = ("tokens", "length", "category", "all")
COVARIATE_DESCRIPTIONS = {
    "tokens": "n_tokens_b - n_tokens_a",
    "length": "len(stmt_b) - len(stmt_a) (characters)",
    "category": "category fixed effects (one-hot, first-seen category dropped)",
    "all": "token-count difference + character-length difference + category fixed effects",
}
PARTIAL_CI_METHOD = ("pairs resampled; both variables residualized on covariates + intercept inside every resample "
                     "(least squares weighted by the resample counts, via normal equations)")
_PERMUTATION_STREAM = 1  # spawn key of the permutations' child SeedSequence (bootstraps use the seed itself)
_EPS_TIE = 100 * np.finfo(np.float64).eps  # relative tolerance for "null statistic >= observed", as SciPy's


# --------------------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------------------

def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (no unseeded randomness); got {seed!r}")
    return int(seed)


def _check_ci_level(ci_level: float) -> float:
    if not 0 < ci_level < 1:
        raise ValueError(f"ci_level must be in (0, 1); got {ci_level}")
    return float(ci_level)


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _as_tests(x, n: int | None = None, name: str = "x") -> np.ndarray:
    """Return ``x`` as float64 of shape (n_tests, n): 1-D becomes one row, leading axes are flattened."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one axis; got a scalar")
    x = x.reshape(-1, x.shape[-1])
    if n is not None and x.shape[1] != n:
        raise ValueError(f"{name} has {x.shape[1]} values per test; expected {n}")
    return x


def _as_vector(v, n: int | None, name: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != 1 or (n is not None and v.shape[0] != n):
        want = "1-D" if n is None else f"1-D of length {n}"
        raise ValueError(f"{name} must be {want}; got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} has non-finite values")
    return v


def _row_notes(x: np.ndarray) -> list[str]:
    """Why each row of ``x`` (n_tests, n) cannot be correlated ("" when it can)."""
    notes = []
    for row in x:
        if not np.all(np.isfinite(row)):
            notes.append("metric has non-finite values")
        elif np.ptp(row) == 0:
            notes.append("metric is constant")
        else:
            notes.append("")
    return notes


def _zscore_rows(x: np.ndarray) -> np.ndarray:
    """Center and scale each row to population standard deviation 1 (rows must not be constant)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    return xc / np.sqrt((xc**2).mean(axis=-1, keepdims=True))


def _check_table_inputs(metric_values, preference, layers, metric_names):
    values = np.asarray(metric_values, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(f"metric_values must be (n_layers, n_metrics, n_pairs); got shape {values.shape}")
    n_layers, n_metrics, n = values.shape
    if (n_layers, n_metrics) != (len(layers), len(metric_names)):
        raise ValueError(f"metric_values {values.shape} does not match {len(layers)} layers x "
                         f"{len(metric_names)} metrics")
    y = _as_vector(preference, n, "preference")
    if n < 4:
        raise ValueError(f"need at least 4 pairs; got {n}")
    return values.reshape(n_layers * n_metrics, n), y


def _layer_metric_columns(layers, metric_names) -> dict[str, np.ndarray]:
    return {"layer": np.repeat(np.asarray(layers, dtype=int), len(metric_names)),
            "metric": np.tile(np.asarray(list(metric_names), dtype=object), len(layers))}


# --------------------------------------------------------------------------------------------------------------
# 1. Multiplicity
# --------------------------------------------------------------------------------------------------------------

def _check_p(p) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    finite = np.isfinite(p)
    if np.any(np.isinf(p)) or np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p-values must lie in [0, 1] (NaN allowed)")
    return p, ~np.isnan(p)


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
    p, ok = _check_p(p)
    out = np.full(p.shape, np.nan)
    pv = p[ok]
    m = pv.size
    if m:
        order = np.argsort(pv, kind="stable")
        adj = np.maximum.accumulate((m - np.arange(m)) * pv[order])
        res = np.empty(m)
        res[order] = np.minimum(adj, 1.0)
        out[ok] = res
    return out


def benjamini_hochberg(p) -> np.ndarray:
    """Compute Benjamini-Hochberg adjusted p-values (q-values; false discovery rate control).

    Parameters
    ----------
    p : array-like of any shape
        Unadjusted p-values in [0, 1]; NaN marks a test that was not run.

    Returns
    -------
    ndarray of the shape of ``p``
        ``p_bh[(i)] = min_{j >= i} min(1, m p[(j)] / j)`` over the sorted p-values, with ``m`` the number of
        non-NaN p-values. NaN stays NaN and does not count in ``m``.
    """
    p, ok = _check_p(p)
    out = np.full(p.shape, np.nan)
    pv = p[ok]
    m = pv.size
    if m:
        order = np.argsort(pv, kind="stable")
        scaled = pv[order] * m / np.arange(1, m + 1)
        adj = np.minimum.accumulate(scaled[::-1])[::-1]
        res = np.empty(m)
        res[order] = np.minimum(adj, 1.0)
        out[ok] = res
    return out


# --------------------------------------------------------------------------------------------------------------
# Permutation tests
# --------------------------------------------------------------------------------------------------------------

def permutation_indices(n: int, n_permutations: int = 10000, seed: int = 42) -> np.ndarray:
    """Draw permutations of ``range(n)``, shape (n_permutations, n), shared by every test of a family.

    The Generator is ``numpy.random.default_rng(numpy.random.SeedSequence(seed, spawn_key=(1,)))`` -- a child
    stream of ``seed``, so the permutations are independent of the bootstrap resamples that
    :func:`ua_helpers.stats.bootstrap_indices` draws from the same seed. Rows are ``rng.permuted`` of
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
    n = _check_positive_int("n", n)
    n_permutations = _check_positive_int("n_permutations", n_permutations)
    seq = np.random.SeedSequence(_check_seed(seed), spawn_key=(_PERMUTATION_STREAM,))
    rng = np.random.default_rng(seq)
    return rng.permuted(np.broadcast_to(np.arange(n, dtype=np.int64), (n_permutations, n)), axis=1)


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


def _permutation_core(x: np.ndarray, y: np.ndarray, perms: np.ndarray, chunk_size: int):
    """Observed r, per-test exceedance counts and the max-|r| null for rows ``x`` (all non-degenerate)."""
    n = x.shape[1]
    xz = _zscore_rows(x)  # [tests, n]
    yz = _zscore_rows(y[None])[0]  # [n]
    r_obs = xz @ yz / n  # [tests]
    thresh = np.abs(r_obs) * (1 - _EPS_TIE)
    counts = np.zeros(x.shape[0], dtype=np.int64)
    null_max = np.empty(perms.shape[0])
    for start in range(0, perms.shape[0], chunk_size):
        yp = yz[perms[start:start + chunk_size]]  # [chunk, n]: permuted z-scores (same mean and sd)
        r_perm = np.abs(xz @ yp.T) / n  # [tests, chunk]
        counts += (r_perm >= thresh[:, None]).sum(axis=1)
        null_max[start:start + chunk_size] = r_perm.max(axis=0)
    return r_obs, counts, null_max


def max_stat_permutation(metric_values, preference, n_permutations: int = 10000, seed: int = 42, *,
                         alpha: float = 0.05, chunk_size: int = 1000) -> MaxStatResult:
    """Run the max-|r| permutation test over a family of Pearson correlations with one preference vector.

    Each permutation of ``preference`` (one permutation shared by every test, from :func:`permutation_indices`)
    gives every test a null r; the max |r| over the family is the null distribution that the observed |r| of
    each test is compared with. This controls the family-wise error rate while using the real correlation
    between tests (neighbouring layers are nearly the same test), so it is less conservative than Holm.

    Null correlations are a matrix product: with ``Z`` the z-scored metric rows ``(n_tests, n)`` and ``Y*`` the
    z-scored permuted preferences ``(n, chunk)``, ``r* = Z @ Y* / n``; permutations are processed in chunks of
    ``chunk_size`` so memory stays at ``n_tests x chunk_size`` floats.

    Parameters
    ----------
    metric_values : ndarray of shape (..., n_pairs)
        One test per leading index, e.g. (n_layers, n_metrics, n_pairs).
    preference : ndarray of shape (n_pairs,)
    n_permutations : int, default=10000
    seed : int, default=42
    alpha : float, default=0.05
        Level of the reported critical value.
    chunk_size : int, default=1000

    Returns
    -------
    MaxStatResult
        Arrays of the leading shape of ``metric_values``; NaN for tests whose metric is constant or not finite
        (those are left out of the family).
    """
    values = np.asarray(metric_values, dtype=np.float64)
    x = _as_tests(values, name="metric_values")
    n = x.shape[1]
    y = _as_vector(preference, n, "preference")
    if np.ptp(y) == 0:
        raise ValueError("preference is constant")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    chunk_size = _check_positive_int("chunk_size", chunk_size)
    perms = permutation_indices(n, n_permutations, seed)
    ok = np.array([note == "" for note in _row_notes(x)])
    r = np.full(x.shape[0], np.nan)
    p_perm = np.full(x.shape[0], np.nan)
    p_max = np.full(x.shape[0], np.nan)
    null_max = np.full(n_permutations, np.nan)
    if ok.any():
        r_obs, counts, null_max = _permutation_core(x[ok], y, perms, chunk_size)
        r[ok] = r_obs
        p_perm[ok] = (1 + counts) / (1 + n_permutations)
        thresh = np.abs(r_obs) * (1 - _EPS_TIE)
        exceed = n_permutations - np.searchsorted(np.sort(null_max), thresh, side="left")
        p_max[ok] = (1 + exceed) / (1 + n_permutations)
    lead = values.shape[:-1]
    crit = float(np.quantile(null_max, 1 - alpha)) if ok.any() else float("nan")
    return MaxStatResult(r.reshape(lead), p_perm.reshape(lead), p_max.reshape(lead), null_max, crit,
                         float(alpha), int(n_permutations), int(seed))


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


# --------------------------------------------------------------------------------------------------------------
# Bootstrap machinery: resamples as count vectors
# --------------------------------------------------------------------------------------------------------------

def _check_indices(indices, n: int) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.shape[1] != n or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be an integer array of shape (n_bootstrap, {n}); got {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"indices must lie in [0, {n})")
    return idx


def _resample_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """Count matrix (n_resamples, n) of int64: how often each item is drawn in each resample."""
    b = idx.shape[0]
    flat = (idx + n * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n)


def _weighted_corr(w: np.ndarray, xz: np.ndarray, yz: np.ndarray) -> np.ndarray:
    """Weighted Pearson r of rows of ``xz`` (T, n) with ``yz`` (n,) under weights ``w`` (B, n) summing to 1.

    Returns (T, B); NaN where a resample has (near) zero variance in x or y.
    """
    mx, my = w @ xz.T, w @ yz  # [B, T], [B]
    vx = w @ (xz**2).T - mx**2
    vy = w @ yz**2 - my**2
    cxy = w @ (xz * yz).T - mx * my[:, None]
    bad = (vx <= 1e-12) | (vy[:, None] <= 1e-12)
    r = cxy / np.sqrt(np.where(bad, 1.0, vx * vy[:, None]))
    r[bad] = np.nan
    return np.clip(r, -1.0, 1.0).T


def bootstrap_pearson(x, y, indices, *, chunk_size: int = 2000) -> np.ndarray:
    """Compute Pearson r of every row of ``x`` with ``y`` on every bootstrap resample of the pairs.

    The same numbers as :func:`ua_helpers.stats.bootstrap_rs`, computed in chunks of resamples so that memory
    stays bounded for any ``n_bootstrap``.

    Parameters
    ----------
    x : ndarray of shape (n_tests, n) or (n,)
        Rows must be finite and not constant.
    y : ndarray of shape (n,)
    indices : ndarray of int, shape (n_bootstrap, n)
        From :func:`ua_helpers.stats.bootstrap_indices`.
    chunk_size : int, default=2000

    Returns
    -------
    ndarray of shape (n_tests, n_bootstrap)
        NaN where a resample has zero variance in x or y.
    """
    x = _as_tests(x)
    n = x.shape[1]
    y = _as_vector(y, n, "y")
    idx = _check_indices(indices, n)
    xz, yz = _zscore_rows(x), _zscore_rows(y[None])[0]
    out = np.empty((x.shape[0], idx.shape[0]))
    for s in range(0, idx.shape[0], chunk_size):
        w = _resample_counts(idx[s:s + chunk_size], n) / n
        out[:, s:s + chunk_size] = _weighted_corr(w, xz, yz)
    return out


def _rank_bounds(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order of each row and, per item, the sorted positions bounding its tie group, (..., n) each.

    ``lo`` is the 0-based position of the group's first member and ``hi`` one past its last, so in a
    zero-padded cumulative sum ``cum0`` of counts in sorted order, ``cum0[lo]`` counts the draws strictly below
    the item and ``cum0[hi]`` those below or tied with it.
    """
    order = np.argsort(x, axis=-1, kind="stable")
    lo = sps.rankdata(x, method="min", axis=-1).astype(np.int64) - 1
    hi = sps.rankdata(x, method="max", axis=-1).astype(np.int64)
    return order, lo, hi


def _doubled_resample_ranks(c: np.ndarray, order: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Twice the average rank, minus (n + 1), of every item within every resample, in integers.

    An item with ``c_lower`` draws strictly below it and ``c_group`` draws in its tie group (its own copies and
    those of tied items) has average rank ``c_lower + (c_group + 1) / 2`` in the resample -- exactly
    ``rankdata(resample, "average")``. ``c`` (B, n) are integer counts; ``order``, ``lo``, ``hi`` of shape (n,)
    give (B, n), of shape (T, n) give (B, T, n). Centring by the mean rank (n + 1) / 2 (the same for every
    resample) and doubling keeps everything an exact integer.
    """
    n = c.shape[-1]
    sorted_c = c[:, order]  # [B, n] or [B, T, n]
    cum = np.zeros(sorted_c.shape[:-1] + (n + 1,), dtype=c.dtype)
    np.cumsum(sorted_c, axis=-1, dtype=c.dtype, out=cum[..., 1:])
    if order.ndim == 1:
        return cum[:, lo] + cum[:, hi] - n
    return np.take_along_axis(cum, lo[None], axis=-1) + np.take_along_axis(cum, hi[None], axis=-1) - n


def bootstrap_spearman(x, y, indices, *, chunk_size: int = 50) -> np.ndarray:
    """Compute Spearman's rho of every row of ``x`` with ``y`` on every bootstrap resample of the pairs.

    Ranks are recomputed within each resample (average ranks for the ties that resampling creates), exactly as
    ``scipy.stats.spearmanr(x[:, i], y[i])`` for each resample ``i``. Sorting every resampled array instead
    (``scipy.stats.rankdata`` along an axis of ``x[:, indices]``) takes ~8 s for 45 tests x 10,000 resamples x
    230 pairs on two cores, so each row is sorted once and the rank of an item in a resample is read off the
    cumulative resample counts in that order; rho is the count-weighted Pearson r of the ranks. All of it is
    exact integer arithmetic (doubled, centred ranks), which is also what makes the cumulative sums fast. For
    rows without ties the sum of squared ranks has the closed form ``sum j^2 - sum_i (c_i^3 - c_i) / 12`` over
    the resample counts ``c``. The test suite checks the result against ``rankdata`` on the resampled arrays.

    Parameters
    ----------
    x : ndarray of shape (n_tests, n) or (n,)
        Rows must be finite.
    y : ndarray of shape (n,)
    indices : ndarray of int, shape (n_bootstrap, n)
    chunk_size : int, default=50
        Resamples per chunk; memory is about ``3 * n_tests * chunk_size * n`` integers.

    Returns
    -------
    ndarray of shape (n_tests, n_bootstrap)
        NaN where a resample has all-tied x or y.
    """
    x = _as_tests(x)
    n = x.shape[1]
    y = _as_vector(y, n, "y")
    if not np.all(np.isfinite(x)):
        raise ValueError("x has non-finite values")
    idx = _check_indices(indices, n)
    # Counts, cumulative counts and doubled centred ranks are <= n, their products <= n^2: int32 holds them
    # (and moves half the memory of int64) while n^2 fits; sums are accumulated in int64.
    itype = np.int32 if n * n < np.iinfo(np.int32).max else np.int64
    ox, lox, hix = _rank_bounds(x)
    oy, loy, hiy = _rank_bounds(y)
    no_ties = np.all(hix - lox == 1, axis=1)  # rows whose values are all distinct
    nt, wt = np.flatnonzero(no_ties), np.flatnonzero(~no_ties)
    ox_nt = ox[nt]
    out = np.empty((x.shape[0], idx.shape[0]))
    for s in range(0, idx.shape[0], chunk_size):
        c = _resample_counts(idx[s:s + chunk_size], n).astype(itype)  # [B, n]
        ry = _doubled_resample_ranks(c, oy, loy, hiy)  # [B, n]: 2 * rank - (n + 1)
        cry = c * ry
        syy = np.einsum("bn,bn->b", cry, ry, dtype=np.int64).astype(np.float64)
        sxy = np.empty((c.shape[0], x.shape[0]))
        sxx = np.empty((c.shape[0], x.shape[0]))
        if nt.size:
            # Distinct values: in sorted order the doubled centred rank is 2 cum - c_sorted - n, so
            # sum_k rank2_k cry_k = 2 sum_k cum_k cry_k - sum_i c_i cry_i (the n-term vanishes: sum cry = 0).
            cs = c[:, ox_nt]  # [B, T', n]
            cum = np.cumsum(cs, axis=-1, dtype=itype)
            sxy[:, nt] = (2 * np.einsum("btn,btn->bt", cum, cry[:, ox_nt], dtype=np.int64)
                          - np.einsum("bn,bn->b", c, cry, dtype=np.int64)[:, None])
            c64 = c.astype(np.int64)
            # sum over the resample of (2 rank - (n + 1))^2 = 4 sum rank^2 - n (n + 1)^2, where
            # sum rank^2 = n (n + 1) (2n + 1) / 6 - sum_i (c_i^3 - c_i) / 12 (tie groups are the copies of an item)
            ties = (c64**3 - c64).sum(axis=1)
            sxx[:, nt] = ((4 * n * (n + 1) * (2 * n + 1) - 2 * ties - 6 * n * (n + 1) ** 2) / 6.0)[:, None]
        if wt.size:
            rx = _doubled_resample_ranks(c, ox[wt], lox[wt], hix[wt])  # [B, T'', n]
            sxy[:, wt] = np.einsum("btn,bn->bt", rx, cry, dtype=np.int64)
            sxx[:, wt] = np.einsum("btn,btn,bn->bt", rx, rx, c, dtype=np.int64)
        bad = (sxx <= 0) | (syy[:, None] <= 0)
        rho = sxy / np.sqrt(np.where(bad, 1.0, sxx * syy[:, None]))
        rho[bad] = np.nan
        out[:, s:s + chunk_size] = np.clip(rho, -1.0, 1.0).T
    return out


def jackknife_pearson(x, y) -> np.ndarray:
    """Compute the leave-one-out Pearson r of every row of ``x`` with ``y``.

    Closed form from the sums of the z-scored data (no loop over the left-out item).

    Parameters
    ----------
    x : ndarray of shape (n_tests, n) or (n,)
    y : ndarray of shape (n,)

    Returns
    -------
    ndarray of shape (n_tests, n)
        Entry ``[t, i]`` is the r of ``x[t]`` and ``y`` without item ``i``.
    """
    x = _as_tests(x)
    n = x.shape[1]
    y = _as_vector(y, n, "y")
    xz, yz = _zscore_rows(x), _zscore_rows(y[None])[0]
    m = n - 1
    r = xz @ yz / n
    # Sums over the n - 1 kept items: sum x = -x_i, sum x^2 = n - x_i^2, sum xy = n r - x_i y_i.
    sxy = n * r[:, None] - xz * yz - xz * yz / m
    sxx = n - xz**2 - xz**2 / m
    syy = n - yz**2 - yz**2 / m
    with np.errstate(invalid="ignore", divide="ignore"):
        return sxy / np.sqrt(sxx * syy)


def _quantile_rows(boot: np.ndarray, q) -> np.ndarray:
    """Linear-interpolation quantile (NumPy's default) of each row's finite values, at per-row levels ``q``."""
    s = np.sort(boot, axis=-1)  # NaN sorts last
    m = np.isfinite(s).sum(axis=-1)
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), m.shape)
    out = np.full(m.shape, np.nan)
    ok = (m > 0) & np.isfinite(q)
    rows = np.flatnonzero(ok)
    v = q[ok] * (m[ok] - 1)
    lo = np.floor(v).astype(np.int64)
    hi = np.minimum(lo + 1, m[ok] - 1)
    g = v - lo
    a, b = s[rows, lo], s[rows, hi]
    diff = b - a
    out[ok] = np.where(g >= 0.5, b - diff * (1 - g), a + diff * g)
    return out


def percentile_interval(theta_boot, ci_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Compute the percentile bootstrap interval of each row of a bootstrap distribution.

    Parameters
    ----------
    theta_boot : ndarray of shape (n_tests, n_bootstrap) or (n_bootstrap,)
        NaN entries (degenerate resamples) are skipped, as the seed skips them.
    ci_level : float, default=0.95

    Returns
    -------
    (ci_lower, ci_upper) : ndarrays of shape (n_tests,)
        NumPy's default (linear) percentiles at ``(1 - ci_level) / 2`` and ``(1 + ci_level) / 2``.
    """
    alpha = 1 - _check_ci_level(ci_level)
    boot = _as_tests(theta_boot, name="theta_boot")
    return _quantile_rows(boot, alpha / 2), _quantile_rows(boot, 1 - alpha / 2)


def bca_interval(theta_hat, theta_boot, theta_jack, ci_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Compute the bias-corrected and accelerated (BCa) bootstrap interval (Efron & Tibshirani 1993, 14.3).

    ``z0 = Phi^-1(share of theta_boot below theta_hat)``, ties counting half (as SciPy's
    ``_percentile_of_score``); the acceleration ``a = sum d^3 / (6 (sum d^2)^1.5)`` with ``d = mean(theta_jack) -
    theta_jack``; the interval is the linear-interpolation quantile of ``theta_boot`` at ``Phi(z0 + (z0 + z) /
    (1 - a (z0 + z)))`` for ``z = Phi^-1(alpha / 2)`` and ``Phi^-1(1 - alpha / 2)``. Given the same bootstrap
    distribution this equals ``scipy.stats.bootstrap(..., method="BCa")``.

    Parameters
    ----------
    theta_hat : float or ndarray of shape (n_tests,)
        The statistic on the full sample.
    theta_boot : ndarray of shape (n_tests, n_bootstrap) or (n_bootstrap,)
        Bootstrap distribution; NaN entries are skipped.
    theta_jack : ndarray of shape (n_tests, n) or (n,)
        Leave-one-out (jackknife) values of the statistic, e.g. from :func:`jackknife_pearson`.
    ci_level : float, default=0.95

    Returns
    -------
    (bca_lower, bca_upper) : ndarrays of shape (n_tests,)
    """
    alpha = 1 - _check_ci_level(ci_level)
    boot = _as_tests(theta_boot, name="theta_boot")
    jack = _as_tests(theta_jack, name="theta_jack")
    hat = np.atleast_1d(np.asarray(theta_hat, dtype=np.float64)).ravel()
    if not (hat.shape[0] == boot.shape[0] == jack.shape[0]):
        raise ValueError(f"theta_hat {hat.shape}, theta_boot {boot.shape} and theta_jack {jack.shape} must "
                         "describe the same number of tests")
    finite = np.isfinite(boot)
    n_finite = finite.sum(axis=1)
    below = ((boot < hat[:, None]) & finite).sum(axis=1) + ((boot <= hat[:, None]) & finite).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z0 = special.ndtri(below / (2.0 * n_finite))
        d = jack.mean(axis=1, keepdims=True) - jack
        a = (d**3).sum(axis=1) / (6.0 * ((d**2).sum(axis=1)) ** 1.5)
        z_lo = special.ndtri(alpha / 2)
        z_hi = -z_lo
        q_lo = special.ndtr(z0 + (z0 + z_lo) / (1 - a * (z0 + z_lo)))
        q_hi = special.ndtr(z0 + (z0 + z_hi) / (1 - a * (z0 + z_hi)))
    return _quantile_rows(boot, q_lo), _quantile_rows(boot, q_hi)


# --------------------------------------------------------------------------------------------------------------
# 3. Confounds: partial correlations
# --------------------------------------------------------------------------------------------------------------

class PartialCorrelation(NamedTuple):
    """Partial Pearson r of x and y given covariates, its two-sided p-value and degrees of freedom."""

    r: float
    p_value: float
    df: int


def _design(covariates, n: int) -> np.ndarray:
    """Intercept plus covariates, each non-constant covariate z-scored (constant ones centred to zero)."""
    z = np.asarray(covariates, dtype=np.float64)
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2 or z.shape[0] != n:
        raise ValueError(f"covariates must have shape (n, k) or (n,) with n = {n}; got {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("covariates have non-finite values")
    zc = z - z.mean(axis=0)
    sd = np.sqrt((zc**2).mean(axis=0))
    zc = zc / np.where(sd > 0, sd, 1.0)
    return np.column_stack([np.ones(n), zc])


def _t_pvalue(r: np.ndarray, df: int) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(r) * np.sqrt(df / np.maximum(1.0 - r**2, 0.0))
    return 2 * sps.t.sf(t, df)


def _partial_df(design: np.ndarray) -> int:
    """Degrees of freedom of a partial correlation: n - 2 - k, k the covariates' rank beside the intercept."""
    return int(design.shape[0] - 2 - (np.linalg.matrix_rank(design) - 1))


def _partial_many(x: np.ndarray, y: np.ndarray, design: np.ndarray) -> tuple[np.ndarray, int]:
    """Partial r of each row of ``x`` (T, n) with ``y`` given ``design`` (n, q) incl. intercept; and the df."""
    n = x.shape[1]
    coef, _, rank, _ = np.linalg.lstsq(design, np.column_stack([x.T, y]), rcond=None)
    resid = np.column_stack([x.T, y]) - design @ coef  # [n, T + 1]
    ex, ey = resid[:, :-1], resid[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ex * ey[:, None]).sum(axis=0) / np.sqrt((ex**2).sum(axis=0) * (ey**2).sum())
    return np.clip(r, -1.0, 1.0), int(n - 2 - (rank - 1))


def partial_correlation(x, y, covariates) -> PartialCorrelation:
    """Compute the partial Pearson correlation of x and y controlling for covariates.

    Both variables are residualized on the covariates plus an intercept by least squares; r is the Pearson r
    of the residuals, and the p-value is two-sided from Student's t with ``n - 2 - k`` degrees of freedom,
    ``k`` the rank of the covariates (beside the intercept).

    Parameters
    ----------
    x, y : array-like of shape (n,)
    covariates : array-like of shape (n, k) or (n,)

    Returns
    -------
    PartialCorrelation
        ``(r, p_value, df)``; r and p are NaN when a residual is identically zero.
    """
    x = _as_vector(x, None, "x")
    n = x.shape[0]
    y = _as_vector(y, n, "y")
    design = _design(covariates, n)
    r, df = _partial_many(x[None], y, design)
    if df < 1:
        raise ValueError(f"no degrees of freedom left: n = {n} with {n - 2 - df} covariates")
    return PartialCorrelation(float(r[0]), float(_t_pvalue(r, df)[0]), df)


def bootstrap_partial(x, y, covariates, indices, *, chunk_size: int = 2000) -> np.ndarray:
    """Compute the partial r of every row of ``x`` with ``y`` given covariates, on every bootstrap resample.

    Residualization happens inside each resample: a resample with counts ``c`` is ordinary least squares on the
    drawn rows, i.e. least squares weighted by ``c`` on the original rows. With ``M`` the count-weighted
    second-moment matrix of ``[design, x, y]`` (design = intercept + z-scored covariates), the residual
    (co)variances are the Schur complement ``M_vv - M_vz M_zz^+ M_zv`` (Frisch-Waugh), so all tests and
    resamples need only a few matrix products and one batched pseudo-inverse of the small ``M_zz`` per
    resample (the pseudo-inverse covers resamples that miss a category). This exact route is fast enough
    (0.1-0.3 s per covariate set for 45 tests x 10,000 resamples x 230 pairs on two cores), so there is no need
    for the cheaper approximation of residualizing once on the full sample and bootstrapping the residual
    correlation, which would ignore the uncertainty of the covariate fit.

    Parameters
    ----------
    x : ndarray of shape (n_tests, n) or (n,)
    y : ndarray of shape (n,)
    covariates : ndarray of shape (n, k) or (n,)
    indices : ndarray of int, shape (n_bootstrap, n)
    chunk_size : int, default=2000

    Returns
    -------
    ndarray of shape (n_tests, n_bootstrap)
        NaN where a resample leaves no residual variance in x or y.
    """
    x = _as_tests(x)
    n = x.shape[1]
    y = _as_vector(y, n, "y")
    idx = _check_indices(indices, n)
    z = _design(covariates, n)  # [n, q]
    q = z.shape[1]
    n_tests = x.shape[0]
    xz, yz = _zscore_rows(x), _zscore_rows(y[None])[0]
    zz = (z[:, :, None] * z[:, None, :]).reshape(n, q * q)  # [n, q*q]
    zx = (z[:, :, None] * xz.T[:, None, :]).reshape(n, q * n_tests)  # [n, q*T]
    zy = z * yz[:, None]  # [n, q]
    out = np.empty((n_tests, idx.shape[0]))
    for s in range(0, idx.shape[0], chunk_size):
        w = _resample_counts(idx[s:s + chunk_size], n) / n  # [B, n]
        b = w.shape[0]
        g = np.linalg.pinv((w @ zz).reshape(b, q, q), 1e-12, hermitian=True)  # [B, q, q]
        mzx = (w @ zx).reshape(b, q, n_tests)
        mzy = w @ zy  # [B, q]
        gzx = g @ mzx  # [B, q, T]
        gzy = np.einsum("bij,bj->bi", g, mzy)
        sxy = w @ (xz * yz).T - np.einsum("bqt,bq->bt", mzx, gzy)
        sxx = w @ (xz**2).T - np.einsum("bqt,bqt->bt", mzx, gzx)
        syy = w @ yz**2 - np.einsum("bq,bq->b", mzy, gzy)
        bad = (sxx <= 1e-12) | (syy[:, None] <= 1e-12)
        r = sxy / np.sqrt(np.where(bad, 1.0, sxx * syy[:, None]))
        r[bad] = np.nan
        out[:, s:s + chunk_size] = np.clip(r, -1.0, 1.0).T
    return out


def category_dummies(categories) -> np.ndarray:
    """One-hot encode categories, dropping the first-seen category (the reference level).

    Parameters
    ----------
    categories : sequence of hashable, length n

    Returns
    -------
    ndarray of shape (n, n_categories - 1)
        Column j is 1 for pairs of the (j + 2)-th category in first-seen order.
    """
    cats = list(categories)
    if not cats:
        raise ValueError("categories is empty")
    levels = list(dict.fromkeys(cats))
    codes = np.array([levels.index(c) for c in cats])
    return (codes[:, None] == np.arange(1, len(levels))[None, :]).astype(np.float64)


def confound_covariates(n_tokens_a, n_tokens_b, len_a, len_b, categories) -> dict[str, np.ndarray]:
    """Build the covariate sets of the confound analysis.

    Parameters
    ----------
    n_tokens_a, n_tokens_b : array-like of shape (n_pairs,)
        Token counts of statements A and B.
    len_a, len_b : array-like of shape (n_pairs,)
        Character lengths of statements A and B.
    categories : sequence of str, length n_pairs

    Returns
    -------
    dict of str to ndarray of shape (n_pairs, k)
        ``tokens`` (k=1): n_tokens_b - n_tokens_a; ``length`` (k=1): len_b - len_a; ``category``
        (k=n_categories-1): one-hot, first-seen category dropped; ``all``: the three side by side.
    """
    ta = _as_vector(n_tokens_a, None, "n_tokens_a")
    n = ta.shape[0]
    tb = _as_vector(n_tokens_b, n, "n_tokens_b")
    la, lb = _as_vector(len_a, n, "len_a"), _as_vector(len_b, n, "len_b")
    if len(categories) != n:
        raise ValueError(f"categories has {len(categories)} entries; expected {n}")
    sets = {"tokens": (tb - ta)[:, None], "length": (lb - la)[:, None], "category": category_dummies(categories)}
    sets["all"] = np.column_stack([sets["tokens"], sets["length"], sets["category"]])
    return sets


def confound_table(metric_values, preference, layers: Sequence[int], metric_names: Sequence[str],
                   covariates: Mapping[str, np.ndarray], *, n_bootstrap: int = 10000, ci_level: float = 0.95,
                   seed: int = 42, indices: np.ndarray | None = None):
    """Tabulate raw and partial correlations for every (layer, metric) and every covariate set.

    Parameters
    ----------
    metric_values : ndarray of shape (n_layers, n_metrics, n_pairs)
    preference : ndarray of shape (n_pairs,)
    layers : sequence of int, length n_layers
    metric_names : sequence of str, length n_metrics
    covariates : mapping of str to ndarray of shape (n_pairs, k)
        E.g. from :func:`confound_covariates`.
    n_bootstrap : int, default=10000
    ci_level : float, default=0.95
    seed : int, default=42
        Seed of :func:`ua_helpers.stats.bootstrap_indices`.
    indices : ndarray of shape (n_bootstrap, n_pairs), optional
        Resamples to use instead of drawing them from ``seed``.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, metric): layer, metric, r, then for each covariate set ``s``:
        ``partial_{s}_r``, ``partial_{s}_ci_lower``, ``partial_{s}_ci_upper`` (percentile bootstrap),
        ``partial_{s}_p_value`` (t with n - 2 - k df), ``partial_{s}_retained`` (partial r / raw r).
        Constant or non-finite metrics give NaN.
    """
    import pandas as pd

    flat, y = _check_table_inputs(metric_values, preference, layers, metric_names)
    _check_ci_level(ci_level)
    n = flat.shape[1]
    if indices is None:
        indices = bootstrap_indices(n, _check_positive_int("n_bootstrap", n_bootstrap), _check_seed(seed))
    ok = np.array([note == "" for note in _row_notes(flat)])
    cols: dict[str, Any] = _layer_metric_columns(layers, metric_names)
    r = np.full(len(flat), np.nan)
    if ok.any():
        r[ok] = _zscore_rows(flat[ok]) @ _zscore_rows(y[None])[0] / n
    cols["r"] = r
    for name, cov in covariates.items():
        pr, lo, hi, p = (np.full(len(flat), np.nan) for _ in range(4))
        design = _design(cov, n)
        if ok.any():
            pr[ok], df = _partial_many(flat[ok], y, design)
            p[ok] = _t_pvalue(pr[ok], df)
            lo[ok], hi[ok] = percentile_interval(bootstrap_partial(flat[ok], y, cov, indices), ci_level)
        cols[f"partial_{name}_r"] = pr
        cols[f"partial_{name}_ci_lower"] = lo
        cols[f"partial_{name}_ci_upper"] = hi
        cols[f"partial_{name}_p_value"] = p
        with np.errstate(divide="ignore", invalid="ignore"):
            cols[f"partial_{name}_retained"] = pr / r
    return pd.DataFrame(cols)


def per_category_table(metric_values, preference, layers: Sequence[int], metric_names: Sequence[str],
                       categories: Sequence[str], *, n_bootstrap: int = 10000, ci_level: float = 0.95,
                       seed: int = 42, min_pairs: int = 4):
    """Correlate every (layer, metric) with the preference within each category, with bootstrap CIs.

    Each category is analysed as if alone: its pairs are resampled with ``bootstrap_indices(n_category,
    n_bootstrap, seed)``, so a row equals ``stats.bootstrap_correlation`` on that category's pairs.

    Parameters
    ----------
    metric_values : ndarray of shape (n_layers, n_metrics, n_pairs)
    preference : ndarray of shape (n_pairs,)
    layers, metric_names : sequences of length n_layers and n_metrics
    categories : sequence of str, length n_pairs
    n_bootstrap : int, default=10000
    ci_level : float, default=0.95
    seed : int, default=42
    min_pairs : int, default=4
        Categories with fewer pairs get NaN rows with a note.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, metric, category), categories in first-seen order: layer, metric, category, n, r,
        ci_lower, ci_upper, p_value, excludes_zero, note.
    """
    import pandas as pd

    flat, y = _check_table_inputs(metric_values, preference, layers, metric_names)
    _check_ci_level(ci_level)
    n_bootstrap = _check_positive_int("n_bootstrap", n_bootstrap)
    seed = _check_seed(seed)
    cats = np.asarray(list(categories), dtype=object)
    if cats.shape != (flat.shape[1],):
        raise ValueError(f"categories has {cats.shape[0]} entries; expected {flat.shape[1]}")
    lm = _layer_metric_columns(layers, metric_names)
    frames = []
    for cat in dict.fromkeys(cats.tolist()):
        mask = cats == cat
        xc, yc = flat[:, mask], y[mask]
        nc = int(mask.sum())
        r, lo, hi, p = (np.full(len(flat), np.nan) for _ in range(4))
        if nc < min_pairs:
            notes = [f"fewer than {min_pairs} pairs"] * len(flat)
        elif np.ptp(yc) == 0:
            notes = ["preference is constant in this category"] * len(flat)
        else:
            notes = _row_notes(xc)
        ok = np.array([note == "" for note in notes])
        if ok.any():
            r[ok] = _zscore_rows(xc[ok]) @ _zscore_rows(yc[None])[0] / nc
            p[ok] = _t_pvalue(r[ok], nc - 2)
            boot = bootstrap_pearson(xc[ok], yc, bootstrap_indices(nc, n_bootstrap, seed))
            lo[ok], hi[ok] = percentile_interval(boot, ci_level)
        frames.append(pd.DataFrame({**lm, "category": cat, "n": nc, "r": r, "ci_lower": lo, "ci_upper": hi,
                                    "p_value": p, "excludes_zero": (lo > 0) | (hi < 0), "note": notes}))
    # frames are category-major; interleave to (layer, metric, category) order
    out = pd.concat(frames, keys=range(len(frames)), names=["_cat", "_test"]).reset_index()
    return out.sort_values(["_test", "_cat"], kind="stable").drop(columns=["_cat", "_test"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------------
# 4. Entry point
# --------------------------------------------------------------------------------------------------------------

def _json_value(v):
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_json_value(x) for x in v]
    return v


def _records(df) -> list[dict[str, Any]]:
    return [{k: _json_value(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


@dataclass
class ExtendedAnalysis:
    """Result of :func:`extended_analysis`.

    Attributes
    ----------
    tests : pandas.DataFrame
        One row per (layer, metric); columns listed in :func:`extended_analysis`.
    per_category : pandas.DataFrame
        One row per (layer, metric, category); see :func:`per_category_table`.
    summary : dict
        Counts of surviving tests and the run's parameters; see :func:`extended_analysis`.
    maxstat_null : ndarray of shape (n_permutations,)
        Max |r| over the family under each permutation.
    """

    tests: pd.DataFrame
    per_category: pd.DataFrame
    summary: dict[str, Any]
    maxstat_null: np.ndarray

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (plain Python types, NaN as None) for the results file's ``"extended"`` key.

        Keys: ``summary``, ``tests`` (list of row dicts), ``per_category`` (list of row dicts). The max-|r| null
        distribution itself is left out (its critical value is in the summary).
        """
        return {"summary": _json_value(self.summary), "tests": _records(self.tests),
                "per_category": _records(self.per_category)}


def extended_analysis(metric_values, preference, layers: Sequence[int], metric_names: Sequence[str], *,
                      n_tokens_a, n_tokens_b, len_a, len_b, categories: Sequence[str],
                      n_bootstrap: int = 10000, n_permutations: int = 10000, ci_level: float = 0.95,
                      seed: int = 42, bca: bool = False, alpha: float = 0.05) -> ExtendedAnalysis:
    """Run the reviewer's statistics on every (layer, metric) test at once.

    One set of bootstrap resamples (``stats.bootstrap_indices(n_pairs, n_bootstrap, seed)``, the resamples of
    ``stats.correlation_table`` with the same seed) serves the Pearson, Spearman and partial intervals; one set
    of permutations (:func:`permutation_indices` with the same seed) serves the per-test and max-stat p-values.

    Parameters
    ----------
    metric_values : ndarray of shape (n_layers, n_metrics, n_pairs)
    preference : ndarray of shape (n_pairs,)
        NLL(B) - NLL(A).
    layers : sequence of int, length n_layers
    metric_names : sequence of str, length n_metrics
    n_tokens_a, n_tokens_b : array-like of shape (n_pairs,)
    len_a, len_b : array-like of shape (n_pairs,)
        Character lengths of the statements.
    categories : sequence of str, length n_pairs
    n_bootstrap : int, default=10000
    n_permutations : int, default=10000
    ci_level : float, default=0.95
    seed : int, default=42
    bca : bool, default=False
        Fill ``bca_lower``/``bca_upper`` with BCa intervals of Pearson r (the columns are always present, NaN
        when False, so the table's schema does not depend on the flag).
    alpha : float, default=0.05
        Level of the survives_* decisions and of the max-stat critical value.

    Returns
    -------
    ExtendedAnalysis
        ``tests`` columns: layer, metric, n, r, ci_lower, ci_upper (percentile), bca_lower, bca_upper, p_value
        (Pearson, t-test), p_perm (two-sided permutation), p_holm and p_bh (Holm / BH applied to p_value over the
        defined tests), p_maxstat, spearman_rho, spearman_ci_lower, spearman_ci_upper, spearman_p_value; for each
        covariate set s in ``COVARIATE_SETS``: partial_{s}_r, partial_{s}_ci_lower, partial_{s}_ci_upper,
        partial_{s}_p_value, partial_{s}_retained (partial r / raw r); then excludes_zero (percentile CI),
        survives_holm, survives_bh, survives_maxstat (adjusted p < alpha), survives_confounds (percentile CI of
        partial_all_r excludes zero), note. ``summary``: n_tests, n_tests_defined, n_excludes_zero,
        n_perm_significant, n_survives_holm, n_survives_bh, n_survives_maxstat, n_survives_confounds,
        maxstat_critical_r, alpha, n_pairs, n_bootstrap, n_permutations, seed, ci_level, bca, n_categories,
        partial_df (per covariate set), covariate_sets (descriptions), partial_ci_method.
    """
    import pandas as pd

    flat, y = _check_table_inputs(metric_values, preference, layers, metric_names)
    ci_level = _check_ci_level(ci_level)
    seed = _check_seed(seed)
    n_bootstrap = _check_positive_int("n_bootstrap", n_bootstrap)
    n_permutations = _check_positive_int("n_permutations", n_permutations)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    if np.ptp(y) == 0:
        raise ValueError("preference is constant")
    n_tests, n = flat.shape
    covariates = confound_covariates(n_tokens_a, n_tokens_b, len_a, len_b, categories)
    notes = _row_notes(flat)
    ok = np.array([note == "" for note in notes])
    if not ok.any():
        raise ValueError("no (layer, metric) test has a finite, non-constant metric")
    xo = flat[ok]

    def full(values=None):
        out = np.full(n_tests, np.nan)
        if values is not None:
            out[ok] = values
        return out

    idx = bootstrap_indices(n, n_bootstrap, seed)
    cols: dict[str, Any] = {**_layer_metric_columns(layers, metric_names), "n": n}

    # Pearson r, percentile and BCa intervals
    boot = bootstrap_pearson(xo, y, idx)
    r_obs = _zscore_rows(xo) @ _zscore_rows(y[None])[0] / n
    lo, hi = percentile_interval(boot, ci_level)
    cols.update(r=full(np.clip(r_obs, -1, 1)), ci_lower=full(lo), ci_upper=full(hi))
    if bca:
        blo, bhi = bca_interval(r_obs, boot, jackknife_pearson(xo, y), ci_level)
        cols.update(bca_lower=full(blo), bca_upper=full(bhi))
    else:
        cols.update(bca_lower=full(), bca_upper=full())
    del boot
    cols["p_value"] = full(_t_pvalue(r_obs, n - 2))

    # Permutations: per-test and max-stat
    ms = max_stat_permutation(flat, y, n_permutations, seed, alpha=alpha)
    cols["p_perm"] = ms.p_perm
    cols["p_holm"] = holm(cols["p_value"])
    cols["p_bh"] = benjamini_hochberg(cols["p_value"])
    cols["p_maxstat"] = ms.p_maxstat

    # Spearman
    rank_x = sps.rankdata(xo, axis=-1)
    rank_y = sps.rankdata(y)
    rho = _zscore_rows(rank_x) @ _zscore_rows(rank_y[None])[0] / n
    slo, shi = percentile_interval(bootstrap_spearman(xo, y, idx), ci_level)
    cols.update(spearman_rho=full(np.clip(rho, -1, 1)), spearman_ci_lower=full(slo), spearman_ci_upper=full(shi),
                spearman_p_value=full(_t_pvalue(rho, n - 2)))

    # Confounds
    conf = confound_table(metric_values, y, layers, metric_names, covariates, ci_level=ci_level, indices=idx)
    partial_df = {}
    for name in COVARIATE_SETS:
        for field in ("r", "ci_lower", "ci_upper", "p_value", "retained"):
            cols[f"partial_{name}_{field}"] = conf[f"partial_{name}_{field}"].to_numpy()
        partial_df[name] = _partial_df(_design(covariates[name], n))

    lo_a, hi_a = cols["partial_all_ci_lower"], cols["partial_all_ci_upper"]
    cols.update(
        excludes_zero=(cols["ci_lower"] > 0) | (cols["ci_upper"] < 0),
        survives_holm=cols["p_holm"] < alpha,
        survives_bh=cols["p_bh"] < alpha,
        survives_maxstat=cols["p_maxstat"] < alpha,
        survives_confounds=(lo_a > 0) | (hi_a < 0),
        note=notes,
    )
    tests = pd.DataFrame(cols)
    per_cat = per_category_table(metric_values, y, layers, metric_names, categories, n_bootstrap=n_bootstrap,
                                 ci_level=ci_level, seed=seed)
    summary = {
        "n_tests": int(n_tests),
        "n_tests_defined": int(ok.sum()),
        "n_excludes_zero": int(tests["excludes_zero"].sum()),
        "n_perm_significant": int((tests["p_perm"] < alpha).sum()),
        "n_survives_holm": int(tests["survives_holm"].sum()),
        "n_survives_bh": int(tests["survives_bh"].sum()),
        "n_survives_maxstat": int(tests["survives_maxstat"].sum()),
        "n_survives_confounds": int(tests["survives_confounds"].sum()),
        "maxstat_critical_r": float(ms.critical_value),
        "alpha": float(alpha),
        "n_pairs": int(n),
        "n_bootstrap": int(n_bootstrap),
        "n_permutations": int(n_permutations),
        "seed": int(seed),
        "ci_level": float(ci_level),
        "bca": bool(bca),
        "n_categories": len(dict.fromkeys(list(categories))),
        "partial_df": partial_df,
        "covariate_sets": dict(COVARIATE_DESCRIPTIONS),
        "partial_ci_method": PARTIAL_CI_METHOD,
    }
    return ExtendedAnalysis(tests=tests, per_category=per_cat, summary=summary, maxstat_null=ms.null_max)


# --------------------------------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------------------------------

def plot_confounds(tests, title: str | None = None):
    """Draw raw r and partial r (all covariates) against layer with their CIs, one panel per metric.

    Parameters
    ----------
    tests : pandas.DataFrame
        ``ExtendedAnalysis.tests`` (needs layer, metric, r, ci_lower, ci_upper, partial_all_r,
        partial_all_ci_lower, partial_all_ci_upper).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    need = ["layer", "metric", "r", "ci_lower", "ci_upper", "partial_all_r", "partial_all_ci_lower",
            "partial_all_ci_upper"]
    missing = [c for c in need if c not in tests.columns]
    if missing:
        raise ValueError(f"tests lacks columns {missing}; pass ExtendedAnalysis.tests")
    metrics = list(dict.fromkeys(tests["metric"]))
    if not metrics:
        raise ValueError("tests is empty")
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3.8 * nrows), squeeze=False, sharey=True)
    flat_axes = axes.ravel()
    layer_values = np.sort(tests["layer"].unique())
    step = float(np.min(np.diff(layer_values))) if len(layer_values) > 1 else 1.0
    offset = 0.15 * step
    series = (("r", "ci_lower", "ci_upper", "raw r", "tab:blue", -offset),
              ("partial_all_r", "partial_all_ci_lower", "partial_all_ci_upper",
               "partial r (tokens + length + category)", "tab:orange", offset))
    for ax, metric in zip(flat_axes, metrics):
        rows = tests[tests["metric"] == metric].sort_values("layer")
        layer = rows["layer"].to_numpy(dtype=float)
        for col, lo, hi, label, color, dx in series:
            r = rows[col].to_numpy(dtype=float)
            yerr = [r - rows[lo].to_numpy(dtype=float), rows[hi].to_numpy(dtype=float) - r]
            ax.errorbar(layer + dx, r, yerr=yerr, fmt="o-", capsize=3, markersize=5, color=color, label=label)
        ax.axhline(0, color="black", linestyle="--", alpha=0.5)
        ax.set_title(metric, fontweight="bold")
        ax.set_xlabel("Layer")
        ax.grid(True, alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("r")
    for ax in flat_axes[len(metrics):]:
        ax.axis("off")
    handles, labels = flat_axes[0].get_legend_handles_labels()
    if len(metrics) < flat_axes.size:  # a spare panel holds the legend
        flat_axes[len(metrics)].legend(handles, labels, loc="center", frameon=False)
        bottom = 0.0
    else:
        fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
        bottom = 0.06
    fig.suptitle(title or "Raw vs confound-controlled correlation with output preference", fontweight="bold")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig
