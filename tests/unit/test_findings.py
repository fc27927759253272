"""Tests of ua_helpers.report.findings: sentences generated from a results dict (the evidence ladder they read is
tested in test_evidence.py)."""
from __future__ import annotations

import copy
import re

import pytest
from evidence_data import LAYERS, N, NAMES, arrays, evidence_case

from ua_helpers.analysis import evidence, robustness as rb
from ua_helpers.report import findings

#: "significant" must always name its correction.
UNQUALIFIED = re.compile(r"significant(?! after correction| family-wise)")


# --------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def built():
    return evidence_case()


# --------------------------------------------------------------------------------------------------- sentences
def _all_text(results):
    readers = [findings.read_ladder, findings.read_correlation_table, findings.read_figure_layers,
               findings.read_disagreements, findings.read_massive, findings.read_single_pairs,
               findings.read_confounds, findings.read_redundancy, findings.read_scope, findings.read_ranks]
    return findings.summarize(results) + [findings.markdown(results)] + [f(results) for f in readers]


def _with_seed_results(results, tests):
    out = dict(results)
    out["results"] = {str(l): {row.metric: {"r": row.r, "ci_lower": row.ci_lower, "ci_upper": row.ci_upper,
                                            "p_value": row.p_value, "includes_zero": not row.excludes_zero}
                               for row in tests[tests["layer"] == l].itertuples()} for l in LAYERS}
    return out


def _force_levels(results, levels):
    """A copy of results whose tests have the given levels and counts (criteria consistent with them)."""
    res = copy.deepcopy(results)
    ev = res["evidence"]
    for t, lv in zip(ev["tests"], levels):
        t["level"], t["level_name"] = lv, evidence.level_names()[lv]
        t["passes"] = {c: k < lv for k, c in enumerate(evidence.CRITERIA)}
    counts = evidence.level_counts(levels)
    for k, entry in enumerate(ev["levels"]):
        entry["count"] = entry["count_distinct"] = counts[k]
    return res


def test_significant_always_names_its_correction(built):
    res = _with_seed_results(built["results"], built["tests"])
    cases = [res, _force_levels(res, [1] * 20), _force_levels(res, [0] * 20),
             _force_levels(res, [6, 5, 4, 3, 2] * 4)]
    for case in cases:
        for text in _all_text(case):
            assert not UNQUALIFIED.search(text), UNQUALIFIED.search(text).string
    only_uncorrected = "\n".join(_all_text(cases[1]))
    assert "No test is significant after correction" in only_uncorrected
    assert set(re.findall(r"(\d+) are significant", only_uncorrected)) == {"0"}
    assert "Evidence level 1 of 6" in only_uncorrected and "not significant after correction (BH q" in only_uncorrected


def test_ladder_sentence_counts_equal_the_ladder(built):
    for levels in ([6, 5, 4, 3, 2] * 4, [5, 4, 3, 2, 1] * 4, [0] * 20, [3] * 7 + [1] * 13):
        res = _force_levels(built["results"], levels)
        text = findings.read_ladder(res)
        found = [int(m) for m in re.findall(r"(?:, |; |; and )(\d+)(?: \(\d+ distinct\))? (?:have|are|of these)",
                                            text)]
        assert found == [lv["count"] for lv in res["evidence"]["levels"][1:]]
        assert text.startswith(f"Of {len(levels)} (layer, metric) tests")


