"""The controls chapter, its figure, and finding sentences that name the controls they survive and those that
explain them (all read from results.json's ``controls`` block)."""
from __future__ import annotations

import copy
import io
import json

import numpy as np
import pytest

from ua_helpers.report import findings, plots, results
from ua_helpers.analysis import metrics, stats
from ua_helpers.book.context import BookContext
from ua_helpers.runs.rundir import Run
from ua_helpers.book.page_controls import FIGURE, controls_page

LAYERS = [0, 4, 8]
N = 50


def _controls(res: dict) -> dict:
    """A controls block of the documented shape (CONTROLS_SPEC), its numbers set by hand around each r."""
    rt, sp, stmt, lex = [], [], [], []
    for layer, tests in res["results"].items():
        for metric, t in tests.items():
            r = t["r"]
            rt.append({"layer": int(layer), "metric": metric, "r_mean": 0.1 * r, "r_min": 0.1 * r - 0.05,
                       "r_max": 0.1 * r + 0.05, "r": [0.1 * r - 0.05, 0.1 * r, 0.1 * r + 0.05]})
            sp.append({"layer": int(layer), "metric": metric, "r_observed": r, "null_mean": 0.0,
                       "null_median": 0.0, "null_ci_lower": -0.1, "null_ci_upper": 0.1, "p_value": 0.001})
            if metric != "within_pair_sim":
                stmt.append({"layer": int(layer), "metric": metric, "r_a": 0.2, "r_b": -0.1})
            lex.append({"layer": int(layer), "metric": metric, "partial_r": 0.8 * r, "ci_lower": 0.8 * r - 0.1,
                        "ci_upper": 0.8 * r + 0.1, "p_value": 1e-4, "p_holm": 0.004})
    return {"schema_version": 1, "representation": "hidden-states", "prefix": "none",
            "random_tokens": {"seeds": [1, 2, 3], "tests": rt},
            "shuffled_pairing": {"n_shuffles": 1000, "seed": 42, "tests": sp, "statement_level": stmt},
            "lexical": {"frequency_proxy": "mean log(1 + token id)", "tests": lex,
                        "covariates": [{"name": "n_tokens", "description": "token count, B - A", "r": -0.5}]}}


@pytest.fixture
def res():
    rng = np.random.default_rng(3)
    pref = rng.normal(size=N)
    values = rng.normal(size=(len(LAYERS), len(metrics.METRIC_NAMES), N)) + 0.6 * pref
    table = stats.correlation_table(values, pref, LAYERS, metrics.METRIC_NAMES, n_bootstrap=200)
    out = results.build_results(table, model="tiny", n_pairs=N, n_bootstrap=200, num_layers=8)
    out["controls"] = _controls(out)
    out["evidence"] = {"alpha": 0.05}
    return out


def _test(res, layer, metric):
    return {"layer": layer, "metric": metric, **res["results"][str(layer)][metric]}


def test_layer_zero_is_named_token_embeddings():
    assert findings.layer_label(0) == "layer 0 (token embeddings)"
    assert findings.layer_label(0, capital=True) == "Layer 0 (token embeddings)"
    assert findings.layer_label(12) == "layer 12"


def test_a_finding_names_the_controls_it_survives_and_those_that_explain_it(res):
    t = _test(res, 4, "centroid_asymmetry")
    text = findings.controls_verdict(t, res)
    survives, explains = text.split(". Controls that explain it: ")
    assert "random tokens" in survives and "shuffled pairing" in survives and "lexical covariates" in survives
    r0 = res["results"]["0"]["centroid_asymmetry"]["r"]
    assert f"layer 0 (token embeddings), r = {r0:+.3f}" in text
    assert ("token embeddings" in explains) == (np.sign(r0) == np.sign(t["r"]) and abs(r0) >= abs(t["r"]))
    at_zero = findings.controls_verdict(_test(res, 0, "centroid_asymmetry"), res)
    assert "the token embeddings (the test is at layer 0" in at_zero.split("explain it: ")[1]


