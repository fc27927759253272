"""The results file: a superset of the seed's schema, strict JSON, the seed's best-metric loop, comparisons."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import seed_reference as seed
from ua_helpers import results as res
from ua_helpers._io import to_jsonable
from ua_helpers.metrics import METRIC_NAMES
from ua_helpers.stats import correlation_table

PAPER_LAYERS = [0, 4, 8, 12, 16, 20, 24, 28, 32]


@pytest.fixture(scope="module")
def reference(reference_results_path):
    return json.loads(reference_results_path.read_text())


def _reference_table(reference) -> pd.DataFrame:
    """The reference file as a table in the seed's own order (layers as run, metrics as in metrics_tested)."""
    rows = [{"layer": int(layer), "metric": metric, **{k: test[k] for k in res.TEST_KEYS}, "note": ""}
            for layer, tests in reference["results"].items() for metric, test in tests.items()]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def random_table():
    rng = np.random.default_rng(0)
    n = 230
    pref = rng.normal(size=n)
    values = rng.normal(size=(len(PAPER_LAYERS), len(METRIC_NAMES), n))
    values += np.linspace(-0.6, 0.6, values[..., 0].size).reshape(values.shape[:2])[..., None] * pref
    return correlation_table(values, pref, PAPER_LAYERS, METRIC_NAMES, n_bootstrap=300)


def _build(table, **kwargs):
    args = dict(model="EleutherAI/pythia-6.9b", n_pairs=230, n_bootstrap=300, num_layers=32)
    return res.build_results(table, **{**args, **kwargs})


# --------------------------------------------------------------------------- schema
def _missing_keys(ref, ours, where="results file"):
    """Every key (recursively, through dicts and list items) present in ``ref`` but absent from ``ours``."""
    missing = []
    if isinstance(ref, dict):
        if not isinstance(ours, dict):
            return [f"{where} is {type(ours).__name__}, not an object"]
        for key, value in ref.items():
            if key not in ours:
                missing.append(f"{where}[{key!r}]")
            else:
                missing += _missing_keys(value, ours[key], f"{where}[{key!r}]")
    elif isinstance(ref, list) and ref and isinstance(ref[0], dict):
        if not isinstance(ours, list) or not ours:
            return [f"{where} is not a non-empty list"]
        for item in ours:
            missing += _missing_keys(ref[0], item, f"{where}[item]")
    return missing


def test_build_results_has_every_seed_key(random_table, reference):
    ours = json.loads(json.dumps(to_jsonable(_build(random_table))))  # as written to disk
    assert _missing_keys(reference, ours) == []
    assert set(reference) <= set(ours)
    assert set(ours["results"]) == set(reference["results"])  # the same layers here
    for layer, tests in reference["results"].items():
        assert list(ours["results"][layer]) == list(tests)  # metric names and order
        for metric, test in tests.items():
            assert set(test) <= set(ours["results"][layer][metric])
            for key, value in test.items():  # the same JSON types
                assert type(ours["results"][layer][metric][key]) is type(value), (layer, metric, key)
    assert set(reference["best_per_layer"][0]) <= set(ours["best_per_layer"][0])
    assert [b["layer"] for b in ours["best_per_layer"]] == [b["layer"] for b in reference["best_per_layer"]]
    assert set(reference["summary"]) <= set(ours["summary"])
    for key in ("model", "method", "n_pairs", "n_bootstrap", "metrics_tested", "caveat"):
        assert type(ours[key]) is type(reference[key]), key
    assert ours["method"] == reference["method"] and ours["caveat"] == reference["caveat"]
    assert ours["metrics_tested"] == reference["metrics_tested"]
    res.check_schema(ours)