def test_sentences_follow_the_numbers(built):
    res = _force_levels(built["results"], [0] * 19 + [6])
    top = res["evidence"]["tests"][19]
    top.update(r=-0.4321, ci_lower=-0.55, ci_upper=-0.31, group=None)
    first = findings.strongest(res, 1)[0]
    assert first.startswith(f"Layer {top['layer']}, {top['metric']}: r = -0.432, 95% CI [-0.550, -0.310]")
    assert "Evidence level 6 of 6 (beyond lexical)" in first and "and beyond lexical controls" in first
    top["r"] = -0.2468
    assert "r = -0.247," in findings.strongest(res, 1)[0]
    top["level"], top["level_name"] = 2, "FDR"
    top["passes"]["maxstat"] = False
    assert "Evidence level 2 of 6 (FDR)" in findings.strongest(res, 1)[0]
    assert "but not family-wise" in findings.strongest(res, 1)[0]
    res["n_pairs"], res["model"] = 123, "other-model"
    scope = findings.read_scope(res)
    assert "n_pairs = 123" in scope and "other-model, float32 on cpu" in scope and "toy-set" in scope
    st = res["evidence"]["massive_activations"]["statements"][0]
    st["text"] = "Changed statement text"
    assert '"Changed statement text"' in findings.read_massive(res)


def test_disagreement_and_redundancy_sentences(built):
    res = copy.deepcopy(built["results"])
    ev = res["evidence"]
    ev["disagreements"] = [{"layer": 12, "metric": "margin_asymmetry", "r": -0.09, "ci_lower": -0.2,
                            "ci_upper": 0.1, "spearman_rho": 0.25, "spearman_ci_lower": 0.1, "spearman_ci_upper": 0.38,
                            "kind": "verdict"}]
    text = findings.read_disagreements(res)
    assert text.startswith("Pearson and Spearman disagree on 1 test: margin_asymmetry at layer 12 (r = -0.090; "
                           "rho = +0.250: rho's CI excludes 0, r's does not)")
    ev["disagreements"] = []
    assert "agree in sign and verdict on every test" in findings.read_disagreements(res)
    ev["redundant_groups"] = [{"layer": 4, "metrics": ["centroid_asymmetry", "cross_centroid"],
                               "min_abs_corr": 0.9991, "signs": [1, 1]}]
    text = findings.read_redundancy(res)
    assert "centroid_asymmetry and cross_centroid coincide at 1 of 4 layers, 4 (|corr| >= 0.999" in text


def test_correlation_table_sentence_from_a_table(built):
    table = built["tests"][["layer", "metric", "r", "ci_lower", "ci_upper"]].copy()
    table.loc[:, ["r", "ci_lower", "ci_upper"]] = 0.0, -0.1, 0.1
    table.loc[3, ["r", "ci_lower", "ci_upper"]] = -0.61, -0.7, -0.5
    text = findings.read_correlation_table(table)
    assert text.startswith("1 of 20 tests have a 95% CI that excludes 0 without correction")
    assert "the largest |r| is -0.610 [-0.700, -0.500] (knn_density_asymmetry, layer 0)" in text
    with pytest.raises(ValueError, match="lacks columns"):
        findings.read_correlation_table(table.drop(columns=["r"]))


# --------------------------------------------------------------------------------------------------- figure labels
def test_figures_say_uncorrected_and_show_spearman_and_outliers(built):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ua_helpers.report import plots

    tests = built["tests"]
    fig = plots.plot_layer_correlations(tests, n_pairs=N)
    assert "CI excludes 0 (uncorrected)" in fig._suptitle.get_text() and "significant" not in fig._suptitle.get_text()
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert sorted(labels) == ["CI of r excludes 0 (uncorrected)", "Pearson r, bootstrap CI",
                              "Spearman rho, bootstrap CI"]
    plt.close(fig)
    seed_table = tests[["layer", "metric", "r", "ci_lower", "ci_upper"]]
    fig = plots.plot_layer_correlations(seed_table)
    assert sorted(fig.axes[0].get_legend_handles_labels()[1]) == ["CI of r excludes 0 (uncorrected)",
                                                                  "Pearson r, bootstrap CI"]
    plt.close(fig)
    fig = plots.plot_heatmap(seed_table)
    assert "uncorrected" in fig.axes[0].get_title()
    stars = [t.get_text() for t in fig.axes[0].texts if t.get_text().endswith("*")]
    excl = ((seed_table["ci_lower"] > 0) | (seed_table["ci_upper"] < 0)).sum()
    assert len(stars) == excl
    plt.close(fig)
    values = built["values"].copy()
    values[0, 0, 0] = 50.0  # one far outlier must be drawn
    fig = plots.plot_metric_distributions(values, LAYERS, NAMES)
    fliers = [line for line in fig.axes[0].lines if line.get_marker() == "o" and len(line.get_ydata())]
    assert any(50.0 in line.get_ydata() for line in fliers)
    plt.close(fig)


