"""The sweep files in ``examples/`` as a new user meets them: they validate, ``sweep-embedded.yaml`` varies one design
choice at a time and needs no network except where it declares it, ``sweep-tiny.yaml`` names no hub model. (The
runs of these files are in tests/e2e/test_sweep_examples.py.)"""
from __future__ import annotations

from pathlib import Path

import pytest

from ua_helpers.inputs import data
from ua_helpers.runs import sweepfile

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
EMBEDDED = EXAMPLES / "sweep-embedded.yaml"
TINY = EXAMPLES / "sweep-tiny.yaml"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_sweep_file_validates(path):
    parsed = sweepfile.load_sweep(path)
    assert parsed.entries and parsed.root == f"runs/{path.stem}"  # as make book-full's FULL_SWEEP_ROOT


def test_embedded_sweep_varies_one_choice_at_a_time():
    entries = sweepfile.load_sweep(EMBEDDED).entries
    baseline = entries[0]
    assert baseline.name == "baseline" and baseline.requires == ()
    varied: dict[str, set] = {}
    for entry in entries[1:]:
        changed = sorted(k for k in baseline.params if entry.params[k] != baseline.params[k])
        assert len(changed) == 1, (entry.name, changed)  # one choice per entry, traced to it
        varied.setdefault(changed[0], set()).add(entry.params[changed[0]])
    assert varied == {"pooling": {"last"}, "dtype": {"bfloat16", "float16"}, "orientation": {"by-role"},
                      "dataset": {"ua-230", "neutral-60"}, "prefix": {"bos"}}
    assert (baseline.params["pooling"], baseline.params["dtype"], baseline.params["orientation"],
            baseline.params["dataset"]) == ("mean", "float32", "as-given", "replication-230")


def test_embedded_sweep_runs_offline_except_what_it_declares(monkeypatch, tmp_path):
    """Every entry without ``requires`` has its model and pairs here with no network; ua-230's entry declares it."""
    monkeypatch.setenv("UA_230_PATH", str(tmp_path / "absent.json"))  # make sure nothing reads a real copy
    entries = sweepfile.load_sweep(EMBEDDED).entries
    for entry in entries:
        if entry.params["dataset"] == "ua-230":
            assert entry.requires == ("ua-230",), entry.name
            with pytest.raises(data.DatasetError):
                data.load_pairs("ua-230")
            continue
        assert entry.requires == () and entry.model == "smollm2-135m", entry.name
        assert entry.params["layers"] == entries[0].params["layers"], entry.name
        pairs = data.load_pairs(entry.params["dataset"], orientation=entry.params["orientation"])
        size = 60 if entry.params["dataset"] == "neutral-60" else 230
        assert pairs.n_pairs == size and pairs.orientation == entry.params["orientation"], entry.name


def test_tiny_example_names_no_hub_model():
    text = TINY.read_text(encoding="utf-8")
    assert "from_pretrained" not in text and "EleutherAI" not in text
    assert "python examples/make_tiny_models.py" in text
