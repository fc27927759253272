"""Each of notebooks 2-6 runs alone: papermill executes it into a fresh run folder with an empty cache, and it
recomputes what earlier notebooks would have made (the extraction, results.json) through the same engine calls."""
from __future__ import annotations

import json
import os

import pytest

from ua_helpers.runs.rundir import NOTEBOOKS
from ua_cli import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", NOTEBOOKS[1:])
def test_a_notebook_runs_alone_in_a_fresh_run_folder_and_cache(name, tmp_path, tiny_model_dir, small_pairs_path,
                                                               monkeypatch):
    import papermill as pm

    monkeypatch.setenv("UA_CACHE_DIR", str(tmp_path / "empty-cache"))
    run_dir = tmp_path / "run"
    out = tmp_path / f"{name}.ipynb"
    pm.execute_notebook(
        str(REPO / "notebooks" / f"{name}.ipynb"), str(out), kernel_name="python3", progress_bar=False,
        cwd=str(tmp_path),
        parameters={"model": str(tiny_model_dir), "dataset": str(small_pairs_path), "layers": "all",
                    "n_bootstrap": 200, "n_permutations": 200, "n_binnings": 10, "allow_low_precision": True,
                    "batch_size": 4, "run_dir": str(run_dir)})
    executed = json.loads(out.read_text())
    assert not [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert os.listdir(tmp_path / "empty-cache" / "extractions")  # it made the extraction itself
    if name in ("04_correlation", "05_visualization", "06_summary"):  # 4 writes results.json; 5 and 6
        written = json.loads((run_dir / "results.json").read_text())    # recompute it where it is missing
        assert {"evidence", "category_level", "option_a_bins"} <= set(written)
