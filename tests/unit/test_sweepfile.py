"""Sweep files: every problem named by its entry and reported at once, defaults merged, resources and
``requires`` parsed per entry (``ua_helpers.runs.sweepfile``; no run)."""
from __future__ import annotations

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
