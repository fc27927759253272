"""Tests of ua_helpers.analysis.robustness: each diagnostic against a plain loop or a hand-built case."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from inference_data import make_embeddings

from ua_helpers.analysis import metrics, robustness as rb

EPS = np.finfo(np.float64).eps
LAYERS = [0, 4, 8]
NAMES = list(metrics.METRIC_NAMES)



# --------------------------------------------------------------------------------------------------- norms
def test_norm_diagnostics_finds_the_planted_statements():
    a, b = make_embeddings()
    a[1, 7] *= 20.0  # layer 4, pair 7, side A
    b[1, 3] *= 15.0
    b[2, 3] *= 12.0  # the same statement again at layer 8
    d = rb.norm_diagnostics(a, b, LAYERS)
    pooled = np.concatenate([np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)], axis=1)
    assert_allclose(d.per_layer["median"], np.median(pooled, axis=1), rtol=10 * EPS)
    assert d.per_layer["n_massive"].tolist() == [0, 2, 1]
    assert d.massive[["layer", "pair", "side"]].values.tolist() == [[4, 7, "A"], [4, 3, "B"], [8, 3, "B"]]
    assert_allclose(d.massive["ratio"], d.massive["norm"] / np.repeat(d.per_layer["median"].to_numpy(), [0, 2, 1]),
                    rtol=10 * EPS)
    st = d.statements()
    assert st[["pair", "side"]].values.tolist() == [[7, "A"], [3, "B"]]
    assert st["layers"].tolist() == [[4], [4, 8]]
    mask = d.pair_mask(LAYERS)
    assert mask.sum() == 3 and mask[1, 7] and mask[1, 3] and mask[2, 3]


def test_norm_diagnostics_empty_and_errors():
    a, b = make_embeddings()
    d = rb.norm_diagnostics(a, b, LAYERS)
    assert d.massive.empty and d.statements().empty and not d.pair_mask(LAYERS).any()
    with pytest.raises(ValueError, match="layers"):
        rb.norm_diagnostics(a, b, [0, 1])
    with pytest.raises(ValueError, match="threshold"):
        rb.norm_diagnostics(a, b, LAYERS, threshold=0.5)
    with pytest.raises(ValueError, match="n_layers, n_pairs, d_model"):
        rb.norm_diagnostics(a[0], b[0], LAYERS)


# --------------------------------------------------------------------------------------------------- leave-one-out
def _brute_loo(x, y):
    n = len(y)
    return np.array([np.corrcoef(np.delete(x, i), np.delete(y, i))[0, 1] for i in range(n)])


def test_leave_one_out_r_equals_a_loop():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 50)) * np.array([1e-3, 1, 1e3, 1, 1, 1])[:, None] + 100.0
    y = 0.3 * x[1] + rng.normal(size=50)
    loo = rb.leave_one_out_r(x, y)
    ref = np.array([_brute_loo(row, y) for row in x])
    # r is scale-free; centered sums lose ~ (|mean| / sd) relative digits, times n for the accumulation
    tol = 50 * 100.0 / 1e-3 * EPS * 50
    assert_allclose(loo, ref, atol=tol, rtol=0)


def test_pearson_rows_with_mask_equals_subsets():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(4, 30)), rng.normal(size=30)
    mask = rng.random((4, 30)) > 0.3
    r = rb.pearson_rows(x, y, mask)
    ref = [np.corrcoef(x[t][mask[t]], y[mask[t]])[0, 1] for t in range(4)]
    assert_allclose(r, ref, atol=100 * 30 * EPS)
    const = np.vstack([x[:1], np.full((1, 30), 2.5)])
    assert np.isnan(rb.pearson_rows(const, y)[1])


def test_leave_one_out_flags_a_single_pair_that_makes_the_result():
    rng = np.random.default_rng(3)
    n = 60
    x = rng.normal(size=(2, 1, n))
    y = rng.normal(size=n)
    x[0, 0, 17], y[17] = 12.0, 12.0  # one extreme pair makes a null test look strong
    x[1, 0] = y + 0.3 * rng.normal(size=n)  # a strong, clean correlation
    out = rb.leave_one_out(x, y, [0, 1], ["m"])
    ref = _brute_loo(x[0, 0], y)
    assert out.loc[0, "most_influential_pair"] == 17
    assert_allclose(out.loc[0, "loo_delta_r"], ref[17] - np.corrcoef(x[0, 0], y)[0, 1], atol=1e3 * n * EPS)
    assert out.loc[0, "loo_verdict_change"] and out.loc[0, "p_t"] < 0.05
    assert not out.loc[1, "loo_sign_change"] and not out.loc[1, "loo_verdict_change"]
    assert_allclose(out["loo_r_min"][0], ref.min(), atol=1e3 * n * EPS)
    assert_allclose(out["loo_r_max"][0], ref.max(), atol=1e3 * n * EPS)


def test_leave_one_out_sign_change_and_constant_metric():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    x = np.array([[[0.0, 0.0, 0.0, 0.0, 0.0, 1.0], [7.0, 7.0, 7.0, 7.0, 7.0, 7.0]]])
    x[0, 0] = [3.0, 2.0, 1.0, 0.0, -1.0, 30.0]  # r > 0 only because of the last pair
    out = rb.leave_one_out(x, y, [5], ["driven", "constant"])
    assert out.loc[0, "r"] > 0 and out.loc[0, "loo_sign_change"] and out.loc[0, "most_influential_pair"] == 5
    assert np.isnan(out.loc[1, "r"]) and out.loc[1, "most_influential_pair"] == -1
    assert not out.loc[1, "loo_sign_change"] and not out.loc[1, "loo_verdict_change"]


def test_without_pairs_r_equals_subsets():
    rng = np.random.default_rng(4)
    v, y = rng.normal(size=(3, 2, 40)), rng.normal(size=40)
    drop = np.zeros((3, 40), dtype=bool)
    drop[1, [3, 9]] = True
    r = rb.without_pairs_r(v, y, drop)
    for li in range(3):
        for m in range(2):
            keep = ~drop[li]
            assert_allclose(r[li, m], np.corrcoef(v[li, m, keep], y[keep])[0, 1], atol=100 * 40 * EPS)


# --------------------------------------------------------------------------------------------------- disagreement
def test_rank_disagreement_cases():
    #        agree+  verdict  opposite-both  tiny-sign  NaN
    r = [0.3, -0.09, 0.3, 0.01, np.nan]
    lo = [0.1, -0.2, 0.1, -0.1, np.nan]
    hi = [0.5, 0.03, 0.5, 0.12, np.nan]
    rho = [0.25, 0.25, -0.3, -0.02, 0.2]
    slo = [0.05, 0.12, -0.5, -0.15, 0.1]
    shi = [0.4, 0.38, -0.1, 0.1, 0.3]
    d = rb.rank_disagreement(r, lo, hi, rho, slo, shi)
    assert_array_equal(d["disagree"], [False, True, True, False, False])
    assert_array_equal(d["verdict_differs"], [False, True, False, False, False])
    assert_array_equal(d["sign_differs"], [False, True, True, True, False])
    assert d["kind"].tolist() == ["", "verdict", "sign", "", ""]
    with pytest.raises(ValueError, match="one length"):
        rb.rank_disagreement(r, lo, hi, rho, slo, shi[:2])
