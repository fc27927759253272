"""The extended analysis a reviewer asks for, run on every (layer, metric) test at once: one entry point.

The seed reads "the 95% bootstrap CI excludes zero" across all (layer, metric) tests with no correction.
:func:`extended_analysis` adds, for the same family of tests, what the topic modules compute:

- :mod:`ua_helpers.analysis.multiplicity`: Holm (family-wise error), Benjamini-Hochberg (false discovery rate), the
  max-statistic permutation test and per-test permutation p-values;
- :mod:`ua_helpers.analysis.bootstrap`: percentile and BCa intervals, Spearman correlations with bootstrap CIs;
- :mod:`ua_helpers.analysis.confounds`: partial correlations controlling for the token-count difference, the
  character-length difference and the category, with bootstrap CIs and adjusted p-values, and per-category
  correlations (exploratory).

This module only orchestrates: one set of bootstrap resamples and one set of permutations serve every statistic.
The figure of the confound analysis is :func:`ua_helpers.report.plots.plot_confounds`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from scipy import stats as sps

from .._checks import (check_ci_level, check_positive_int, check_seed, check_table_inputs, excludes_zero,
                       layer_metric_columns, row_notes, t_pvalue)
from .._io import to_jsonable
from .bootstrap import (Resamples, bca_interval, bootstrap_pearson, bootstrap_spearman, jackknife_pearson,
                        pearson, percentile_interval)
from .confounds import (COVARIATE_DESCRIPTIONS, COVARIATE_SETS, PARTIAL_CI_METHOD, confound_covariates, confound_table,
                        partial_dof, per_category_table)
from .multiplicity import benjamini_hochberg, holm, max_stat_permutations, monte_carlo_se, near_alpha

if TYPE_CHECKING:
    import pandas as pd


def _records(df) -> list[dict[str, Any]]:
    return to_jsonable(df.to_dict(orient="records"))


@dataclass
class ExtendedAnalysis:
    """Result of :func:`extended_analysis`.

    Attributes
    ----------
    tests : pandas.DataFrame
        One row per (layer, metric).
    per_category : pandas.DataFrame
        One row per (layer, metric, category); see :func:`per_category_table`.
    summary : dict
        Counts of surviving tests and the run's parameters (columns and keys: ``results.schema.json``).
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
        return {"summary": to_jsonable(self.summary), "tests": _records(self.tests),
                "per_category": _records(self.per_category)}


