"""``ua-book sweep`` end to end on tiny random GPT-NeoX models, locally and on a local Ray instance, and the
cross-run page built from the sweep.

Three model directories stand in for a sweep: ``tiny-a-step1`` and ``tiny-a-step2`` are "two checkpoints of one
model" (the same configuration, weights seeded differently), ``tiny-b`` is another model (other width and depth).
A fourth entry names a directory that does not exist. Each complete run executes the six notebooks (~30 s on
2 CPU cores), so the file runs the three models twice in all: once locally, once on Ray.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_models import build_tiny_tokenizer, save_tiny_model

from ua_helpers.runs import crossrun, rundir, sweep, sweepfile
from ua_helpers import cli
from ua_helpers.inputs.data import load_pairs
from ua_helpers.report.results import results_table


def _example_models() -> dict:
    """The models ``examples/make_tiny_models.py`` makes (name -> (GPT-NeoX shape, weight seed)), read from it."""
    path = Path(__file__).resolve().parents[2] / "examples" / "make_tiny_models.py"
    spec = importlib.util.spec_from_file_location("make_tiny_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MODELS


#: tiny-a-step1/2 share a configuration (two "checkpoints" of one model); tiny-b is another model.
MODELS = _example_models()
N_BOOTSTRAP = 1000  # the smallest count accepted without allow_low_precision


# --------------------------------------------------------------------------- tiny models and data
@pytest.fixture(scope="module")
def sweep_env(tmp_path_factory):
    """A fresh extraction cache for this module; the papermill kernels inherit the variable."""
    mp = pytest.MonkeyPatch()
    mp.setenv("UA_CACHE_DIR", str(tmp_path_factory.mktemp("sweep-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def sweep_inputs(tmp_path_factory, sweep_env):
    """The model directories, a 12-pair dataset (2 pairs from each replication-230 category) and sweep files."""
    base = tmp_path_factory.mktemp("sweep-inputs")
    replication = load_pairs("replication-230")
    tokenizer = build_tiny_tokenizer(list(replication.stmt_a) + list(replication.stmt_b))
    dirs = {name: save_tiny_model(base / name, tokenizer, shape, seed) for name, (shape, seed) in MODELS.items()}
    small: dict = {}
    for a, b, cat in zip(replication.stmt_a, replication.stmt_b, replication.category):
        pairs = small.setdefault(cat, {"description": f"two pairs of {cat}", "pairs": []})["pairs"]
        if len(pairs) < 2:
            pairs.append([a, b])
    dataset = base / "pairs-12.json"
    dataset.write_text(json.dumps(small, indent=1), encoding="utf-8")
    defaults = {"dataset": str(dataset), "n_bootstrap": N_BOOTSTRAP, "layers": "all", "batch_size": 8}
    entries = [{"name": "tiny-a-step1", "model": str(dirs["tiny-a-step1"])},
               {"name": "tiny-a-step2", "model": str(dirs["tiny-a-step2"]), "revision": None},
               {"name": "tiny-b", "model": str(dirs["tiny-b"]), "gpus": 0}]
    missing = {"name": "missing-model", "model": str(base / "no-such-model")}
    files = {}
    for stem, doc in (("sweep-ok", {"defaults": defaults, "entries": entries}),
                      ("sweep-with-failure", {"defaults": defaults, "entries": entries + [missing]})):
        files[stem] = base / f"{stem}.yaml"
        files[stem].write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return {"dirs": dirs, "dataset": dataset, "files": files, "base": base}


def _state(root: Path) -> dict:
    return json.loads((root / sweep.SWEEP_FILE).read_text())


def _statuses(root: Path) -> dict[str, str]:
    return {e["name"]: e["status"] for e in _state(root)["entries"]}


def _snapshot(root: Path) -> dict[str, int]:
    """Every file under the run directories with its modification time (ns)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file() and p.name != sweep.SWEEP_FILE}


# --------------------------------------------------------------------------- the local sweep
@pytest.fixture(scope="module")
def local_sweep(sweep_inputs, tmp_path_factory):
    """The sweep with a failing entry, run once with the local engine."""
    root = tmp_path_factory.mktemp("sweep-local") / "root"
    code = cli.main(["sweep", str(sweep_inputs["files"]["sweep-with-failure"]), "--root", str(root)])
    return {"root": root, "code": code}