def test_build_results_fields(random_table):
    out = _build(random_table, timestamp="2026-01-02T14:21:48")
    assert out["timestamp"] == "2026-01-02T14:21:48"
    assert out["n_pairs"] == 230 and out["n_bootstrap"] == 300 and out["num_layers"] == 32
    assert out["layers"] == PAPER_LAYERS
    assert out["mid_layers"] == [8, 12] and out["late_layers"] == [28, 32]
    summary = out["summary"]
    assert summary["total_tests"] == 45
    assert summary["significant_tests"] == int((~random_table["includes_zero"]).sum())
    sig = random_table[~random_table["includes_zero"]]
    assert summary["mid_layer_significant"] == int(sig["layer"].isin([8, 12]).sum())
    assert summary["late_layer_significant"] == int(sig["layer"].isin([28, 32]).sum())
    row = random_table.iloc[7]
    test = out["results"][str(row.layer)][row.metric]
    assert test == {"r": row.r, "ci_lower": row.ci_lower, "ci_upper": row.ci_upper, "p_value": row.p_value,
                    "includes_zero": bool(row.includes_zero)}


def test_build_results_extra_keys(random_table):
    out = _build(random_table, extra={"dataset": {"name": "ua-230"}, "parameters": {"k": 10}})
    assert out["dataset"] == {"name": "ua-230"} and out["parameters"] == {"k": 10}
    with pytest.raises(ValueError, match="'summary'"):
        _build(random_table, extra={"summary": {}})


# --------------------------------------------------------------------------- the seed's loops
def test_summary_and_best_per_layer_reproduce_the_published_file(reference):
    table = _reference_table(reference)
    assert res.summarize(table, [8, 12], [28, 32]) == reference["summary"]
    assert res.best_per_layer(table) == reference["best_per_layer"]


def _seed_results_dict(table):
    return {int(layer): {row.metric: {"r": row.r, "includes_zero": bool(row.includes_zero)}
                         for row in rows.itertuples()} for layer, rows in table.groupby("layer", sort=True)}


def test_best_per_layer_reproduces_the_seed_loop(random_table):
    ours = res.best_per_layer(random_table)
    ref = seed.best_per_layer(_seed_results_dict(random_table), PAPER_LAYERS)
    assert ours == ref


def test_best_per_layer_ties_nan_and_empty_layers_as_the_seed():
    rows = [
        (0, "a", 0.3, False), (0, "b", -0.3, True), (0, "c", 0.1, True),  # tie: the first metric wins
        (4, "a", float("nan"), True), (4, "b", -0.2, False), (4, "c", float("nan"), True),  # NaN never wins
        (8, "a", float("nan"), True), (8, "b", float("nan"), True),  # nothing wins: the seed's defaults
        (12, "a", 0.0, False), (12, "b", -0.0, True),  # |r| = 0 never beats the initial 0
    ]
    table = pd.DataFrame(rows, columns=["layer", "metric", "r", "includes_zero"])
    ours = res.best_per_layer(table)
    ref = seed.best_per_layer(_seed_results_dict(table), [0, 4, 8, 12])
    assert ours == ref
    assert ours[0] == {"layer": 0, "best_metric": "a", "r": 0.3, "excludes_zero": True}
    assert ours[1]["best_metric"] == "b" and ours[2] == {"layer": 8, "best_metric": None, "r": 0.0,
                                                          "excludes_zero": False}


# --------------------------------------------------------------------------- writing and reading
def _reject_constant(name):
    raise ValueError(f"non-strict JSON constant {name}")


def test_write_results_is_strict_json(random_table, tmp_path):
    table = random_table.copy()
    table.loc[3, ["r", "ci_lower", "ci_upper", "p_value"]] = np.nan
    table.loc[3, "note"] = "x is constant"
    out = _build(table, extra={"numpy_values": {"i": np.int64(3), "f": np.float32(0.5), "a": np.arange(2),
                                                "inf": np.inf}})
    path = res.write_results(tmp_path / "results.json", out)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text, parse_constant=_reject_constant)
    layer, metric = str(table.loc[3, "layer"]), table.loc[3, "metric"]
    assert back["results"][layer][metric]["r"] is None and back["results"][layer][metric]["note"] == "x is constant"
    assert back["numpy_values"] == {"i": 3, "f": 0.5, "a": [0, 1], "inf": None}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left
    again = res.load_results(path)
    assert again["summary"] == out["summary"]


