"""Tests of ua_helpers.report.tables (headline tables and tests.csv from a results dict) and ua_helpers.report.show (prose as
Markdown, escaped once; long tables collapsed)."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from ua_helpers.analysis import evidence, metrics
from ua_helpers.report import show, tables
from ua_helpers.report._markdown import Markup

LAYERS = [0, 4, 8]
NAMES = list(metrics.METRIC_NAMES)
N = 60


@pytest.fixture(scope="module")
def results():
    """A results dict with an evidence block of the shape evidence.evidence_block writes (levels and tests),
    built directly so that these tests read tables, not the ladder's arithmetic."""
    rng = np.random.default_rng(3)
    names = evidence.level_names()
    tests = []
    for layer in LAYERS:
        for metric in NAMES:
            r = float(rng.uniform(-0.4, 0.4))
            level = int(rng.integers(0, len(names)))
            tests.append({"layer": layer, "metric": metric, "level": level, "level_name": names[level],
                          "passes": {"ci": level >= 1, "bh": level >= 2}, "r": r, "ci_lower": r - 0.1,
                          "ci_upper": r + 0.1, "p_bh": float(rng.uniform()), "p_maxstat": float(rng.uniform()),
                          "spearman_rho": r + 0.01, "spearman_ci_lower": r - 0.09, "spearman_ci_upper": r + 0.11,
                          "partial_all_r": r / 2,
                          "loo_delta_r": 0.01, "r_without_massive": None})
    levels = [{"level": k, "name": name, "criterion": f"criterion {k}",
               "count": sum(t["level"] >= k for t in tests), "count_distinct": sum(t["level"] >= k for t in tests)}
              for k, name in enumerate(names)]
    return {"n_pairs": N, "ci_level": 0.9, "evidence": {"schema_version": evidence.SCHEMA_VERSION, "levels": levels,
                                                     "tests": tests}}


def test_headline_table_has_few_plain_columns_and_only_the_tests_on_the_ladder(results):
    table = tables.tests_table(results)
    assert list(table.columns) == ["layer", "metric", "r", "90% CI", "ρ", "adjusted r", "rung"]
    levels = [t["level"] for t in results["evidence"]["tests"]]
    assert len(table) == sum(lv >= 1 for lv in levels) > 0
    assert (table["rung"] >= 1).all()
    assert len(tables.tests_table(results, min_rung=0)) == len(LAYERS) * len(NAMES)
    first = next(t for t in results["evidence"]["tests"] if t["level"] >= 1)
    row = table.iloc[0]
    assert (row["layer"], row["metric"], row["r"]) == (first["layer"], first["metric"], round(first["r"], 3))
    assert row["90% CI"] == f"[{first['ci_lower']:+.3f}, {first['ci_upper']:+.3f}]"


def test_ladder_table_names_every_rung_from_the_evidence_block(results):
    table = tables.ladder_table(results)
    assert list(table.index) == list(range(1, len(evidence.level_names())))
    assert list(table["name"]) == evidence.level_names()[1:]
    counts = table["tests"].to_list()
    assert counts == sorted(counts, reverse=True)  # each rung requires the ones below it


def test_tests_csv_holds_every_statistic_of_every_test(results, tmp_path):
    path = tables.write_tests_csv(tmp_path, results)
    assert path == tmp_path / tables.TESTS_CSV
    frame = pd.read_csv(path)
    assert len(frame) == len(LAYERS) * len(NAMES)
    for col in ("r", "ci_lower", "p_bh", "p_maxstat", "spearman_rho", "partial_all_r", "level", "passes_ci", "passes_bh",
                "loo_delta_r", "r_without_massive"):
        assert col in frame.columns, col
    ours = np.array([t["r"] for t in results["evidence"]["tests"]], dtype=float)
    # CSV keeps floats at full precision (repr round-trips), so the values are equal, not merely close
    np.testing.assert_array_equal(frame["r"].to_numpy(), ours)


def test_comparison_counts_and_table():
    comparison = pd.DataFrame({
        "metric": ["a", "a", "b"], "layer": [0, 4, 0], "r": [0.2, -0.1, 0.3], "ci_lower": [0.1, -0.2, 0.2],
        "ci_upper": [0.3, 0.05, 0.4], "ref_layer": [0, 8, 0], "ref_r": [0.25, 0.1, 0.35],
        "ref_ci_lower": [0.1, -0.05, 0.2], "ref_ci_upper": [0.4, 0.2, 0.5],
        "same_sign": [True, False, True], "both_exclude_zero": [True, False, True]})
    counts = tables.comparison_counts(comparison)
    assert counts.loc["a"].to_list() == [2, 1, 1] and counts.loc["all"].to_list() == [3, 2, 2]
    full = tables.comparison_table(comparison)
    assert full.shape == (3, 5) and full.iloc[1]["r [CI]"] == "-0.100 [-0.200, +0.050]"
    with pytest.raises(ValueError, match="empty"):
        tables.comparison_counts(comparison.iloc[:0])


def test_prose_escapes_plain_text_once_and_keeps_markup():
    text = show.prose_markdown("centroid_asymmetry at layer 4 (r = +0.22) *not* [a link](x)\nsecond line",
                               Markup("**already** Markdown"))
    paragraphs = text.split("\n\n")
    assert paragraphs[0] == r"centroid\_asymmetry at layer 4 (r = +0.22) \*not\* \[a link\](x)"
    assert paragraphs[1] == "second line" and paragraphs[2] == "**already** Markdown"
    assert show.prose("a").data == "a"
    with pytest.raises(TypeError, match="strings"):
        show.prose_markdown(None)


def test_collapsed_table_is_closed_and_scrolls_in_its_own_box():
    html = show.collapsed_html(pd.DataFrame({"x": [1.23456, np.nan]}), "All <tests>")
    assert html.startswith("<details><summary>All &lt;tests&gt;</summary>") and "overflow-x: auto" in html
    assert "1.235" in html and "<td>n/a</td>" in html
    assert "open" not in html.split(">")[0]


def test_an_empty_or_mostly_empty_table_becomes_a_sentence():
    full = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, np.nan]})
    assert show.table_or_note(full, "none") is full
    assert show.table_or_note(full.iloc[:0], "No test reaches rung 1.").data == "No test reaches rung 1."
    sparse = pd.DataFrame({"a": [1.0, np.nan], "b": [np.nan, np.nan]})
    assert show.table_or_note(sparse, "mostly empty").data == "mostly empty"


def test_no_module_formats_a_signed_statistic_itself():
    """Every signed number printed goes through fmt_r, except the two that are not correlations (nats, tokens)."""
    import re
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "ua_helpers"
    own = {(p.relative_to(package).as_posix(), line.strip()) for p in package.rglob("*.py")
           for line in p.read_text(encoding="utf-8").splitlines()
           if re.search(r":\+\.\d+f\}", line) and not line.lstrip().startswith("#")}
    assert {path for path, _ in own} <= {"report/describe.py"}, own  # mean preference in nats, token differences