def test_plot_norms_marks_the_massive_statements():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ua_helpers.report import plots

    emb_a, emb_b, *_ = arrays()
    d = rb.norm_diagnostics(emb_a, emb_b, LAYERS)
    fig = plots.plot_norms(d.norms_a, d.norms_b, LAYERS, threshold=d.threshold)
    red = [c for c in fig.axes[0].collections if len(c.get_offsets()) and c.get_sizes()[0] == 18]
    assert sum(len(c.get_offsets()) for c in red) == len(d.massive) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="layers"):
        plots.plot_norms(d.norms_a, d.norms_b, LAYERS[:2])


HOSTILE_STATEMENTS = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "```{raw} html\n<b>x</b>\n```",
                      "[x](javascript:alert(3)) *em* $x$ {ref}`y`"]


@pytest.mark.parametrize("text", HOSTILE_STATEMENTS)
def test_sentences_are_markdown_with_dataset_text_escaped(built, text):
    """Every sentence is Markup: a statement text (or a model or dataset name) holding HTML, a fence, a link or
    math renders as text wherever the sentence is displayed as Markdown (the notebooks, the book)."""
    from markdown_it import MarkdownIt

    from ua_helpers.report._markdown import Markup

    res = copy.deepcopy(built["results"])
    res["evidence"]["massive_activations"]["statements"][0]["text"] = text
    res["model"] = text
    res.setdefault("dataset", {})["name"] = text
    md = MarkdownIt("commonmark", {"html": True})  # raw HTML on: the worst case
    for sentence in [findings.markdown(res), findings.read_massive(res), findings.read_scope(res),
                     *findings.summarize(res)]:
        assert isinstance(sentence, Markup)
        rendered = md.render(sentence)
        assert "<script" not in rendered and "<img" not in rendered and "<b>" not in rendered
        assert 'href="javascript' not in rendered and "<em>" not in rendered and "<pre" not in rendered
    assert "&lt;" in md.render(findings.read_massive(res)) or "`" in text


def test_rank_levels_and_their_sentence(built):
    tests, ev = built["tests"], built["results"]["evidence"]
    for t, row in zip(ev["tests"], tests.itertuples()):
        excl = row.spearman_ci_lower > 0 or row.spearman_ci_upper < 0
        want = 0 if not excl else 1 if not row.spearman_p_bh < 0.05 else 2 if not row.p_maxstat_spearman < 0.05 else 3
        assert t["rank_level"] == want
        assert t["p_maxstat_spearman"] == pytest.approx(row.p_maxstat_spearman)
        assert t["maxstat_uncertain"] == bool(row.maxstat_uncertain)
    res = _force_levels(built["results"], [0] * 20)
    for t in res["evidence"]["tests"]:
        t["rank_level"], t["maxstat_uncertain"] = 0, False
    assert findings.read_ranks(res).startswith("No test reaches a higher level on ranks")
    t = res["evidence"]["tests"][7]
    t.update(rank_level=3, spearman_rho=0.3141, maxstat_uncertain=True, p_maxstat=0.0497)
    text = findings.read_ranks(res)
    assert (f"{t['metric']} at layer {t['layer']} (rho = +0.314, level 3 (family-wise) on ranks, 0 on Pearson)"
            in text)
    assert "max-statistic p = 0.050) lies within two Monte Carlo standard errors of 0.05" in text
