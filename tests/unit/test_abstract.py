"""The landing page's abstract: the direction of an effect in words, the controls, the comparison, the glossary."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from ua_helpers.analysis import evidence, metrics
from ua_helpers.inputs import published
from ua_helpers.book import page_intro


def test_every_metric_has_a_direction_and_it_flips_with_r():
    for metric in metrics.METRIC_NAMES:
        up, down = page_intro.direction(metric, 0.3), page_intro.direction(metric, -0.3)
        assert up != down
        if metric in page_intro.STATEMENT_PROPERTY:
            assert "finds more likely" in up and "finds less likely" in down
        else:
            assert "side A's statement" in up and "side B's statement" in down
    assert "larger new_metric" in page_intro.direction("new_metric", 0.1)
    for bad in (0.0, float("nan"), None):
        with pytest.raises(ValueError, match="no direction"):
            page_intro.direction("margin_asymmetry", bad)


def test_the_words_follow_the_metric_definitions():
    """Asymmetric metrics are property(A) - property(B): swapping the sides negates them; within_pair_sim is
    symmetric. And the property named is the one that makes the metric larger."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 40, 6)) + 1.0
    ab, ba = metrics.compute_pair_metrics(a, b, k=5), metrics.compute_pair_metrics(b, a, k=5)
    assert set(page_intro.STATEMENT_PROPERTY) | set(page_intro.PAIR_PROPERTY) == set(metrics.METRIC_NAMES)
    for m in page_intro.STATEMENT_PROPERTY:
        np.testing.assert_allclose(ba[m], -ab[m], atol=1e-12)  # float64 sums of O(1) terms
    for m in page_intro.PAIR_PROPERTY:
        np.testing.assert_allclose(ba[m], ab[m], atol=1e-12)
    # "closer to the centroid of its own side": A_0 on its side's centroid direction, B_0 away from its own.
    a2, b2 = a.copy(), b.copy()
    a2[0] = a.mean(axis=0) * 1.0
    b2[0] = -b.mean(axis=0)
    assert metrics.compute_pair_metrics(a2, b2, k=5)["centroid_asymmetry"][0] > 0
    # "farther from the midpoint": A_0 far out, B_0 at the midpoint.
    a3, b3 = a.copy(), b.copy()
    a3[0] = 50.0
    b3[0] = (a3.mean(axis=0) + b3.mean(axis=0)) / 2
    assert metrics.compute_pair_metrics(a3, b3, k=5)["margin_asymmetry"][0] > 0


def _results(r_lead: float = -0.35, controls: bool = False) -> dict:
    """A small results dict with an evidence block (two layers x the five metrics)."""
    layers, names = [0, 15], list(metrics.METRIC_NAMES)
    res = {"model": "tiny-model", "n_pairs": 230, "num_layers": 30, "layers": layers, "metrics_tested": names,
           "dataset": {"name": "replication-230"}, "ci_level": 0.95, "results": {}}
    tests = []
    for layer in layers:
        res["results"][str(layer)] = {}
        for i, m in enumerate(names):
            r = r_lead if (layer, m) == (15, "centroid_asymmetry") else 0.02 * (i + 1)
            lo, hi = (r - 0.1, r + 0.1) if abs(r) > 0.2 else (r - 0.15, r + 0.15)
            res["results"][str(layer)][m] = {"r": r, "ci_lower": lo, "ci_upper": hi, "p_value": 0.01,
                                             "includes_zero": lo <= 0 <= hi}
            level = 3 if abs(r) > 0.2 else 0
            tests.append({"layer": layer, "metric": m, "r": r, "ci_lower": lo, "ci_upper": hi, "level": level,
                          "level_name": evidence.level_names()[level]})
    names_ = evidence.level_names()
    res["evidence"] = {"alpha": 0.05, "partial_adjust": "holm", "tests": tests,
                       "levels": [{"level": k, "name": n, "criterion": c,
                                   "count": sum(t["level"] >= k for t in tests),
                                   "count_distinct": sum(t["level"] >= k for t in tests)}
                                  for k, (n, c) in enumerate(zip(names_, evidence.criteria_text()))]}
    if controls:
        res["controls"] = {
            "schema_version": 1, "representation": "hidden-states", "prefix": "none",
            "random_tokens": {"seeds": [0, 1, 2, 3, 4], "tests": [
                {"layer": t["layer"], "metric": t["metric"], "r_mean": -0.3, "r_min": -0.4, "r_max": -0.2,
                 "r": [-0.3] * 5} for t in tests]},
            "shuffled_pairing": {"n_shuffles": 100, "seed": 0, "tests": [
                {"layer": t["layer"], "metric": t["metric"], "r_observed": t["r"], "null_mean": 0.0,
                 "null_median": 0.0, "null_ci_lower": -0.1, "null_ci_upper": 0.1, "p_value": 0.01}
                for t in tests], "statement_level": []},
            "lexical": {"frequency_proxy": "x", "covariates": [], "tests": []}}
    return res


