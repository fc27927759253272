"""Sign agreement with a reference beside its permutation null (``ua_helpers.report.agreement``)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from ua_helpers.analysis import metrics, multiplicity, stats

from ua_helpers.report import agreement
from ua_helpers.report import results

LAYERS = [0, 4, 8, 12, 16, 20, 24, 28, 30]  # a 30-block model, matched to Pythia's 32 by relative depth
N = 60


def _data(seed=0, shared=1.0):
    """Metric values that move together (one shared component), with a weak link to the preference."""
    rng = np.random.default_rng(seed)
    pref = rng.normal(size=N)
    common = rng.normal(size=N)
    values = shared * common + 0.4 * rng.normal(size=(len(LAYERS), len(metrics.METRIC_NAMES), N)) + 0.1 * pref
    return values, pref


@pytest.fixture(scope="module")
def reference():
    return results.load_results("published")


def _block(values, pref, reference, n_permutations=400, seed=3):
    return agreement.sign_agreement_null(values, pref, LAYERS, metrics.METRIC_NAMES, num_layers=30,
                                         reference=reference, reference_source="published",
                                         n_permutations=n_permutations, seed=seed)


def test_observed_count_is_the_comparison_pages(reference):
    values, pref = _data()
    block = _block(values, pref, reference)
    table = stats.correlation_table(values, pref, LAYERS, metrics.METRIC_NAMES, n_bootstrap=200)
    ours = results.build_results(table, model="m", n_pairs=N, n_bootstrap=200, num_layers=30)
    comparison = results.compare_results(ours, reference)
    assert block["n_tests"] == len(comparison) == 45
    assert block["observed"] == int(comparison["same_sign"].sum())
    assert agreement.applies_to(block, comparison)
    assert block["reference"] == {"model": "EleutherAI/pythia-6.9b", "n_pairs": 230, "source": "published"}


def test_null_equals_a_loop_over_the_same_permutations(reference):
    """Each permutation of the preference (the max-statistic test's rows), all r by scipy, signs counted."""
    values, pref = _data(seed=1)
    block = _block(values, pref, reference, n_permutations=150, seed=9)
    ref_sign = {(t["layer"], t["metric"]): t["ref_sign"] for t in block["tests"]}
    perms = multiplicity.permutation_indices(N, 150, seed=9)
    counts = np.zeros(46, dtype=int)
    for perm in perms:
        agree = 0
        for i, layer in enumerate(LAYERS):
            for j, metric in enumerate(metrics.METRIC_NAMES):
                r = sps.pearsonr(values[i, j], pref[perm])[0]
                agree += int(np.sign(r) == ref_sign[(layer, metric)])
        counts[agree] += 1
    assert block["null_counts"] == counts.tolist()
    null = np.repeat(np.arange(46), counts)
    obs = block["observed"]
    assert block["p_at_most"] == pytest.approx((1 + (null <= obs).sum()) / 151, abs=1e-15)
    assert block["p_at_least"] == pytest.approx((1 + (null >= obs).sum()) / 151, abs=1e-15)
    assert block["null_mean"] == pytest.approx(null.mean(), abs=1e-12)


def test_dependent_tests_spread_the_null_beyond_the_binomial(reference):
    """Near-identical tests agree or disagree together: against a reference of one sign throughout, the null is
    far wider than 45 independent coin flips (with mixed reference signs it can also be narrower)."""
    values, pref = _data(seed=2, shared=5.0)
    positive = {**reference, "results": {layer: {m: {**t, "r": abs(t["r"])} for m, t in tests.items()}
                                         for layer, tests in reference["results"].items()}}
    block = _block(values, pref, positive, n_permutations=1000)
    binomial_width = block["binomial_ci_upper"] - block["binomial_ci_lower"]
    assert (block["binomial_ci_lower"], block["binomial_ci_upper"]) == tuple(sps.binom.ppf([0.025, 0.975], 45, 0.5))
    assert block["null_ci_upper"] - block["null_ci_lower"] > 1.5 * binomial_width
    assert block["null_sd"] > 1.5 * np.sqrt(45) / 2  # the binomial's sd


def test_a_constant_metric_never_agrees_and_another_reference_does_not_apply(reference):
    values, pref = _data(seed=4)
    values[0, 0] = 1.0  # layer 0, first metric: no r
    block = _block(values, pref, reference, n_permutations=200)
    row = next(t for t in block["tests"] if t["layer"] == 0 and t["metric"] == metrics.METRIC_NAMES[0])
    assert row["r"] is None
    assert max(i for i, c in enumerate(block["null_counts"]) if c) <= 44
    flipped = {**reference, "results": {layer: {m: {**t, "r": -t["r"]} for m, t in tests.items()}
                                        for layer, tests in reference["results"].items()}}
    ours = {"num_layers": 30, "results": {str(t["layer"]): {} for t in block["tests"]}}
    for t in block["tests"]:
        ours["results"][str(t["layer"])][t["metric"]] = {"r": t["r"], "ci_lower": None, "ci_upper": None,
                                                         "p_value": None, "includes_zero": True}
    assert agreement.applies_to(block, results.compare_results(ours, reference))
    assert not agreement.applies_to(block, results.compare_results(ours, flipped))
    assert not agreement.applies_to(None, results.compare_results(ours, reference))


def test_read_sign_agreement_states_the_count_and_both_intervals(reference):
    values, pref = _data(seed=5)
    block = _block(values, pref, reference)
    text = agreement.read_sign_agreement(block)
    assert f"in {block['observed']} of 45 matched tests" in text
    assert f"interval of {block['null_ci_lower']} to {block['null_ci_upper']}" in text
    assert f"{block['binomial_ci_lower']} to {block['binomial_ci_upper']} around 22.5" in text
