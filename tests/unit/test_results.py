"""The results file: a superset of the seed's schema, strict JSON, the seed's best-metric loop, comparisons."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import seed_reference as seed
from ua_helpers.report import results as res
from ua_helpers._io import to_jsonable
from ua_helpers.analysis.metrics import METRIC_NAMES
from ua_helpers.analysis.stats import correlation_table

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
    (lambda d: d.pop("summary"), r"results: \(the top level\) lacks the required key 'summary'"),
    (lambda d: d.pop("best_per_layer"), "'best_per_layer'"),
    (lambda d: d["results"]["8"]["within_pair_sim"].pop("ci_lower"),
     r"results\['8'\]\.within_pair_sim lacks the required key 'ci_lower'"),
    (lambda d: d["summary"].pop("late_layer_significant"), "summary lacks the required key 'late_layer_significant'"),
])
def test_check_schema_rejects_missing_keys(reference, damage, match):
    broken = json.loads(json.dumps(reference))
    damage(broken)
    with pytest.raises(ValueError, match=match):
        res.check_schema(broken)


HOSTILE_TAG = "<img src=x onerror=alert(1)>"


@pytest.mark.parametrize("damage, match", [
    (lambda d: d["summary"].update(significant_tests=HOSTILE_TAG), r"summary\.significant_tests = .* expected integer"),
    (lambda d: d["summary"].update(significant_tests=42), r"summary\.significant_tests = 42 but the results hold 33"),
    (lambda d: d["summary"].update(total_tests=-1), r"summary\.total_tests = -1 is invalid: must be at least 0"),
    (lambda d: d.update(n_pairs=2.5), r"n_pairs = 2\.5 is invalid: expected integer"),
    (lambda d: d["results"]["8"]["within_pair_sim"].update(r=1e308), r"within_pair_sim\.r = 1e\+308 .*at most 1"),
    (lambda d: d["results"]["8"]["within_pair_sim"].update(r="abc"), r"within_pair_sim\.r = 'abc' .*expected number"),
    (lambda d: d["results"]["8"]["within_pair_sim"].update(r=float("nan")), r"within_pair_sim\.r is nan.*finite"),
    (lambda d: d["results"]["8"]["within_pair_sim"].update(ci_upper=float("inf")), r"ci_upper is inf"),
    (lambda d: d["results"]["8"]["within_pair_sim"].update(p_value=1.5), r"p_value = 1\.5 .*at most 1"),
    (lambda d: d["results"]["8"]["within_pair_sim"].update(ci_lower=-0.1, ci_upper=-0.2),
     r"within_pair_sim\.ci_lower = -0\.1 exceeds its upper bound -0\.2"),
    (lambda d: d["results"]["8"]["within_pair_sim"].update(includes_zero=True), "contradicts its CI"),
    (lambda d: d["results"].update({"8<b>": d["results"]["8"]}), r"results.*must match"),
    (lambda d: d["metrics_tested"].append(HOSTILE_TAG), r"metrics_tested\[5\] = .* must match"),
    (lambda d: d["best_per_layer"][0].update(best_metric=HOSTILE_TAG), r"best_per_layer\[0\]\.best_metric"),
    (lambda d: d.update(category_level={"layer_results": {"8": {"r": 2.0}}}),
     r"category_level\.layer_results\['8'\]\.r = 2\.0 is invalid: must be at most 1"),
    (lambda d: d.update(option_a_bins={"binnings": [{"p_value": HOSTILE_TAG}]}),
     r"option_a_bins\.binnings\[0\]\.p_value = '<img"),
])
def test_check_schema_validates_numbers_and_names(reference, damage, match):
    """A string, an out-of-range or a non-finite number in a numeric field, or markup where a name belongs, is
    refused with the file and the field named."""
    broken = json.loads(json.dumps(reference))
    damage(broken)
    with pytest.raises(ValueError, match=match):
        res.check_schema(broken, source="ref.json")
    with pytest.raises(ValueError, match="^ref.json: "):
        res.check_schema(broken, source="ref.json")


def test_load_results_names_the_file_for_bad_and_deep_files(reference, tmp_path):
    broken = json.loads(json.dumps(reference))
    broken["summary"]["significant_tests"] = "abc"
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"ref\.json: summary\.significant_tests = 'abc'"):
        res.load_results(path)
    path.write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)  # beyond Python's recursion limit
    with pytest.raises(ValueError, match="nested deeper"):
        res.load_results(path)
    deep = json.loads(json.dumps(reference))
    deep["extra"] = json.loads("[" * 40 + "]" * 40)
    path.write_text(json.dumps(deep))
    with pytest.raises(ValueError, match=r"ref\.json: extra(\[0\])+ is nested deeper than 32"):
        res.load_results(path)


def test_a_removed_block_is_told_apart_from_an_older_run(random_table):
    """A run of schema version 2 always holds ``evidence``: without it the read fails naming it. A version-1 run
    without it was made before the block, and :func:`require_block` says so."""
    full = _build(random_table, extra={"dataset": {"name": "d", "sha256": "0" * 64, "n_pairs": 40},
                                       "parameters": {}, "model_info": {}, "extended": {"summary": {}, "tests": []},
                                       "evidence": {"levels": [], "tests": [], "massive_activations": {}},
                                       "category_level": {}, "option_a_bins": {}})
    full["schema_version"] = res.SCHEMA_VERSION
    res.check_schema(full)
    removed = {k: v for k, v in full.items() if k != "evidence"}
    with pytest.raises(ValueError, match=r"lacks the required key 'evidence' \(results of schema version 2 always "
                                         r"hold it: it was removed\)"):
        res.check_schema(removed)
    older = {**removed, "schema_version": 1}
    res.check_schema(older)
    with pytest.raises(ValueError, match="made before the 'evidence' block existed"):
        res.require_block(older, "evidence")
    with pytest.raises(ValueError, match="made before the 'controls' block"):
        res.require_block(full, "controls")
    with pytest.raises(ValueError, match="'controls'.*removed"):
        res.check_schema({**full, "schema_version": 3})
    controls = {"schema_version": 1, "representation": "hidden-states", "prefix": "none",
                "random_tokens": {"seeds": [0, 1], "tests": [{"layer": 0, "metric": "a", "r_mean": 0.1,
                                                              "r_min": 0.0, "r_max": 0.2, "r": [0.1, 0.1]}]}}
    res.check_schema({**full, "schema_version": 3, "controls": controls})
    controls["random_tokens"]["tests"][0]["r_max"] = 3.0
    with pytest.raises(ValueError, match=r"controls\.random_tokens\.tests\[0\]\.r_max = 3\.0"):
        res.check_schema({**full, "schema_version": 3, "controls": controls})


def test_write_results_validates_before_writing(random_table, tmp_path):
    out = _build(random_table)
    out["summary"]["significant_tests"] = -3
    with pytest.raises(ValueError, match="significant_tests"):
        res.write_results(tmp_path / "results.json", out)
    assert not (tmp_path / "results.json").exists()


def test_the_schema_file_ships_with_the_package():
    import importlib.resources

    shipped = importlib.resources.files("ua_helpers.report") / "results.schema.json"
    schema = json.loads(shipped.read_text(encoding="utf-8"))
    assert set(res.SEED_KEYS) <= set(schema["required"])


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


def test_model_record_prefers_the_manifest_then_model_info_then_the_name():
    from ua_helpers.report.results import model_record

    res = {"model": "m", "model_info": {"name": "m", "dtype": "float32"}}
    assert model_record(res, {"model": {"name": "m", "dtype": "bfloat16"}})["dtype"] == "bfloat16"
    assert model_record(res, {})["dtype"] == "float32"
    assert model_record({"model": "m"}) == {"name": "m"}
