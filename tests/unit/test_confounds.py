"""Partial correlations, covariate sets and per-category tests against residualize-then-Pearson and loops."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal, assert_array_less
from scipy import stats as sps

from inference_data import (CATEGORY_SIZES, LAYERS, METRICS, N, flat_tests, make_data, p_value_rtol,
                            partial_tolerance, resample_r_tolerance, run_extended)
from ua_helpers.analysis import bootstrap, confounds, multiplicity, stats


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def result(data):
    return run_extended(data)


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
    cov = confounds.confound_covariates(data["n_tokens_a"], data["n_tokens_b"], data["len_a"], data["len_b"],
                                        data["categories"])
    for name, c in cov.items():
        res = confounds.partial_correlation(x, y, c)
        ref = residualize_then_pearson(x, y, c)
        dr = partial_tolerance(x, y, c)
        assert res.r == pytest.approx(ref, abs=dr)
        k = c.shape[1]
        assert res.df == N - 2 - k
        t = ref * math.sqrt(res.df / (1 - ref**2))
        assert res.p_value == pytest.approx(2 * sps.t.sf(abs(t), res.df), rel=p_value_rtol(ref, N, dr, k))


def test_partial_correlation_one_covariate_formula(data):
    x, y = data["values"][4, 0], data["preference"]
    z = (data["n_tokens_b"] - data["n_tokens_a"]).astype(float)
    rxy, rxz, ryz = sps.pearsonr(x, y)[0], sps.pearsonr(x, z)[0], sps.pearsonr(y, z)[0]
    expected = (rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2))
    # the textbook formula from three Pearson r's (each within corr_tolerance) vs least squares
    assert confounds.partial_correlation(x, y, z).r == pytest.approx(expected, abs=partial_tolerance(x, y, z))


def test_category_fixed_effects_equal_within_category_demeaning(data):
    x, y = data["values"][2, 1], data["preference"]
    frame = pd.DataFrame({"x": x, "y": y, "c": data["categories"]})
    xd = frame["x"] - frame.groupby("c")["x"].transform("mean")
    yd = frame["y"] - frame.groupby("c")["y"].transform("mean")
    res = confounds.partial_correlation(x, y, confounds.category_dummies(data["categories"]))
    dummies = confounds.category_dummies(data["categories"])
    assert res.r == pytest.approx(sps.pearsonr(xd, yd)[0], abs=partial_tolerance(x, y, dummies))
    assert res.df == N - 2 - (len(CATEGORY_SIZES) - 1)


def test_category_dummies_drop_first_seen():
    d = confounds.category_dummies(["b", "a", "b", "c"])
    assert_array_equal(d, [[0, 0], [1, 0], [0, 0], [0, 1]])


def test_bootstrap_partial_matches_per_resample_loop(data):
    x, y = flat_tests(data["values"])[[0, 20, 44]], data["preference"]
    cov = confounds.confound_covariates(data["n_tokens_a"], data["n_tokens_b"], data["len_a"], data["len_b"],
                                        data["categories"])["all"]
    idx = stats.bootstrap_indices(N, 60, seed=8)
    ours = confounds.bootstrap_partial(x, y, cov, idx, chunk_size=25)
    ref = np.array([[residualize_then_pearson(row[i], y[i], cov[i]) for i in idx] for row in x])
    tol = max(partial_tolerance(row[i], y[i], cov[i]) for i in idx for row in x)
    assert_allclose(ours, ref, rtol=0, atol=tol)


def test_bootstrap_partial_handles_a_resample_that_misses_a_category():
    rng = np.random.default_rng(5)
    n = 40
    cats = ["a"] * 3 + ["b"] * 17 + ["c"] * 20
    x, y, z = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    cov = np.column_stack([z, confounds.category_dummies(cats)])
    idx = np.vstack([rng.integers(3, n, size=n),  # no "a" (the reference category)
                     rng.integers(0, 20, size=n),  # no "c"
                     rng.integers(0, n, size=n)])
    ours = confounds.bootstrap_partial(x, y, cov, idx)[0]
    ref = [residualize_then_pearson(x[i], y[i], cov[i]) for i in idx]
    assert_allclose(ours, ref, rtol=0, atol=max(partial_tolerance(x[i], y[i], cov[i]) for i in idx))



def per_set_bootstrap_partial(x, y, covariates, idx):
    """The partial-r bootstrap as it was before the covariate sets shared one design: the set's own design
    (intercept + its covariates z-scored) and six products of the counts per set, on one full count matrix."""
    n_tests, n = x.shape
    z = confounds.covariate_design(covariates, n)  # [n, q]
    q = z.shape[1]
    xz = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    yz = (y - y.mean()) / y.std()
    w = bootstrap.resample_counts(idx, n).astype(np.float64) / n  # [B, n]
    b = w.shape[0]
    g = np.linalg.pinv((w @ (z[:, :, None] * z[:, None, :]).reshape(n, q * q)).reshape(b, q, q), 1e-12,
                       hermitian=True)
    mzx = (w @ (z[:, :, None] * xz.T[:, None, :]).reshape(n, q * n_tests)).reshape(b, q, n_tests)
    mzy = w @ (z * yz[:, None])
    gzx, gzy = g @ mzx, np.einsum("bij,bj->bi", g, mzy)
    sxy = w @ (xz * yz).T - np.einsum("bqt,bq->bt", mzx, gzy)
    sxx = w @ (xz**2).T - np.einsum("bqt,bqt->bt", mzx, gzx)
    syy = w @ yz**2 - np.einsum("bq,bq->b", mzy, gzy)
    return np.clip(sxy / np.sqrt(sxx * syy[:, None]), -1.0, 1.0).T


def partial_tolerances(x, y, covariates, idx):
    """:func:`inference_data.partial_tolerance` of every test (row of x) on every resample, (n_tests, B).

    The same bound, vectorised over the tests: ``8 n eps zmax^2`` (two routes' rounding of sums of n products of
    z-scored values, margin 4) times cond(design)^2 (normal equations) over the residuals' shrinkage
    ``sqrt(1 - R^2_x) sqrt(1 - R^2_y)``, all on the resample's rows.
    """
    eps = np.finfo(np.float64).eps
    out = np.empty((x.shape[0], len(idx)))
    cov = np.asarray(covariates, np.float64).reshape(len(y), -1)
    for j, i in enumerate(idx):
        both = np.vstack([x[:, i], y[i]])  # [T + 1, n]
        zb = (both - both.mean(axis=1, keepdims=True)) / both.std(axis=1, keepdims=True)
        zmax2 = np.maximum(np.max(zb[:-1] ** 2, axis=1), np.max(zb[-1] ** 2))  # [T]
        c = cov[i]
        sd = c.std(axis=0)
        design = np.column_stack([np.ones(len(i)), (c[:, sd > 0] - c[:, sd > 0].mean(axis=0)) / sd[sd > 0]])
        resid = both.T - design @ np.linalg.lstsq(design, both.T, rcond=None)[0]
        shrink = np.sqrt(resid[:, :-1].var(axis=0) / both[:-1].var(axis=1) * resid[:, -1].var() / both[-1].var())
        out[:, j] = 8 * len(i) * eps * zmax2 * np.linalg.cond(design) ** 2 / shrink
    return out


def test_shared_design_gives_each_set_the_numbers_of_its_own_route(data):
    """One product per chunk for all covariate sets against each set's own design and products (the route
    before), and against least squares on the drawn rows (numpy.linalg.lstsq) on a few resamples.

    The routes differ only in rounding: the moments are the same count-weighted sums of n products in another
    order and product shape (and each set's design columns z-scored from a mean and sd summed in another
    order), so the bound is partial_tolerance (n eps zmax^2 per sum, times cond^2 and over the shrinkage)."""
    x, y = flat_tests(data["values"]), data["preference"]  # all 45 tests: the product's real shape
    sets = confounds.confound_covariates(data["n_tokens_a"], data["n_tokens_b"], data["len_a"], data["len_b"],
                                         data["categories"])
    idx = stats.bootstrap_indices(N, 120, seed=3)
    ours = confounds.bootstrap_partial_sets(x, y, sets, idx, chunk_size=50)
    assert list(ours) == list(sets)
    # without the category dummies the basis has one group of rows (the other route through the products)
    ours |= {f"{name} alone": r for name, r in confounds.bootstrap_partial_sets(
        x, y, {name: sets[name] for name in ("tokens", "length")}, idx).items()}
    for name, cov in {**sets, "tokens alone": sets["tokens"], "length alone": sets["length"]}.items():
        tol = partial_tolerances(x, y, cov, idx)
        assert_array_less(np.abs(ours[name] - per_set_bootstrap_partial(x, y, cov, idx)), tol)
        for j in (0, 57, 119):
            ref = [residualize_then_pearson(row[idx[j]], y[idx[j]], cov[idx[j]]) for row in x]
            assert_array_less(np.abs(ours[name][:, j] - ref), tol[:, j])
    # the vectorised bound is the shared helper's
    assert partial_tolerances(x[7:8], y, sets["all"], idx[4:5])[0, 0] == pytest.approx(
        partial_tolerance(x[7, idx[4]], y[idx[4]], sets["all"][idx[4]]), rel=1e-9)


def test_shared_design_reads_each_distinct_column_once_and_spans_every_sets_design():
    rng = np.random.default_rng(2)
    n = 60
    a, b = rng.normal(size=n), rng.integers(0, 3, n).astype(float)
    cats = np.array(["u", "v", "w"])[rng.integers(0, 3, n)]
    d = confounds.category_dummies(cats)  # 0/1, disjoint: two groups of rows and the reference's
    sets = {"a": a, "ab": np.column_stack([a, b]), "d": d, "bda": np.column_stack([b, d, a])}
    groups, cont, picks = confounds._shared_design(sets, n)
    assert [list(g) for g in groups] == [list(np.flatnonzero(cats == c)) for c in dict.fromkeys(cats)]
    # z-scored from a mean and sd summed in another order (a strided view): n terms, each route n eps |z|max
    ref = confounds.covariate_design(np.column_stack([a, b]), n)[:, 1:]
    assert_allclose(cont, ref, rtol=0, atol=2 * n * np.finfo(np.float64).eps * np.abs(ref).max())
    basis = np.column_stack([np.isin(np.arange(n), g) for g in groups] + [cont]).astype(float)  # [n, 5]
    assert {k: t.shape for k, t in picks.items()} == {"a": (5, 2), "ab": (5, 3), "d": (5, 3), "bda": (5, 5)}
    for name, cov in sets.items():  # the same span: each design is the other times a full-rank matrix
        own, ours = confounds.covariate_design(cov, n), basis @ picks[name]
        both = np.linalg.matrix_rank(np.column_stack([own, ours]))
        assert both == np.linalg.matrix_rank(own) == np.linalg.matrix_rank(ours) == own.shape[1]
    overlapping = np.column_stack([d[:, 0], np.maximum(d[:, 0], d[:, 1])])  # 0/1 but a row with two 1s
    groups, cont, _ = confounds._shared_design({"o": overlapping}, n)
    assert len(groups) == 1 and cont.shape == (n, 2)  # then no indicator groups: every column z-scored
    with pytest.raises(ValueError, match="covariates 'c' must have shape"):
        confounds._shared_design({"a": a, "c": d[:-1]}, n)



@pytest.mark.parametrize("kind", ["one indicator", "an empty group", "all in one group"])
def test_indicator_groups_at_their_edges_equal_least_squares(kind):
    rng = np.random.default_rng(4)
    n = 40
    x, y = rng.normal(size=(3, n)), rng.normal(size=n)
    dummies = confounds.category_dummies(list("abcd") * 10)
    cov = {"one indicator": rng.integers(0, 2, n).astype(float)[:, None],  # two groups: its rows and the rest
           "an empty group": np.column_stack([np.zeros(n), dummies]),  # an indicator of no row: a group of none
           "all in one group": np.ones((n, 1))}[kind]  # an indicator of every row, the rows of none empty
    groups, _, _ = confounds._shared_design({kind: cov}, n)
    assert len(groups) == 1 + cov.shape[1] and sum(map(len, groups)) == n
    idx = stats.bootstrap_indices(n, 30, seed=1)
    ours = confounds.bootstrap_partial_sets(x, y, {kind: cov}, idx)[kind]
    ref = np.array([[residualize_then_pearson(row[i], y[i], cov[i]) for i in idx] for row in x])
    assert_array_less(np.abs(ours - ref), partial_tolerances(x, y, cov, idx))

def test_confound_columns(result, data):
    tests = result.tests
    for name in confounds.COVARIATE_SETS:
        assert f"partial_{name}_retained" not in tests.columns  # a ratio that means nothing when r is near 0
        p = tests[f"partial_{name}_p_value"].to_numpy()
        assert_array_equal(tests[f"partial_{name}_p_holm"], multiplicity.holm(p))  # the family: one covariate set
        assert_array_equal(tests[f"partial_{name}_p_bh"], multiplicity.benjamini_hochberg(p))
        # adjusted >= raw, up to the two roundings of p * m / rank (relative 2 eps)
        floor = p * (1 - 2 * np.finfo(np.float64).eps)
        assert (tests[f"partial_{name}_p_holm"] >= floor).all() and (tests[f"partial_{name}_p_bh"] >= floor).all()
        assert (tests[f"partial_{name}_ci_lower"] <= tests[f"partial_{name}_r"]).all()
        assert (tests[f"partial_{name}_r"] <= tests[f"partial_{name}_ci_upper"]).all()
    x, y = data["values"][4, 0], data["preference"]
    cov = confounds.confound_covariates(data["n_tokens_a"], data["n_tokens_b"], data["len_a"], data["len_b"],
                                        data["categories"])
    row = tests[(tests["layer"] == 16) & (tests["metric"] == METRICS[0])].iloc[0]
    for name in confounds.COVARIATE_SETS:
        res = confounds.partial_correlation(x, y, cov[name])
        dr = partial_tolerance(x, y, cov[name])
        assert row[f"partial_{name}_r"] == pytest.approx(res.r, abs=dr)
        assert row[f"partial_{name}_p_value"] == pytest.approx(
            res.p_value, rel=p_value_rtol(res.r, N, dr, cov[name].shape[1]))
    assert_array_equal(tests["survives_confounds"],
                       (tests["partial_all_ci_lower"] > 0) | (tests["partial_all_ci_upper"] < 0))


def test_per_category_rows_equal_bootstrap_correlation_on_the_subset(data, result):
    pc = result.per_category
    assert len(pc) == 9 * 5 * len(CATEGORY_SIZES)
    assert list(pc.columns) == ["layer", "metric", "category", "n", "r", "ci_lower", "ci_upper", "p_value",
                                "p_bh", "excludes_zero", "exploratory", "note"]
    assert pc["exploratory"].all()
    # BH over the whole per-category family, checked against the plain step-up definition
    p = pc["p_value"].to_numpy()
    m = np.isfinite(p).sum()
    order = np.argsort(p)
    ranked = np.minimum(1, np.minimum.accumulate((p[order] * m / np.arange(1, len(p) + 1))[::-1])[::-1])
    expected = np.empty_like(p)
    expected[order] = ranked
    assert_allclose(pc["p_bh"], expected, rtol=0, atol=0)
    assert list(pc["category"][:6]) == list(CATEGORY_SIZES)
    cats = np.array(data["categories"])
    for layer_i, metric_i, cat in ((0, 0, "business"), (4, 0, "ground_truth_nonnumeric"), (8, 4, "lifestyle")):
        mask = cats == cat
        ref = stats.bootstrap_correlation(data["values"][layer_i, metric_i, mask], data["preference"][mask],
                                          n_bootstrap=2000, seed=7)
        row = pc[(pc["layer"] == LAYERS[layer_i]) & (pc["metric"] == METRICS[metric_i])
                 & (pc["category"] == cat)].iloc[0]
        assert row["n"] == mask.sum()
        xc, yc = data["values"][layer_i, metric_i, mask], data["preference"][mask]
        dr = resample_r_tolerance(xc, yc, stats.bootstrap_indices(int(mask.sum()), 2000, seed=7))
        assert (row["r"], row["ci_lower"], row["ci_upper"]) == pytest.approx(tuple(ref)[:3], abs=dr)
        assert row["p_value"] == pytest.approx(ref.p_value, rel=p_value_rtol(ref.r, int(mask.sum()), dr))


