"""Robustness diagnostics: hidden-state norm outliers, leave-one-out influence, rank agreement, redundancy.

Four questions a reader asks of a correlation before trusting it, each answered for every test at once:

- :func:`norm_diagnostics`: is a layer dominated by a few statements with huge pooled hidden-state norms
  ("massive activations")? Their pairs can drive a Pearson r on their own.
- :func:`leave_one_out`: does any single pair's removal change the sign of r or its verdict?
- :func:`rank_disagreement`: do Pearson r and Spearman rho tell the same story?
- :func:`ua_helpers.analysis.redundancy.redundancy` (its own module): do the A and B centroids nearly coincide (which makes the centroid metrics collapse onto
  each other), and which metrics are the same test under two names?

Everything takes arrays (no configuration object) and is vectorized over layers, metrics and pairs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .._checks import as_tests, as_vector, excludes_zero, t_pvalue
from .bootstrap import jackknife_pearson, pearson
from .redundancy import check_emb, check_layers

if TYPE_CHECKING:
    import pandas as pd

#: A statement is a massive-activation outlier when its pooled norm exceeds this multiple of the layer's median.
MASSIVE_RATIO = 10.0
LOO_CRITERION = ("leave-one-out: r recomputed without each pair in turn (closed form); the verdict is the "
                 "two-sided t-test of Pearson r, p < alpha with n - 2 degrees of freedom (n - 3 without the pair); "
                 "a removal 'changes the sign' when r without the pair has the opposite sign of r, and 'changes the "
                 "verdict' when its t-test verdict differs from that of r on all pairs")
DISAGREEMENT_CRITERION = ("Pearson and Spearman disagree when exactly one of their percentile bootstrap CIs "
                          "excludes 0, or when both exclude 0 with opposite signs")


# --------------------------------------------------------------------------------------------------------------
# 1. Hidden-state norms
# --------------------------------------------------------------------------------------------------------------

@dataclass
class NormDiagnostics:
    """Result of :func:`norm_diagnostics`.

    Attributes
    ----------
    per_layer : pandas.DataFrame
        One row per layer: layer, min, q25, median, q75, max of the pooled norms over the 2 * n_pairs
        statements, max_ratio (max / median), n_massive.
    massive : pandas.DataFrame
        One row per (layer, statement) above the threshold: layer, pair, side ("A" or "B"), norm, ratio
        (norm / the layer's median), sorted by layer, then ratio descending.
    norms_a, norms_b : ndarray of shape (n_layers, n_pairs)
        Euclidean norms of the pooled hidden states.
    threshold : float
    """

    per_layer: pd.DataFrame
    massive: pd.DataFrame
    norms_a: np.ndarray
    norms_b: np.ndarray
    threshold: float

    def statements(self) -> pd.DataFrame:
        """Return one row per outlying statement: pair, side, layers (list), max_ratio; strongest first."""
        import pandas as pd

        if self.massive.empty:
            return pd.DataFrame({"pair": [], "side": [], "layers": [], "max_ratio": []})
        grouped = self.massive.groupby(["pair", "side"], sort=True)
        out = pd.DataFrame({"layers": grouped["layer"].agg(lambda s: sorted(int(v) for v in s)),
                            "max_ratio": grouped["ratio"].max()}).reset_index()
        return out.sort_values(["max_ratio", "pair"], ascending=[False, True], kind="stable").reset_index(drop=True)

    def pair_mask(self, layers: Sequence[int]) -> np.ndarray:
        """Return a bool mask (n_layers, n_pairs): True where either statement of the pair is an outlier."""
        layers = list(layers)
        mask = np.zeros(self.norms_a.shape, dtype=bool)
        for row in self.massive.itertuples():
            mask[layers.index(row.layer), row.pair] = True
        return mask


def norm_diagnostics(emb_a, emb_b, layers: Sequence[int], threshold: float = MASSIVE_RATIO) -> NormDiagnostics:
    """Describe the pooled hidden-state norms per layer and list the statements far above the median.

    The A and B statements are pooled: the median of a layer is taken over all 2 * n_pairs statements.

    Parameters
    ----------
    emb_a, emb_b : ndarray of shape (n_layers, n_pairs, d_model)
    layers : sequence of int, length n_layers
    threshold : float, default=10.0
        A statement is listed when its norm exceeds ``threshold`` times the layer's median norm.

    Returns
    -------
    NormDiagnostics
    """
    import pandas as pd

    a, b = check_emb(emb_a, emb_b)
    layers = check_layers(layers, a.shape[0])
    if not threshold > 1:
        raise ValueError(f"threshold must exceed 1; got {threshold}")
    na = np.linalg.norm(a.astype(np.float64), axis=-1)  # [layer, pair]
    nb = np.linalg.norm(b.astype(np.float64), axis=-1)
    pooled = np.concatenate([na, nb], axis=1)  # [layer, 2 * pair]
    q = np.quantile(pooled, [0.0, 0.25, 0.5, 0.75, 1.0], axis=1)  # [5, layer]
    median = q[2]
    if np.any(median <= 0):
        raise ValueError("a layer's median hidden-state norm is 0; norm ratios are undefined")
    ratio = pooled / median[:, None]
    li, si = np.nonzero(ratio > threshold)
    n = a.shape[1]
    massive = pd.DataFrame({"layer": np.asarray(layers, dtype=int)[li], "pair": si % n,
                            "side": np.where(si < n, "A", "B"), "norm": pooled[li, si], "ratio": ratio[li, si]})
    massive = massive.sort_values(["layer", "ratio"], ascending=[True, False], kind="stable").reset_index(drop=True)
    per_layer = pd.DataFrame({"layer": layers, "min": q[0], "q25": q[1], "median": median, "q75": q[3], "max": q[4],
                              "max_ratio": q[4] / median, "n_massive": (ratio > threshold).sum(axis=1)})
    return NormDiagnostics(per_layer, massive, na, nb, float(threshold))


# --------------------------------------------------------------------------------------------------------------
# 2. Leave-one-out influence
# --------------------------------------------------------------------------------------------------------------

def _vector(y, n: int, name: str) -> np.ndarray:
    """``_checks.as_vector``, refusing a constant vector too (nothing correlates with a constant)."""
    y = as_vector(y, n, name)
    if np.ptp(y) == 0:
        raise ValueError(f"{name} is constant")
    return y


def pearson_rows(x, y, mask=None) -> np.ndarray:
    """Compute Pearson r of every row of ``x`` with ``y``, optionally over a per-row subset of the items.

    Parameters
    ----------
    x : ndarray of shape (n_tests, n)
    y : ndarray of shape (n,)
    mask : ndarray of bool, shape (n_tests, n), optional
        Items to keep in each row (all when None).

    Returns
    -------
    ndarray of shape (n_tests,)
        NaN where fewer than 3 items are kept, or where a row (or ``y``) has no spread on the kept items by the
        rule of :func:`ua_helpers.analysis.bootstrap.pearson`, which computes it.
    """
    x = as_tests(x)
    if mask is None:
        return pearson(x, y)[:, 0]
    w = np.asarray(mask, dtype=bool)
    if w.shape != x.shape:
        raise ValueError(f"mask must have shape {x.shape}; got {w.shape}")
    # Rows share few distinct masks (one per layer): the kernel runs once per distinct mask, each row reads its own.
    masks, which = np.unique(w, axis=0, return_inverse=True)
    r = pearson(x, y, masks)[np.arange(x.shape[0]), which.ravel()]
    r[w.sum(axis=1) < 3] = np.nan
    return r


def leave_one_out_r(x, y) -> np.ndarray:
    """Compute the Pearson r of every row of ``x`` (n_tests, n) with ``y`` (n,) leaving out each item in turn.

    :func:`ua_helpers.analysis.bootstrap.jackknife_pearson` (the closed form BCa also uses), for at least 4 items and a
    non-constant ``y``. Returns an ndarray of shape (n_tests, n); NaN where no spread is left.
    """
    x = as_tests(x)
    n = x.shape[1]
    if n < 4:
        raise ValueError(f"need at least 4 items for leave-one-out correlations; got {n}")
    return jackknife_pearson(x, _vector(y, n, "y"))


def leave_one_out(metric_values, preference, layers: Sequence[int], metric_names: Sequence[str], *,
                  alpha: float = 0.05) -> pd.DataFrame:
    """Find each test's most influential pair and whether any single removal changes the sign or the verdict.

    The verdict is the two-sided t-test of Pearson r (p < ``alpha``), which a removal can change in either
    direction; see :data:`LOO_CRITERION`. This is a cheap stand-in for the bootstrap CI, which would need
    ``n_pairs`` bootstraps per test.

    Parameters
    ----------
    metric_values, preference, layers, metric_names : the standard arrays of :mod:`ua_helpers.analysis`
    alpha : float, default=0.05

    Returns
    -------
    pandas.DataFrame
        One row per (layer, metric) in the order of ``metric_values``: layer, metric, r, p_t (t-test p of r),
        loo_r_min, loo_r_max, most_influential_pair, loo_delta_r (r without that pair minus r),
        loo_sign_change, loo_verdict_change, loo_n_verdict_changes (how many single removals change the
        verdict). Undefined tests (constant metric) carry NaN and False.
    """
    import pandas as pd

    values = np.asarray(metric_values, dtype=np.float64)
    if values.ndim != 3 or values.shape[:2] != (len(layers), len(metric_names)):
        raise ValueError(f"metric_values must be (n_layers, n_metrics, n_pairs) = ({len(layers)}, "
                         f"{len(metric_names)}, n_pairs); got {values.shape}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    x = values.reshape(-1, values.shape[-1])
    n = x.shape[1]
    y = _vector(preference, n, "preference")
    if not np.all(np.isfinite(x)):
        raise ValueError("metric_values has non-finite values")
    r = pearson_rows(x, y)
    loo = leave_one_out_r(x, y)  # [tests, n]
    defined = np.isfinite(r)
    delta = loo - r[:, None]
    absd = np.where(np.isfinite(delta), np.abs(delta), -1.0)
    most = absd.argmax(axis=1)
    verdict = t_pvalue(r, n - 2) < alpha
    loo_verdict = t_pvalue(loo, n - 3) < alpha  # n - 1 items
    finite = np.isfinite(loo)
    sign_change = np.any(finite & (np.sign(loo) != np.sign(r)[:, None]) & (r[:, None] != 0), axis=1)
    n_verdict = (finite & (loo_verdict != verdict[:, None])).sum(axis=1)
    any_finite = finite.any(axis=1)
    lo = np.where(any_finite, np.where(finite, loo, np.inf).min(axis=1), np.nan)
    hi = np.where(any_finite, np.where(finite, loo, -np.inf).max(axis=1), np.nan)
    out = pd.DataFrame({
        "layer": np.repeat(np.asarray(layers, dtype=int), len(metric_names)),
        "metric": np.tile(np.asarray(list(metric_names), dtype=object), len(layers)),
        "r": r, "p_t": t_pvalue(r, n - 2), "loo_r_min": lo, "loo_r_max": hi,
        "most_influential_pair": np.where(defined, most, -1),
        "loo_delta_r": np.where(defined, delta[np.arange(len(r)), most], np.nan),
        "loo_sign_change": defined & sign_change,
        "loo_verdict_change": defined & (n_verdict > 0),
        "loo_n_verdict_changes": np.where(defined, n_verdict, 0),
    })
    return out


def without_pairs_r(metric_values, preference, drop) -> np.ndarray:
    """Compute each test's Pearson r without the pairs marked in ``drop`` for its layer.

    Parameters
    ----------
    metric_values, preference : the standard arrays of :mod:`ua_helpers.analysis`
    drop : ndarray of bool, shape (n_layers, n_pairs)
        Pairs to leave out at each layer (e.g. :meth:`NormDiagnostics.pair_mask`).

    Returns
    -------
    ndarray of shape (n_layers, n_metrics)
    """
    values = np.asarray(metric_values, dtype=np.float64)
    drop = np.asarray(drop, dtype=bool)
    if values.ndim != 3 or drop.shape != (values.shape[0], values.shape[2]):
        raise ValueError(f"drop must be (n_layers, n_pairs) = {(values.shape[0], values.shape[2])}; "
                         f"got {drop.shape} for metric_values {values.shape}")
    keep = np.broadcast_to(~drop[:, None, :], values.shape).reshape(-1, values.shape[2])
    r = pearson_rows(values.reshape(-1, values.shape[2]), _vector(preference, values.shape[2], "preference"), keep)
    return r.reshape(values.shape[:2])


# --------------------------------------------------------------------------------------------------------------
# 3. Pearson / Spearman disagreement
# --------------------------------------------------------------------------------------------------------------

def rank_disagreement(r, ci_lower, ci_upper, rho, rho_ci_lower, rho_ci_upper) -> dict[str, np.ndarray]:
    """Flag tests where Pearson r and Spearman rho disagree in sign or in verdict.

    Parameters
    ----------
    r, ci_lower, ci_upper : array-like of shape (n_tests,)
        Pearson r and its CI.
    rho, rho_ci_lower, rho_ci_upper : array-like of shape (n_tests,)
        Spearman rho and its CI.

    Returns
    -------
    dict of str to ndarray of shape (n_tests,)
        ``sign_differs`` (r and rho of opposite signs, however small), ``verdict_differs`` (exactly one CI
        excludes 0), ``disagree`` (``verdict_differs``, or both CIs exclude 0 with opposite signs; see
        :data:`DISAGREEMENT_CRITERION`), ``kind`` ("verdict", "sign" or ""). NaN inputs give False.
    """
    arrs = [np.asarray(v, dtype=np.float64) for v in (r, ci_lower, ci_upper, rho, rho_ci_lower, rho_ci_upper)]
    if len({a.shape for a in arrs}) != 1 or arrs[0].ndim != 1:
        raise ValueError(f"all six inputs must be 1-D of one length; got shapes {[a.shape for a in arrs]}")
    r, lo, hi, rho, slo, shi = arrs
    ex_r, ex_s = excludes_zero(lo, hi), excludes_zero(slo, shi)
    with np.errstate(invalid="ignore"):
        sign = np.sign(r) * np.sign(rho) < 0
    verdict = ex_r != ex_s
    defined = np.isfinite(r) & np.isfinite(rho)
    both = ex_r & ex_s & sign
    disagree = defined & (verdict | both)
    kind = np.where(defined & verdict, "verdict", np.where(defined & both, "sign", ""))
    return {"sign_differs": defined & sign, "verdict_differs": defined & verdict, "disagree": disagree,
            "kind": kind}


# --------------------------------------------------------------------------------------------------------------
# 5. All diagnostics of a run's tests, for the evidence ladder
# --------------------------------------------------------------------------------------------------------------

@dataclass
class Diagnostics:
    """What may undo each (layer, metric) test: the result of :func:`diagnose`, one row per test in its order.

    Attributes
    ----------
    loo : pandas.DataFrame
        :func:`leave_one_out` of the tests.
    norms : NormDiagnostics
        The layers' pooled hidden-state norms and their massive-activation statements.
    r_without_massive : ndarray of shape (n_tests,)
        r without the pairs holding a massive-activation statement at the test's layer (NaN where there is none).
    n_dropped : ndarray of shape (n_tests,)
        How many pairs that removal drops.
    massive_changes : ndarray of bool, shape (n_tests,)
        That removal flips r's sign or its t-test verdict at ``alpha``.
    disagreement : dict of str to ndarray
        :func:`rank_disagreement` of the tests' Pearson and Spearman intervals.
    alpha, massive_ratio : float
    """

    loo: pd.DataFrame
    norms: NormDiagnostics
    r_without_massive: np.ndarray
    n_dropped: np.ndarray
    massive_changes: np.ndarray
    disagreement: dict
    alpha: float
    massive_ratio: float


def diagnose(metric_values, preference, emb_a, emb_b, layers: Sequence[int], metric_names: Sequence[str], tests, *,
             alpha: float = 0.05, massive_ratio: float = MASSIVE_RATIO) -> Diagnostics:
    """Run the robustness diagnostics of every test: leave-one-out, massive activations, Pearson vs Spearman.

    Parameters
    ----------
    metric_values, preference, layers, metric_names
        As in :func:`leave_one_out`.
    emb_a, emb_b : ndarray of shape (n_layers, n_pairs, d_model)
    tests : pandas.DataFrame
        ``inference.extended_analysis(...).tests`` of the same data, in (layer, metric) order: its r, Spearman
        rho and both intervals.
    alpha : float, default=0.05
    massive_ratio : float, default=10.0
        As ``threshold`` in :func:`norm_diagnostics`.
    """
    values = np.asarray(metric_values, dtype=np.float64)
    layers = [int(layer) for layer in layers]
    if len(tests) != len(layers) * len(metric_names):
        raise ValueError(f"tests has {len(tests)} rows; expected {len(layers)} layers x {len(metric_names)} metrics")
    loo = leave_one_out(values, preference, layers, metric_names, alpha=alpha)
    norms = norm_diagnostics(emb_a, emb_b, layers, threshold=massive_ratio)
    drop = norms.pair_mask(layers)  # [layer, pair]
    r_wo = without_pairs_r(values, preference, drop).ravel()
    n_drop = np.repeat(drop.sum(axis=1), len(metric_names))
    r = tests["r"].to_numpy(dtype=float)
    n = values.shape[2]
    with np.errstate(invalid="ignore"):
        changes = (n_drop > 0) & np.isfinite(r_wo) & (
            (np.sign(r_wo) != np.sign(r)) | ((t_pvalue(r_wo, n - n_drop - 2) < alpha) != (t_pvalue(r, n - 2) < alpha)))
    dis = rank_disagreement(tests["r"], tests["ci_lower"], tests["ci_upper"], tests["spearman_rho"],
                            tests["spearman_ci_lower"], tests["spearman_ci_upper"])
    return Diagnostics(loo, norms, np.where(n_drop > 0, r_wo, np.nan), n_drop, changes, dis, float(alpha),
                       float(massive_ratio))
