"""Run directories: completeness, claiming (lock, stale lock, take-over), refusal, staging, and interruption.

The execution tests run six tiny stand-in notebooks (passed as ``source``) on the tiny GPT-NeoX model, so that a
run takes seconds: each writes a marker file into the run directory; ``06_summary`` writes ``results.json``.
``$UA_TEST_NOTEBOOK_MODE`` makes ``03_metrics`` raise, kill its kernel, or sleep (to be signalled).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from ua_helpers import _runlock, cli, published, rundir
from ua_helpers.config import RunConfig

#: The parameters cell: every RunConfig field (papermill warns about parameters a notebook does not declare).
PARAMS_CELL = "\n".join(f"{k} = {v!r}" for k, v in RunConfig().to_parameters().items())
BODY = """import json, os, pathlib, time
run = pathlib.Path(os.environ.get("UA_RUN_STAGING") or run_dir)  # where ua-book run stages (pipeline.configure)
(run / "figures").mkdir(exist_ok=True)
mode = os.environ.get("UA_TEST_NOTEBOOK_MODE", "")
if NAME == "03_metrics" and mode == "raise":
    raise RuntimeError("metric exploded")
if NAME == "03_metrics" and mode == "die":
    os._exit(1)
if NAME == "03_metrics" and mode == "sleep":
    (run / "sleeping").write_text(str(os.getpid()))
    time.sleep(120)
(run / (NAME + ".done")).write_text(os.environ.get("UA_TEST_NOTEBOOK_TAG", ""))
if NAME == "06_summary":
    from ua_helpers import published
    res = json.loads(published.read_bytes(published.PAIR_LEVEL))  # a results file valid against the schema
    res.update(model_info={"name": model}, dataset_path=dataset, cache=os.environ.get("UA_CACHE_DIR"))
    (run / "results.json").write_text(json.dumps(res))
