"""Tests of ua_helpers.inference: each statistic against an independent reference (a plain loop, SciPy,
statsmodels, a textbook formula), plus reproducibility, Monte Carlo stability and family-wise error control.

Data have the realistic shape 9 layers x 5 metrics x 230 pairs, with metrics that random-walk across layers
(neighbouring layers are strongly correlated, so the multiplicity story is real).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats as sps

from ua_helpers import inference as inf
from ua_helpers import stats

LAYERS = [0, 4, 8, 12, 16, 20, 24, 28, 32]
METRICS = ["centroid_asymmetry", "cross_centroid", "within_pair_sim", "knn_density_asymmetry",
           "margin_asymmetry"]
CATEGORY_SIZES = {"ground_truth_numeric": 30, "ground_truth_nonnumeric": 20, "tech_philosophy": 50,
                  "lifestyle": 50, "business": 50, "scientific_facts": 30}
N = 230


def make_data(seed: int = 0, n_layers: int = 9, n_metrics: int = 5, n: int = N, effect: float = 0.25):
    """Metric values that random-walk across layers, a preference tied to one metric, and confounders."""
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.normal(scale=0.35, size=(n_layers, n_metrics, n)), axis=0)
    values += rng.normal(size=(1, n_metrics, n))
    cats = np.repeat(list(CATEGORY_SIZES), list(CATEGORY_SIZES.values()))[:n].tolist()
    cat_effect = {c: rng.normal(scale=0.5) for c in CATEGORY_SIZES}
    tok_a = rng.integers(6, 25, n)
    tok_b = tok_a + rng.integers(-4, 5, n)
    len_a = 5 * tok_a + rng.integers(0, 8, n)
    len_b = 5 * tok_b + rng.integers(0, 8, n)
    preference = (effect * values[n_layers // 2, 0] + 0.08 * (tok_b - tok_a)
                  + np.array([cat_effect[c] for c in cats]) + rng.normal(size=n))
    return dict(values=values, preference=preference, categories=cats, n_tokens_a=tok_a, n_tokens_b=tok_b,
                len_a=len_a, len_b=len_b)


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def result(data):
    return inf.extended_analysis(
        data["values"], data["preference"], LAYERS, METRICS, n_tokens_a=data["n_tokens_a"],
        n_tokens_b=data["n_tokens_b"], len_a=data["len_a"], len_b=data["len_b"], categories=data["categories"],
        n_bootstrap=2000, n_permutations=2000, seed=7, bca=True)


def flat_tests(values):
    return values.reshape(-1, values.shape[-1])


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
    assert_allclose(inf.holm(pvalues), holm_loop(pvalues), rtol=0, atol=1e-15)


def test_benjamini_hochberg_matches_plain_loop(pvalues):
    assert_allclose(inf.benjamini_hochberg(pvalues), bh_loop(pvalues), rtol=0, atol=1e-15)


def test_multiplicity_matches_statsmodels(pvalues):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    live = ~np.isnan(pvalues)
    for ours, method in ((inf.holm, "holm"), (inf.benjamini_hochberg, "fdr_bh")):
        ref = multitest.multipletests(pvalues[live], method=method)[1]
        assert_allclose(ours(pvalues)[live], ref, rtol=1e-13, atol=0)


def test_multiplicity_nan_stays_nan_and_is_not_counted(pvalues):
    live = ~np.isnan(pvalues)
    for fn in (inf.holm, inf.benjamini_hochberg):
        adj = fn(pvalues)
        assert np.array_equal(np.isnan(adj), ~live)
        assert_array_equal(adj[live], fn(pvalues[live]))  # family size m counts only the live tests
        assert np.all(adj[live] >= pvalues[live]) and np.all(adj[live] <= 1)
    # shape is kept
    assert inf.holm(pvalues.reshape(9, 5)).shape == (9, 5)


def test_multiplicity_rejects_invalid_p():
    for bad in ([0.1, 1.2], [-0.1, 0.5], [np.inf, 0.2]):
        with pytest.raises(ValueError):
            inf.holm(bad)
        with pytest.raises(ValueError):
            inf.benjamini_hochberg(bad)


# ----------------------------------------------------------------------------------------------------------------
# Permutations
# ----------------------------------------------------------------------------------------------------------------

def test_permutation_indices_are_seeded_permutations():
    perms = inf.permutation_indices(30, 200, seed=5)
    assert perms.shape == (200, 30)
    assert_array_equal(np.sort(perms, axis=1), np.broadcast_to(np.arange(30), (200, 30)))
    assert_array_equal(perms, inf.permutation_indices(30, 200, seed=5))
    assert not np.array_equal(perms, inf.permutation_indices(30, 200, seed=6))
    with pytest.raises(ValueError):
        inf.permutation_indices(30, 200, seed=None)
    with pytest.raises(ValueError):
        inf.permutation_indices(30, 0, seed=1)


def test_permutation_pvalues_match_plain_loop(data):
    x, y = flat_tests(data["values"]), data["preference"]
    n_perm, seed = 400, 11
    perms = inf.permutation_indices(N, n_perm, seed)
    ours = inf.permutation_pvalues(data["values"], y, n_perm, seed)
    assert ours.shape == (9, 5)
    for t in (0, 7, 20, 22, 44):
        r_obs = sps.pearsonr(x[t], y)[0]
        count = 0
        for perm in perms:
            if abs(sps.pearsonr(x[t], y[perm])[0]) >= abs(r_obs) * (1 - 1e-13):
                count += 1
        assert ours.ravel()[t] == (1 + count) / (1 + n_perm)


def test_max_stat_matches_plain_loop(data):
    values, y = data["values"][:3], data["preference"]  # a 3 x 5 family keeps the loop quick
    n_perm, seed = 300, 13
    perms = inf.permutation_indices(N, n_perm, seed)
    res = inf.max_stat_permutation(values, y, n_perm, seed)
    x = flat_tests(values)
    r_obs = np.array([sps.pearsonr(row, y)[0] for row in x])
    null_max = []
    for perm in perms:
        null_max.append(max(abs(sps.pearsonr(row, y[perm])[0]) for row in x))
    null_max = np.array(null_max)
    assert_allclose(res.null_max, null_max, rtol=0, atol=1e-12)
    expected = [(1 + sum(m >= abs(r) * (1 - 1e-13) for m in null_max)) / (1 + n_perm) for r in r_obs]
    assert_allclose(res.p_maxstat.ravel(), expected, rtol=0, atol=0)
    assert_allclose(res.r.ravel(), r_obs, atol=1e-12)
    assert res.critical_value == pytest.approx(np.quantile(null_max, 0.95), abs=1e-12)


def test_max_stat_is_at_least_per_test_p_and_matches_critical_value(data):
    res = inf.max_stat_permutation(data["values"], data["preference"], 1000, seed=2)
    assert np.all(res.p_maxstat >= res.p_perm)
    assert np.all(res.p_perm >= 1 / 1001)
    strong = np.abs(res.r) > res.critical_value
    assert strong.any()  # the planted effect
    assert np.all(res.p_maxstat[strong] <= 0.05 + 1 / 1001)
    assert np.all(res.p_maxstat[np.abs(res.r) < res.critical_value] >= 0.05)


def test_max_stat_leaves_out_degenerate_tests(data):
    values = data["values"].copy()
    values[2, 3] = 1.0  # constant metric
    res = inf.max_stat_permutation(values, data["preference"], 300, seed=3)
    assert np.isnan(res.p_maxstat[2, 3]) and np.isnan(res.p_perm[2, 3]) and np.isnan(res.r[2, 3])
    assert np.isfinite(np.delete(res.p_maxstat.ravel(), 2 * 5 + 3)).all()
    ref = inf.max_stat_permutation(data["values"], data["preference"], 300, seed=3)
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
        res = inf.max_stat_permutation(values, y, 199, seed=f)
        any_maxstat += bool(np.any(res.p_maxstat < 0.05))
        any_raw += bool(np.any(res.p_perm < 0.05))
    assert any_maxstat / n_families <= 0.10
    assert any_raw / n_families > any_maxstat / n_families  # without correction the family errs more often


# ----------------------------------------------------------------------------------------------------------------
# Bootstrap: Pearson, Spearman, BCa
# ----------------------------------------------------------------------------------------------------------------

def test_bootstrap_pearson_matches_stats_and_correlation_table(data, result):
    x, y = flat_tests(data["values"]), data["preference"]
    idx = stats.bootstrap_indices(N, 500, seed=1)
    assert_allclose(inf.bootstrap_pearson(x, y, idx, chunk_size=128), stats.bootstrap_rs(x, y, idx),
                    rtol=0, atol=1e-12)
    table = stats.correlation_table(data["values"], y, LAYERS, METRICS, n_bootstrap=2000, seed=7)
    for col in ("r", "ci_lower", "ci_upper", "p_value"):
        assert_allclose(result.tests[col], table[col], rtol=1e-10, atol=1e-12)
    assert_array_equal(result.tests["excludes_zero"], ~table["includes_zero"])


def test_spearman_rho_matches_scipy(data, result):
    x, y = flat_tests(data["values"]), data["preference"]
    ref = [sps.spearmanr(row, y) for row in x]
    assert_allclose(result.tests["spearman_rho"], [r.statistic for r in ref], rtol=0, atol=1e-12)
    assert_allclose(result.tests["spearman_p_value"], [r.pvalue for r in ref], rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("ties", [False, True])
def test_bootstrap_spearman_matches_rankdata_loop(data, ties):
    x, y = flat_tests(data["values"])[:6].copy(), data["preference"].copy()
    if ties:  # ties in the original data, on top of those that resampling creates
        x[1] = np.round(x[1], 1)
        x[4] = np.round(x[4] * 2)
        y = np.round(y, 1)
    idx = stats.bootstrap_indices(N, 150, seed=4)
    ours = inf.bootstrap_spearman(x, y, idx, chunk_size=40)
    ref = np.empty_like(ours)
    for b, i in enumerate(idx):
        ry = sps.rankdata(y[i])
        for t in range(len(x)):
            ref[t, b] = np.corrcoef(sps.rankdata(x[t, i]), ry)[0, 1]
    assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert_allclose(ours[:, :5], [[sps.spearmanr(x[t, i], y[i]).statistic for i in idx[:5]]
                                  for t in range(len(x))], atol=1e-12)


def test_jackknife_pearson_matches_loop(data):
    x, y = flat_tests(data["values"])[:3], data["preference"]
    jack = inf.jackknife_pearson(x, y)
    keep = ~np.eye(N, dtype=bool)
    ref = np.array([[sps.pearsonr(row[keep[i]], y[keep[i]])[0] for i in range(N)] for row in x])
    assert_allclose(jack, ref, rtol=0, atol=1e-12)


def _pearson_axis(x, y, axis=-1):
    xc = x - x.mean(axis=axis, keepdims=True)
    yc = y - y.mean(axis=axis, keepdims=True)
    return (xc * yc).sum(axis=axis) / np.sqrt((xc**2).sum(axis=axis) * (yc**2).sum(axis=axis))


def test_bca_matches_scipy_given_its_bootstrap_distribution(data):
    x, y = data["values"][4, 0], data["preference"]
    res = sps.bootstrap((x, y), _pearson_axis, paired=True, vectorized=True, n_resamples=3000,
                        method="BCa", rng=np.random.default_rng(99))
    lo, hi = inf.bca_interval(sps.pearsonr(x, y)[0], res.bootstrap_distribution, inf.jackknife_pearson(x, y))
    assert lo[0] == pytest.approx(res.confidence_interval.low, abs=1e-10)
    assert hi[0] == pytest.approx(res.confidence_interval.high, abs=1e-10)
    lo90, hi90 = inf.bca_interval(sps.pearsonr(x, y)[0], res.bootstrap_distribution,
                                  inf.jackknife_pearson(x, y), ci_level=0.9)
    res90 = sps.bootstrap((x, y), _pearson_axis, paired=True, vectorized=True, n_resamples=0, method="BCa",
                          bootstrap_result=res, confidence_level=0.9)
    assert (lo90[0], hi90[0]) == pytest.approx(tuple(res90.confidence_interval), abs=1e-10)


def test_bca_reproduces_scipy_on_the_same_resamples(data, result):
    """scipy draws ``rng.integers(0, n, (n_resamples, n))`` in one batch: exactly stats.bootstrap_indices."""
    y = data["preference"]
    for t in (0, 22):
        x = flat_tests(data["values"])[t]
        res = sps.bootstrap((x, y), _pearson_axis, paired=True, vectorized=True, n_resamples=2000,
                            method="BCa", rng=np.random.default_rng(7))
        ours = inf.bootstrap_pearson(x, y, stats.bootstrap_indices(N, 2000, seed=7))[0]
        assert_allclose(ours, res.bootstrap_distribution, rtol=0, atol=1e-12)
        row = result.tests.iloc[t]
        assert row["bca_lower"] == pytest.approx(res.confidence_interval.low, abs=1e-10)
        assert row["bca_upper"] == pytest.approx(res.confidence_interval.high, abs=1e-10)


def test_percentile_interval_matches_numpy():
    rng = np.random.default_rng(0)
    boot = rng.normal(size=(4, 999))
    boot[1, ::7] = np.nan
    lo, hi = inf.percentile_interval(boot, 0.9)
    assert_allclose(lo, np.nanpercentile(boot, 5, axis=1), rtol=0, atol=1e-14)
    assert_allclose(hi, np.nanpercentile(boot, 95, axis=1), rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------------------------------------------
# Confounds
# ----------------------------------------------------------------------------------------------------------------

def residualize_then_pearson(x, y, covariates):
    design = np.column_stack([np.ones(len(x)), covariates])
    ex = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    ey = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return sps.pearsonr(ex, ey)[0]


def test_partial_correlation_matches_residualize_then_pearsonr(data):
    x, y = data["values"][4, 0], data["preference"]
    cov = inf.confound_covariates(data["n_tokens_a"], data["n_tokens_b"], data["len_a"], data["len_b"],
                                  data["categories"])
    for name, c in cov.items():
        res = inf.partial_correlation(x, y, c)
        ref = residualize_then_pearson(x, y, c)
        assert res.r == pytest.approx(ref, abs=1e-12)
        k = c.shape[1]
        assert res.df == N - 2 - k
        t = ref * math.sqrt(res.df / (1 - ref**2))
        assert res.p_value == pytest.approx(2 * sps.t.sf(abs(t), res.df), rel=1e-9)


def test_partial_correlation_one_covariate_formula(data):
    x, y = data["values"][4, 0], data["preference"]
    z = (data["n_tokens_b"] - data["n_tokens_a"]).astype(float)
    rxy, rxz, ryz = sps.pearsonr(x, y)[0], sps.pearsonr(x, z)[0], sps.pearsonr(y, z)[0]
    expected = (rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2))
    assert inf.partial_correlation(x, y, z).r == pytest.approx(expected, abs=1e-12)


def test_category_fixed_effects_equal_within_category_demeaning(data):
    x, y = data["values"][2, 1], data["preference"]
    frame = pd.DataFrame({"x": x, "y": y, "c": data["categories"]})
    xd = frame["x"] - frame.groupby("c")["x"].transform("mean")
    yd = frame["y"] - frame.groupby("c")["y"].transform("mean")
    res = inf.partial_correlation(x, y, inf.category_dummies(data["categories"]))
    assert res.r == pytest.approx(sps.pearsonr(xd, yd)[0], abs=1e-12)
    assert res.df == N - 2 - (len(CATEGORY_SIZES) - 1)


def test_category_dummies_drop_first_seen():
    d = inf.category_dummies(["b", "a", "b", "c"])
    assert_array_equal(d, [[0, 0], [1, 0], [0, 0], [0, 1]])


def test_bootstrap_partial_matches_per_resample_loop(data):
    x, y = flat_tests(data["values"])[[0, 20, 44]], data["preference"]
    cov = inf.confound_covariates(data["n_tokens_a"], data["n_tokens_b"], data["len_a"], data["len_b"],
                                  data["categories"])["all"]
    idx = stats.bootstrap_indices(N, 60, seed=8)
    ours = inf.bootstrap_partial(x, y, cov, idx, chunk_size=25)
    ref = np.array([[residualize_then_pearson(row[i], y[i], cov[i]) for i in idx] for row in x])
    assert_allclose(ours, ref, rtol=0, atol=1e-10)


def test_bootstrap_partial_handles_a_resample_that_misses_a_category():
    rng = np.random.default_rng(5)
    n = 40
    cats = ["a"] * 3 + ["b"] * 17 + ["c"] * 20
    x, y, z = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    cov = np.column_stack([z, inf.category_dummies(cats)])
    idx = np.vstack([rng.integers(3, n, size=n),  # no "a" (the reference category)
                     rng.integers(0, 20, size=n),  # no "c"
                     rng.integers(0, n, size=n)])
    ours = inf.bootstrap_partial(x, y, cov, idx)[0]
    ref = [residualize_then_pearson(x[i], y[i], cov[i]) for i in idx]
    assert_allclose(ours, ref, rtol=0, atol=1e-10)


def test_confound_columns(result, data):
    tests = result.tests
    for name in inf.COVARIATE_SETS:
        assert_allclose(tests[f"partial_{name}_retained"], tests[f"partial_{name}_r"] / tests["r"])
        assert (tests[f"partial_{name}_ci_lower"] <= tests[f"partial_{name}_r"]).all()
        assert (tests[f"partial_{name}_r"] <= tests[f"partial_{name}_ci_upper"]).all()
    x, y = data["values"][4, 0], data["preference"]
    cov = inf.confound_covariates(data["n_tokens_a"], data["n_tokens_b"], data["len_a"], data["len_b"],
                                  data["categories"])
    row = tests[(tests["layer"] == 16) & (tests["metric"] == METRICS[0])].iloc[0]
    for name in inf.COVARIATE_SETS:
        res = inf.partial_correlation(x, y, cov[name])
        assert row[f"partial_{name}_r"] == pytest.approx(res.r, abs=1e-12)
        assert row[f"partial_{name}_p_value"] == pytest.approx(res.p_value, rel=1e-9)
    assert_array_equal(tests["survives_confounds"],
                       (tests["partial_all_ci_lower"] > 0) | (tests["partial_all_ci_upper"] < 0))


def test_per_category_rows_equal_bootstrap_correlation_on_the_subset(data, result):
    pc = result.per_category
    assert len(pc) == 9 * 5 * len(CATEGORY_SIZES)
    assert list(pc.columns) == ["layer", "metric", "category", "n", "r", "ci_lower", "ci_upper", "p_value",
                                "excludes_zero", "note"]
    assert list(pc["category"][:6]) == list(CATEGORY_SIZES)
    cats = np.array(data["categories"])
    for layer_i, metric_i, cat in ((0, 0, "business"), (4, 0, "ground_truth_nonnumeric"), (8, 4, "lifestyle")):
        mask = cats == cat
        ref = stats.bootstrap_correlation(data["values"][layer_i, metric_i, mask], data["preference"][mask],
                                          n_bootstrap=2000, seed=7)
        row = pc[(pc["layer"] == LAYERS[layer_i]) & (pc["metric"] == METRICS[metric_i])
                 & (pc["category"] == cat)].iloc[0]
        assert row["n"] == mask.sum()
        assert (row["r"], row["ci_lower"], row["ci_upper"], row["p_value"]) == pytest.approx(
            tuple(ref), rel=1e-9, abs=1e-12)


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
    assert_allclose(tests["p_holm"], inf.holm(tests["p_value"].to_numpy()))
    assert_allclose(tests["p_bh"], inf.benjamini_hochberg(tests["p_value"].to_numpy()))
    assert summary["n_excludes_zero"] == tests["excludes_zero"].sum()
    assert summary["n_survives_holm"] == (tests["p_holm"] < 0.05).sum()
    assert summary["n_survives_bh"] == (tests["p_bh"] < 0.05).sum()
    assert summary["n_survives_maxstat"] == (tests["p_maxstat"] < 0.05).sum()
    assert summary["n_survives_confounds"] == tests["survives_confounds"].sum()
    # Holm is never less strict than BH; the planted effect survives every correction
    assert (tests["p_holm"] >= tests["p_bh"] - 1e-15).all()
    assert summary["n_survives_holm"] <= summary["n_survives_bh"]
    assert summary["n_survives_maxstat"] >= 1 and summary["n_survives_holm"] >= 1
    assert summary["n_survives_maxstat"] >= summary["n_survives_holm"]
    assert (summary["n_bootstrap"], summary["n_permutations"], summary["seed"]) == (2000, 2000, 7)
    assert 0 < summary["maxstat_critical_r"] < 1
    assert summary["partial_df"] == {"tokens": 227, "length": 227, "category": 223, "all": 221}


def test_bca_columns_present_but_empty_when_off(data):
    res = inf.extended_analysis(
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
    res = inf.extended_analysis(
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
    a = inf.extended_analysis(data["values"], data["preference"], LAYERS, METRICS, seed=3, **kwargs)
    b = inf.extended_analysis(data["values"], data["preference"], LAYERS, METRICS, seed=3, **kwargs)
    c = inf.extended_analysis(data["values"], data["preference"], LAYERS, METRICS, seed=4, **kwargs)
    pd.testing.assert_frame_equal(a.tests, b.tests, check_exact=True)
    pd.testing.assert_frame_equal(a.per_category, b.per_category, check_exact=True)
    assert a.summary == b.summary
    assert_array_equal(a.maxstat_null, b.maxstat_null)
    assert not np.allclose(a.tests["ci_lower"], c.tests["ci_lower"])
    assert not np.allclose(a.tests["p_perm"], c.tests["p_perm"])


def test_intervals_are_stable_from_10k_to_100k_resamples(data):
    x, y = data["values"][4, 0], data["preference"]
    cov = inf.confound_covariates(data["n_tokens_a"], data["n_tokens_b"], data["len_a"], data["len_b"],
                                  data["categories"])["all"]
    small = stats.bootstrap_indices(N, 10_000, seed=42)
    large = stats.bootstrap_indices(N, 100_000, seed=43)
    for boot in (inf.bootstrap_pearson, inf.bootstrap_spearman):
        a = np.array(inf.percentile_interval(boot(x, y, small)))
        b = np.array(inf.percentile_interval(boot(x, y, large)))
        assert np.abs(a - b).max() < 0.01
    a = np.array(inf.percentile_interval(inf.bootstrap_partial(x, y, cov, small)))
    b = np.array(inf.percentile_interval(inf.bootstrap_partial(x, y, cov, large)))
    assert np.abs(a - b).max() < 0.01
    r, jack = sps.pearsonr(x, y)[0], inf.jackknife_pearson(x, y)
    a = np.array(inf.bca_interval(r, inf.bootstrap_pearson(x, y, small), jack))
    b = np.array(inf.bca_interval(r, inf.bootstrap_pearson(x, y, large), jack))
    assert np.abs(a - b).max() < 0.01


def test_plot_confounds(result):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = inf.plot_confounds(result.tests)
    try:
        visible = [ax for ax in fig.axes if ax.axison]
        assert len(visible) == 5
        assert [ax.get_title() for ax in visible] == METRICS
        assert len(visible[0].lines) >= 3  # two series and the zero line
    finally:
        plt.close(fig)
    with pytest.raises(ValueError):
        inf.plot_confounds(result.tests.drop(columns=["partial_all_r"]))


# ----------------------------------------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------------------------------------

def test_invalid_inputs_raise_value_error(data):
    kwargs = dict(n_tokens_a=data["n_tokens_a"], n_tokens_b=data["n_tokens_b"], len_a=data["len_a"],
                  len_b=data["len_b"], categories=data["categories"], n_bootstrap=50, n_permutations=50)
    v, y = data["values"], data["preference"]
    with pytest.raises(ValueError, match="layers"):
        inf.extended_analysis(v, y, LAYERS[:-1], METRICS, **kwargs)
    with pytest.raises(ValueError, match="preference"):
        inf.extended_analysis(v, y[:-1], LAYERS, METRICS, **kwargs)
    with pytest.raises(ValueError, match="seed"):
        inf.extended_analysis(v, y, LAYERS, METRICS, seed=None, **kwargs)
    with pytest.raises(ValueError, match="ci_level"):
        inf.extended_analysis(v, y, LAYERS, METRICS, ci_level=95, **kwargs)
    with pytest.raises(ValueError, match="categories"):
        inf.extended_analysis(v, y, LAYERS, METRICS, **{**kwargs, "categories": data["categories"][:-1]})
    with pytest.raises(ValueError, match="non-finite"):
        inf.extended_analysis(v, np.where(np.arange(N) == 3, np.nan, y), LAYERS, METRICS, **kwargs)
    with pytest.raises(ValueError, match="indices"):
        inf.bootstrap_pearson(v[0, 0], y, np.zeros((5, N - 1), dtype=int))
    with pytest.raises(ValueError, match="covariates"):
        inf.partial_correlation(v[0, 0], y, np.ones((N - 1, 2)))