def extended_analysis(metric_values, preference, layers: Sequence[int], metric_names: Sequence[str], *,
                      n_tokens_a, n_tokens_b, len_a, len_b, categories: Sequence[str],
                      n_bootstrap: int = 10000, n_permutations: int = 10000, ci_level: float = 0.95,
                      seed: int = 42, bca: bool = False, alpha: float = 0.05) -> ExtendedAnalysis:
    """Run the reviewer's statistics on every (layer, metric) test at once.

    One set of bootstrap resamples (``bootstrap.bootstrap_indices(n_pairs, n_bootstrap, seed)``, the resamples of
    ``stats.correlation_table`` with the same seed) serves the Pearson, Spearman and partial intervals; one set
    of permutations (``multiplicity.permutation_indices`` with the same seed) serves the per-test and max-stat
    p-values.

    Parameters
    ----------
    metric_values, preference, layers, metric_names : the standard arrays of :mod:`ua_helpers.analysis`
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
        ``tests`` holds one row per (layer, metric), ``summary`` the family's counts and parameters; their
        columns and keys are those of the ``extended`` block of results.json (layout: ``results.schema.json``).
    """
    import pandas as pd

    flat, y = check_table_inputs(metric_values, preference, layers, metric_names)
    ci_level = check_ci_level(ci_level)
    seed = check_seed(seed)
    n_bootstrap = check_positive_int("n_bootstrap", n_bootstrap)
    n_permutations = check_positive_int("n_permutations", n_permutations)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    if np.ptp(y) == 0:
        raise ValueError("preference is constant")
    n_tests, n = flat.shape
    covariates = confound_covariates(n_tokens_a, n_tokens_b, len_a, len_b, categories)
    notes = row_notes(flat)
    ok = np.array([note == "" for note in notes])
    if not ok.any():
        raise ValueError("no (layer, metric) test has a finite, non-constant metric")
    xo = flat[ok]

    def full(values=None):
        out = np.full(n_tests, np.nan)
        if values is not None:
            out[ok] = values
        return out

    # the rows of bootstrap_indices(n, ...), drawn and counted once for the six bootstraps below (uint8 counts)
    idx = Resamples(n, n_bootstrap, seed, keep_counts=True)
    cols: dict[str, Any] = {**layer_metric_columns(layers, metric_names), "n": n}

    # Pearson r, percentile and BCa intervals
    boot = bootstrap_pearson(xo, y, idx)
    r_obs = pearson(xo, y)[:, 0]
    lo, hi = percentile_interval(boot, ci_level)
    cols.update(r=full(r_obs), ci_lower=full(lo), ci_upper=full(hi))
    if bca:
        blo, bhi = bca_interval(r_obs, boot, jackknife_pearson(xo, y), ci_level)
        cols.update(bca_lower=full(blo), bca_upper=full(bhi))
    else:
        cols.update(bca_lower=full(), bca_upper=full())
    del boot
    cols["p_value"] = full(t_pvalue(r_obs, n - 2))

    # Permutations: per-test and max-stat, on the values and (below) on their ranks: one draw of the permutations
    rank_x = sps.rankdata(xo, axis=-1)
    rank_y = sps.rankdata(y)
    ranked = np.full(flat.shape, np.nan)
    ranked[ok] = rank_x
    ms, ms_rank = max_stat_permutations([(flat, y), (ranked, rank_y)], n_permutations, seed, alpha=alpha)
    cols["p_perm"] = ms.p_perm
    cols["p_holm"] = holm(cols["p_value"])
    cols["p_bh"] = benjamini_hochberg(cols["p_value"])
    cols["p_maxstat"] = ms.p_maxstat

    # Spearman
    rho = pearson(rank_x, rank_y)[:, 0]  # Spearman's rho: Pearson r of the ranks
    slo, shi = percentile_interval(bootstrap_spearman(xo, y, idx), ci_level)
    cols.update(spearman_rho=full(rho), spearman_ci_lower=full(slo), spearman_ci_upper=full(shi),
                spearman_p_value=full(t_pvalue(rho, n - 2)))
    cols["spearman_p_bh"] = benjamini_hochberg(cols["spearman_p_value"])
    # The max-statistic test on ranks (computed above): rank-transformed once, the same kernel and permutations.
    cols["p_maxstat_spearman"] = ms_rank.p_maxstat
    # Monte Carlo standard error of each permutation p-value, and verdicts within two of them of alpha.
    for name in ("p_perm", "p_maxstat", "p_maxstat_spearman"):
        cols[f"{name}_se"] = monte_carlo_se(cols[name], n_permutations)
    cols["maxstat_uncertain"] = near_alpha(cols["p_maxstat"], cols["p_maxstat_se"], alpha)
    cols["maxstat_spearman_uncertain"] = near_alpha(cols["p_maxstat_spearman"], cols["p_maxstat_spearman_se"], alpha)

    # Confounds
    conf = confound_table(metric_values, y, layers, metric_names, covariates, ci_level=ci_level, indices=idx)
    partial_df = {}
    for name in COVARIATE_SETS:
        for field in ("r", "ci_lower", "ci_upper", "p_value", "p_holm", "p_bh"):
            cols[f"partial_{name}_{field}"] = conf[f"partial_{name}_{field}"].to_numpy()
        partial_df[name] = partial_dof(covariates[name], n)

    lo_a, hi_a = cols["partial_all_ci_lower"], cols["partial_all_ci_upper"]
    cols.update(
        excludes_zero=excludes_zero(cols["ci_lower"], cols["ci_upper"]),
        survives_holm=cols["p_holm"] < alpha,
        survives_bh=cols["p_bh"] < alpha,
        survives_maxstat=cols["p_maxstat"] < alpha,
        survives_confounds=excludes_zero(lo_a, hi_a),
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

