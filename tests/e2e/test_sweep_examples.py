"""The sweep files in ``examples/`` as a new user meets them: they run offline as written (that they validate and
vary one choice at a time is tested in tests/unit/test_example_sweeps.py).

``sweep-embedded.yaml`` varies one design choice at a time from a baseline on the embedded model;
``sweep-tiny.yaml`` runs three model directories that ``examples/make_tiny_models.py`` makes without any download.
The end-to-end runs execute the six notebooks per entry and are marked slow (~30-40 s per entry on 2 CPU cores).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ua_helpers import cli
from ua_helpers.runs import config, sweep, sweepfile
from ua_helpers.inputs import models

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
EMBEDDED = EXAMPLES / "sweep-embedded.yaml"
TINY = EXAMPLES / "sweep-tiny.yaml"
MAKE_TINY = EXAMPLES / "make_tiny_models.py"
#: Hub access off for the subprocesses: anything that tries to download fails instead.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


# --------------------------------------------------------------------------- sweep-embedded.yaml
@pytest.mark.slow
def test_embedded_sweep_passes_the_runs_own_checks():
    """The run's own checks (model configuration, layers, pairs) once: every entry shares the model and layers
    (the test above checks that). Slow: the check loads the model's tokenizer through transformers (~6 s
    CPU alone, ~30 s measured in the fast suite under load)."""
    entries = sweepfile.load_sweep(EMBEDDED).entries
    checked = config.preflight(config.RunConfig.from_mapping(entries[0].params))
    assert checked["n_pairs"] == 230 and checked["num_layers"] == 30


# --------------------------------------------------------------------------- sweep-tiny.yaml
def _make_tiny(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE}
    proc = subprocess.run([sys.executable, str(MAKE_TINY), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A directory holding models/ as made by the example's script, run from it with hub access off."""
    cwd = tmp_path_factory.mktemp("tiny-example")
    _make_tiny(cwd)
    return cwd


@pytest.mark.slow  # the script writes three models in a subprocess and one is loaded
def test_make_tiny_models_writes_what_the_sweep_needs(tiny_models_dir, monkeypatch):
    monkeypatch.chdir(tiny_models_dir)  # the sweep file's model paths are relative to the current directory
    entries = {e.name: e for e in sweepfile.load_sweep(TINY).entries}
    depth = {}
    for name, entry in entries.items():
        model_dir = Path(entry.model)
        assert model_dir.is_absolute() and model_dir == tiny_models_dir / "models" / name
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in model_dir.iterdir()}
        depth[name] = config.preflight(config.RunConfig.from_mapping(entry.params))["num_layers"]
    assert depth == {"tiny-a-step1": 4, "tiny-a-step2": 4, "tiny-b": 6}
    # Two "checkpoints" of one model: one configuration, different weights.
    cfg = {n: json.loads((tiny_models_dir / "models" / n / "config.json").read_text()) for n in entries}
    assert cfg["tiny-a-step1"] == cfg["tiny-a-step2"] != cfg["tiny-b"]
    assert models.model_fingerprint(entries["tiny-a-step1"].model) != \
        models.model_fingerprint(entries["tiny-a-step2"].model)
    lm = models.load_model(entries["tiny-b"].model, dtype="float32", device="cpu")
    ids = lm.tokenizer("Water boils at 100 degrees.")["input_ids"]
    assert len(ids) > 1 and lm.tokenizer.pad_token is None and lm.num_layers == 6


@pytest.mark.slow  # the script runs twice more in a subprocess, writing models
def test_make_tiny_models_keeps_existing_models_unless_forced(tiny_models_dir):
    weights = tiny_models_dir / "models" / "tiny-b" / "model.safetensors"
    before = (weights.stat().st_mtime_ns, weights.read_bytes())
    out = _make_tiny(tiny_models_dir).stdout
    assert out.count("kept") == 3 and weights.stat().st_mtime_ns == before[0]
    _make_tiny(tiny_models_dir, "--force")
    assert weights.stat().st_mtime_ns != before[0]
    assert weights.read_bytes() == before[1]  # seeded: the same weights again
    assert not [p for p in (tiny_models_dir / "models").iterdir() if p.name.startswith(".")]  # no staging left


@pytest.mark.slow
def test_tiny_example_sweep_runs_as_written(tiny_models_dir, monkeypatch):
    monkeypatch.chdir(tiny_models_dir)
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    root = tiny_models_dir / "runs" / "sweep-tiny"
    assert cli.main(["sweep", str(TINY)]) == 0  # root from the file, relative to the current directory
    state = json.loads((root / sweep.SWEEP_FILE).read_text())
    assert state["status"] == "complete" and state["counts"] == {"complete": 3}
    for name in ("tiny-a-step1", "tiny-a-step2", "tiny-b"):
        manifest = json.loads((root / name / "manifest.json").read_text())
        assert manifest["status"] == "complete"
    assert json.loads((root / "tiny-b" / "manifest.json").read_text())["parameters"]["pooling"] == "last"