def test_load_results_reads_the_published_file(reference_results_path, reference):
    loaded = res.load_results(reference_results_path)
    res.check_schema(loaded)
    assert loaded == reference
    table = res.results_table(loaded)
    assert len(table) == 45 and table["r"].dtype == float
    row = table[(table["layer"] == 0) & (table["metric"] == "margin_asymmetry")].iloc[0]
    assert row.r == pytest.approx(-0.6765047993884388)


def test_load_results_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        res.load_results(tmp_path / "nothing.json")


@pytest.mark.parametrize("damage, match", [
    (lambda d: d.pop("summary"), r"seed's keys \['summary'\]"),
    (lambda d: d.pop("best_per_layer"), "best_per_layer"),
    (lambda d: d["results"]["8"]["within_pair_sim"].pop("ci_lower"), r"results\['8'\]\['within_pair_sim'\] lacks"),
    (lambda d: d["summary"].pop("late_layer_significant"), "late_layer_significant"),
])
def test_check_schema_rejects_missing_keys(reference, damage, match):
    broken = json.loads(json.dumps(reference))
    damage(broken)
    with pytest.raises(ValueError, match=match):
        res.check_schema(broken)


# --------------------------------------------------------------------------- layers by depth
@pytest.mark.parametrize("layers, num_layers, mid, late", [
    (PAPER_LAYERS, 32, [8, 12], [28, 32]),  # the seed's Pythia-6.9B choice
    (list(range(33)), 32, [8, 12], [31, 32]),
    ([0, 4, 8, 12, 16, 20, 24, 28, 30], 30, [8, 12], [28, 30]),  # smollm2-135m's paper grid
    ([0, 1, 2, 3, 4], 4, [1], [3, 4]),  # 1.5 is a tie between 1 and 2: the lower layer
])
def test_mid_and_late_layers(layers, num_layers, mid, late):
    assert res.mid_late_layers(layers, num_layers) == (mid, late)


def test_compare_results_lines_layers_up_by_relative_depth(reference):
    layers = [0, 4, 8, 12, 16, 20, 24, 28, 30]  # a 30-block model
    rng = np.random.default_rng(1)
    n = 50
    pref = rng.normal(size=n)
    values = rng.normal(size=(len(layers), len(METRIC_NAMES), n)) + 0.5 * pref
    table = correlation_table(values, pref, layers, METRIC_NAMES, n_bootstrap=200)
    ours = res.build_results(table, model="smollm2-135m", n_pairs=n, n_bootstrap=200, num_layers=30)
    cmp = res.compare_results(ours, reference)
    assert len(cmp) == len(layers) * len(METRIC_NAMES)
    ref_layers = np.array(PAPER_LAYERS)
    for row in cmp.itertuples():
        expected = int(ref_layers[np.argmin(np.abs(ref_layers / 32 - row.layer / 30))])
        assert row.ref_layer == expected, (row.layer, row.ref_layer)
        assert row.ref_r == reference["results"][str(expected)][row.metric]["r"]
        assert row.depth == pytest.approx(row.layer / 30, abs=1e-3)
    mapping = dict(zip(cmp["layer"], cmp["ref_layer"]))
    assert mapping[0] == 0 and mapping[30] == 32 and mapping[16] == 16


def test_compare_results_with_itself(reference):
    cmp = res.compare_results(reference, reference)
    assert len(cmp) == 45
    assert (cmp["layer"] == cmp["ref_layer"]).all() and (cmp["r"] == cmp["ref_r"]).all()
    assert cmp["same_sign"].all()
    assert cmp["both_exclude_zero"].sum() == reference["summary"]["significant_tests"]
