"""End-to-end: ``ua-book run`` on a tiny GPT-NeoX model, its failure modes, and nbval catching a moved number."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from numpy.testing import assert_allclose

from ua_helpers.inputs import extraction, models
from ua_helpers.analysis import metrics, stats
from ua_helpers.report import blocks, results
from ua_helpers.runs.rundir import NOTEBOOKS
from ua_helpers.inputs.data import load_pairs

from ua_cli import REPO, ua_book

#: Every test here runs the ua-book command (a subprocess that imports torch) or the notebooks.
pytestmark = pytest.mark.slow

N_BOOT = 1000  # the smallest count accepted without allow_low_precision


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir, small_pairs_path) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    ua_book("run", "--run-dir", str(run_dir), "-p", "model", str(tiny_model_dir), "-p", "dataset",
            str(small_pairs_path), "-p", "layers", "all", "-p", "n_bootstrap", str(N_BOOT), "-p", "batch_size", "4")
    return run_dir


def test_run_writes_a_complete_run_directory(tiny_run, small_pairs_path):
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["notebooks"] == [f"notebooks/{nb}.ipynb" for nb in NOTEBOOKS]
    for nb in NOTEBOOKS:
        executed = json.loads((tiny_run / "notebooks" / f"{nb}.ipynb").read_text())
        assert not any(o.get("output_type") == "error" for c in executed["cells"] for o in c.get("outputs", []))
    assert {"layer_correlations.png", "heatmap.png", "scatter.png"} <= {p.name for p in (tiny_run / "figures").iterdir()}
    assert manifest["dataset"]["sha256"] == load_pairs(small_pairs_path).sha256
    assert manifest["parameters"]["n_bootstrap"] == N_BOOT


def test_results_match_the_seed_schema_and_a_direct_computation(tiny_run, tiny_model_dir, small_pairs_path,
                                                                reference_results_path):
    ours = json.loads((tiny_run / "results.json").read_text())
    results.check_schema(ours)
    assert blocks.undeclared(ours) == []  # every key the run writes is one that the typed blocks declare
    published = json.loads(reference_results_path.read_text())
    assert set(published) <= set(ours)
    assert set(published["summary"]) <= set(ours["summary"])
    assert set(published["best_per_layer"][0]) <= set(ours["best_per_layer"][0])

    # The same numbers computed directly with the package, outside the notebooks.
    lm = models.load_model(str(tiny_model_dir), device="cpu")
    pairs = load_pairs(small_pairs_path)
    ext = extraction.extract(lm, pairs, "all", batch_size=4, cache=False, progress=False)
    values = metrics.compute_all_layers(ext.emb_a, ext.emb_b, k=10)
    table = stats.correlation_table(values, ext.preference, ext.layers, metrics.METRIC_NAMES, n_bootstrap=N_BOOT)
    assert ours["n_pairs"] == pairs.n_pairs == 12
    assert sorted(int(k) for k in ours["results"]) == ext.layers == list(range(lm.num_layers + 1))
    for row in table.itertuples():
        test = ours["results"][str(row.layer)][row.metric]
        assert_allclose([test["r"], test["ci_lower"], test["ci_upper"], test["p_value"]],
                        [row.r, row.ci_lower, row.ci_upper, row.p_value], rtol=1e-6, atol=1e-9)
        assert test["includes_zero"] == bool(row.includes_zero)
    assert ours["summary"]["significant_tests"] == int((~table["includes_zero"]).sum())


@pytest.mark.parametrize("args, message", [
    (["-p", "nonsense", "1"], "unknown parameter(s) nonsense"),
    (["-p", "batch_size", "many"], "batch_size must be an integer"),
    (["-p", "layers", "0,4,99"], "layer 99 is out of range"),
    (["-p", "dataset", "/no/such/pairs.json"], "unknown dataset '/no/such/pairs.json'"),
    (["-p", "model", "no-such-org/no-such-model"], "no-such-org/no-such-model"),
    (["-p", "n_bootstrap", "1"], "n_bootstrap must be at least 1,000; got 1 "),
    (["-p", "n_permutations", "3000000"], "n_permutations must be at most 1,000,000"),
    (["-p", "device", "cuda:banana"], "device must be 'auto', 'cpu', 'cuda', 'cuda:N'"),
])
def test_bad_parameters_fail_fast_and_write_nothing(tmp_path, args, message):
    run_dir = tmp_path / "run"
    # Refused before any notebook runs: nothing is written (the timeout only guards against hanging).
    proc = ua_book("run", "--run-dir", str(run_dir), *args, check=False, timeout=300)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not run_dir.exists()


def test_a_bad_dataset_file_names_the_problem(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"cat": {"pairs": [["a", "b"], ["c", ""], ["e", "f"]]}}))
    proc = ua_book("run", "--run-dir", str(tmp_path / "run"), "-p", "dataset", str(bad), check=False)
    assert proc.returncode == 2
    assert "category 'cat', pair 1" in proc.stderr


def test_too_few_pairs_fail_before_any_notebook(tmp_path, tiny_model_dir):
    pairs = tmp_path / "three.json"
    pairs.write_text(json.dumps({"c": {"pairs": [["A long enough statement", "Its partner"],
                                                 ["Another one here", "And B"], ["A third statement", "And C"]]}}))
    run_dir = tmp_path / "run"
    proc = ua_book("run", "--run-dir", str(run_dir), "-p", "model", str(tiny_model_dir), "-p", "dataset",
                   str(pairs), check=False)
    assert proc.returncode == 2 and "dataset: 3 pairs; the analysis needs at least 4" in proc.stderr
    assert not run_dir.exists()


def test_a_one_token_statement_fails_before_any_notebook(tmp_path, tiny_model_dir):
    # "!" is one token for the tiny tokenizer: nothing can be pooled over tokens 1..T-1 of it.
    pairs = tmp_path / "short.json"
    pairs.write_text(json.dumps({"c": {"pairs": [["A long enough statement", "!"], ["Another one here", "And B"],
                                                 ["A third statement", "Its partner"],
                                                 ["A fourth statement", "And its partner"]]}}))
    run_dir = tmp_path / "run"
    proc = ua_book("run", "--run-dir", str(run_dir), "-p", "model", str(tiny_model_dir), "-p", "dataset",
                   str(pairs), check=False)
    assert proc.returncode == 2 and "dataset: statement B of pair 0" in proc.stderr
    assert not run_dir.exists()


def test_a_failing_notebook_stops_the_run_and_leaves_it_marked_failed(tmp_path, tiny_model_dir, small_pairs_path):
    # Weights that give NaN logits pass every check made before the notebooks (shape, tokenizer, layers) and
    # fail in notebook 02, whose preference check refuses a non-finite NLL.
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    bad = tmp_path / "nan-model"
    shutil.copytree(tiny_model_dir, bad)
    model = AutoModelForCausalLM.from_pretrained(bad)
    with torch.no_grad():
        model.get_output_embeddings().weight.fill_(float("nan"))
    model.save_pretrained(bad)
    run_dir = tmp_path / "run"
    proc = ua_book("run", "--run-dir", str(run_dir), "-p", "model", str(bad), "-p", "dataset",
                   str(small_pairs_path), check=False)
    assert proc.returncode == 1
    assert "02_extraction: cell" in proc.stderr and "not finite" in proc.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "02_extraction" in manifest["error"]
    assert not (run_dir / "results.json").exists()
    assert not (run_dir / "notebooks" / "03_metrics.ipynb").exists()


def _checked_output(nb: dict) -> tuple[int, dict]:
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and "nbval-check-output" in cell["metadata"].get("tags", []):
            return i, cell["outputs"][0]
    raise AssertionError("no cell tagged nbval-check-output")


def test_nbval_fails_when_a_checked_number_changes(tmp_path):
    """The stored notebook passes nbval; the same notebook with one printed r changed fails it."""
    source = REPO / "notebooks" / "04_correlation.ipynb"
    shutil.copy(source, tmp_path / "original.ipynb")
    nb = json.loads(source.read_text())
    _, output = _checked_output(nb)
    text = "".join(output["text"])
    first_r = re.search(r"[+-]0\.\d\d", text)
    assert first_r, text
    changed = first_r.group(0)[:-1] + str((int(first_r.group(0)[-1]) + 1) % 10)
    output["text"] = text[: first_r.start()] + changed + text[first_r.end():]
    (tmp_path / "changed.ipynb").write_text(json.dumps(nb))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         "--nbval-sanitize-with", str(REPO / "tests" / "nbval-sanitize.cfg"), "-q",
         "original.ipynb", "changed.ipynb"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    summary = proc.stdout.strip().splitlines()[-1]
    n_cells = sum(c["cell_type"] == "code" for c in nb["cells"])
    assert re.search(rf"\b1 failed, {2 * n_cells - 1} passed\b", summary), proc.stdout[-3000:]
    assert "Cell outputs differ" in proc.stdout and changed in proc.stdout


@pytest.mark.parametrize("params", [("representation", "random-tokens"), ("representation", "token-embeddings"),
                                    ("prefix", "bos")])
def test_a_control_run_completes_and_records_what_it_replaced(tmp_path, tiny_model_dir, small_pairs_path, params):
    """``-p representation random-tokens|token-embeddings`` and ``-p prefix bos`` are complete runs: every notebook,
    the controls block, the ladder, and an extraction that says which geometry and prefix it holds."""
    run_dir = tmp_path / "control"
    ua_book("run", "--run-dir", str(run_dir), "-p", "model", str(tiny_model_dir), "-p", "dataset",
            str(small_pairs_path), "-p", "layers", "all", "-p", "n_bootstrap", str(N_BOOT), "-p", "batch_size", "4",
            "-p", *params)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    ours = results.load_results(run_dir / "results.json")  # schema-checked
    assert blocks.undeclared(ours) == []
    name, value = params
    assert ours["controls"][name] == value and ours["extraction"][name] == value
    assert [lv["level"] for lv in ours["evidence"]["levels"]] == list(range(7))  # rung 6: "beyond lexical"
    if params == ("representation", "random-tokens"):  # a model-free geometry never reaches the top rung
        assert all(t["level"] < 6 for t in ours["evidence"]["tests"])