@pytest.mark.slow
def test_local_sweep_records_the_failure_and_completes_the_others(local_sweep, sweep_inputs):
    root = local_sweep["root"]
    assert local_sweep["code"] == 1
    state = _state(root)
    assert state["status"] == "failed" and state["engine"] == "local"
    assert _statuses(root) == {"tiny-a-step1": "complete", "tiny-a-step2": "complete", "tiny-b": "complete",
                               "missing-model": "failed"}
    assert state["counts"] == {"complete": 3, "failed": 1}
    failed = next(e for e in state["entries"] if e["name"] == "missing-model")
    assert "no-such-model" in failed["error"]
    for name in MODELS:
        manifest = json.loads((root / name / "manifest.json").read_text())
        assert manifest["status"] == "complete"
        assert manifest["parameters"]["model"] == str(sweep_inputs["dirs"][name])
        assert manifest["parameters"]["n_bootstrap"] == N_BOOTSTRAP
        assert len(list((root / name / "notebooks").glob("*.ipynb"))) == len(rundir.NOTEBOOKS)
    # Two checkpoints of one model: the same depth, different weights, hence different numbers.
    res = {name: json.loads((root / name / "results.json").read_text()) for name in MODELS}
    assert res["tiny-a-step1"]["num_layers"] == res["tiny-a-step2"]["num_layers"] == 4
    assert res["tiny-b"]["num_layers"] == 6
    assert res["tiny-a-step1"]["results"] != res["tiny-a-step2"]["results"]


@pytest.mark.slow
def test_rerun_skips_every_complete_entry(local_sweep, sweep_inputs, monkeypatch):
    root = local_sweep["root"]
    before = _snapshot(root)
    started: list[str] = []  # the entries whose run is started again (the real run, recorded)
    real_run_entry = sweep.run_entry

    def recording(entry, *args, **kwargs):
        started.append(entry.name)
        return real_run_entry(entry, *args, **kwargs)

    monkeypatch.setattr(sweep, "run_entry", recording)
    code = cli.main(["sweep", str(sweep_inputs["files"]["sweep-with-failure"]), "--root", str(root)])
    assert code == 1  # the failed entry is tried again, and fails again
    assert started == ["missing-model"]  # and only it: the complete entries are not started at all
    assert _statuses(root) == {"tiny-a-step1": "skipped", "tiny-a-step2": "skipped", "tiny-b": "skipped",
                               "missing-model": "failed"}
    # Without the failing entry: everything is skipped and the sweep is complete.
    started.clear()
    assert cli.main(["sweep", str(sweep_inputs["files"]["sweep-ok"]), "--root", str(root)]) == 0
    assert started == []
    assert _statuses(root) == {name: "skipped" for name in MODELS}
    assert _state(root)["status"] == "complete"
    # No notebook was executed again: not one file of the run directories changed.
    assert _snapshot(root) == before


@pytest.mark.slow
def test_rerun_reason(local_sweep, monkeypatch, tmp_path):
    root = local_sweep["root"]
    manifest = json.loads((root / "tiny-a-step1" / "manifest.json").read_text())
    params = {k: v for k, v in manifest["parameters"].items() if k != "run_dir"}
    entry = sweepfile.SweepEntry("tiny-a-step1", params)
    assert sweep.rerun_reason(entry, root / "tiny-a-step1") is None
    changed = sweepfile.SweepEntry("tiny-a-step1", {**params, "n_bootstrap": 1300})
    assert "n_bootstrap 1000 -> 1300" in sweep.rerun_reason(changed, root / "tiny-a-step1")
    assert sweep.rerun_reason(entry, root / "missing-model") == "no earlier run"  # failed before starting
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text("{}")
    (broken / "manifest.json").write_text(json.dumps({**manifest, "status": "failed"}))
    assert sweep.rerun_reason(entry, broken) == f"the run in {broken} is not complete (status 'failed')"
    import ua_helpers.inputs.models

    monkeypatch.setattr(ua_helpers.inputs.models, "model_fingerprint", lambda name, revision=None: "dir:other")
    assert "weights changed" in sweep.rerun_reason(entry, root / "tiny-a-step1")


