"""The evidence ladder (``ua_helpers.analysis.evidence``): nested on random tables, its edge cases, the results'
evidence block against its parts, refusals of mismatched inputs, the tables read back, the rung names and criteria,
and the refusal of results without a ladder or with an older one."""
from __future__ import annotations

import json

import numpy as np
import pytest
from evidence_data import LAYERS, N, NAMES, arrays, evidence_case, random_tests
from inference_data import evidence_of

from ua_helpers.analysis import evidence, robustness as rb
from ua_helpers.report import findings


@pytest.fixture(scope="module")
def built():
    return evidence_case()


@pytest.mark.parametrize("seed", range(5))
def test_ladder_is_nested_on_random_tables(seed):
    tests, loo, lexical = random_tests(np.random.default_rng(seed))
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
    tests, loo, lexical = random_tests(rng, n_tests=10, nan_share=0.0)
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
    emb_a, emb_b, values, preference, *_ = arrays()
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


def test_tables_from_results(built):
    res = built["results"]
    lad = evidence.ladder_table(res)
    assert lad.index.tolist() == [1, 2, 3, 4, 5, 6]
    assert lad["tests"].tolist() == [lv["count"] for lv in res["evidence"]["levels"][1:]]
    table = evidence.evidence_table(res)
    assert len(table) == len(LAYERS) * len(NAMES) and "passes" not in table.columns
    assert table["r"].tolist() == pytest.approx([t["r"] for t in res["evidence"]["tests"]])


def test_level_names_and_criteria_follow_the_rungs():
    names = evidence.level_names()
    assert len(names) == len(evidence.CRITERIA) + 1 == 7  # rung 0 (none) and one rung per criterion
    assert names[3] == "family-wise" and names[6] == "beyond lexical"
    holm, bh = evidence.criteria_text(0.05, "holm"), evidence.criteria_text(0.01, "bh")
    assert len(holm) == len(bh) == 7 and holm != bh
    assert "Holm" in holm[5] and "Benjamini-Hochberg" in bh[5] and "0.01" in " ".join(bh)


def test_results_without_a_ladder_or_with_an_older_one_are_refused(built):
    res = built["results"]
    assert evidence.require_evidence(res) is res["evidence"]
    with pytest.raises(ValueError, match="lack an 'evidence' block"):
        evidence.require_evidence({"model": "m"})
    evidence.check_version(res["evidence"])  # this version's layout: accepted
    older = {**res["evidence"], "schema_version": evidence.SCHEMA_VERSION - 1}
    with pytest.raises(ValueError, match=rf"my-run: its evidence ladder is of layout version "
                                         rf"{evidence.SCHEMA_VERSION - 1}, this version reads {evidence.SCHEMA_VERSION}"):
        evidence.check_version(older, "my-run")