"""


@pytest.fixture(scope="module")
def tiny_notebooks(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-notebooks")
    for name in rundir.NOTEBOOKS:
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell(PARAMS_CELL)
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(f"NAME = {name!r}\n" + BODY)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


@pytest.fixture()
def params(tiny_model_dir, small_pairs_path) -> dict:
    return {"model": str(tiny_model_dir), "dataset": str(small_pairs_path)}


def _results(tag: str) -> dict:
    """A results file valid against the schema (the published one), tagged to tell runs apart."""
    return {**json.loads(published.read_bytes(published.PAIR_LEVEL)), "tag": tag}


def _tag(run: Path) -> str:
    return json.loads((run / "results.json").read_text())["tag"]


def _complete_run(path: Path, tag: str = "old") -> Path:
    (path / "notebooks").mkdir(parents=True)
    for nb in rundir.NOTEBOOKS:
        (path / "notebooks" / f"{nb}.ipynb").write_text("{}")
    (path / "results.json").write_text(json.dumps(_results(tag)))
    rundir.write_manifest(path, {"status": "complete", "parameters": {},
                                 "notebooks": [f"notebooks/{nb}.ipynb" for nb in rundir.NOTEBOOKS]})
    rundir.seal(path)
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- completeness
def test_completeness_names_what_is_missing(tmp_path):
    run = _complete_run(tmp_path / "run")
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
    run = _complete_run(tmp_path / "run")
    tamper(run)
    assert re.search(match, rundir.completeness(run))
    assert cli.main(["is-complete", str(run)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(match, err)


def test_another_runs_results_are_refused_even_resealed(tmp_path):
    """Another run's results.json swapped in is refused by its SHA-256; sealed again, by the cross-check of the
    dataset and parameters the manifest records."""
    run, other = _complete_run(tmp_path / "run", tag="mine"), _complete_run(tmp_path / "other", tag="theirs")
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
    run = _complete_run(tmp_path / "run")
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
    pid = _dead_pid()
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
    old = _complete_run(tmp_path / "run", tag="old")
    new = _complete_run(tmp_path / ".run.staging-x", tag="new")
    _runlock.replace_run(new, old)
    assert _tag(old) == "new"
    assert not new.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# --------------------------------------------------------------------------- execution (tiny notebooks)
@pytest.mark.slow
def test_a_run_stages_then_replaces_the_previous_run(tmp_path, params, tiny_notebooks, monkeypatch):
    target = _complete_run(tmp_path / "run")
    (target / "figures").mkdir()
    (target / "figures" / "from-the-old-run.png").write_bytes(b"png")
    monkeypatch.setenv("UA_CACHE_DIR", "relative-cache")
    monkeypatch.chdir(tmp_path)
    out = rundir.execute({**params, "knn_k": 50}, run_dir="run", source=tiny_notebooks, log=lambda m: None)
    assert out == target.resolve() and rundir.is_complete(out)
    assert not (out / "figures" / "from-the-old-run.png").exists()  # nothing of the old run is mixed in
    assert all((out / f"{nb}.done").is_file() for nb in rundir.NOTEBOOKS)
    for nb in rundir.NOTEBOOKS:  # the stored notebooks show the run folder as given, not the staging folder
        injected = next(c for c in nbformat.read(out / "notebooks" / f"{nb}.ipynb", as_version=4).cells
                        if "injected-parameters" in c.metadata.get("tags", []))
        assert "run_dir = 'run'\n" in injected.source or 'run_dir = "run"\n' in injected.source, injected.source
        assert "staging" not in injected.source
    assert rundir.STAGING_ENV not in os.environ
    manifest = rundir.read_manifest(out)
    assert manifest["kind"] == rundir.KIND and manifest["parameters"]["run_dir"] == str(out)
    assert manifest["parameters"]["knn_k"] == 50 and manifest["effective"]["knn_k"] == 11  # 12 pairs
    assert manifest["versions"] == rundir._versions()  # read on a thread while the notebooks ran
    assert json.loads((out / "results.json").read_text())["cache"] == str(tmp_path / "relative-cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no lock, no staging left behind
    assert os.environ["UA_CACHE_DIR"] == "relative-cache"
    umask = os.umask(0o022)
    os.umask(umask)
    assert (out / "manifest.json").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.slow
@pytest.mark.parametrize("mode, status, message", [
    ("raise", "failed", "03_metrics: cell 3 raised RuntimeError: metric exploded"),
    ("die", "failed", "03_metrics: the kernel died"),
])
def test_a_failed_rerun_leaves_the_previous_run_untouched(tmp_path, params, tiny_notebooks, monkeypatch,
                                                         mode, status, message):
    target = _complete_run(tmp_path / "run")
    before = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    monkeypatch.setenv("UA_TEST_NOTEBOOK_MODE", mode)
    with pytest.raises(rundir.RunError) as info:
        rundir.execute(params, run_dir=target, source=tiny_notebooks, log=lambda m: None)
    assert message in str(info.value) and "previous complete run" in str(info.value)
    assert before == {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    (kept,) = tmp_path.glob(".run.failed-*")
    assert str(kept) in str(info.value)
    manifest = rundir.read_manifest(kept)
    assert manifest["status"] == status and message in manifest["error"]
    assert manifest["versions"] == rundir._versions()  # the thread was started at the failure
    assert manifest["notebooks"] == ["notebooks/01_setup.ipynb", "notebooks/02_extraction.ipynb"]
    assert not _runlock.lock_path(target).exists()


def _kernels_of(pid: int) -> set[int]:
    """The ipykernel processes that ``pid`` started and that are still alive (Linux ``/proc``)."""
    children = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children.update(int(c) for c in (task / "children").read_text().split())
    return {c for c in children if _is_kernel(c)}


def _is_kernel(pid: int) -> bool:
    try:
        return b"ipykernel" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.slow
def test_a_failed_first_run_is_left_in_the_run_dir_marked_failed(tmp_path, params, tiny_notebooks, monkeypatch):
    monkeypatch.setenv("UA_TEST_NOTEBOOK_MODE", "raise")
    with pytest.raises(rundir.RunError, match="metric exploded"):
        rundir.execute(params, run_dir=tmp_path / "run", source=tiny_notebooks, log=lambda m: None)
    assert rundir.read_manifest(tmp_path / "run")["status"] == "failed"
    assert not (tmp_path / "run" / "results.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    # The failed notebook's kernel and the next one's, started ahead, are both shut down, and their socket files
    # are gone with them.
    assert not _kernels_of(os.getpid())
    assert not [p.name for p in (tmp_path / "run").rglob("kernel-*")]


@pytest.mark.slow
def test_a_run_started_inside_a_running_event_loop_completes(tmp_path, params, tiny_notebooks):
    """As from a notebook's cell (ipykernel runs cells in an event loop): every kernel is still shut down."""
    async def run():
        return rundir.execute(params, run_dir=tmp_path / "run", source=tiny_notebooks, log=lambda m: None)

    assert rundir.read_manifest(asyncio.run(run()))["status"] == "complete"
    assert not _kernels_of(os.getpid())


