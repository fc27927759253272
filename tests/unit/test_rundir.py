"""Run directories: completeness, verification, refusal of what a run may not replace, and the one-line errors.

Claiming a run folder (the lock, a stale lock, take-over) is tested in test_runlock.py; executing notebooks into
a run folder (staging, failure, interruption) in tests/e2e/test_rundir_execution.py.
"""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from runs_fixtures import complete_run

from ua_helpers import cli
from ua_helpers.runs import _runlock, rundir


@pytest.fixture()
def params(tiny_model_dir, small_pairs_path) -> dict:
    return {"model": str(tiny_model_dir), "dataset": str(small_pairs_path)}


# --------------------------------------------------------------------------- completeness
def test_completeness_names_what_is_missing(tmp_path):
    run = complete_run(tmp_path / "run")
    assert rundir.is_complete(run) and rundir.completeness(run) is None
    (run / "notebooks" / "04_correlation.ipynb").unlink()
    assert "lacks notebooks/04_correlation.ipynb" in rundir.completeness(run)
    (run / "notebooks" / "04_correlation.ipynb").write_text("{}")
    (run / "results.json").write_text("{not json")
    assert "no readable results.json" in rundir.completeness(run)
    (run / "results.json").unlink()
    assert not rundir.is_complete(run)
    rundir.write_manifest(run, {"status": "failed", "parameters": {}})
    assert "status 'failed'" in rundir.completeness(run)
    assert "not a directory" in rundir.completeness(tmp_path / "absent")
    with pytest.raises(ValueError, match="status must be one of"):
        rundir.write_manifest(run, {"status": "done"})


def test_load_run_reads_a_complete_run_and_refuses_any_other(tmp_path):
    """One checked loader: the book and the cross-run chapter read runs through it."""
    from ua_helpers.runs import crossrun

    run = rundir.load_run(complete_run(tmp_path / "a", tag="first"))
    assert (run.name, run.results["tag"], run.verified) == ("a", "first", True)
    assert run.model == {"name": run.results["model"]}  # the seed's file has no model_info, the manifest no model
    complete_run(tmp_path / "b")
    _edit(tmp_path / "b" / "manifest.json", lambda m: m.update(model={"name": "m", "revision": "r1", "dtype": "x"}))
    rundir.seal(tmp_path / "b")
    assert rundir.load_run(tmp_path / "b").revision == "r1"
    with pytest.raises(rundir.RunDirError, match="is not a run directory"):
        rundir.load_run(tmp_path / "absent")
    _edit(tmp_path / "b" / "results.json", lambda r: r.update(tag="edited"))
    with pytest.raises(rundir.RunDirError, match=r"refusing the run in .*b: .*does not match the SHA-256"):
        rundir.load_run(tmp_path / "b")
    assert rundir.load_run(tmp_path / "b", verify=False).results["tag"] == "edited"
    with pytest.warns(UserWarning, match=r"left out .*b: refusing the run"):
        runs = crossrun.load_complete_runs([tmp_path / "a", tmp_path / "b"])
    assert [r.name for r in runs] == ["a"]


def _edit(path: Path, edit) -> None:
    res = json.loads(path.read_text())
    edit(res)
    path.write_text(json.dumps(res))


