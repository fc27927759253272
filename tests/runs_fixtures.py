"""Hand-made run directories for tests that need a finished run but no model: random data written the way
``ua-book run`` writes it (results.json, manifest.json, six notebooks, sealed), and small edits to such a run.

``make_run`` and ``add_evidence`` serve the book's page tests (unit) and its builds (e2e); ``complete_run`` is the
smallest run folder the run-directory tests need (a published results file and empty notebooks).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd

from ua_helpers import book
from ua_helpers.analysis import metrics, stats
from ua_helpers.inputs import data, published
from ua_helpers.report import findings, results, show
from ua_helpers.runs import rundir

#: The notebooks' titles, in run order (the book's page titles of the notebooks).
NOTEBOOK_TITLES = ("1. Setup", "2. Extraction", "3. Metrics", "4. Correlation", "5. Visualization", "6. Summary")


def make_run(path: Path, *, dataset: str = "replication-230", seed: int = 0, n_pairs: int = 40,
             status: str = "complete", model: str = "tiny-random", source: str | None = None) -> Path:
    """Write a run directory the way ``ua-book run`` does, from random data (for tests that need no model)."""
    rng = np.random.default_rng(seed)
    layers = [0, 2, 4]
    preference = rng.normal(size=n_pairs)
    values = rng.normal(size=(len(layers), len(metrics.METRIC_NAMES), n_pairs)) + 0.5 * preference
    table = stats.correlation_table(values, preference, layers, metrics.METRIC_NAMES, n_bootstrap=200)
    sha = data.UA230_SHA256 if dataset == "ua-230" else "0" * 64
    parameters = {"model": model, "revision": None, "dtype": "float32", "device": "cpu",
                  "dataset": dataset, "layers": layers, "pooling": "mean", "batch_size": 8, "n_bootstrap": 200,
                  "ci_level": 0.95, "seed": 42, "knn_k": 10, "run_dir": str(path), "reference_results": None}
    ds = {"name": dataset, "source": source or f"test:{dataset}", "sha256": sha, "n_pairs": n_pairs}
    res = results.build_results(table, model=model, n_pairs=n_pairs, n_bootstrap=200, num_layers=4,
                                extra={"dataset": ds, "parameters": parameters})
    results.write_results(path / "results.json", res)
    for name, title in zip(book.NOTEBOOKS, NOTEBOOK_TITLES):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
        cell = nbformat.v4.new_code_cell("print(1 + 1)", execution_count=1)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}: a test page\n\nSome math: $r^2$."), cell]
        (path / "notebooks").mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path / "notebooks" / f"{name}.ipynb")
    manifest = {"status": status, "parameters": parameters,
                "model": {"name": model, "revision": None, "dtype": "float32", "device": "cpu",
                          "num_layers": 4, "d_model": 8},
                "dataset": ds, "versions": {"ua_helpers": "test"}, "started": "2025-01-01T00:00:00",
                "finished": "2025-01-01T00:00:01", "notebooks": [f"notebooks/{n}.ipynb" for n in book.NOTEBOOKS]}
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    rundir.seal(path)  # the SHA-256 of its files, as a run records them last
    return path


def edit_results(path: Path, edit) -> Path:
    """Apply ``edit`` to the run's results.json (a dict, in place) and seal the run again."""
    res = json.loads((path / "results.json").read_text())
    edit(res)
    (path / "results.json").write_text(json.dumps(res))
    rundir.seal(path)
    return path


