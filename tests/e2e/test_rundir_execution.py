"""Executing notebooks into a run folder: staging then replacing, a failed re-run leaving the previous run
untouched, a failed first run marked failed, a run from a running event loop, and interruption by a signal.

The tests run six tiny stand-in notebooks (passed as ``source``) through papermill on the tiny GPT-NeoX model, so
that a run takes seconds: each writes a marker file into the run directory; ``06_summary`` writes ``results.json``.
``$UA_TEST_NOTEBOOK_MODE`` makes ``03_metrics`` raise, kill its kernel, or sleep (to be signalled).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from runs_fixtures import complete_run, run_tag

from ua_helpers.runs import _runlock, rundir
from ua_helpers.runs.config import RunConfig

#: Every test here executes notebooks through papermill.
pytestmark = pytest.mark.slow

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
    from ua_helpers.inputs import published
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


def test_a_run_stages_then_replaces_the_previous_run(tmp_path, params, tiny_notebooks, monkeypatch):
    target = complete_run(tmp_path / "run")
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


@pytest.mark.parametrize("mode, status, message", [
    ("raise", "failed", "03_metrics: cell 3 raised RuntimeError: metric exploded"),
    ("die", "failed", "03_metrics: the kernel died"),
])
def test_a_failed_rerun_leaves_the_previous_run_untouched(tmp_path, params, tiny_notebooks, monkeypatch,
                                                         mode, status, message):
    target = complete_run(tmp_path / "run")
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


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (absent or a zombie: exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _is_kernel(pid: int) -> bool:
    try:
        return b"ipykernel" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_a_failed_first_run_is_left_in_the_run_dir_marked_failed(tmp_path, params, tiny_notebooks, monkeypatch):
    monkeypatch.setenv("UA_TEST_NOTEBOOK_MODE", "raise")
    others = _kernels_of(os.getpid())  # kernels of other tests in this process are not this run's
    with pytest.raises(rundir.RunError, match="metric exploded"):
        rundir.execute(params, run_dir=tmp_path / "run", source=tiny_notebooks, log=lambda m: None)
    assert rundir.read_manifest(tmp_path / "run")["status"] == "failed"
    assert not (tmp_path / "run" / "results.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    # The failed notebook's kernel and the next one's, started ahead, are both shut down, and their socket files
    # are gone with them.
    assert not _kernels_of(os.getpid()) - others
    assert not [p.name for p in (tmp_path / "run").rglob("kernel-*")]


def test_a_run_started_inside_a_running_event_loop_completes(tmp_path, params, tiny_notebooks):
    """As from a notebook's cell (ipykernel runs cells in an event loop): every kernel is still shut down."""
    async def run():
        return rundir.execute(params, run_dir=tmp_path / "run", source=tiny_notebooks, log=lambda m: None)

    others = _kernels_of(os.getpid())  # kernels of other tests in this process are not this run's
    assert rundir.read_manifest(asyncio.run(run()))["status"] == "complete"
    assert not _kernels_of(os.getpid()) - others


SCRIPT = """import sys
from pathlib import Path
from ua_helpers import cli
from ua_helpers.inputs import published
from ua_helpers.runs import _runlock, rundir
from ua_helpers.runs.config import RunConfig
rundir.notebooks_source = lambda: Path(sys.argv[1])
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signum, group", [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGINT, True)],
                         ids=["SIGTERM", "SIGINT", "ctrl-c"])
def test_a_signal_ends_the_run_interrupted_with_one_line(tmp_path, params, tiny_notebooks, signum, group):
    """SIGTERM or SIGINT to ua-book, or Ctrl-C (SIGINT to the whole process group, the kernel included)."""
    target = complete_run(tmp_path / "run")
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
    assert rundir.is_complete(target) and run_tag(target) == "old"
    (kept,) = tmp_path.glob(".run.failed-*")
    assert rundir.read_manifest(kept)["status"] == "interrupted"
    assert not _runlock.lock_path(target).exists()
    # Both kernels were shut down before ua-book exited, not orphaned: each is gone or a zombie (exited, not yet
    # reaped) now; an orphan would still be running (ipykernel's parent poller ends it only about a second later).
    assert not [pid for pid in kernels if _running(pid)], kernels


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
