"""Tests of ua_helpers.report.describe: the notebooks' descriptive tables and the sentences that read them, on cases
small enough to work out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from ua_helpers.inputs.data import PairSet
from ua_helpers.report import describe


def test_metric_summary_is_one_mean_and_sd_column_per_metric():
    values = np.zeros((2, 3, 4))
    values[1, 2] = [1.0, 3.0, 1.0, 3.0]  # mean 2, population sd 1
    values[0, 0] = [0.001, 0.003, 0.001, 0.003]  # a small scale keeps its digits
    table = describe.metric_summary(values, [0, 4], ["a", "b", "c"])
    assert list(table.columns) == ["a", "b", "c"] and list(table.index) == [0, 4]
    assert table.loc[4, "c"] == "2 ± 1" and table.loc[0, "a"] == "0.002 ± 0.001"
    with pytest.raises(ValueError, match="do not match"):
        describe.metric_summary(values, [0], ["a", "b", "c"])


# --------------------------------------------------------------------------- hand-computed cases
def _pairs():
    return PairSet(stmt_a=["one two", "a", "x y z w"], stmt_b=["one two three", "a b c", "x y"],
                   category=["c1", "c1", "c2"], sha256="0" * 64, source="test", name="toy",
                   descriptions={"c1": {"description": "first kind"}})


def test_dataset_overview_counts_and_shows_the_first_pair():
    table = describe.dataset_overview(_pairs())
    assert table.index.tolist() == ["c1", "c2"] and table["n_pairs"].tolist() == [2, 1]
    assert table.loc["c1", "description"] == "first kind" and table.loc["c2", "description"] == ""
    assert (table.loc["c1", "example A"], table.loc["c2", "example B"]) == ("one two", "x y")


def test_token_lengths_with_a_word_tokenizer():
    words = lambda text: {"input_ids": text.split()}  # noqa: E731  one token per word
    table = describe.token_lengths(_pairs(), words)
    # c1: A (2 + 1) / 2 = 1.5, B (3 + 3) / 2 = 3; c2: A 4, B 2; all: A 7/3 = 2.33, B 8/3 = 2.67, B − A 1/3.
    assert table.loc["c1"].tolist() == [1.5, 3.0, 1.5] and table.loc["c2"].tolist() == [4.0, 2.0, -2.0]
    assert table.loc["all"].tolist() == [2.33, 2.67, 0.33]
    assert describe.read_token_lengths(table) == (
        "Side B statements are longer by 0.33 tokens on average (A: 2.33, B: 2.67); the widest gap is in c2 "
        "(-2.00 tokens, B − A).")


def test_preference_table_and_its_sentence():
    table = describe.preference_table(np.array([1.0, -1.0, 2.0, 3.0]), ["x", "x", "y", "y"])
    # x: mean 0, sd sqrt(2) = 1.414, half prefer A; y: mean 2.5, sd sqrt(0.5) = 0.707, all prefer A;
    # all: mean 1.25, sd sqrt(8.75 / 3) = 1.708, 3 of 4 prefer A.
    assert table.loc["x"].tolist() == [2, 0.0, 1.414, 0.5] and table.loc["y"].tolist() == [2, 2.5, 0.707, 1.0]
    assert table.loc["all"].tolist() == [4, 1.25, 1.708, 0.75]
    assert describe.read_preference(table) == (
        "Over all 4 pairs the model prefers statement A in 75% of pairs (mean preference +1.250 nats); the mean "
        "ranges from +0.000 (x) to +2.500 (y). In y every pair prefers the same side, so that category alone can "
        "drive a pooled correlation.")
    with pytest.raises(ValueError, match="does not match 3 categories"):
        describe.preference_table(np.zeros(4), ["x", "y", "z"])


def test_read_centroids_says_when_the_centroids_coincide():
    import pandas as pd

    close = pd.DataFrame({"cos_centroids": [0.995, 0.999], "distance_ratio": [0.1, 0.25]})
    assert describe.read_centroids(close) == (
        "cos(μ_A, μ_B) lies between 0.995 and 0.999 across layers, and the centroids lie 0.10–0.25 statement "
        "spreads apart. The two side centroids nearly coincide at every layer, so centroid_asymmetry and "
        "cross_centroid measure almost the same thing here and count as one finding.")
    apart = pd.DataFrame({"cos_centroids": [0.5, np.nan, 0.99], "distance_ratio": [1.0, 2.0, np.nan]})
    assert describe.read_centroids(apart) == ("cos(μ_A, μ_B) lies between 0.500 and 0.990 across layers, and the "
                                              "centroids lie 1.00–2.00 statement spreads apart.")


def test_massive_statements_are_listed_with_their_text():
    from ua_helpers.analysis import robustness

    pairs = PairSet(stmt_a=[f"A{i}" for i in range(10)], stmt_b=[f"B{i}" for i in range(10)],
                    category=["c"] * 10, sha256="0" * 64, source="test", name="toy")
    emb_a = np.ones((2, 10, 4))
    emb_b = np.ones((2, 10, 4))
    emb_b[1, 7] *= 50.0  # pair 7's B statement at layer 4: 50x the median norm (every other norm is 2)
    diagnostics = robustness.norm_diagnostics(emb_a, emb_b, [0, 4])
    table = describe.massive_table(diagnostics, pairs)
    assert table[["pair", "side", "category", "max_ratio", "text"]].values.tolist() == [[7, "B", "c", 50.0, "B7"]]
    assert list(table["layers"].iloc[0]) == [4]
    assert describe.read_norms(diagnostics).startswith(
        f"1 statement(s) have pooled norms above {diagnostics.threshold:g}× their layer's median (up to 50×, at "
        "layers 4)")
    quiet = robustness.norm_diagnostics(emb_a[:1], emb_b[:1], [0])
    assert describe.read_norms(quiet).startswith(f"No statement's pooled norm exceeds {quiet.threshold:g}×")
