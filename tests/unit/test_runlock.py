"""Claiming a run folder (``ua_helpers.runs._runlock``): one holder at a time, named when refused; a stale lock
reported and taken over only when asked, never one of another host or of a live process; a finished run swapped
in for the previous one in one step."""
from __future__ import annotations

import json
import os
import socket

import pytest
from runs_fixtures import complete_run, dead_pid, run_tag

from ua_helpers.runs import _runlock


def test_a_second_claim_fails_naming_the_holder(tmp_path):
    target = tmp_path / "run"
    first = _runlock.claim(target, tmp_path / ".run.staging-1")
    try:
        with pytest.raises(_runlock.RunDirError, match=rf"being written by another run: pid {os.getpid()} on "
                                                     rf"{socket.gethostname()}"):
            _runlock.claim(target, tmp_path / ".run.staging-2")
    finally:
        first.release()
    assert not _runlock.lock_path(target).exists()
    _runlock.claim(target, tmp_path / ".run.staging-3").release()


def test_a_stale_lock_is_reported_and_taken_over_only_when_asked(tmp_path):
    target = tmp_path / "run"
    stale_staging = tmp_path / ".run.staging-old-1"
    stale_staging.mkdir()
    pid = dead_pid()
    _runlock.lock_path(target).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "then",
                                                    "staging": str(stale_staging)}))
    with pytest.raises(_runlock.RunDirError, match=rf"stale lock .*pid {pid} .*--take-over"):
        _runlock.claim(target, tmp_path / ".run.staging-2")
    messages = []
    held = _runlock.claim(target, tmp_path / ".run.staging-2", take_over=True, log=messages.append)
    try:
        assert json.loads(_runlock.lock_path(target).read_text())["pid"] == os.getpid()
        assert not stale_staging.exists() and "removed its unfinished staging directory" in messages[0]
        with pytest.raises(_runlock.RunDirError, match="being written by another run"):
            _runlock.claim(target, tmp_path / ".run.staging-3", take_over=True)  # a live holder is never stale
    finally:
        held.release()


def test_a_lock_from_another_host_is_not_taken_over(tmp_path):
    target = tmp_path / "run"
    _runlock.lock_path(target).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then"}))
    with pytest.raises(_runlock.RunDirError, match="on another host"):
        _runlock.claim(target, tmp_path / ".run.staging-2", take_over=True)


def test_replace_run_swaps_the_directories(tmp_path):
    old = complete_run(tmp_path / "run", tag="old")
    new = complete_run(tmp_path / ".run.staging-x", tag="new")
    _runlock.replace_run(new, old)
    assert run_tag(old) == "new"
    assert not new.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