@pytest.mark.parametrize("tamper, match", [
    (lambda run: _edit(run / "results.json", lambda r: r["results"]["8"]["within_pair_sim"].update(r=-0.31)),
     r"results\.json does not match the SHA-256 that manifest\.json records"),
    (lambda run: _edit(run / "results.json", lambda r: r["summary"].update(significant_tests=42)),
     r"summary\.significant_tests = 42 but the results hold 33"),
    (lambda run: (run / "notebooks" / "04_correlation.ipynb").write_text('{"cells": []}'),
     r"notebooks/04_correlation\.ipynb does not match the SHA-256"),
    (lambda run: _edit(run / "manifest.json", lambda m: m.pop("checksums")), "records no SHA-256"),
    (lambda run: _edit(run / "results.json", lambda r: r.update(n_pairs="<img src=x onerror=alert(1)>")),
     r"results\.json: n_pairs = .* expected integer"),
])
def test_an_edited_run_is_refused_in_one_line(tmp_path, capsys, tamper, match):
    """Editing any number of results.json, a notebook, or the manifest's checksums makes ``is-complete`` refuse
    with one line naming the file."""
    run = complete_run(tmp_path / "run")
    tamper(run)
    assert re.search(match, rundir.completeness(run))
    assert cli.main(["is-complete", str(run)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(match, err)


def test_another_runs_results_are_refused_even_resealed(tmp_path):
    """Another run's results.json swapped in is refused by its SHA-256; sealed again, by the cross-check of the
    dataset and parameters the manifest records."""
    run, other = complete_run(tmp_path / "run", tag="mine"), complete_run(tmp_path / "other", tag="theirs")
    for path, name, n in ((run, "ua-230", 230), (other, "replication-230", 230)):
        _edit(path / "results.json", lambda r: r.update(dataset={"name": name, "sha256": "a" * 64, "n_pairs": n},
                                                        parameters={"seed": 42 if path == run else 7}))
        _edit(path / "manifest.json", lambda m: m.update(dataset={"name": name, "sha256": "a" * 64, "n_pairs": n},
                                                         parameters={"seed": 42 if path == run else 7}))
        rundir.seal(path)
    assert rundir.is_complete(run) and rundir.is_complete(other)
    (run / "results.json").write_bytes((other / "results.json").read_bytes())
    assert "results.json does not match the SHA-256" in rundir.completeness(run)
    rundir.seal(run)  # a forger who also rewrites the checksums
    assert "its dataset name differs from manifest.json's" in rundir.completeness(run)
    _edit(run / "manifest.json", lambda m: m.update(dataset={"name": "replication-230", "sha256": "a" * 64,
                                                               "n_pairs": 230}))
    assert "its parameters seed differ from manifest.json's" in rundir.completeness(run)
    assert rundir.completeness(run, verify=False) is None  # the override: schema only


def test_is_complete_command_exits_zero_only_for_a_complete_run(tmp_path, capsys):
    run = complete_run(tmp_path / "run")
    assert cli.main(["is-complete", str(run)]) == 0
    (run / "results.json").unlink()
    assert cli.main(["is-complete", str(run)]) == 1
    assert "no readable results.json" in capsys.readouterr().err


# --------------------------------------------------------------------------- refusing and claiming
def test_a_directory_holding_something_else_is_refused(tmp_path, params):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"jpeg")
    (other / "manifest.json").write_text('{"name": "a web app"}')  # a manifest, but not a run's
    with pytest.raises(_runlock.RunDirError, match="holds no run"):
        rundir.execute(params, run_dir=other)
    assert sorted(p.name for p in other.iterdir()) == ["holiday.jpg", "manifest.json"]


def test_a_run_dir_that_is_a_file_or_unwritable_gives_one_line_and_exit_1(tmp_path, params, capsys):
    afile = tmp_path / "file"
    afile.write_text("x")
    args = ["run", "-p", "model", params["model"], "-p", "dataset", params["dataset"]]
    assert cli.main([*args, "--run-dir", str(afile)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a directory" in err
    locked = tmp_path / "readonly"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: take a directory the kernel refuses to create
            target, expected = Path("/proc/ua-helpers-test/run"), "cannot write the run directory"
        else:
            target, expected = locked / "run", "is not writable"
        assert cli.main([*args, "--run-dir", str(target)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
    finally:
        locked.chmod(0o755)


# --------------------------------------------------------------------------- what a run may replace
def test_a_run_refuses_a_folder_holding_files_its_run_did_not_write(tmp_path):
    run = complete_run(tmp_path / "run")
    rundir.check_target(run)  # only what the run wrote: it may be replaced
    (run / "e1").mkdir()
    (run / "e1" / "manifest.json").write_text("{}")
    (run / "sweep.json").write_text("{}")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(_runlock.RunDirError, match=r"holds files its run did not write \(e1/manifest\.json, "
                                                 r"notes\.txt, sweep\.json\); refusing to replace it"):
        rundir.check_target(run)
    manifest = rundir.read_manifest(run)
    rundir.write_manifest(run, {**manifest, "files": [*rundir.run_files(run)]})  # listed by its run: fine
    rundir.check_target(run)


def test_a_sweep_refuses_a_root_that_holds_a_run(tmp_path):
    from ua_helpers.runs import sweep, sweepfile

    run = complete_run(tmp_path / "run")
    before = sorted(p.name for p in run.iterdir())
    entries = sweepfile.parse_sweep({"entries": [{"name": "e1", "model": "EleutherAI/pythia-70m"}]})
    with pytest.raises(_runlock.RunDirError, match=r"sweep root .*run holds a run \(manifest\.json\)"):
        sweep.run_sweep(entries, root=run)
    assert sorted(p.name for p in run.iterdir()) == before


def test_a_full_disk_leaves_no_running_staging_folder(tmp_path, monkeypatch):
    """A failed run whose manifest cannot be written (ENOSPC) removes its staging folder and says so in one line
    naming the path and the space left; leftover staging folders are removed by the next run's claim."""
    import errno as errno_

    staging = tmp_path / ".run.staging-1"
    (staging / "notebooks").mkdir(parents=True)

    def full(path, manifest):
        raise OSError(errno_.ENOSPC, "No space left on device", str(Path(path) / "manifest.json"))
    monkeypatch.setattr(rundir, "write_manifest", full)
    where = rundir._leave_failed(staging, tmp_path / "run", {"status": "failed", "parameters": {}})
    assert not staging.exists()
    assert "\n" not in where and "No space left on device writing" in where and "MiB free there" in where
    leftover = tmp_path / ".run.staging-0"
    leftover.mkdir()
    said = []
    rundir._clear_leftovers(tmp_path / "run", tmp_path / ".run.staging-2", said.append)
    assert not leftover.exists() and str(leftover) in said[0]


def test_an_os_error_ends_the_command_in_one_line(tmp_path, capsys, monkeypatch):
    import errno as errno_

    def full(*args, **kwargs):
        raise OSError(errno_.ENOSPC, "No space left on device", str(tmp_path / "x"))
    monkeypatch.setattr(rundir, "execute", full)
    assert cli.main(["run", "--run-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err == f"ua-book: error: No space left on device: {tmp_path / 'x'}\n"


# --------------------------------------------------------------------------- kernels that import ahead
def test_warm_imports_name_the_runs_notebooks_and_modules_that_exist():
    import importlib.util

    assert set(rundir.WARM_IMPORTS) <= set(rundir.NOTEBOOKS)
    for names in rundir.WARM_IMPORTS.values():
        for name in names:
            assert importlib.util.find_spec(name.partition(":")[0]) is not None, name
    for notebook in rundir.WARM_IMPORTS:  # the package's modules come from the notebook's own imports
        modules = rundir.package_imports(notebook)
        assert "ua_helpers.runs.pipeline" in modules, notebook
        for name in modules:
            assert importlib.util.find_spec(name) is not None, name
    assert "ua_helpers.analysis.evidence" in rundir.package_imports("04_correlation")


def test_the_warm_line_binds_nothing_and_leaves_failures_to_the_cells(monkeypatch):
    sys.modules.pop("colorsys", None)
    monkeypatch.setitem(rundir.WARM_IMPORTS, "02_extraction",
                        ("json", "no_such_module_here", "json:no_such_attribute", "colorsys"))
    (argument,) = rundir._warm_line("02_extraction")
    option, line = argument.split("=", 1)
    assert option == "--IPKernelApp.exec_lines"
    namespace: dict = {}
    assert eval(line, namespace) is None  # nothing to display
    assert set(namespace) == {"__builtins__"}  # no name bound
    assert "colorsys" in sys.modules  # the modules after one that failed are still imported
    assert rundir._warm_line("07_not_a_notebook") == []


def test_a_background_value_is_computed_once_and_its_error_raised_again():
    calls = []
    value = rundir._Background(lambda: calls.append(1) or {"python": "3"})
    value.start()
    assert value.result() == {"python": "3"} and value.result() == {"python": "3"} and calls == [1]
    failing = rundir._Background(lambda: 1 / 0)  # never started: result() starts it
    with pytest.raises(ZeroDivisionError):
        failing.result()


# --------------------------------------------------------------------------- signals
def _signal_self_from(where: str, signum: int) -> None:
    """Deliver ``signum`` to this process from inside an event-loop callback or a task's step, as happens when the
    main thread is running one (the kernel-alive poll, a message arriving) at the moment the signal comes."""
    import asyncio

    loop = asyncio.new_event_loop()

    async def poke():
        os.kill(os.getpid(), signum)  # the handler runs at the next bytecode, here, inside the task's step
        await asyncio.sleep(30)

    async def sleeper():
        if where == "task":
            loop.create_task(poke())
        else:
            loop.call_later(0.01, os.kill, os.getpid(), signum)
        await asyncio.sleep(30)

    try:
        loop.run_until_complete(sleeper())
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


@pytest.mark.parametrize("where", ["callback", "task"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_handled_inside_the_runs_event_loop_stops_it(where, signum):
    """asyncio logs and drops an exception raised in a callback or a task: the handler stops the loop instead, and
    the signal is kept for the run to report (before, the run went on as if nothing had happened)."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    t0 = time.monotonic()
    with rundir._signals_raise() as caught:
        with pytest.raises(RuntimeError, match="Event loop stopped before Future completed"):
            _signal_self_from(where, signum)
        assert caught.signum == signum
        with pytest.raises(rundir._Signalled):
            caught.check()
        assert signal.getsignal(signum) == signal.SIG_IGN  # no second signal during the clean-up
    assert time.monotonic() - t0 < 20  # stopped, not slept through
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def test_a_signal_outside_an_event_loop_raises_at_once():
    with rundir._signals_raise() as caught:
        with pytest.raises(rundir._Signalled) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # not reached: the handler raises at the next bytecode
        assert info.value.signum == signal.SIGTERM == caught.signum


def test_a_signal_while_a_callers_event_loop_runs_raises_in_the_callers_code():
    """Called from a running event loop (a notebook's cell), the loop is the caller's: it is not stopped, the
    signal raises in the run's own code, below it."""
    import asyncio

    async def caller():
        with rundir._signals_raise():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)

    with pytest.raises(rundir._Signalled):
        asyncio.run(caller())