def test_the_sentence_changes_when_a_controls_number_changes(res):
    """Re-pairing at random reaching r moves that control from 'survives' to 'explains', with its numbers."""
    t = _test(res, 8, "margin_asymmetry")
    before = findings.controls_verdict(t, res)
    edited = copy.deepcopy(res)
    row = next(x for x in edited["controls"]["shuffled_pairing"]["tests"]
               if (x["layer"], x["metric"]) == (8, "margin_asymmetry"))
    row.update(null_mean=t["r"], null_ci_lower=t["r"] - 0.1, null_ci_upper=t["r"] + 0.1)
    after = findings.controls_verdict(t, edited)
    assert before != after
    assert "shuffled pairing" in before.split("explain it: ")[0]
    assert (f"statement-level: re-pairing at random gives r = {t['r']:+.3f} "
            f"[{t['r'] - 0.1:+.3f}, {t['r'] + 0.1:+.3f}]") in after.split("explain it: ")[1]
    # and a lexical partial r that loses significance explains it
    lx = next(x for x in edited["controls"]["lexical"]["tests"] if (x["layer"], x["metric"]) == (8, "margin_asymmetry"))
    lx["p_holm"] = 0.4
    assert "lexical covariates (partial r" in findings.controls_verdict(t, edited).split("explain it: ")[1]


def test_without_controls_the_sentence_says_so(res):
    del res["controls"]
    assert "none were computed" in findings.controls_verdict(_test(res, 4, "cross_centroid"), res)


def test_controls_figure_is_420_px_wide_and_small(res):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    ctl = res["controls"]
    fig = plots.plot_controls(results.results_table(res), pd.DataFrame(ctl["random_tokens"]["tests"]),
                              pd.DataFrame(ctl["shuffled_pairing"]["tests"]),
                              extra={"neutral-60: r": results.results_table(res)})
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=plots.CONTROLS_DPI)
    width = int(round(fig.get_figwidth() * plots.CONTROLS_DPI))
    labels = fig.axes[len(metrics.METRIC_NAMES)].get_legend().get_texts()
    plt.close(fig)
    assert width == 420
    assert buf.tell() < 150_000
    assert {t.get_text() for t in labels} == {"random tokens (range)", "shuffled pairing (null)",
                                              "layer 0 (token embeddings)", "neutral-60: r", "this run: 95% CI",
                                              "this run: r"}


def _run(tmp_path, res) -> Run:
    manifest = {"status": "complete", "parameters": {"dataset": "replication-230", "prefix": "none"},
                "model": {"name": "tiny", "dtype": "float32", "device": "cpu", "num_layers": 8},
                "dataset": {"name": "replication-230", "sha256": "0" * 64, "n_pairs": N}}
    return Run(tmp_path, manifest, json.loads(json.dumps(res)))


def test_controls_page_shows_the_figure_the_null_and_the_decomposition(res, tmp_path):
    page = controls_page(BookContext(_run(tmp_path / "run", res), tmp_path / "book"))
    assert (tmp_path / "book" / FIGURE).is_file() and f"{{figure}} {FIGURE}" in page
    assert "## Statement-level or pair-level?" in page and "Statement-level decomposition" in page
    assert "| layer 0 (token embeddings) | centroid\\_asymmetry |" in page
    assert "ua-book run -p dataset neutral-60" in page and "ua-book run -p prefix bos" in page
    neutral = _run(tmp_path / "neutral", res)
    page = controls_page(BookContext(_run(tmp_path / "run", res), tmp_path / "book2", neutral=neutral))
    assert "That run: model `tiny`" in page and "ua-book run -p dataset neutral-60" not in page


def test_controls_page_without_controls_says_so(res, tmp_path):
    del res["controls"]
    page = controls_page(BookContext(_run(tmp_path / "run", res), tmp_path / "book"))
    assert "This run has no controls" in page
