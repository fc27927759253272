"""Which results of several runs depend on a design choice (``ua_helpers.runs.choices``), on three hand-written runs
whose every expected count is worked out below from their numbers.

Run ``a``: model ``m``, mean pooling, 4 layers; run ``b``: ``a`` with last-token pooling; run ``c``: another model
``other`` with 8 layers and one metric. Tests (layer, metric): r [CI] -> level (1 where the CI excludes 0):

====  ===========================  ===========================  ============================
      a                            b                            c
====  ===========================  ===========================  ============================
0 m1  +0.30 [+0.10, +0.50] -> 1    +0.25 [+0.05, +0.45] -> 1    +0.30 [+0.10, +0.50] -> 1
0 m2  -0.20 [-0.40, +0.05] -> 0    +0.10 [-0.10, +0.30] -> 0    (no m2)
4 m1  +0.10 [-0.10, +0.30] -> 0    +0.20 [+0.05, +0.35] -> 1    2 m1: -0.90 [-0.95, -0.80]; 8 m1: -0.20 [-0.30, -0.10] -> 1
4 m2  -0.50 [-0.70, -0.30] -> 1    -0.40 [-0.60, +0.10] -> 0
====  ===========================  ===========================  ============================
"""
from __future__ import annotations

from pathlib import Path

import pytest

from ua_helpers.runs import choices
from ua_helpers.runs.rundir import Run


def _t(r, lo, hi):
    return {"r": r, "ci_lower": lo, "ci_upper": hi}


def _run(name, model, pooling, num_layers, results, evidence=None) -> Run:
    params = {"model": model, "revision": None, "pooling": pooling, "dtype": "float32", "dataset": "d"}
    res = {"model": model, "num_layers": num_layers, "results": results, "parameters": params}
    if evidence is not None:
        res["evidence"] = {"tests": evidence}
    manifest = {"parameters": params, "dataset": {"name": "d"},
                "model": {"name": model, "dtype": "float32"}}
    return Run(Path(name), manifest, res)


A = _run("a", "m", "mean", 4, {"0": {"m1": _t(0.30, 0.10, 0.50), "m2": _t(-0.20, -0.40, 0.05)},
                               "4": {"m1": _t(0.10, -0.10, 0.30), "m2": _t(-0.50, -0.70, -0.30)}})
B = _run("b", "m", "last", 4, {"0": {"m1": _t(0.25, 0.05, 0.45), "m2": _t(0.10, -0.10, 0.30)},
                               "4": {"m1": _t(0.20, 0.05, 0.35), "m2": _t(-0.40, -0.60, 0.10)}})
C = _run("c", "other", "mean", 8, {"0": {"m1": _t(0.30, 0.10, 0.50)}, "2": {"m1": _t(-0.90, -0.95, -0.80)},
                                   "8": {"m1": _t(-0.20, -0.30, -0.10)}})


def test_run_choices_and_tests():
    assert choices.run_choices(A) == {"model": "m", "revision": None, "pooling": "mean", "dtype": "float32",
                                      "dataset": "d", "orientation": "as-given"}
    tests = choices.run_tests(C)
    assert tests[["layer", "depth", "sign", "level"]].values.tolist() == [[0, 0.0, 1, 1], [2, 0.25, -1, 1],
                                                                         [8, 1.0, -1, 1]]
    assert not tests["has_ladder"].any() and set(tests["level_name"]) == {choices.UNCORRECTED[1]}


def test_match_pairs_the_nearest_depth_and_leaves_out_a_missing_metric():
    m = choices.match(choices.run_tests(A), choices.run_tests(C))
    # a's layer 0 (depth 0) meets c's layer 0, a's layer 4 (depth 1) c's layer 8; m2 is not in c.
    assert m[["metric", "layer", "other_layer", "same_sign", "same_level"]].values.tolist() == [
        ["m1", 0, 0, True, True], ["m1", 4, 8, False, False]]


