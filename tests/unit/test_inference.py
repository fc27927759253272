"""extended_analysis: its table, summary, JSON, reproducibility, Monte Carlo stability, figure and validation."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats as sps

from inference_data import LAYERS, METRICS, N, make_data, run_extended
from ua_helpers.analysis import bootstrap, confounds, inference, multiplicity, stats
from ua_helpers.report import plots


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def result(data):
    return run_extended(data)


# ----------------------------------------------------------------------------------------------------------------
# Entry point, JSON, figure
# ----------------------------------------------------------------------------------------------------------------

def test_extended_analysis_table_and_summary(result):
    tests, summary = result.tests, result.summary
    assert len(tests) == 45
    for col in ("r", "ci_lower", "ci_upper", "bca_lower", "bca_upper", "p_value", "p_perm", "p_holm", "p_bh",
                "p_maxstat", "spearman_rho", "spearman_ci_lower", "spearman_ci_upper", "excludes_zero",
                "survives_holm", "survives_bh", "survives_maxstat", "survives_confounds"):
        assert col in tests.columns
    assert_allclose(tests["p_holm"], multiplicity.holm(tests["p_value"].to_numpy()))
    assert_allclose(tests["p_bh"], multiplicity.benjamini_hochberg(tests["p_value"].to_numpy()))
    assert summary["n_excludes_zero"] == tests["excludes_zero"].sum()
    assert summary["n_survives_holm"] == (tests["p_holm"] < 0.05).sum()
    assert summary["n_survives_bh"] == (tests["p_bh"] < 0.05).sum()
    assert summary["n_survives_maxstat"] == (tests["p_maxstat"] < 0.05).sum()
    assert summary["n_survives_confounds"] == tests["survives_confounds"].sum()
    # Holm is never less strict than BH; the planted effect survives every correction
    assert (tests["p_holm"] >= tests["p_bh"] - 1e-15).all()  # a theorem; the two roundings of p <= 1: ~4e-16
    assert summary["n_survives_holm"] <= summary["n_survives_bh"]
    assert summary["n_survives_maxstat"] >= 1 and summary["n_survives_holm"] >= 1
    assert summary["n_survives_maxstat"] >= summary["n_survives_holm"]
    assert (summary["n_bootstrap"], summary["n_permutations"], summary["seed"]) == (2000, 2000, 7)
    assert 0 < summary["maxstat_critical_r"] < 1
    assert summary["partial_df"] == {"tokens": 227, "length": 227, "category": 223, "all": 221}


def test_ranks_get_their_own_max_statistic_test_and_p_values_their_monte_carlo_error(data, result):
    """The max-statistic test on Spearman rho is the Pearson kernel on ranks with the same permutations."""
    tests = result.tests
    flat = data["values"].reshape(-1, data["values"].shape[-1])
    ranked = multiplicity.max_stat_permutation(sps.rankdata(flat, axis=-1), sps.rankdata(data["preference"]),
                                               2000, 7)
    assert_allclose(tests["p_maxstat_spearman"], ranked.p_maxstat.ravel(), rtol=0, atol=0)
    # rho from the ranks' Pearson r is what the table reports, so the two tests test the same statistic
    assert_allclose(ranked.r.ravel(), tests["spearman_rho"], rtol=0, atol=1e-12)
    assert_allclose(tests["spearman_p_bh"], multiplicity.benjamini_hochberg(tests["spearman_p_value"].to_numpy()))
    for name in ("p_perm", "p_maxstat", "p_maxstat_spearman"):
        p = tests[name].to_numpy()
        assert_allclose(tests[f"{name}_se"], np.sqrt(p * (1 - p) / 2000), rtol=1e-12)
    for name, flag in (("p_maxstat", "maxstat_uncertain"), ("p_maxstat_spearman", "maxstat_spearman_uncertain")):
        want = [abs(p - 0.05) <= 2 * se for p, se in zip(tests[name], tests[f"{name}_se"])]
        assert tests[flag].tolist() == want


def test_bca_columns_present_but_empty_when_off(data):
    res = inference.extended_analysis(
        data["values"][:2], data["preference"], LAYERS[:2], METRICS, n_tokens_a=data["n_tokens_a"],
        n_tokens_b=data["n_tokens_b"], len_a=data["len_a"], len_b=data["len_b"], categories=data["categories"],
        n_bootstrap=200, n_permutations=200)
    assert res.tests["bca_lower"].isna().all() and res.tests["bca_upper"].isna().all()


def test_to_json_is_strict_json(result):
    out = result.to_json()
    text = json.dumps(out, allow_nan=False)
    back = json.loads(text)
    assert set(back) == {"summary", "tests", "per_category"}
    assert len(back["tests"]) == 45
    first = back["tests"][0]
    assert isinstance(first["r"], float) and isinstance(first["survives_holm"], bool)
    assert isinstance(first["layer"], int)


def test_to_json_writes_nan_as_none(data):
    values = data["values"][:2].copy()
    values[1, 2] = 0.5  # constant metric: an undefined test
    res = inference.extended_analysis(
        values, data["preference"], LAYERS[:2], METRICS, n_tokens_a=data["n_tokens_a"],
        n_tokens_b=data["n_tokens_b"], len_a=data["len_a"], len_b=data["len_b"], categories=data["categories"],
        n_bootstrap=200, n_permutations=200)
    row = res.tests.iloc[7]
    assert row["note"] == "metric is constant" and np.isnan(row["r"])
    assert res.summary["n_tests_defined"] == 9
    rec = res.to_json()["tests"][7]
    assert rec["r"] is None and rec["p_holm"] is None and rec["excludes_zero"] is False
    json.dumps(res.to_json(), allow_nan=False)


def test_same_seed_gives_identical_numbers(data):
    kwargs = dict(n_tokens_a=data["n_tokens_a"], n_tokens_b=data["n_tokens_b"], len_a=data["len_a"],
                  len_b=data["len_b"], categories=data["categories"], n_bootstrap=300, n_permutations=300,
                  bca=True)
    a = inference.extended_analysis(data["values"], data["preference"], LAYERS, METRICS, seed=3, **kwargs)
    b = inference.extended_analysis(data["values"], data["preference"], LAYERS, METRICS, seed=3, **kwargs)
    c = inference.extended_analysis(data["values"], data["preference"], LAYERS, METRICS, seed=4, **kwargs)
    pd.testing.assert_frame_equal(a.tests, b.tests, check_exact=True)
    pd.testing.assert_frame_equal(a.per_category, b.per_category, check_exact=True)
    assert a.summary == b.summary
    assert_array_equal(a.maxstat_null, b.maxstat_null)
    assert not np.allclose(a.tests["ci_lower"], c.tests["ci_lower"])
    assert not np.allclose(a.tests["p_perm"], c.tests["p_perm"])


def test_intervals_are_stable_from_10k_to_100k_resamples(data):
    x, y = data["values"][4, 0], data["preference"]
    cov = confounds.confound_covariates(data["n_tokens_a"], data["n_tokens_b"], data["len_a"], data["len_b"],
                                        data["categories"])["all"]
    small = stats.bootstrap_indices(N, 10_000, seed=42)
    large = bootstrap.Resamples(N, 100_000, seed=43)  # the rows of bootstrap_indices, drawn chunk by chunk
    # each distribution drawn once; BCa below reads the Pearson ones again
    dists = {boot: (boot(x, y, small), boot(x, y, large))
             for boot in (bootstrap.bootstrap_pearson, bootstrap.bootstrap_spearman)}
    for dist in dists.values():
        a, b = (np.array(bootstrap.percentile_interval(d)) for d in dist)
        assert np.abs(a - b).max() < 0.01
    a = np.array(bootstrap.percentile_interval(confounds.bootstrap_partial(x, y, cov, small)))
    b = np.array(bootstrap.percentile_interval(confounds.bootstrap_partial(x, y, cov, large)))
    assert np.abs(a - b).max() < 0.01
    r, jack = sps.pearsonr(x, y)[0], bootstrap.jackknife_pearson(x, y)
    a, b = (np.array(bootstrap.bca_interval(r, d, jack)) for d in dists[bootstrap.bootstrap_pearson])
    assert np.abs(a - b).max() < 0.01


def test_plot_confounds(result):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plots.plot_confounds(result.tests)
    try:
        visible = [ax for ax in fig.axes if ax.axison]
        assert len(visible) == 5
        assert [ax.get_title() for ax in visible] == METRICS
        assert len(visible[0].lines) >= 3  # two series and the zero line
    finally:
        plt.close(fig)
    with pytest.raises(ValueError):
        plots.plot_confounds(result.tests.drop(columns=["partial_all_r"]))


# ----------------------------------------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------------------------------------

def test_invalid_inputs_raise_value_error(data):
    kwargs = dict(n_tokens_a=data["n_tokens_a"], n_tokens_b=data["n_tokens_b"], len_a=data["len_a"],
                  len_b=data["len_b"], categories=data["categories"], n_bootstrap=50, n_permutations=50)
    v, y = data["values"], data["preference"]
    with pytest.raises(ValueError, match="layers"):
        inference.extended_analysis(v, y, LAYERS[:-1], METRICS, **kwargs)
    with pytest.raises(ValueError, match="preference"):
        inference.extended_analysis(v, y[:-1], LAYERS, METRICS, **kwargs)
    with pytest.raises(ValueError, match="seed"):
        inference.extended_analysis(v, y, LAYERS, METRICS, seed=None, **kwargs)
    with pytest.raises(ValueError, match="ci_level"):
        inference.extended_analysis(v, y, LAYERS, METRICS, ci_level=95, **kwargs)
    with pytest.raises(ValueError, match="categories"):
        inference.extended_analysis(v, y, LAYERS, METRICS, **{**kwargs, "categories": data["categories"][:-1]})
    with pytest.raises(ValueError, match="non-finite"):
        inference.extended_analysis(v, np.where(np.arange(N) == 3, np.nan, y), LAYERS, METRICS, **kwargs)
    with pytest.raises(ValueError, match="indices"):
        bootstrap.bootstrap_pearson(v[0, 0], y, np.zeros((5, N - 1), dtype=int))
    with pytest.raises(ValueError, match="covariates"):
        confounds.partial_correlation(v[0, 0], y, np.ones((N - 1, 2)))
