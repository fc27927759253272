"""Argument checks and small numeric helpers shared by the statistics modules.

The ground floor of the statistics: it imports NumPy and SciPy only, and every statistics module imports it.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as sps


def check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (no unseeded randomness); got {seed!r}")
    return int(seed)


def check_ci_level(ci_level: float) -> float:
    if not 0 < ci_level < 1:
        raise ValueError(f"ci_level must be in (0, 1); got {ci_level}")
    return float(ci_level)


def check_positive_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def as_tests(x, n: int | None = None, name: str = "x") -> np.ndarray:
    """Return ``x`` as float64 of shape (n_tests, n): 1-D becomes one row, leading axes are flattened."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one axis; got a scalar")
    x = x.reshape(-1, x.shape[-1])
    if n is not None and x.shape[1] != n:
        raise ValueError(f"{name} has {x.shape[1]} values per test; expected {n}")
    return x


def as_vector(v, n: int | None, name: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != 1 or (n is not None and v.shape[0] != n):
        want = "1-D" if n is None else f"1-D of length {n}"
        raise ValueError(f"{name} must be {want}; got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} has non-finite values")
    return v


def row_notes(x: np.ndarray) -> list[str]:
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


def zscore_rows(x: np.ndarray) -> np.ndarray:
    """Center and scale each row to population standard deviation 1 (rows must not be constant)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    return xc / np.sqrt((xc**2).mean(axis=-1, keepdims=True))


def check_table_inputs(metric_values, preference, layers, metric_names):
    values = np.asarray(metric_values, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(f"metric_values must be (n_layers, n_metrics, n_pairs); got shape {values.shape}")
    n_layers, n_metrics, n = values.shape
    if (n_layers, n_metrics) != (len(layers), len(metric_names)):
        raise ValueError(f"metric_values {values.shape} does not match {len(layers)} layers x "
                         f"{len(metric_names)} metrics")
    y = as_vector(preference, n, "preference")
    if n < 4:
        raise ValueError(f"need at least 4 pairs; got {n}")
    return values.reshape(n_layers * n_metrics, n), y


def layer_metric_columns(layers, metric_names) -> dict[str, np.ndarray]:
    return {"layer": np.repeat(np.asarray(layers, dtype=int), len(metric_names)),
            "metric": np.tile(np.asarray(list(metric_names), dtype=object), len(layers))}



def check_indices(indices, n: int) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.shape[1] != n or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be an integer array of shape (n_bootstrap, {n}); got {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"indices must lie in [0, {n})")
    return idx



def t_pvalue(r, df) -> np.ndarray:
    """Return the two-sided p-value of the t-test of a correlation ``r`` with ``df`` degrees of freedom.

    The package's one t-test of a correlation: ``df`` is ``n - 2`` for a Pearson r over ``n`` items (``n - 2 - k``
    for a partial r given ``k`` covariates), never the item count. ``r`` and ``df`` broadcast; NaN where ``df``
    is not positive or ``r`` is NaN.
    """
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(r) * np.sqrt(df / np.maximum(1.0 - r**2, 0.0))
    return 2 * sps.t.sf(t, df)


def excludes_zero(lo, hi) -> np.ndarray:
    """Tell whether each interval ``[lo, hi]`` lies wholly above or below zero; an undefined bound (None, NaN) does
    not. ``lo`` and ``hi`` broadcast; a 0-d array of bool for scalars."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    with np.errstate(invalid="ignore"):
        return (lo > 0) | (hi < 0)