def test_levels_are_compared_on_the_scale_both_runs_have():
    ladder_a = _run("a", "m", "mean", 4, A.results["results"],
                    evidence=[{"layer": 0, "metric": "m1", "level": 3, "level_name": "rung 3"}])
    ladder_b = _run("b", "m", "last", 4, B.results["results"],
                    evidence=[{"layer": 0, "metric": "m1", "level": 2, "level_name": "rung 2"}])
    row = lambda m: m[(m["layer"] == 0) & (m["metric"] == "m1")].iloc[0]  # noqa: E731
    both = row(choices.match(choices.run_tests(ladder_a), choices.run_tests(ladder_b)))
    assert (both.level_cmp, both.other_level_cmp, both.same_level) == (3, 2, False)  # both ladders: rungs compared
    cut = row(choices.match(choices.run_tests(ladder_a), choices.run_tests(B)))
    assert (cut.level_cmp, cut.other_level_cmp, cut.same_level) == (1, 1, True)  # b has none: cut to uncorrected


def test_choice_effects_compare_only_runs_differing_in_that_choice_alone():
    effects = choices.choice_effects([A, B, C]).set_index("choice")
    assert list(effects.index) == list(choices.CHOICES)
    # pooling: a-b only (b-c differ in model too). Signs kept 3 of 4 (0 m2 flips); levels kept 2 (0 m1, 0 m2);
    # both kept 1 (0 m1).
    assert effects.loc["pooling"][["n_run_pairs", "values", "n_tests", "sign_kept", "level_kept", "both_kept"]] \
        .tolist() == [1, "last / mean", 4, 3, 2, 1]
    assert effects.loc["pooling", "flipped"] == ["0 m2"]
    # model: a-c only; m1 at depths 0 and 1: layer 4's +0.10 (level 0) meets layer 8's -0.20 (level 1).
    assert effects.loc["model"][["n_run_pairs", "values", "n_tests", "sign_kept", "level_kept", "both_kept"]] \
        .tolist() == [1, "m / other", 2, 1, 1, 1]
    assert effects.loc["model", "flipped"] == ["4 m1"]
    assert (effects.loc[["revision", "dtype", "dataset", "orientation"], "n_run_pairs"] == 0).all()


def test_stable_findings_follow_the_first_runs_findings():
    stable = choices.stable_findings([A, B, C])
    # a's findings: 0 m1 (kept in b and c) and 4 m2 (not in c; in b its CI reaches 0: the level is lost there).
    assert stable[["layer", "metric", "n_runs", "sign_kept", "level_kept", "lost_in"]].values.tolist() == [
        [0, "m1", 2, 2, 2, []], [4, "m2", 1, 1, 0, ["b"]]]


def test_stability_markdown_says_the_counts():
    text = choices.stability_markdown(choices.choice_effects([A, B, C]), choices.stable_findings([A, B, C]), "a")
    assert "**2 of 2 keep their sign in every other run, and 1 of 2 keep their evidence level as well**; the " \
           "rest depend on" in text
    assert "- **pooling** (last / mean; 1 pair of runs differing in it alone): 3 of 4 matched tests keep their " \
           "sign and 2 their evidence level; 1 test flip (first pair: 0 m2)." in text
    assert "- **model** (m / other; 1 pair of runs differing in it alone): 1 of 2 matched tests keep their sign " \
           "and 1 their evidence level; 1 test flip (first pair: 4 m1)." in text
    assert "Not isolated by these runs (no two differ in it alone): revision, dtype, dataset, orientation." in text
    empty = choices.stable_findings([B.__class__(Path("z"), B.manifest, {**B.results, "results": {
        "0": {"m1": _t(0.1, -0.1, 0.3)}}})])
    assert empty.empty
    none = choices.stability_markdown(choices.choice_effects([A]), empty, "z")
    assert "has no test whose CI excludes zero" in none and "No two runs differ in a single choice" in none


@pytest.mark.parametrize("r, sign", [(None, 0), (0.0, 0), (-1e-9, -1)])
def test_an_undefined_or_zero_r_has_sign_zero(r, sign):
    run = _run("u", "m", "mean", 4, {"0": {"m1": {"r": r, "ci_lower": None, "ci_upper": None}}})
    row = choices.run_tests(run).iloc[0]
    assert (row.sign, row.level) == (sign, 0)
