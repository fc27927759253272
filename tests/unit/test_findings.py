"""Tests of ua_helpers.analysis.evidence (the nested ladder and the results' evidence block) and ua_helpers.report.findings
(sentences generated from a results dict)."""
from __future__ import annotations

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest

from ua_helpers.analysis import controls, evidence, inference, metrics, robustness as rb
from ua_helpers.report import findings
from inference_data import evidence_of

LAYERS = [0, 4, 8, 12]
NAMES = list(metrics.METRIC_NAMES)
N = 80
#: "significant" must always name its correction.
UNQUALIFIED = re.compile(r"significant(?! after correction| family-wise)")


# --------------------------------------------------------------------------------------------------- fixtures
def _arrays(seed=0, n=N, d=12):
    rng = np.random.default_rng(seed)
    emb_a = rng.normal(size=(len(LAYERS), n, d)) + 2.0
    emb_b = rng.normal(size=(len(LAYERS), n, d)) + 2.0
    emb_a[2:, 5] *= 25.0  # one massive-activation statement at layers 8 and 12
    values = metrics.compute_all_layers(emb_a, emb_b)
    preference = 0.5 * values[0, 0] / values[0, 0].std() + rng.normal(size=n)
    cats = np.repeat(["x", "y", "z", "w"], n // 4).tolist()
    tok_a = rng.integers(5, 20, n)
    tok_b = tok_a + rng.integers(-3, 4, n)
    return emb_a, emb_b, values, preference, cats, tok_a, tok_b


def _lexical_block(values, preference, cats, tok_a, tok_b):
    """A controls block holding the lexical controls of synthetic data (what evidence_block reads)."""
    rng = np.random.default_rng(3)
    covariates = {"tokens": (tok_b - tok_a)[:, None].astype(float), "category": controls.category_dummies(cats)}
    lex = controls.lexical_controls(values, preference, LAYERS, NAMES, covariates,
                                    rng.normal(size=(len(NAMES), len(preference))))
    return {"lexical": {"tests": lex.to_dict(orient="records")}}


@pytest.fixture(scope="module")
def built():
    emb_a, emb_b, values, preference, cats, tok_a, tok_b = _arrays()
    ext = inference.extended_analysis(values, preference, LAYERS, NAMES, n_tokens_a=tok_a, n_tokens_b=tok_b,
                                      len_a=5 * tok_a, len_b=5 * tok_b + 1, categories=cats, n_bootstrap=300,
                                      n_permutations=300, seed=1)
    stmt_a = [f"statement A {i}" for i in range(N)]
    stmt_b = [f"statement B {i}" for i in range(N)]
    ctrl = _lexical_block(values, preference, cats, tok_a, tok_b)
    ev = evidence_of(values, preference, emb_a, emb_b, LAYERS, NAMES, ext.tests, controls=ctrl,
                                 stmt_a=stmt_a, stmt_b=stmt_b)
    results = {"model": "tiny-model", "n_pairs": N, "ci_level": 0.95, "dataset": {"name": "toy-set"},
               "model_info": {"dtype": "float32", "device": "cpu"}, "evidence": ev}
    return {"tests": ext.tests, "values": values, "preference": preference, "results": results, "controls": ctrl}


def _random_tests(rng, n_tests=400, nan_share=0.05):
    """A tests table whose columns are drawn independently (every combination of criteria occurs)."""
    r = rng.uniform(-0.5, 0.5, n_tests)
    r[rng.random(n_tests) < nan_share] = np.nan
    half = rng.uniform(0.02, 0.3, n_tests)
    rho = r + rng.normal(scale=0.2, size=n_tests)
    shalf = rng.uniform(0.02, 0.3, n_tests)
    partial = r + rng.normal(scale=0.2, size=n_tests)
    frame = pd.DataFrame({
        "layer": np.arange(n_tests) // 5, "metric": np.tile(NAMES, n_tests // 5 + 1)[:n_tests],
        "r": r, "ci_lower": r - half, "ci_upper": r + half, "p_bh": rng.random(n_tests) ** 6,
        "p_maxstat": rng.random(n_tests) ** 6, "spearman_rho": rho, "spearman_ci_lower": rho - shalf,
        "spearman_ci_upper": rho + shalf, "partial_all_r": partial, "partial_all_ci_lower": partial - half,
        "partial_all_ci_upper": partial + half, "partial_all_p_holm": rng.random(n_tests) ** 6,
        "partial_all_p_bh": rng.random(n_tests) ** 6})
    loo = frame[["layer", "metric"]].assign(loo_sign_change=rng.random(n_tests) < 0.2,
                                            loo_verdict_change=rng.random(n_tests) < 0.2)
    lexical = frame[["layer", "metric"]].assign(partial_r=r + rng.normal(scale=0.2, size=n_tests),
                                                p_holm=rng.random(n_tests) ** 6)
    return frame, loo, lexical


# --------------------------------------------------------------------------------------------------- the ladder
@pytest.mark.parametrize("seed", range(5))
def test_ladder_is_nested_on_random_tables(seed):
    tests, loo, lexical = _random_tests(np.random.default_rng(seed))
    lad = evidence.ladder(tests, loo, lexical)
    met = lad[list(evidence.CRITERIA)].to_numpy()
    for i, level in enumerate(lad["level"]):
        assert met[i, :level].all()  # every rung below the level is met ...
        assert level == 6 or not met[i, level]  # ... and the next one is not
    counts = evidence.level_counts(lad["level"])
    assert counts[0] == len(tests)
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    # independently drawn criteria: counts of single criteria are not nested, the ladder's are
    assert counts[5] <= met[:, 4].sum() and counts[6] <= met[:, 5].sum() and counts[1] == met[:, 0].sum()
    assert set(lad["level"]) == set(range(7))  # every level is reached by some of the 400 random rows
    units = tests["layer"] // 2
    distinct = evidence.level_counts(lad["level"], units)
    assert all(a >= b for a, b in zip(distinct, distinct[1:])) and all(d <= c for d, c in zip(distinct, counts))


def test_ladder_edge_cases():
    rng = np.random.default_rng(9)
    tests, loo, lexical = _random_tests(rng, n_tests=10, nan_share=0.0)
    tests.loc[0, "r"] = np.nan  # undefined test: level 0 whatever the other columns say
    tests.loc[0, ["ci_lower", "ci_upper", "p_bh", "p_maxstat"]] = [0.1, 0.2, 0.0, 0.0]
    tests.loc[1, ["r", "ci_lower", "ci_upper", "p_bh", "p_maxstat"]] = [0.3, 0.1, 0.5, 0.001, 0.001]
    tests.loc[1, ["spearman_rho", "spearman_ci_lower", "spearman_ci_upper"]] = [-0.3, -0.5, -0.1]  # opposite sign
    loo.loc[1, ["loo_sign_change", "loo_verdict_change"]] = False
    tests.loc[2, ["r", "ci_lower", "ci_upper", "p_bh"]] = [0.3, -0.1, 0.5, 0.001]  # BH passes, CI does not
    lad = evidence.ladder(tests, loo, lexical)
    assert lad.loc[0, "level"] == 0 and not lad.loc[0, list(evidence.CRITERIA)].any()
    assert lad.loc[1, "level"] == 3 and lad.loc[1, "level_name"] == "family-wise"
    assert lad.loc[2, "level"] == 0 and lad.loc[2, "bh"]
    assert evidence.level_counts([]) == [0] * 7
    assert evidence.level_counts([5, 5, 0], units=["u", "u", "v"]) == [2, 1, 1, 1, 1, 1, 0]
    with pytest.raises(ValueError, match="lacks columns"):
        evidence.ladder(tests.drop(columns=["p_maxstat"]), loo, lexical)
    with pytest.raises(ValueError, match="partial_adjust"):
        evidence.ladder(tests, loo, lexical, partial_adjust="bonferroni")
    with pytest.raises(ValueError, match="loo lacks"):
        evidence.ladder(tests, loo.iloc[1:], lexical)
    with pytest.raises(ValueError, match="lexical lacks some"):
        evidence.ladder(tests, loo, lexical.iloc[1:])
    with pytest.raises(ValueError, match="lexical lacks columns"):
        evidence.ladder(tests, loo, lexical.drop(columns=["p_holm"]))


def test_evidence_block_matches_its_parts(built):
    ev = built["results"]["evidence"]
    json.dumps(ev, allow_nan=False)  # strict JSON
    levels = [t["level"] for t in ev["tests"]]
    assert [lv["count"] for lv in ev["levels"]] == [sum(l >= k for l in levels) for k in range(7)]
    assert [lv["name"] for lv in ev["levels"]] == evidence.level_names()
    assert len(ev["tests"]) == len(LAYERS) * len(NAMES)
    assert ev["massive_activations"]["statements"][0] == {"pair": 5, "side": "A", "layers": [8, 12],
                                                          "max_ratio": pytest.approx(
                                                              ev["massive_activations"]["statements"][0]["max_ratio"]),
                                                          "text": "statement A 5"}
    assert ev["massive_activations"]["statements"][0]["max_ratio"] > 10
    loo = rb.leave_one_out(built["values"], built["preference"], LAYERS, NAMES)
    assert [t["most_influential_pair"] for t in ev["tests"]] == loo["most_influential_pair"].tolist()
    for t in ev["tests"]:
        if t["layer"] in (0, 4):
            assert t["r_without_massive"] is None and not t["massive_changes"]
        else:
            keep = np.arange(N) != 5
            x = built["values"][LAYERS.index(t["layer"]), NAMES.index(t["metric"])]
            assert t["r_without_massive"] == pytest.approx(np.corrcoef(x[keep], built["preference"][keep])[0, 1],
                                                           abs=1e-12)
    # the two centroid metrics coincide at some layer on this data (mu_A ~ mu_B), and share a group there
    grouped = [g for g in ev["redundant_groups"] if {"centroid_asymmetry", "cross_centroid"} <= set(g["metrics"])]
    assert grouped
    assert ev["levels"][0]["count_distinct"] == len(ev["tests"]) - sum(len(g["metrics"]) - 1
                                                                       for g in ev["redundant_groups"])


def test_evidence_block_rejects_mismatched_tests(built):
    emb_a, emb_b, values, preference, *_ = _arrays()
    ctrl = built["controls"]
    with pytest.raises(ValueError, match="rows"):
        evidence_of(values, preference, emb_a, emb_b, LAYERS, NAMES, built["tests"].iloc[:-1],
                                controls=ctrl)
    with pytest.raises(ValueError, match="order"):
        evidence_of(values, preference, emb_a, emb_b, LAYERS, NAMES, built["tests"].iloc[::-1],
                                controls=ctrl)
    with pytest.raises(ValueError, match="both"):
        evidence_of(values, preference, emb_a, emb_b, LAYERS, NAMES, built["tests"], controls=ctrl,
                                stmt_a=["a"] * N)
    with pytest.raises(ValueError, match="controls block"):
        evidence_of(values, preference, emb_a, emb_b, LAYERS, NAMES, built["tests"], controls={})
    with pytest.raises(ValueError, match="evidence"):
        findings.summarize({"model": "m"})


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
                            "ci_upper": 0.1, "rho": 0.25, "rho_ci_lower": 0.1, "rho_ci_upper": 0.38,
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

    emb_a, emb_b, *_ = _arrays()
    d = rb.norm_diagnostics(emb_a, emb_b, LAYERS)
    fig = plots.plot_norms(d.norms_a, d.norms_b, LAYERS, threshold=d.threshold)
    red = [c for c in fig.axes[0].collections if len(c.get_offsets()) and c.get_sizes()[0] == 18]
    assert sum(len(c.get_offsets()) for c in red) == len(d.massive) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="layers"):
        plots.plot_norms(d.norms_a, d.norms_b, LAYERS[:2])