# --------------------------------------------------------------------------- the cross-run page
@pytest.mark.slow
def test_crossrun_table_and_page(local_sweep, sweep_inputs, tmp_path):
    root = local_sweep["root"]
    # From sweep.json, in file order. A failed entry is listed too (the table functions leave it out); the
    # re-run test above may have rewritten sweep.json without it.
    dirs = crossrun.sweep_run_dirs(root)
    assert dirs[: len(MODELS)] == [root / name for name in MODELS]
    assert dirs[len(MODELS):] in ([], [root / "missing-model"])
    run_dirs = [root / name for name in MODELS] + [root / "missing-model"]
    with pytest.warns(UserWarning, match="left out .*missing-model"):
        table = crossrun.crossrun_table(run_dirs)
    assert list(table.columns) == list(crossrun.TABLE_COLUMNS)
    assert list(dict.fromkeys(table["run"])) == list(MODELS)
    assert table.groupby("run")["depth"].agg(["min", "max"]).to_numpy().tolist() == [[0.0, 1.0]] * 3
    assert set(table.loc[table["run"] == "tiny-b", "layer"]) == set(range(7))
    assert len(table) == (5 + 5 + 7) * 5
    flips = crossrun.sign_flips(table)
    assert len(flips) == 3 * 5
    page = crossrun.write_crossrun_page(root, tmp_path / "book")  # a sweep root
    text = page.read_text()
    assert page == tmp_path / "book" / "crossrun.md"
    assert text.startswith("# Across models and checkpoints\n") and text.count("\n# ") == 0
    assert "```{figure} crossrun.png" in text
    png = tmp_path / "book" / "crossrun.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "| run | metric | sign first → last | flips |" in text
    sha = load_pairs(sweep_inputs["dataset"]).sha256
    for name in MODELS:
        assert f"| {name} | `" in text
    assert f"`{sha}`" in text
    assert "missing-model" not in text


# --------------------------------------------------------------------------- Ray
def _require_ray() -> None:
    if importlib.util.find_spec("ray") is None:
        if os.environ.get("UA_REQUIRE_RAY") == "1":
            pytest.fail("UA_REQUIRE_RAY=1 but ray is not installed: pip install -e '.[sweep]'")
        pytest.skip("ray is not installed (pip install -e '.[sweep]'); UA_REQUIRE_RAY=1 turns this into a failure")


@pytest.mark.slow
def test_ray_sweep_matches_the_local_one(local_sweep, sweep_inputs, tmp_path):
    _require_ray()
    root = tmp_path / "ray-root"
    code = cli.main(["sweep", str(sweep_inputs["files"]["sweep-with-failure"]), "--engine", "ray",
                     "--root", str(root)])
    assert code == 1
    state = _state(root)
    assert state["engine"] == "ray" and state["status"] == "failed"
    assert _statuses(root) == {"tiny-a-step1": "complete", "tiny-a-step2": "complete", "tiny-b": "complete",
                               "missing-model": "failed"}
    for name in MODELS:  # the same numbers as the local engine's
        ours = results_table(json.loads((root / name / "results.json").read_text()))
        local = results_table(json.loads((local_sweep["root"] / name / "results.json").read_text()))
        assert ours[["layer", "metric", "includes_zero"]].equals(local[["layer", "metric", "includes_zero"]])
        cols = ["r", "ci_lower", "ci_upper", "p_value"]
        np.testing.assert_allclose(ours[cols].to_numpy(), local[cols].to_numpy(), rtol=1e-6, atol=1e-9)
    import ray

    assert not ray.is_initialized()  # the sweep's own local instance was shut down


@pytest.mark.slow
def test_the_book_renders_the_crossrun_chapter_from_the_sweep(local_sweep, tmp_path):
    from ua_helpers.book import build_book

    root = local_sweep["root"]
    html = build_book(root / next(iter(MODELS)), output_dir=tmp_path / "html", reference=None, sweep_root=root,
                      staging_dir=tmp_path / "stage")
    page = (html / "book" / "crossrun.html").read_text(encoding="utf-8")
    assert "Across models and checkpoints" in page and "crossrun.png" in page
    assert all(name in page for name in MODELS)
    assert (html / "_images").is_dir() and any(p.name.startswith("crossrun") for p in (html / "_images").iterdir())