def test_abstract_states_the_direction_and_flips_with_the_sign():
    neg = page_intro.abstract_sentences(_results(-0.35))
    pos = page_intro.abstract_sentences(_results(+0.35))
    assert 4 <= len(neg) <= 6
    lead_neg = next(s for s in neg if s.startswith("Its strongest result"))
    lead_pos = next(s for s in pos if s.startswith("Its strongest result"))
    assert "centroid_asymmetry at layer 15 of 30 (r = \u22120.350," in lead_neg
    assert lead_neg.endswith("closer (by cosine) to the centroid of its own side is the one the model finds "
                             "less likely.")
    assert lead_pos.endswith("the one the model finds more likely.")
    assert "(r = +0.350," in lead_pos


def test_abstract_says_what_survives_the_controls_or_that_there_are_none():
    plain = " ".join(page_intro.abstract_sentences(_results()))
    assert "This run has no controls" in plain
    with_controls = " ".join(page_intro.abstract_sentences(_results(-0.35, controls=True)))
    # The lead (r = -0.35) lies inside the random-token range [-0.4, -0.2] and outside the shuffled interval.
    assert "of the 1 tests whose CI excludes zero, 0 lie outside the range of r that random token vectors give" \
        in with_controls
    assert "1 outside the interval of r with the pairs shuffled" in with_controls
    assert "lies inside the random-token range (\u22120.400 to \u22120.200), so token identity alone" in with_controls
    beyond = copy.deepcopy(_results(-0.35, controls=True))
    for t in beyond["controls"]["random_tokens"]["tests"]:
        t.update(r_min=-0.05, r_max=0.05)
    text = " ".join(page_intro.abstract_sentences(beyond))
    assert "1 lie outside the range" in text and "lies outside the random-token range" in text


def test_abstract_compares_with_the_published_result():
    ref = published.load(published.PAIR_LEVEL)
    text = " ".join(page_intro.abstract_sentences(_results(), ref, reference_published=True))
    assert f"the published Pythia-6.9B result (D'Elia, {published.STUDY['year']}" in text
    assert "margin_asymmetry at layer 0 (token embeddings) of 32 (r = \u22120.677)" in text
    none = " ".join(page_intro.abstract_sentences(_results()))
    assert "not compared with the published Pythia-6.9B result" in none


def test_smallest_excluding_r():
    res = _results(-0.35)
    assert page_intro.smallest_excluding_r(res) == pytest.approx(0.35)
    assert "0.350 (r² = 0.122)" in page_intro.smallest_phrase(res)
    for tests in res["results"].values():
        for t in tests.values():
            t.update(ci_lower=-0.5, ci_upper=0.5)
    assert page_intro.smallest_excluding_r(res) is None
    assert "no test's CI excludes zero" in page_intro.smallest_phrase(res)


def test_citation_matches_citation_cff():
    from pathlib import Path

    import yaml

    cff = yaml.safe_load((Path(__file__).resolve().parents[2] / "CITATION.cff").read_text())
    ref = cff["references"][0]
    assert ref["doi"] == published.STUDY["doi"] and ref["repository-code"] == published.STUDY["repository"]
    assert ref["year"] == published.STUDY["year"] and ref["commit"] == published.SOURCE_COMMIT
    assert published.STUDY["author"].endswith(ref["authors"][0]["family-names"])


def test_key_figure_draws_the_reference_and_the_control_bands():
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from ua_helpers.report import plots, results

    res = _results(-0.35, controls=True)
    table = results.results_table(res)
    ref = results.results_table(published.load(published.PAIR_LEVEL))
    ctl = res["controls"]
    for columns in (2, 1):
        fig = plots.plot_depth_overview(table, 30, reference=ref, reference_num_layers=32,
                                        random_tokens=pd.DataFrame(ctl["random_tokens"]["tests"]),
                                        shuffled=pd.DataFrame(ctl["shuffled_pairing"]["tests"]), columns=columns)
        panels = [ax for ax in fig.axes if ax.get_title()]
        assert [ax.get_title() for ax in panels] == list(dict.fromkeys(table["metric"]))  # the table's order
        for ax in panels:
            labels = ax.get_legend_handles_labels()[1]
            assert {"random-token r range", "shuffled-pairing null interval", "Pythia-6.9B (published)",
                    "this run: r"} <= set(labels)
            assert ax.get_xlabel() == "relative depth" and ax.get_ylabel() == "r"
            line = next(line for line in ax.get_lines() if line.get_label() == "this run: r")
            np.testing.assert_allclose(line.get_xdata(), [0, 0.5])  # layers 0 and 15 of 30
        legend = next(ax for ax in fig.axes if ax.get_legend() is not None)
        assert not legend.axison  # the legend has its own cell, outside the data
    bare = plots.plot_depth_overview(table, 30)
    assert not any("random-token" in lbl for ax in bare.axes for lbl in ax.get_legend_handles_labels()[1])
    with pytest.raises(ValueError, match="columns"):
        plots.plot_depth_overview(table, 30, columns=3)
    with pytest.raises(ValueError, match="reference_num_layers"):
        plots.plot_depth_overview(table, 30, reference=ref)