def add_evidence(path: Path, seed: int = 0) -> Path:
    """Give a hand-made run the seed results and the evidence block of one consistent random analysis."""
    from inference_data import evidence_of

    from ua_helpers.analysis import controls, inference

    res = json.loads((path / "results.json").read_text())
    layers, names, n = res["layers"], list(metrics.METRIC_NAMES), res["n_pairs"]
    rng = np.random.default_rng(seed)
    emb_a, emb_b = rng.normal(size=(2, len(layers), n, 12)) + 2.0
    values = metrics.compute_all_layers(emb_a, emb_b)
    preference = 0.8 * values[1, 4] / values[1, 4].std() + rng.normal(size=n)
    tok_a = rng.integers(5, 20, n)
    tok_b = tok_a + rng.integers(-3, 4, n)
    ext = inference.extended_analysis(values, preference, layers, names, n_tokens_a=tok_a, n_tokens_b=tok_b,
                                      len_a=5 * tok_a, len_b=5 * tok_b + 1, categories=["x", "y"] * (n // 2),
                                      n_bootstrap=300, n_permutations=300, seed=1)
    covariates = {"tokens": (tok_b - tok_a)[:, None].astype(float)}
    lexical = controls.lexical_controls(values, preference, layers, names, covariates,
                                        rng.normal(size=(len(names), n)))
    res["evidence"] = evidence_of(values, preference, emb_a, emb_b, layers, names, ext.tests,
                                  controls={"lexical": {"tests": lexical.to_dict(orient="records")}})
    res["results"] = {str(l): {row.metric: {"r": row.r, "ci_lower": row.ci_lower, "ci_upper": row.ci_upper,
                                            "p_value": row.p_value, "includes_zero": not row.excludes_zero}
                               for row in ext.tests[ext.tests["layer"] == l].itertuples()} for l in layers}
    res["summary"] = results.summarize(results.results_table(res), res["mid_layers"], res["late_layers"])
    (path / "results.json").write_text(json.dumps(res))
    rundir.seal(path)
    return path


# --------------------------------------------------------------------------- the smallest complete run folder
def published_results(tag: str) -> dict:
    """A results file valid against the schema (the published one), tagged to tell runs apart."""
    return {**json.loads(published.read_bytes(published.PAIR_LEVEL)), "tag": tag}


def run_tag(run: Path) -> str:
    return json.loads((run / "results.json").read_text())["tag"]


def complete_run(path: Path, tag: str = "old") -> Path:
    """A sealed complete run folder: empty notebooks and the published results tagged ``tag``."""
    (path / "notebooks").mkdir(parents=True)
    for nb in rundir.NOTEBOOKS:
        (path / "notebooks" / f"{nb}.ipynb").write_text("{}")
    (path / "results.json").write_text(json.dumps(published_results(tag)))
    rundir.write_manifest(path, {"status": "complete", "parameters": {},
                                 "notebooks": [f"notebooks/{nb}.ipynb" for nb in rundir.NOTEBOOKS]})
    rundir.seal(path)
    return path


def dead_pid() -> int:
    """The id of a process that has exited (for stale locks and temporaries)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- a hostile dataset
#: HTML that must never reach a page unescaped.
TAGS = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "<b>bold</b>"]
HOSTILE_NAME = "evil" + TAGS[1] + "`x`"
HOSTILE_STATEMENTS = [TAGS[0], TAGS[1] + " ```{raw} html", "[x](javascript:alert(3)) " + TAGS[2] + " $x$"]


def hostile_run(path: Path) -> Path:
    """A run of a dataset whose name and massive-activation statements hold HTML, a raw fence, a link and math;
    its notebooks display the generated sentences as Markdown (as notebook 05 does), a table of the statements
    as collapsed HTML (as notebook 04 does) and print them."""
    run = add_evidence(make_run(path, dataset=HOSTILE_NAME, source=f"/data/{HOSTILE_NAME}.json"))
    res = json.loads((run / "results.json").read_text())
    res["evidence"]["massive_activations"]["statements"] = [
        {"pair": i, "side": "A", "text": text, "layers": [2], "max_ratio": 150.0}
        for i, text in enumerate(HOSTILE_STATEMENTS)]
    (run / "results.json").write_text(json.dumps(res))
    nb_path = run / "notebooks" / "05_visualization.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    cell = nbformat.v4.new_code_cell("show.prose(findings.read_massive(run_results))", execution_count=2)
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/markdown": show.prose_markdown(findings.read_massive(res)),
                                                     "text/plain": "<IPython.core.display.Markdown object>"}),
        nbformat.v4.new_output("display_data", data={"text/markdown": findings.markdown(res),
                                                     "text/plain": "<IPython.core.display.Markdown object>"}),
        nbformat.v4.new_output("display_data", data={
            "text/html": show.collapsed_html(pd.DataFrame({"statement": HOSTILE_STATEMENTS}), HOSTILE_NAME),
            "text/plain": "table"}),
        nbformat.v4.new_output("stream", name="stdout", text="\n".join(HOSTILE_STATEMENTS) + "\n")]
    nb.cells.append(cell)
    nbformat.write(nb, nb_path)
    rundir.seal(run)
    return run