SCRIPT = """import sys
from pathlib import Path
from ua_helpers import _runlock, cli, published, rundir
from ua_helpers.config import RunConfig
rundir.notebooks_source = lambda: Path(sys.argv[1])
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum, group", [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGINT, True)],
                         ids=["SIGTERM", "SIGINT", "ctrl-c"])
def test_a_signal_ends_the_run_interrupted_with_one_line(tmp_path, params, tiny_notebooks, signum, group):
    """SIGTERM or SIGINT to ua-book, or Ctrl-C (SIGINT to the whole process group, the kernel included)."""
    target = _complete_run(tmp_path / "run")
    env = {**os.environ, "UA_TEST_NOTEBOOK_MODE": "sleep"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tiny_notebooks), "run", "--run-dir", str(target),
                             "-p", "model", params["model"], "-p", "dataset", params["dataset"]],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=group)
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob(".run.staging-*/sleeping")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    (sleeping,) = tmp_path.glob(".run.staging-*/sleeping")
    kernel_pid = int(sleeping.read_text())
    # 03_metrics's kernel and 04_correlation's, started while 03 runs (and 02's, if its shutdown is still going on).
    kernels = _kernels_of(proc.pid)
    assert kernel_pid in kernels and len(kernels) >= 2, kernels
    # Meanwhile a second run into the directory fails at once, naming the holder.
    second = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_notebooks), "run", "--run-dir", str(target),
                             "-p", "model", params["model"], "-p", "dataset", params["dataset"]],
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 1 and f"being written by another run: pid {proc.pid} on " in second.stderr
    assert second.stderr.count("\n") == 1, second.stderr
    if group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, (out, err)
    # One line from ua-book, after whatever the dying kernel printed; no traceback through ua-book's own code.
    assert err.strip().splitlines()[-1].startswith(f"ua-book: error: interrupted by {signal.Signals(signum).name} "
                                                   "during 03_metrics")
    assert "ua_helpers/" not in err and "_Signalled" not in err
    assert rundir.is_complete(target) and _tag(target) == "old"
    (kept,) = tmp_path.glob(".run.failed-*")
    assert rundir.read_manifest(kept)["status"] == "interrupted"
    assert not _runlock.lock_path(target).exists()
    time.sleep(1)
    for pid in kernels:  # both kernels were shut down, not orphaned
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --------------------------------------------------------------------------- what a run may replace
def test_a_run_refuses_a_folder_holding_files_its_run_did_not_write(tmp_path):
    run = _complete_run(tmp_path / "run")
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
    from ua_helpers import sweep, sweepfile

    run = _complete_run(tmp_path / "run")
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


@pytest.mark.slow
def test_a_warm_kernel_has_its_notebooks_modules_loaded_and_the_same_names(tmp_path):
    """Started warm, the kernel of 06_summary has ua_helpers and pandas loaded before its first cell, and the
    cell sees the same names as in a kernel started cold."""
    import papermill as pm

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import sys\nprint([m for m in ('ua_helpers', 'pandas') if m in sys.modules], sorted(dir()))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    seen = {}
    for warm in (True, False):
        kernels = rundir._Kernels(tmp_path, warm=warm)
        kernels.start("06_summary")
        km = kernels.take("06_summary")
        try:
            out = pm.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                      progress_bar=False, cwd=str(tmp_path), km=km)
        finally:
            kernels.stop(km)
            kernels.close()
        seen[warm] = out.cells[0].outputs[0].text
    modules_warm, names_warm = seen[True].split("] ", 1)
    modules_cold, names_cold = seen[False].split("] ", 1)
    assert modules_warm == "['ua_helpers', 'pandas'" and modules_cold == "["
    assert names_warm == names_cold


def test_a_background_value_is_computed_once_and_its_error_raised_again():
    calls = []
    value = rundir._Background(lambda: calls.append(1) or {"python": "3"})
    value.start()
    assert value.result() == {"python": "3"} and value.result() == {"python": "3"} and calls == [1]
    failing = rundir._Background(lambda: 1 / 0)  # never started: result() starts it
    with pytest.raises(ZeroDivisionError):
        failing.result()
