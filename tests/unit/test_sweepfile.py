"""Sweep files: every problem named by its entry and reported at once, defaults merged, resources and
``requires`` parsed per entry (``ua_helpers.runs.sweepfile``; no run)."""
from __future__ import annotations

from pathlib import Path

import pytest

from ua_helpers.runs import sweepfile

GOOD = {"name": "a", "model": "EleutherAI/pythia-70m"}

NEEDS_UA230 = {"name": "paper-data", "model": "m", "dataset": "ua-230", "requires": ["ua-230"]}


@pytest.mark.parametrize("doc, expected", [
    ({"entries": [GOOD], "colour": "red"}, "unknown top-level key(s) colour"),
    ({"entries": []}, "entries must be a non-empty list"),
    ({"entries": [{**GOOD, "modle": "x"}]}, "entry #1 ('a'): unknown key(s) modle"),
    ({"entries": [GOOD, {**GOOD, "name": "A"}]}, "entry #2 ('A'): duplicate name"),
    ({"entries": [{"model": "x"}]}, "entry #1: name must be a string"),
    ({"entries": [{**GOOD, "name": "../escape"}]}, "name must be a string"),
    ({"entries": [GOOD, {**GOOD, "name": "b", "n_bootstrap": -5}]}, "entry #2 ('b'): n_bootstrap must be at least 1"),
    ({"entries": [{**GOOD, "layers": "some"}]}, "entry #1 ('a'): layers must be"),
    ({"entries": [{**GOOD, "run_dir": "x"}]}, "run_dir is set by the sweep"),
    ({"entries": [{**GOOD, "gpus": -1}]}, "entry #1 ('a'): gpus must be a number >= 0"),
    ({"defaults": {"n_bootstrap": "many"}, "entries": [GOOD]}, "entry #1 ('a'): n_bootstrap must be an integer"),
    ({"defaults": {"name": "x"}, "entries": [GOOD]}, "defaults: unknown key(s) name"),
])
def test_invalid_sweep_files_name_the_entry(doc, expected):
    with pytest.raises(sweepfile.SweepError) as info:
        sweepfile.parse_sweep(doc, source="s.yaml")
    assert expected in str(info.value)


def test_every_problem_is_reported_at_once():
    doc = {"entries": [{**GOOD, "n_bootstrap": 0}, {"name": "b", "pooling": "max"}, {**GOOD, "name": "b"}]}
    with pytest.raises(sweepfile.SweepError) as info:
        sweepfile.parse_sweep(doc)
    message = str(info.value)
    assert "entry #1 ('a'): n_bootstrap" in message and "entry #2 ('b'): pooling" in message
    assert "entry #3 ('b'): duplicate name" in message


def test_defaults_merge_and_resources():
    parsed = sweepfile.parse_sweep({"defaults": {"n_bootstrap": 2000, "layers": "all", "gpus": 1},
                                "entries": [GOOD, {"name": "big", "model": "m", "gpus": 4, "layers": [0, 8]}]})
    a, big = parsed.entries
    assert (a.params["n_bootstrap"], a.params["layers"], a.gpus, a.cpus) == (2000, "all", 1, 1)
    assert (big.params["layers"], big.gpus) == ([0, 8], 4)
    assert "run_dir" not in a.params and a.revision is None


@pytest.mark.parametrize("doc, expected", [
    ({"entries": [{**NEEDS_UA230, "requires": "ua-230"}]}, "entry #1 ('paper-data'): requires must be a list"),
    ({"entries": [{**NEEDS_UA230, "requires": ["ua-230", "gpu"]}]},
     "entry #1 ('paper-data'): unknown requirement(s) gpu; known: ua-230"),
    ({"defaults": {"requires": ["ua-230"]}, "entries": [GOOD]}, "defaults: unknown key(s) requires"),
])
def test_invalid_requires_names_the_entry(doc, expected):
    with pytest.raises(sweepfile.SweepError) as info:
        sweepfile.parse_sweep(doc)
    assert expected in str(info.value)


def test_requires_is_parsed_per_entry():
    parsed = sweepfile.parse_sweep({"entries": [GOOD, {**NEEDS_UA230, "requires": ["ua-230", "ua-230"]}]})
    assert [e.requires for e in parsed.entries] == [(), ("ua-230",)]


# --------------------------------------------------------------------------- reading the file
def test_load_sweep_names_a_missing_file_or_bad_yaml(tmp_path):
    with pytest.raises(sweepfile.SweepError, match=r"sweep file .*absent\.yaml does not exist"):
        sweepfile.load_sweep(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries: [unclosed\n")
    with pytest.raises(sweepfile.SweepError, match=r"bad\.yaml is not valid YAML"):
        sweepfile.load_sweep(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(sweepfile.SweepError, match=r"list\.yaml: a sweep file is a mapping with 'entries'"):
        sweepfile.load_sweep(listed)


def test_an_existing_relative_path_becomes_absolute_and_names_stay(tmp_path, monkeypatch):
    """The notebooks run in another directory: a model or dataset path that exists here is made absolute; a hub
    id, a URL and a bundled dataset name are left as they are."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "pairs.json").write_text("{}")
    parsed = sweepfile.parse_sweep({"root": "out", "entries": [
        {"name": "local", "model": "models/m", "dataset": "pairs.json"},
        {"name": "hub", "model": "EleutherAI/pythia-70m", "dataset": "replication-230"}]})
    local, hub = parsed.entries
    assert (local.model, local.params["dataset"]) == (str(tmp_path / "models" / "m"), str(tmp_path / "pairs.json"))
    assert (hub.model, hub.params["dataset"]) == ("EleutherAI/pythia-70m", "replication-230")
    assert parsed.root == "out" and parsed.names == ["local", "hub"]
    assert sweepfile.default_root("examples/sweep-tiny.yaml") == Path("runs") / "sweep-tiny"
    with pytest.raises(sweepfile.SweepError, match=r"root must be a directory path; got ' '"):
        sweepfile.parse_sweep({"root": " ", "entries": [GOOD]})


def test_unmet_requirement_runs_the_named_check(monkeypatch):
    monkeypatch.setitem(sweepfile.REQUIREMENTS, "ua-230", ("test", lambda: "not here"))
    assert sweepfile.unmet_requirement("ua-230") == "not here"
    monkeypatch.setitem(sweepfile.REQUIREMENTS, "ua-230", ("test", lambda: None))
    assert sweepfile.unmet_requirement("ua-230") is None
    with pytest.raises(ValueError, match="unknown requirement 'gpu'; known: ua-230"):
        sweepfile.unmet_requirement("gpu")
