"""Pearson correlations with percentile bootstrap CIs, for one test or every (layer, metric) at once.

The seed's public API, on the engine of :mod:`ua_helpers.analysis.bootstrap`: resample indices are drawn once from a seeded
NumPy Generator and shared by all tests of a run; each resample's correlation comes from weighted sums (resample
counts times the data), so 45 tests x 10,000 resamples are a few matrix products instead of 450,000 calls of
``scipy.stats.pearsonr``.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

import numpy as np
from scipy import stats as sps

from .._checks import check_ci_level, excludes_zero
from .bootstrap import (
    Resamples,
    bootstrap_indices,
    bootstrap_pearson,
    percentile_interval,
)

__all__ = ["CorrelationResult", "DegenerateInputWarning", "bootstrap_correlation", "bootstrap_indices",
           "correlation_table"]


class CorrelationResult(NamedTuple):
    """Pearson r with its bootstrap CI and SciPy's two-sided p-value."""

    r: float
    ci_lower: float
    ci_upper: float
    p_value: float


class DegenerateInputWarning(UserWarning):
    """A correlation that is undefined (constant or non-finite input): the result is NaN."""


def _degenerate_reason(x: np.ndarray, y: np.ndarray) -> str | None:
    for name, v in (("x", x), ("y", y)):
        if not np.all(np.isfinite(v)):
            return f"{name} has non-finite values"
        if np.ptp(v) == 0:
            return f"{name} is constant"
    return None


def bootstrap_correlation(x, y, n_bootstrap: int = 10000, ci_level: float = 0.95,
                          seed: int | None = 42) -> CorrelationResult:
    """Compute Pearson r of x and y, its percentile bootstrap CI, and SciPy's two-sided p-value.

    Parameters
    ----------
    x, y : array-like of shape (n,)
    n_bootstrap : int, default=10000
    ci_level : float, default=0.95
    seed : int, default=42
        Seed of the ``numpy.random.Generator`` that draws the resamples.

    Returns
    -------
    CorrelationResult
        ``(r, ci_lower, ci_upper, p_value)``; all NaN, with a :class:`DegenerateInputWarning` saying why, when
        x or y is constant or not finite.
    """
    check_ci_level(ci_level)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D of the same length; got {x.shape} and {y.shape}")
    reason = _degenerate_reason(x, y)
    if reason:
        warnings.warn(f"correlation undefined: {reason}", DegenerateInputWarning, stacklevel=2)
        return CorrelationResult(np.nan, np.nan, np.nan, np.nan)
    r, p = sps.pearsonr(x, y)
    lo, hi = percentile_interval(bootstrap_pearson(x, y, Resamples(len(x), n_bootstrap, seed))[0], ci_level)
    return CorrelationResult(float(r), float(lo[0]), float(hi[0]), float(p))


def correlation_table(metric_values: np.ndarray, preference: np.ndarray, layers: Sequence[int],
                      metric_names: Sequence[str], n_bootstrap: int = 10000, ci_level: float = 0.95,
                      seed: int | None = 42):
    """Correlate every (layer, metric) with the preference, sharing one set of bootstrap resamples.

    Parameters
    ----------
    metric_values, preference, layers, metric_names : the standard arrays of :mod:`ua_helpers.analysis`
    n_bootstrap, ci_level, seed
        As in :func:`bootstrap_correlation`; the same seed gives each test the resamples it would get there.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, metric): layer, metric, r, ci_lower, ci_upper, p_value, includes_zero, n, note.
        ``includes_zero`` is True unless the CI lies wholly above or below zero (an undefined CI counts as
        including zero).
    """
    import pandas as pd

    check_ci_level(ci_level)
    values = np.asarray(metric_values, dtype=np.float64)
    y = np.asarray(preference, dtype=np.float64)
    n_layers, n_metrics, n = values.shape
    if (n_layers, n_metrics) != (len(layers), len(metric_names)) or y.shape != (n,):
        raise ValueError(
            f"metric_values {values.shape} does not match {len(layers)} layers x {len(metric_names)} metrics "
            f"x preference {y.shape}"
        )
    flat = values.reshape(n_layers * n_metrics, n)
    notes = [_degenerate_reason(row, y) for row in flat]
    ok = np.array([note is None for note in notes])
    r = np.full(len(flat), np.nan)
    p = np.full(len(flat), np.nan)
    lo = np.full(len(flat), np.nan)
    hi = np.full(len(flat), np.nan)
    if ok.any():
        idx = Resamples(n, n_bootstrap, seed)  # the rows of bootstrap_indices(n, n_bootstrap, seed), in chunks
        lo[ok], hi[ok] = percentile_interval(bootstrap_pearson(flat[ok], y, idx), ci_level)
        for t in np.flatnonzero(ok):
            r[t], p[t] = sps.pearsonr(flat[t], y)
    return pd.DataFrame({
        "layer": np.repeat(np.asarray(layers, dtype=int), n_metrics),
        "metric": np.tile(np.asarray(metric_names, dtype=object), n_layers),
        "r": r, "ci_lower": lo, "ci_upper": hi, "p_value": p,
        "includes_zero": ~excludes_zero(lo, hi),
        "n": n,
        "note": [note or "" for note in notes],
    })
