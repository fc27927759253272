"""The notebook-facing stages: a later stage reuses an earlier one's extraction without loading the model."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ua_helpers import pipeline
from ua_helpers.config import ParameterError, RunConfig


@pytest.fixture
def cfg(tiny_model_dir, small_pairs_path, tmp_path):
    for cached in (pipeline._load, pipeline.get_tokenizer, pipeline._extraction, pipeline.get_correlations,
                   pipeline.get_extended):
        cached.cache_clear()
    yield pipeline.configure(model=str(tiny_model_dir), dataset=str(small_pairs_path), layers="all",
                             n_bootstrap=200, n_permutations=200, allow_low_precision=True, batch_size=4,
                             run_dir=str(tmp_path / "run"))
    for cached in (pipeline._load, pipeline.get_tokenizer, pipeline._extraction, pipeline.get_correlations,
                   pipeline.get_extended):
        cached.cache_clear()


def test_a_new_kernel_finds_the_extraction_without_loading_the_model(cfg, monkeypatch):
    first = pipeline.get_extraction(cfg, progress=False)
    pipeline._extraction.cache_clear()  # as a fresh notebook kernel would be
    pipeline._load.cache_clear()

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although the extraction is cached")

    monkeypatch.setattr(pipeline.models, "load_model", no_model)
    again = pipeline.get_extraction(cfg, progress=False)
    assert again.meta["cache_key"] == first.meta["cache_key"]
    assert_allclose(again.emb_a, first.emb_a)
    assert_allclose(again.preference, first.preference)


def test_results_carry_the_seed_schema_the_dataset_and_the_extended_statistics(cfg):
    res = pipeline.build_run_results(cfg)
    assert res["dataset"]["sha256"] == pipeline.get_pairs(cfg.dataset).sha256
    assert res["parameters"]["n_permutations"] == 200
    assert res["extended"]["summary"]["n_tests"] == len(res["results"]) * len(res["metrics_tested"])
    path = pipeline.save_results(cfg, res)
    assert path == cfg.run_path / "results.json" and path.is_file()
    table = pipeline.get_correlations(cfg)
    assert res["summary"]["significant_tests"] == int((~table["includes_zero"]).sum())
    counts = pipeline.survival_counts(cfg)
    assert counts["tests passing"].iloc[0] == res["summary"]["significant_tests"]


def test_seed_path_check_agrees_on_the_tiny_model(cfg):
    check = pipeline.seed_path_check(cfg, n_sample=3)
    assert len(check) == 3
    assert pipeline.seed_path_agrees(cfg, check)
    assert np.all(check["max rel. diff. embedding"] <= 1e-4)


@pytest.mark.parametrize("params, message", [
    ({"layers": "0,x"}, "layers must be"),
    ({"ci_level": 1.5}, "ci_level must be in (0, 1)"),
    ({"n_permutations": 0}, "n_permutations must be at least 1"),
    ({"dtype": "float8"}, "dtype must be one of"),
    ({"pooling": "max"}, "pooling must be one of"),
    ({"device": "tpu"}, "device must be"),
    ({"modle": "x"}, "unknown parameter(s) modle"),
])
def test_run_config_names_the_bad_parameter(params, message):
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig.from_mapping(params)


def test_layers_accept_the_notebook_and_command_line_forms():
    assert RunConfig.from_mapping({"layers": "[8, 0, 8]"}).layers == (0, 8)
    assert RunConfig.from_mapping({"layers": "0,4"}).layers == (0, 4)
    assert RunConfig.from_mapping({"layers": [4, 0]}).layers == (0, 4)
    assert RunConfig.from_mapping({"layers": "ALL"}).layers == "all"
    assert RunConfig.from_mapping({"revision": "none"}).revision is None


def test_setup_reads_shape_and_tokenizer_without_the_weights(cfg, tiny_lm, monkeypatch, small_pairs):
    from ua_helpers import models

    assert models.model_shape(cfg.model) == (tiny_lm.num_layers, tiny_lm.d_model) == (4, 64)
    tokenizer = models.load_tokenizer(cfg.model)
    assert [tokenizer(t)["input_ids"] for t in small_pairs.stmt_a] == \
        [tiny_lm.tokenizer(t)["input_ids"] for t in small_pairs.stmt_a]

    def no_model(*args, **kwargs):
        raise AssertionError("the setup stage loaded the model's weights")

    monkeypatch.setattr(pipeline.models, "load_model", no_model)
    card = pipeline.resolved(cfg)
    assert card.loc["num_layers (blocks)", "value"] == "4"
    assert card.loc["layers (hidden_states indices)", "value"] == "[0, 1, 2, 3, 4]"
    lengths = pipeline.token_lengths(cfg)
    assert list(lengths.columns) == ["tokens_a", "tokens_b", "difference"]
    with pytest.raises(models.ModelLoadError, match="no such file"):
        models.load_tokenizer("/no/such/model")