def test_tables_from_results(built):
    res = built["results"]
    lad = evidence.ladder_table(res)
    assert lad.index.tolist() == [1, 2, 3, 4, 5, 6]
    assert lad["tests"].tolist() == [lv["count"] for lv in res["evidence"]["levels"][1:]]
    table = evidence.evidence_table(res)
    assert len(table) == len(LAYERS) * len(NAMES) and "passes" not in table.columns
    assert table["r"].tolist() == pytest.approx([t["r"] for t in res["evidence"]["tests"]])


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
        assert t["p_maxstat_rho"] == pytest.approx(row.p_maxstat_spearman)
        assert t["maxstat_uncertain"] == bool(row.maxstat_uncertain)
    res = _force_levels(built["results"], [0] * 20)
    for t in res["evidence"]["tests"]:
        t["rank_level"], t["maxstat_uncertain"] = 0, False
    assert findings.read_ranks(res).startswith("No test reaches a higher level on ranks")
    t = res["evidence"]["tests"][7]
    t.update(rank_level=3, rho=0.3141, maxstat_uncertain=True, p_maxstat=0.0497)
    text = findings.read_ranks(res)
    assert (f"{t['metric']} at layer {t['layer']} (rho = +0.314, level 3 (family-wise) on ranks, 0 on Pearson)"
            in text)
    assert "max-statistic p = 0.050) lies within two Monte Carlo standard errors of 0.05" in text
