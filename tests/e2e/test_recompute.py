"""No hidden recomputation: a notebook run alone without ``results.json`` executes notebook 4 itself."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ua_helpers.report import results
from ua_helpers.runs import pipeline, rundir

pytestmark = pytest.mark.slow


def test_recompute_executes_notebook_4_through_papermill(tiny_model_dir, small_pairs_path, tmp_path):
    cfg = pipeline.configure({"model": str(tiny_model_dir), "dataset": str(small_pairs_path), "layers": "all",
                              "n_bootstrap": 200, "n_permutations": 200, "n_binnings": 20,
                              "allow_low_precision": True, "batch_size": 4, "run_dir": str(tmp_path / "run"),
                              "np": np})
    with pytest.raises(FileNotFoundError, match="04_correlation"):
        pipeline.load_results(cfg)
    made = pipeline.load_results(cfg, recompute=True)
    executed = cfg.run_path / "notebooks" / "04_correlation.ipynb"
    assert executed.is_file()  # the notebook itself ran, not a copy of its steps
    cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    assert any("evidence.evidence_block(" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert not list(executed.parent.glob(".*running*"))  # no partial copy left behind
    results.check_schema(made)
    assert made["n_pairs"] == json.loads((cfg.run_path / rundir.RESULTS).read_text())["n_pairs"]
    assert made["parameters"]["n_bootstrap"] == 200 and "evidence" in made and "controls" in made
    again = pipeline.load_results(cfg)
    assert again["timestamp"] == made["timestamp"]  # read back, not recomputed


def test_a_failing_notebook_4_leaves_no_results_and_names_the_notebook(tiny_model_dir, tmp_path):
    cfg = pipeline.configure({"model": str(tiny_model_dir), "dataset": str(tmp_path / "missing.json"),
                              "allow_low_precision": True, "run_dir": str(tmp_path / "run")})
    with pytest.raises(rundir.RunError, match="04_correlation"):
        pipeline.load_results(cfg, recompute=True)
    assert not (cfg.run_path / rundir.RESULTS).exists()
    assert not list((cfg.run_path / "notebooks").glob("*.ipynb"))
