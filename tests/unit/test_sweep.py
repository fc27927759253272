"""``ua-book sweep`` without running an entry: an invalid file or a busy root stops it before anything runs, a
missing Ray says how to install it, and ``requires`` decides which entries run (the run of an entry is replaced
by a record of the call; the sweeps that run notebooks are in tests/e2e/test_sweep.py)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from ua_helpers import cli
from ua_helpers.runs import _runlock, crossrun, sweep, sweepfile

GOOD = {"name": "a", "model": "EleutherAI/pythia-70m"}

NEEDS_UA230 = {"name": "paper-data", "model": "m", "dataset": "ua-230", "requires": ["ua-230"]}


def _state(root: Path) -> dict:
    return json.loads((root / sweep.SWEEP_FILE).read_text())


def _statuses(root: Path) -> dict[str, str]:
    return {e["name"]: e["status"] for e in _state(root)["entries"]}


def test_invalid_file_exits_2_before_running_anything(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"entries": [GOOD, GOOD]}))
    assert cli.main(["sweep", str(path), "--root", str(tmp_path / "root")]) == 2
    assert "duplicate name" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_a_second_sweep_into_a_busy_root_fails_naming_the_holder(tmp_path, capsys):
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump({"entries": [GOOD]}))
    root = tmp_path / "root"
    root.mkdir()
    held = _runlock.claim(root, root)
    try:
        assert cli.main(["sweep", str(path), "--root", str(root)]) == 1
    finally:
        held.release()
    err = capsys.readouterr().err
    assert f"being written by another run: pid {os.getpid()}" in err and err.count("\n") == 1
    assert not (root / sweep.SWEEP_FILE).exists()


def test_missing_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"entries": [GOOD]}))
    assert cli.main(["sweep", str(path), "--engine", "ray", "--root", str(tmp_path / "root")]) == 2
    err = capsys.readouterr().err
    assert "needs Ray" in err and 'pip install "ua-helpers[sweep]"' in err


@pytest.fixture
def fake_runs(monkeypatch):
    """Replace the run of an entry by a record of the call: these tests are about which entries run."""
    calls: list[str] = []

    def fake_run_entry(entry, run_dir, log=print, take_over=False):
        calls.append(entry.name)
        return {"status": "complete", "error": None, "elapsed_s": 0.0}

    monkeypatch.setattr(sweep, "run_entry", fake_run_entry)
    return calls


def _write_sweep(tmp_path, entries) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"entries": entries}))
    return path


def test_unmet_requirement_is_unavailable_not_failed(tmp_path, monkeypatch, fake_runs, capsys):
    # ua-230 cannot be had: $UA_230_PATH names a missing file (which wins over the cache and the download).
    monkeypatch.setenv("UA_230_PATH", str(tmp_path / "no-ua-230.json"))
    root = tmp_path / "root"
    path = _write_sweep(tmp_path, [GOOD, NEEDS_UA230])
    assert cli.main(["sweep", str(path), "--root", str(root)]) == 0
    assert fake_runs == ["a"]
    state = _state(root)
    assert state["status"] == "complete" and state["counts"] == {"complete": 1, "unavailable": 1}
    record = next(e for e in state["entries"] if e["name"] == "paper-data")
    assert record["status"] == "unavailable" and record["error"] is None
    assert record["reason"].startswith("requires ua-230: $UA_230_PATH points at ") and "no-ua-230.json" in \
        record["reason"]
    assert not (root / "paper-data").exists()
    out = capsys.readouterr().out
    assert "paper-data  unavailable" in out and "requires ua-230: $UA_230_PATH points at" in out
    assert crossrun.sweep_run_dirs(root) == [root / "a"]  # the cross-run chapter does not look for it


def test_each_requirement_is_checked_once_and_a_met_one_runs(tmp_path, monkeypatch, fake_runs):
    checks: list[str] = []

    def available():
        checks.append("ua-230")
        return None

    monkeypatch.setitem(sweepfile.REQUIREMENTS, "ua-230", ("test", available))
    path = _write_sweep(tmp_path, [NEEDS_UA230, {**NEEDS_UA230, "name": "paper-data-last", "pooling": "last"}])
    assert cli.main(["sweep", str(path), "--root", str(tmp_path / "root")]) == 0
    assert fake_runs == ["paper-data", "paper-data-last"] and checks == ["ua-230"]
    assert _state(tmp_path / "root")["counts"] == {"complete": 2}


def test_a_complete_run_is_skipped_before_its_requirement_is_checked(tmp_path, monkeypatch, fake_runs):
    def unreachable():
        raise AssertionError("the requirement of a complete entry was checked")

    monkeypatch.setitem(sweepfile.REQUIREMENTS, "ua-230", ("test", unreachable))
    monkeypatch.setattr(sweep, "rerun_reason", lambda entry, run_dir: None)  # as if complete with these parameters
    path = _write_sweep(tmp_path, [NEEDS_UA230])
    assert cli.main(["sweep", str(path), "--root", str(tmp_path / "root")]) == 0
    assert fake_runs == [] and _statuses(tmp_path / "root") == {"paper-data": "skipped"}
