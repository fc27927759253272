"""The typed blocks of results.json: they declare every key that the code writes and that the schema names, and
:func:`blocks.undeclared` reports a departure with its path. (tests/e2e/test_run.py checks whole runs.)"""
from __future__ import annotations

import copy
import json
import typing

import numpy as np
import pytest
from evidence_data import evidence_case
from inference_data import make_data, run_extended

from ua_helpers.analysis import levels
from ua_helpers.inputs import published
from ua_helpers.report import blocks, results


def published_results() -> dict:
    return json.loads(published.read_bytes(published.PAIR_LEVEL))


def test_the_published_file_reads_as_typed_results():
    res = published_results()
    assert blocks.undeclared(res) == [] and blocks.undeclared(res, blocks.SeedResults) == []
    assert results.from_json(res) is res
    assert results.to_json({**res, "n_pairs": np.int64(230), "seed": float("nan")})["seed"] is None


def test_undeclared_names_each_extra_or_missing_key_with_its_path():
    res = published_results()
    res["summary"]["extra"] = 1
    del res["results"]["8"]["cross_centroid"]["p_value"]
    res["evidence"] = {"levels": [], "tests": [{"layer": 0, "metric": "m"}], "massive_activations": {}}
    res["mystery"] = True
    found = blocks.undeclared(res)
    assert "results: undeclared key 'mystery'" in found
    assert "results.summary: undeclared key 'extra'" in found
    assert "results.results['8']['cross_centroid']: lacks the required key 'p_value'" in found
    assert "results.evidence.tests[0]: lacks the required key 'level'" in found
    assert "results.evidence: lacks the required key 'criteria'" in found
    assert "results.evidence.massive_activations: lacks the required key 'threshold'" in found
    assert not [f for f in found if "extended" in f]  # a block a file does not hold is not asked for


def test_from_json_validates_against_the_schema_first():
    res = published_results()
    del res["caveat"]
    with pytest.raises(ValueError, match="lacks the required key 'caveat'"):
        results.from_json(res, source="x.json")


def test_the_blocks_the_analysis_builds_are_declared():
    """The extended tests, the evidence ladder and both group levels, as the package builds them."""
    ext = run_extended(make_data(), n_bootstrap=200, n_permutations=200).to_json()
    assert blocks.undeclared(ext, blocks.Extended, "extended") == []
    ev = evidence_case()["results"]["evidence"]
    assert blocks.undeclared(ev, blocks.Evidence, "evidence") == []
    rng = np.random.default_rng(0)
    emb_a, emb_b = rng.normal(size=(2, 40, 6)) + 1.0, rng.normal(size=(2, 40, 6)) + 1.2
    pref, cats = rng.normal(size=40), ["p", "q", "r", "s"] * 10
    cat = levels.category_level(emb_a, emb_b, pref, cats, [0, 3], n_bootstrap=100, seed=1)
    assert blocks.undeclared(json.loads(json.dumps(results.to_json(cat))), blocks.CategoryLevel, "category") == []
    bins = levels.option_a_bins(emb_a, emb_b, pref, [0, 3], n_bins=5, n_binnings=3, k_values=(4,),
                                n_bootstrap=100, seed=1)
    assert blocks.undeclared(json.loads(json.dumps(results.to_json(bins))), blocks.OptionABins, "bins") == []


def _schema_objects(node, path=""):
    """Every object in the schema that declares its ``properties``, with its path (``$ref``s not followed)."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            yield path, node
        for key, sub in node.items():
            yield from _schema_objects(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _schema_objects(sub, f"{path}/{i}")


#: Where the schema declares an object's keys, the type that declares them in Python.
SCHEMA_TYPES = {
    "": blocks.Results,
    "/properties/summary": blocks.SeedSummary,
    "/properties/best_per_layer/items": blocks.BestLayer,
    "/properties/extended": blocks.Extended,
    "/properties/evidence": blocks.Evidence,
    "/properties/evidence/properties/levels/items": blocks.EvidenceLevel,
    "/properties/evidence/properties/massive_activations": blocks.MassiveActivations,
    "/properties/evidence/properties/massive_activations/properties/statements/items": blocks.MassiveStatement,
    "/properties/controls": blocks.Controls,
    "/properties/controls/properties/random_tokens": blocks.RandomTokens,
    "/properties/controls/properties/shuffled_pairing": blocks.ShuffledPairing,
    "/properties/controls/properties/lexical": blocks.Lexical,
    "/properties/dataset": blocks.Dataset,
    "/properties/preference": blocks.Preference,
    "/properties/comparison": blocks.Comparison,
    "/properties/comparison/properties/sign_agreement_null": blocks.SignAgreementNull,
    "/properties/comparison/properties/sign_agreement_null/properties/tests/items": blocks.SignAgreementTest,
    "/properties/comparison/properties/sign_agreement_null/properties/reference": blocks.ComparisonReference,
    "/$defs/seed_test": blocks.SeedTest,
}
#: The schema's common part of every test row (layer, metric, level): each block's row type declares it.
UNTYPED = {"/$defs/test_row"}


def test_every_key_the_schema_declares_is_declared_by_a_type():
    schema = json.loads(results.SCHEMA_FILE.read_text(encoding="utf-8"))
    objects = dict(_schema_objects(schema))
    assert set(objects) == set(SCHEMA_TYPES) | UNTYPED, "a new object in the schema needs its type here"
    for path, tp in SCHEMA_TYPES.items():
        node = objects[path]
        declared = set(typing.get_type_hints(tp))
        assert set(node["properties"]) <= declared, (path, set(node["properties"]) - declared)
        # what the schema requires, the type requires (the seed's keys and the blocks' own required keys)
        assert set(node.get("required", [])) <= tp.__required_keys__, path


def test_a_copy_with_every_block_is_declared_key_for_key():
    """The evidence block inside a results dict is checked through the whole-file type."""
    res = published_results()
    res["evidence"] = copy.deepcopy(evidence_case()["results"]["evidence"])
    assert blocks.undeclared(res) == []
    res["evidence"]["tests"][3]["spearman"] = 0.1  # a misspelt quantity
    assert blocks.undeclared(res) == ["results.evidence.tests[3]: undeclared key 'spearman'"]
