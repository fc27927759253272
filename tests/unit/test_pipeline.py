"""The notebooks' glue: parameters from a notebook's namespace, the cached extraction found without the model,
results recomputed where a run folder lacks them, and one parameters cell shared by the six notebooks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from ua_helpers.runs import config, pipeline, rundir
from ua_helpers.inputs import extraction
from ua_helpers.report import results
from ua_helpers.runs.config import ParameterError, RunConfig

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture
def cfg(tiny_model_dir, small_pairs_path, tmp_path):
    namespace = {"model": str(tiny_model_dir), "dataset": str(small_pairs_path), "layers": "all",
                 "n_bootstrap": 200, "n_permutations": 200, "n_binnings": 20, "allow_low_precision": True,
                 "batch_size": 4, "run_dir": str(tmp_path / "run"),
                 "np": np, "json": json}  # a notebook's other globals are not parameters
    return pipeline.configure(namespace)


def test_configure_takes_the_parameters_from_a_namespace_and_makes_the_run_folder(cfg, tmp_path):
    assert cfg.layers == "all" and cfg.n_bootstrap == 200 and cfg.allow_low_precision is True
    assert (tmp_path / "run" / "figures").is_dir()
    with pytest.raises(ParameterError, match="n_bootstrap must be at least 1,000"):
        pipeline.configure({"n_bootstrap": 200, "run_dir": str(tmp_path / "other")})


def test_a_later_notebook_finds_the_extraction_without_loading_the_model(cfg, tiny_lm, monkeypatch):
    pairs = pipeline.load_pairs(cfg)
    first = extraction.extract(tiny_lm, pairs, layers=cfg.layers, batch_size=cfg.batch_size, progress=False)
    key = extraction.cache_key_for(cfg.model, pairs, revision=cfg.revision, dtype=cfg.dtype, device=cfg.device,
                                   layers=cfg.layers, pooling=cfg.pooling)
    assert key == first.meta["cache_key"]

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although the extraction is cached")

    monkeypatch.setattr(pipeline.models, "load_model", no_model)
    again = pipeline.load_extraction(cfg, pairs)
    assert again.meta["cache_key"] == key
    assert_array_equal(again.emb_a, first.emb_a)
    assert_array_equal(again.preference, first.preference)


def test_a_missing_results_file_is_named_with_the_way_to_make_it(cfg):
    """No hidden recomputation: a notebook that needs results.json and finds none says which notebook writes it."""
    path = cfg.run_path / rundir.RESULTS
    assert not path.exists()
    with pytest.raises(FileNotFoundError, match=r"results\.json not found: notebook 04_correlation writes it.*"
                                               r"recompute=True"):
        pipeline.load_results(cfg)
    assert not path.exists()


def test_present_results_are_read_back_checked(cfg, monkeypatch):
    published = results.load_results("published")
    results.write_results(cfg.run_path / rundir.RESULTS, published)
    monkeypatch.setattr(rundir, "execute_one", lambda *a, **k: pytest.fail("notebook 4 executed although present"))
    assert pipeline.load_results(cfg, recompute=True) == published
    (cfg.run_path / rundir.RESULTS).write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="results.json"):
        pipeline.load_results(cfg)


def test_recompute_executes_notebook_4_itself(cfg, monkeypatch):
    """recompute=True hands the run's configuration to the notebook runner, then reads what the notebook wrote."""
    published = results.load_results("published")
    calls = []

    def fake_execute(name, run_cfg):
        calls.append((name, run_cfg))
        results.write_results(run_cfg.run_path / rundir.RESULTS, published)

    monkeypatch.setattr(rundir, "execute_one", fake_execute)
    assert pipeline.load_results(cfg, recompute=True) == published
    assert calls == [("04_correlation", cfg)]


def test_a_constant_preference_stops_the_extraction_notebook(small_pairs):
    ext = extraction.Extraction(nll_a=np.ones(small_pairs.n_pairs), nll_b=np.ones(small_pairs.n_pairs),
                                n_tokens_a=np.full(small_pairs.n_pairs, 3), n_tokens_b=np.full(small_pairs.n_pairs, 3),
                                emb_a=np.zeros((1, small_pairs.n_pairs, 2)), emb_b=np.zeros((1, small_pairs.n_pairs, 2)),
                                layers=[0])
    with pytest.raises(ValueError, match="constant"):
        extraction.check_preference(ext, small_pairs)
    ext.nll_b[3] = np.nan
    with pytest.raises(ValueError, match="pair 3"):
        extraction.check_preference(ext, small_pairs)


def _cells(name: str) -> list[dict]:
    return json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("name", rundir.NOTEBOOKS)
def test_every_notebook_carries_the_one_parameters_cell_and_configures_from_it(name):
    cells = _cells(name)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected one cell tagged 'parameters'"
    assert "".join(tagged[0]["source"]) == config.parameters_cell(), (
        f"{name}'s parameters cell differs from RunConfig: run `make sync-parameters`")
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert sum("pipeline.configure(globals())" in src for src in code) == 1


def test_the_parameters_cell_assigns_every_default_of_run_config():
    namespace: dict = {}
    exec(config.parameters_cell(), namespace)
    assert RunConfig.from_mapping({k: namespace[k] for k in RunConfig.parameter_names()}) == RunConfig()


def test_sync_rewrites_a_stale_parameters_cell(tmp_path):
    stale = json.loads((NOTEBOOKS / "03_metrics.ipynb").read_text(encoding="utf-8"))
    for cell in stale["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cell["source"] = "model = 'x'\n"
    path = tmp_path / "03_metrics.ipynb"
    path.write_text(json.dumps(stale), encoding="utf-8")
    assert pipeline.sync_parameters_cells([path]) == [path]
    tagged = [c for c in json.loads(path.read_text())["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert "".join(tagged[0]["source"]) == config.parameters_cell()
    assert pipeline.sync_parameters_cells([path]) == []  # nothing left to change
