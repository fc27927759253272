"""Run directories: the notebook list, the manifest, "is this run complete?", claiming, staging and execution.

A run directory ``T`` is written by one process at a time and never holds a mix of two runs:

1. **Claim.** ``T.parent/.T.lock`` is created atomically (a complete file hard-linked into place) and held with
   ``flock`` while the run lasts; it names the holder (pid, host, start time, staging directory). A second run
   into ``T`` fails at once naming the holder. A lock whose process is gone (on this host: nobody holds its
   ``flock``) is *stale*: it is reported, and taken over only with ``take_over=True`` (``--take-over``).
2. **Stage.** The notebooks execute into a fresh ``T.parent/.T.staging-<time>-<pid>`` whose ``manifest.json``
   says ``"status": "running"`` (pid, host, start time).
3. **Replace.** A complete run replaces ``T`` by one atomic exchange of the two directories (Linux
   ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames, the old run moved aside first), then the old run is
   removed. A failed or interrupted run (a notebook error, a dead kernel, SIGINT, SIGTERM) gets a
   ``"failed"``/``"interrupted"`` manifest; it replaces ``T`` only where ``T`` holds no complete run, else it is
   kept as ``T.parent/.T.failed-<time>`` and the previous complete run stays untouched.

A complete run's manifest records the SHA-256 of ``results.json``, every executed notebook, figure and table
(``checksums``) and every file the run wrote (``files``): :func:`completeness` refuses a run whose files were
edited or swapped, and a run replaces ``T`` only where it holds nothing else.

``T`` itself may be absent, an empty directory or a run directory (a manifest written here); anything else is
refused. :func:`completeness` / :func:`is_complete` is the one definition of a complete run that the book,
``crossrun``, ``sweep`` and the Makefile (``ua-book is-complete DIR``) use.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.resources
import json
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from .._io import atomic_write_json, sha256_bytes, sha256_file
from ..report.blocks import Results
from ._runlock import Claim, RunDirError, claim, now, replace_run, stamp
from .config import ParameterError, RunConfig, preflight

NOTEBOOKS = ("01_setup", "02_extraction", "03_metrics", "04_correlation", "05_visualization", "06_summary")
MANIFEST = "manifest.json"
RESULTS = "results.json"
#: ``manifest["kind"]``: marks a directory as a run directory made here.
KIND = "ua-helpers run"
STATUSES = ("running", "complete", "failed", "interrupted")
#: Parameters that may name a local file or directory: made absolute (the kernels run elsewhere).
PATH_PARAMETERS = ("model", "dataset", "reference_results")
#: Environment variables holding paths, made absolute once before the kernels start.
PATH_ENV = ("UA_CACHE_DIR", "UA_230_PATH")
#: Set for the kernels while a run executes: the staging folder that :func:`ua_helpers.runs.pipeline.configure` writes
#: into. The injected ``run_dir`` parameter stays the folder the user named, so the stored notebooks show it.
STAGING_ENV = "UA_RUN_STAGING"
#: The kernels talk to papermill over Unix sockets where there are some (not TCP, which ipykernel warns is
#: unencrypted): a local, private channel, and a quiet console.
KERNEL_TRANSPORT = "ipc" if os.name == "posix" else "tcp"
#: Run in each kernel at start-up. jupyter_client sends every kernel SIGINT as it shuts it down (before the
#: shutdown request); a kernel caught handling a message then logs "KeyboardInterrupt caught in kernel." at
#: ERROR level, which reads as a failure of a notebook that succeeded. Only that record is dropped.
KERNEL_STARTUP = ('get_ipython().kernel.log.addFilter('
                  'lambda record: "KeyboardInterrupt caught in kernel" not in record.getMessage())')


def kernel_options() -> dict[str, Any]:
    """Keyword arguments for ``papermill.execute_notebook``: the transport and the start-up line above."""
    from traitlets.config import Config

    return {"config": Config({"KernelManager": {"transport": KERNEL_TRANSPORT}}),
            "extra_arguments": [f"--IPKernelApp.exec_lines={KERNEL_STARTUP}"]}


#: The history file ``nbclient`` gives an ipykernel it starts itself (in memory: no SQLite file per kernel).
KERNEL_HISTORY = "--HistoryManager.hist_file=:memory:"
#: The libraries each notebook's cells use (``"module:attribute"`` resolves a lazy attribute too), imported by its
#: kernel as it starts, that is while the notebook before it runs (:class:`_Kernels`), so that the cells find them
#: loaded; the package's own modules are read from the notebook's imports (:func:`package_imports`). Only *when*
#: changes: the cells import the same modules themselves (a module left out here is imported by its cell, one
#: listed but unused costs the other core a little). The first notebook's kernel starts just before it runs, with
#: nothing to overlap, so it imports nothing ahead.
WARM_IMPORTS = {
    "02_extraction": ("pandas", "matplotlib.pyplot", "torch", "transformers:AutoModelForCausalLM",
                      "transformers:AutoTokenizer", "transformers.modeling_utils"),
    "03_metrics": ("pandas", "matplotlib.pyplot"),
    "04_correlation": ("pandas", "torch"),  # torch: results.environment() (versions, threads)
    "05_visualization": ("pandas", "matplotlib.pyplot"),
    "06_summary": ("pandas",),
}


def package_imports(notebook: str, source: Path | None = None) -> list[str]:
    """The package modules ``notebook``'s code cells import (``from ua_helpers.x import y`` gives ``ua_helpers.x.y``).

    Read from the notebook itself, so that what a kernel imports ahead follows the notebook's cells.
    """
    import ast

    path = Path(source or notebooks_source()) / f"{notebook}.ipynb"
    found: list[str] = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:  # a cell with IPython syntax imports nothing of the package here
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ua_helpers."):
                found += [f"{node.module}.{alias.name}" for alias in node.names]
    return list(dict.fromkeys(found))


def warm_imports(notebook: str) -> None:
    """Import what ``notebook``'s cells will import (:func:`package_imports`, :data:`WARM_IMPORTS`); run by its
    kernel as it starts.

    Binds no name in the kernel's namespace. A module that cannot be imported is left to the cell that imports it,
    which then fails naming it, as it would without this. tqdm's notice that no notebook widget is installed
    (raised when transformers first imports ``tqdm.auto``) is silenced here as
    :func:`ua_helpers.runs.pipeline.configure` silences it, which turns the libraries' progress bars off where they
    are already imported.
    """
    import importlib
    import warnings

    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
        for name in package_imports(notebook):  # a module, or a name its module defines
            for module in (name, name.rpartition(".")[0]):
                with contextlib.suppress(Exception):  # the cell's own import reports what fails
                    importlib.import_module(module)
                    break
        for name in WARM_IMPORTS.get(notebook, ()):
            module, _, attribute = name.partition(":")
            try:
                loaded = importlib.import_module(module)
                if attribute:
                    getattr(loaded, attribute)
            except Exception:  # noqa: BLE001 - the cell's own import reports it
                pass


def _warm_line(notebook: str) -> list[str]:
    """The kernel argument that runs :func:`warm_imports` for ``notebook`` at start-up (none where it has none).

    The line's value is None (nothing is displayed) and it binds no name in the kernel's namespace.
    """
    if notebook not in WARM_IMPORTS:
        return []
    return [f'--IPKernelApp.exec_lines=__import__("ua_helpers.runs.rundir").runs.rundir.warm_imports({notebook!r})']


class _Kernels:
    """Each notebook's kernel, started while the notebook before it runs, and shut down behind the next one.

    Every notebook still gets a fresh kernel process, started as ``nbclient`` would start it (:func:`kernel_options`,
    :data:`KERNEL_HISTORY`, the working directory and this process's environment at the time of the start); what
    changes is *when*: kernel ``i + 1`` starts just before notebook ``i`` executes, and kernel ``i``'s graceful
    shutdown (the same ``shutdown_kernel(now=False)`` that ``nbclient`` calls) proceeds on the event loop that
    executes notebook ``i + 1``. :meth:`close` waits for every shutdown and shuts down any kernel not yet used,
    on every path (success, a failed notebook, a signal). Called from a running event loop (a notebook's cell),
    where nbclient executes on another thread's loop, each shutdown completes before the next notebook instead.

    Parameters
    ----------
    cwd : Path
        The kernels' working directory.
    warm : bool, default=False
        Whether each kernel imports its notebook's :data:`WARM_IMPORTS` as it starts (the package's notebooks).
    """

    def __init__(self, cwd: Path, warm: bool = False):
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import ensure_event_loop

        class Manager(AsyncKernelManager):
            """Remembers the clients made for it, so that their channels are stopped with the kernel."""

            def client(self, **kwargs: Any) -> Any:
                kc = super().client(**kwargs)
                self.ua_clients = [*getattr(self, "ua_clients", []), kc]
                return kc

        self._manager_class = Manager
        try:  # called from a running event loop (a notebook's cell): nbclient runs on a loop of another thread
            asyncio.get_running_loop()
            self._loop = None  # then each shutdown completes before the next notebook starts
        except RuntimeError:
            self._loop = ensure_event_loop()  # the loop nbclient's run_sync executes the notebooks on
        self._errors: list[BaseException] = []
        self._cwd = str(cwd)
        self._warm = warm
        self._options = kernel_options()
        self._waiting: dict[str, Any] = {}
        self._stopping: list[Any] = []

    def start(self, notebook: str) -> None:
        """Start the kernel for ``notebook`` (returns once the process is launched, not when it is ready)."""
        from jupyter_core.utils import run_sync
        from papermill.utils import chdir

        km = self._manager_class(kernel_name="python3", config=self._options["config"])
        if km.transport == "ipc":
            # Each kernel's own socket-file prefix (jupyter_client's default is "kernel-ipc" for every kernel, and
            # picks the next free suffix by looking for files that a kernel still starting has not created yet).
            km.ip = f"kernel-{notebook}-ipc"
        self._waiting[notebook] = km
        # In the kernels' folder, as papermill starts them: the IPC socket files are named relative to the current
        # directory.
        with chdir(self._cwd):
            run_sync(km.start_kernel)(extra_arguments=[*self._options["extra_arguments"], KERNEL_HISTORY,
                                                       *(_warm_line(notebook) if self._warm else [])],
                                      cwd=self._cwd)

    def take(self, notebook: str) -> Any:
        """The started kernel manager for ``notebook``; it is shut down by :meth:`stop` or :meth:`close`."""
        return self._waiting.pop(notebook)

    def stop(self, km: Any) -> None:
        """Begin ``km``'s graceful shutdown on the notebooks' event loop; :meth:`close` waits for it.

        The shutdown removes the kernel's IPC files relative to the current directory: it runs while papermill
        executes the next notebook in the kernels' folder, or in :meth:`close`, which changes to that folder too.
        """
        if self._loop is not None:
            self._stopping.append(self._loop.create_task(self._shutdown(km)))
            return
        from jupyter_core.utils import run_sync
        from papermill.utils import chdir

        with chdir(self._cwd):
            try:
                run_sync(self._shutdown)(km)
            except Exception as exc:  # raised by close(), after the notebook's own error
                self._errors.append(exc)

    @staticmethod
    async def _shutdown(km: Any) -> None:
        try:
            if await km.is_alive():
                await km.shutdown_kernel(now=False)
        finally:
            try:
                if await km.is_alive():  # the graceful shutdown failed or was cut short: the process goes anyway
                    await km.shutdown_kernel(now=True)
            finally:
                for kc in getattr(km, "ua_clients", []):
                    kc.stop_channels()
                await km.cleanup_resources()

    def close(self, abandon: bool = False) -> None:
        """Shut down the kernels not yet used and wait for every shutdown; raise the first error of any.

        With ``abandon`` (a notebook failed or a signal stopped it), what papermill left pending on the loop (the
        interrupted notebook's execution) is cancelled first, so that it does not resume against a dead kernel.
        """
        for notebook in list(self._waiting):
            self.stop(self._waiting.pop(notebook))
        if self._errors:
            raise self._errors[0]
        if self._loop is None:
            return
        if abandon:
            left = [t for t in asyncio.all_tasks(self._loop) if t not in self._stopping]
            for task in left:
                task.cancel()
            self._stopping.extend(left)
        if self._stopping:  # cleared only once all are done: a second call after an interruption waits again
            from papermill.utils import chdir

            with chdir(self._cwd):
                results = self._loop.run_until_complete(asyncio.gather(*self._stopping, return_exceptions=True))
            self._stopping = []
            errors = [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
            if errors:
                raise errors[0]


class RunError(RuntimeError):
    """A run that did not complete; the message names the notebook and the error, and where the run was left."""

    exit_code = 1


class RunInterrupted(RunError):
    """A run stopped by SIGINT or SIGTERM (exit code 128 + the signal's number)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


# --------------------------------------------------------------------------- manifest and completeness
def read_manifest(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Return ``run_dir/manifest.json`` as a dict, or None where there is none or it is not a JSON object."""
    try:
        manifest = json.loads((Path(run_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def write_manifest(run_dir: str | os.PathLike, manifest: Mapping[str, Any]) -> Path:
    """Write ``manifest`` (status one of :data:`STATUSES`) to ``run_dir/manifest.json`` atomically."""
    if manifest.get("status") not in STATUSES:
        raise ValueError(f"manifest status must be one of {', '.join(STATUSES)}; got {manifest.get('status')!r}")
    return atomic_write_json(Path(run_dir) / MANIFEST, {"kind": KIND, **manifest})


def is_run_dir(run_dir: str | os.PathLike) -> bool:
    """Tell whether ``run_dir`` holds a run (a manifest with a known status and parameters), complete or not."""
    manifest = read_manifest(run_dir)
    return bool(manifest) and manifest.get("status") in STATUSES and isinstance(manifest.get("parameters"), dict)


def file_checksums(run_dir: str | os.PathLike, files: Iterable[str]) -> dict[str, str]:
    """SHA-256 of each of ``files`` (paths relative to ``run_dir``): what the manifest records of a finished run."""
    return {f: sha256_file(Path(run_dir) / f) for f in files}


def sealed_files(manifest: Mapping[str, Any]) -> list[str]:
    """The files whose SHA-256 a complete run's manifest must record: results, executed notebooks, figures and
    tables."""
    return [RESULTS, *manifest.get("notebooks", []), *manifest.get("figures", []), *manifest.get("tables", [])]


def seal(run_dir: str | os.PathLike) -> Path:
    """Record in ``run_dir``'s manifest the SHA-256 of its results, notebooks and figures (as a run does last)."""
    manifest = read_manifest(run_dir) or {}
    manifest["checksums"] = file_checksums(run_dir, sealed_files(manifest))
    return write_manifest(run_dir, manifest)


def _checksum_problem(path: Path, manifest: Mapping[str, Any]) -> str | None:
    """Say which file does not match the SHA-256 the manifest records (or that it records none)."""
    recorded = manifest.get("checksums")
    if not isinstance(recorded, dict):
        return (f"{path / MANIFEST} records no SHA-256 of the run's files (made before they were recorded, or "
                "edited): run it again, or build with --unverified")
    for name in sealed_files(manifest):
        if name not in recorded:
            return f"{path / MANIFEST} records no SHA-256 of {name}: the run's files cannot be verified"
        if sha256_file(path / name) != recorded[name]:
            return (f"{path / name} does not match the SHA-256 that {MANIFEST} records: it was edited or "
                    "replaced after the run")
    return None


#: Manifest parameters that results.json does not repeat (where a run was written says nothing about it).
_UNREPEATED = ("run_dir", "repo_url")


def _cross_check(path: Path, manifest: Mapping[str, Any], res: Mapping[str, Any]) -> str | None:
    """Say where ``results.json`` disagrees with the manifest on the dataset, its hash, n_pairs or parameters."""
    where = path / RESULTS
    ds_m, ds_r = manifest.get("dataset") or {}, res.get("dataset") or {}
    for key in ("name", "sha256", "n_pairs"):
        if key in ds_m and key in ds_r and ds_m[key] != ds_r[key]:
            return f"{where} is not this run's: its dataset {key} differs from {MANIFEST}'s"
    if "n_pairs" in ds_m and res.get("n_pairs") != ds_m["n_pairs"]:
        return f"{where} is not this run's: its n_pairs differs from the dataset's in {MANIFEST}"
    p_m, p_r = manifest.get("parameters") or {}, res.get("parameters") or {}
    differ = sorted(k for k in set(p_m) & set(p_r) if k not in _UNREPEATED and p_m[k] != p_r[k])
    if differ:
        return f"{where} is not this run's: its parameters {', '.join(differ)} differ from {MANIFEST}'s"
    return None


def completeness(run_dir: str | os.PathLike, *, verify: bool = True) -> str | None:
    """Say in one line why ``run_dir`` is not a complete, intact run, or return None when it is.

    Complete means: ``manifest.json`` says ``"status": "complete"``, ``results.json`` is valid against the
    results schema (:func:`ua_helpers.report.results.check_schema`), and every notebook and figure the manifest lists
    exists. Intact (``verify=True``) adds: each of those files has the SHA-256 the manifest records, and
    ``results.json`` agrees with the manifest on the dataset (name, SHA-256, n_pairs) and the parameters.
    """
    from ..report import results as _results

    path = Path(run_dir)
    if not path.is_dir():
        return f"{path} is not a directory"
    manifest = read_manifest(path)
    if manifest is None:
        return f"{path} has no readable {MANIFEST}"
    if manifest.get("status") != "complete":
        return f"the run in {path} is not complete (status {manifest.get('status')!r})"
    try:
        res = _results.load_results(path / RESULTS)
    except FileNotFoundError:
        return f"the run in {path} has no readable {RESULTS} (FileNotFoundError)"
    except ValueError as exc:
        message = str(exc)
        if "not valid JSON" in message or "must be a JSON object" in message:
            return f"the run in {path} has no readable {RESULTS} ({message})"
        return message
    missing = [f for f in [*manifest.get("notebooks", []), *manifest.get("figures", [])] if not (path / f).is_file()]
    if missing:
        return f"the run in {path} lacks {', '.join(missing)}"
    if verify:
        return _checksum_problem(path, manifest) or _cross_check(path, manifest, res)
    return None


def is_complete(run_dir: str | os.PathLike, *, verify: bool = True) -> bool:
    """Tell whether ``run_dir`` holds a complete, intact run (see :func:`completeness`)."""
    return completeness(run_dir, verify=verify) is None


@dataclass(frozen=True)
class Run:
    """A complete run directory, read by :func:`load_run`: its manifest and its results."""

    path: Path
    manifest: dict[str, Any]
    results: Results
    #: Whether the run's files were checked against the SHA-256 its manifest records (``--unverified``: not).
    verified: bool = True

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model(self) -> dict[str, Any]:
        from ..report.results import model_record

        return model_record(self.results, self.manifest)

    @property
    def dataset(self) -> dict[str, Any]:
        return self.manifest.get("dataset") or self.results.get("dataset") or {}

    @property
    def parameters(self) -> dict[str, Any]:
        return self.manifest.get("parameters") or self.results.get("parameters") or {}

    @property
    def dataset_name(self) -> str:
        return str(self.dataset.get("name") or "unknown dataset")

    @property
    def revision(self) -> str | None:
        return self.parameters.get("revision") or self.model.get("revision")


def load_run(run_dir: str | os.PathLike, *, verify: bool = True) -> Run:
    """Read a complete run directory; raise :class:`RunDirError` (one line saying why) for any other.

    Complete is :func:`completeness`. The results are parsed from the same bytes whose SHA-256 was checked
    (``verify``), and checked against the results schema and the evidence ladder's layout version.
    """
    from ..analysis import evidence
    from ..report import results as _results

    path = Path(run_dir).expanduser()
    if not is_run_dir(path):
        raise RunDirError(f"{path} is not a run directory (it has no {MANIFEST}). "
                          f"Make one with: ua-book run --run-dir {path}")
    reason = completeness(path, verify=verify)
    if reason is not None:
        raise RunDirError(f"refusing the run in {path}: {reason}")
    manifest = read_manifest(path)
    raw = (path / RESULTS).read_bytes()
    if verify and sha256_bytes(raw) != manifest["checksums"][RESULTS]:
        raise RunDirError(f"refusing the run in {path}: {path / RESULTS} changed while it was read")
    try:
        res = _results.from_json(json.loads(raw), source=str(path / RESULTS))
        if isinstance(res.get("evidence"), dict):
            evidence.check_version(res["evidence"], source=str(path / RESULTS))
    except (ValueError, RecursionError) as exc:
        raise RunDirError(f"refusing the run in {path}: {exc}") from None
    return Run(path, manifest, res, verified=verify)


# --------------------------------------------------------------------------- the notebooks
def notebooks_source() -> Path:
    """Return the folder holding the six notebooks.

    An installed wheel carries them in ``ua_helpers/notebooks`` (copied at build time from the checkout's
    ``notebooks/``); an editable install or a source checkout reads the checkout's ``notebooks/`` itself.
    """
    packaged = Path(str(importlib.resources.files("ua_helpers") / "notebooks"))
    checkout = Path(__file__).resolve().parents[2] / "notebooks"
    for folder in (packaged, checkout):
        if all((folder / f"{nb}.ipynb").is_file() for nb in NOTEBOOKS):
            return folder
    raise RunError(f"the notebooks were not found in the installed package ({packaged}) nor in a source "
                   f"checkout ({checkout}); reinstall ua-helpers")


# --------------------------------------------------------------------------- execution
def run_files(run_dir: str | os.PathLike) -> list[str]:
    """Every file under ``run_dir`` but its manifest, as sorted relative paths: what a run wrote there."""
    root = Path(run_dir)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if not p.is_dir() and p != root / MANIFEST)


def foreign_files(run_dir: str | os.PathLike) -> list[str]:
    """Files under a run directory that its manifest does not list (a user's notes, a sweep, another tool's).

    A run records every file it wrote (``manifest["files"]``); a run made before that list existed is taken to
    have written ``results.json`` and what lies under ``notebooks/`` and ``figures/``.
    """
    manifest = read_manifest(run_dir) or {}
    listed = manifest.get("files")
    if isinstance(listed, list):
        return [f for f in run_files(run_dir) if f not in set(listed)]
    return [f for f in run_files(run_dir) if f not in (RESULTS, *manifest.get("tables", []))
            and not f.startswith(("notebooks/", "figures/"))]


def check_target(run_dir: Path) -> None:
    """Raise :class:`RunDirError` unless ``run_dir`` can receive a run: absent, empty, or a run directory holding
    nothing but what its run wrote (a run replaces the whole folder, so anything else would be lost)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} is a file, not a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not is_run_dir(run_dir):
        raise RunDirError(f"{run_dir} is not empty and holds no run ({MANIFEST} of a ua-book run); refusing to "
                          "replace it: choose another --run-dir")
    foreign = foreign_files(run_dir) if run_dir.is_dir() and is_run_dir(run_dir) else []
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise RunDirError(f"{run_dir} holds files its run did not write ({', '.join(foreign[:3])}{more}); refusing "
                          "to replace it: move them elsewhere or choose another --run-dir")
    parent = next((p for p in run_dir.parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK) or (
            run_dir.is_dir() and not os.access(run_dir, os.W_OK | os.X_OK)):
        raise RunDirError(f"run directory {run_dir} is not writable here ({parent or run_dir})")


def prepare_parameters(params: Mapping[str, Any], run_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Return ``params`` with ``run_dir`` (default ``runs/default``) and existing local paths made absolute."""
    params = dict(params)
    if run_dir is not None:
        params["run_dir"] = str(run_dir)
    params.setdefault("run_dir", RunConfig().run_dir)
    if not isinstance(params["run_dir"], str) or not params["run_dir"].strip():
        raise ParameterError(f"run_dir must be a non-empty path; got {params['run_dir']!r}")
    params["run_dir"] = str(Path(params["run_dir"]).expanduser().resolve())
    for name in PATH_PARAMETERS:
        value = params.get(name)
        if isinstance(value, str) and value.strip() and not value.startswith(("http://", "https://")) \
                and Path(value).expanduser().exists():
            params[name] = str(Path(value).expanduser().resolve())
    return params


@contextlib.contextmanager
def absolute_environment() -> Iterator[dict[str, str]]:
    """Make ``$UA_CACHE_DIR`` and ``$UA_230_PATH`` absolute (from this process's directory) while inside."""
    saved = {k: os.environ.get(k) for k in PATH_ENV}
    resolved = {k: str(Path(v).expanduser().absolute()) for k, v in saved.items() if v}
    os.environ.update(resolved)
    try:
        yield resolved
    finally:
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v


@contextlib.contextmanager
def _staging_environment(staging: Path) -> Iterator[None]:
    """Set :data:`STAGING_ENV` to ``staging`` while inside (the kernels inherit it), then restore it."""
    saved = os.environ.get(STAGING_ENV)
    os.environ[STAGING_ENV] = str(staging)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(STAGING_ENV, None)
        else:
            os.environ[STAGING_ENV] = saved


class _Signalled(BaseException):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _ignore_signals() -> None:
    """Ignore SIGINT and SIGTERM until :func:`_signals_raise` restores the previous handlers."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _Caught:
    """The signal that stopped the run, once one has: :meth:`check` raises it as :class:`_Signalled`."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def check(self) -> None:
        if self.signum is not None:
            raise _Signalled(self.signum)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@contextlib.contextmanager
def _signals_raise() -> Iterator[_Caught]:
    """Turn SIGINT and SIGTERM into :class:`_Signalled` (main thread only; elsewhere Python cannot catch them).

    Python runs the handler wherever the main thread is when it gets to it. Inside an event loop that the run
    drives (papermill executes every cell on one), an exception raised there lands in an asyncio callback or task,
    which logs it and carries on as if nothing had happened; there the handler stops the loop instead, so that the
    call running it raises, and the yielded :class:`_Caught` says which signal it was. Where the caller's own
    event loop runs (a notebook's cell), that loop is not stopped: the run's code runs inside one of its steps, and
    the handler raises there.
    """
    caught = _Caught()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    callers = _running_loop()

    def handler(signum, frame):
        _ignore_signals()  # no second signal during the clean-up
        caught.signum = signum
        loop = _running_loop()
        if loop is not None and loop is not callers:
            loop.stop()  # run_until_complete raises once the current callbacks are done
            return
        raise _Signalled(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def execute(params: Mapping[str, Any], run_dir: str | os.PathLike | None = None, source: Path | None = None,
            take_over: bool = False, log: Callable[[str], None] = print, allow_large: bool = False) -> Path:
    """Validate, claim, execute the notebooks into a staging directory, and put the complete run in place.

    Parameters
    ----------
    params : mapping
        Run parameters (:class:`ua_helpers.runs.config.RunConfig` fields; strings from the command line are fine).
    run_dir : path, optional
        Overrides ``params["run_dir"]``; relative paths resolve from the current directory.
    source : Path, optional
        The folder with the notebooks (default :func:`notebooks_source`); named ``NN_name.ipynb`` as
        :data:`NOTEBOOKS`.
    take_over : bool, default=False
        Take over a stale lock (see :func:`claim`).
    log : callable, default=print
    allow_large : bool, default=False
        Run even where the hidden states alone would not fit in this machine's memory (``--allow-large``).

    Returns
    -------
    Path
        The run directory, holding a complete run.

    Raises
    ------
    ParameterError, RunDirError
        Before anything is written.
    RunError
        A notebook failed, the kernel died, or (:class:`RunInterrupted`) a signal stopped the run; the message
        says where the failed run was left.
    """
    given = str(run_dir if run_dir is not None else params.get("run_dir") or RunConfig().run_dir)
    with absolute_environment():
        cfg = RunConfig.from_mapping(prepare_parameters(params, run_dir))
        target = Path(cfg.run_dir)
        check_target(target)
        effective = preflight(cfg, check_memory=not allow_large)
        _say_estimate(effective, log)
        warm = source is None  # WARM_IMPORTS lists what the package's notebooks import
        source = Path(source) if source is not None else notebooks_source()
        missing = [nb for nb in NOTEBOOKS if not (source / f"{nb}.ipynb").is_file()]
        if missing:
            raise RunError(f"notebooks {missing} not found in {source}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = target.parent / f".{target.name}.staging-{stamp()}-{os.getpid()}"
            held = claim(target, staging, take_over=take_over, log=log)
        except OSError as exc:  # a read-only file system, a full disk, ...
            raise RunDirError(f"cannot write the run directory {target}: {exc.strerror or exc}") from None
        try:
            check_target(target)  # again: it may have changed while another run held it
            return _execute_claimed(cfg, effective, source, held, staging, log, given, warm=warm)
        finally:
            held.release()


def _execute_claimed(cfg: RunConfig, effective: dict[str, Any], source: Path, held: Claim, staging: Path,
                     log: Callable[[str], None], given_run_dir: str, warm: bool = False) -> Path:
    import papermill as pm

    target = held.run_dir
    (staging / "notebooks").mkdir(parents=True)
    # The notebooks show the run folder as given and write into the staging folder (STAGING_ENV).
    parameters = {**cfg.to_parameters(), "run_dir": given_run_dir}
    manifest: dict[str, Any] = {"status": "running", "parameters": cfg.to_parameters(), "effective": effective,
                                "pid": held.holder["pid"], "host": held.holder["host"],
                                "started": held.holder["started"], "staging": str(staging), "notebooks": [],
                                "versions": None, "git_commit": git_commit(source)}  # versions: at the end
    write_manifest(staging, manifest)
    versions = _Background(_versions)
    current = None
    with _signals_raise() as caught, _staging_environment(staging):
        kernels = None
        try:
            kernels = _Kernels(staging, warm=warm)
            for i, nb in enumerate(NOTEBOOKS):
                current, t0 = nb, time.perf_counter()
                if i == 0:
                    kernels.start(nb)
                if nb == VERSIONS_DURING:
                    versions.start()
                if i + 1 < len(NOTEBOOKS):
                    current = NOTEBOOKS[i + 1]  # a kernel that fails to start fails its own notebook
                    kernels.start(current)
                    current = nb
                km = kernels.take(nb)
                try:
                    pm.execute_notebook(str(source / f"{nb}.ipynb"), str(staging / "notebooks" / f"{nb}.ipynb"),
                                        parameters=parameters, kernel_name="python3", progress_bar=False,
                                        cwd=str(staging), km=km)
                finally:
                    kernels.stop(km)
                caught.check()  # a signal whose loop stop came as the notebook's last callbacks completed
                manifest["notebooks"].append(f"notebooks/{nb}.ipynb")
                log(f"[ua-book] {nb} done in {time.perf_counter() - t0:.1f} s")
            current = None
            kernels.close()
            kernels = None
            caught.check()
            results = json.loads((staging / RESULTS).read_text(encoding="utf-8"))
        except (_Signalled, Exception) as exc:
            _ignore_signals()  # the clean-up is short: let it finish
            if kernels is not None:
                with contextlib.suppress(Exception):  # the run's own error is the one to report
                    kernels.close(abandon=True)
            with contextlib.suppress(Exception):  # as above: None where the versions cannot be read
                manifest["versions"] = versions.result()
            # Ctrl-C reaches the kernel too: a cell that raised KeyboardInterrupt is an interruption.
            # A signal that stopped the event loop surfaces as whatever the interrupted call raised.
            signum = caught.signum if caught.signum is not None else \
                signal.SIGINT if getattr(exc, "ename", None) == "KeyboardInterrupt" else None
            if signum is not None:
                name = signal.Signals(signum).name
                where = _leave_failed(staging, target, {**manifest, "status": "interrupted",
                                                        "error": f"{name} during {current}"})
                raise RunInterrupted(f"interrupted by {name} during {current}; {where}", signum) from None
            error = _describe(exc, current)
            where = _leave_failed(staging, target, {**manifest, "status": "failed", "error": error,
                                                    "failed_notebook": f"notebooks/{current}.ipynb" if current
                                                    else None})
            raise RunError(f"{error}; {where}") from None
        _ignore_signals()  # the notebooks are done: finish putting the run in place
        manifest.update(status="complete", finished=now(), versions=versions.result(),
                        model=results.get("model_info", {}),
                        dataset=results.get("dataset", {}),
                        figures=sorted(f"figures/{p.name}" for p in (staging / "figures").glob("*.png")),
                        tables=sorted(p.name for p in staging.glob("*.csv")))
        manifest.pop("staging")
        manifest["checksums"] = file_checksums(staging, sealed_files(manifest))
        manifest["files"] = run_files(staging)
        write_manifest(staging, manifest)
        replace_run(staging, target)
        for old in target.parent.glob(f".{target.name}.failed-*"):
            shutil.rmtree(old, ignore_errors=True)
    return target


def execute_one(name: str, cfg: RunConfig, source: Path | None = None) -> Path:
    """Execute one notebook of the run (e.g. ``"04_correlation"``) through papermill, with the run's parameters.

    For a notebook run on its own that needs what an earlier one writes (``pipeline.load_results(cfg,
    recompute=True)``): the notebook itself computes it, so there is one description of each stage. The executed
    notebook lands in ``<run_dir>/notebooks/`` only when it completed; a failure raises :class:`RunError` naming
    the notebook and leaves no partial copy.
    """
    import papermill as pm

    if name not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {name!r}; the run's notebooks are {', '.join(NOTEBOOKS)}")
    source = Path(source) if source is not None else notebooks_source()
    run_path = cfg.run_path.resolve()
    target = run_path / "notebooks" / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{name}.running-{stamp()}-{os.getpid()}.ipynb")
    try:
        pm.execute_notebook(str(source / f"{name}.ipynb"), str(partial),
                            parameters={**cfg.to_parameters(), "run_dir": str(run_path)}, kernel_name="python3",
                            progress_bar=False, cwd=str(run_path))
        os.replace(partial, target)
    except Exception as exc:
        raise RunError(_describe(exc, name)) from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def _describe(exc: Exception, notebook: str | None) -> str:
    """One line for a failed run: the notebook, the cell and the error."""
    where = notebook or "after the notebooks"
    if type(exc).__name__ == "PapermillExecutionError":
        return f"{where}: cell {exc.exec_count} raised {exc.ename}: {exc.evalue}"
    if isinstance(exc, OSError):
        return f"{where}: {_os_error(exc, exc.filename)}"
    if type(exc).__name__ == "DeadKernelError":
        return f"{where}: the kernel died (out of memory, or killed): {exc}".rstrip(": ")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{where}: {type(exc).__name__}: {first}".rstrip(": ")


def _os_error(exc: OSError, path: str | os.PathLike | None) -> str:
    """An OSError in a few words: what failed, on which path, and for a full disk the space that is left."""
    where = f" writing {path}" if path else ""
    text = f"{exc.strerror or exc}{where}"
    if exc.errno == errno.ENOSPC and path:
        anchor = next((p for p in (Path(path), *Path(path).parents) if p.exists()), None)
        if anchor is not None:
            free = shutil.disk_usage(anchor).free / 2**20
            text += f" ({free:.0f} MiB free there; a run needs room for its notebooks, figures and results)"
    return text


#: Above these the run says its estimate before it starts (a run of the bundled datasets stays below both).
SAY_ESTIMATE_BYTES, SAY_ESTIMATE_S = 1e9, 600


def _say_estimate(effective: Mapping[str, Any], log: Callable[[str], None]) -> None:
    """Warn of exact duplicate pairs (by index) and say the extraction's estimate when it is large."""
    dups = effective.get("duplicate_pairs") or []
    if dups:
        shown = ", ".join(f"{j} repeats {i}" for i, j in dups[:10]) + (f" and {len(dups) - 10} more"
                                                                        if len(dups) > 10 else "")
        log(f"[ua-book] warning: the dataset holds {len(dups)} exact duplicate pair{'s' * (len(dups) > 1)} "
            f"(pair {shown}); each counts as independent evidence in every CI")
    est = effective.get("estimate") or {}
    if est.get("embeddings_bytes", 0) > SAY_ESTIMATE_BYTES or est.get("extraction_s", 0) > SAY_ESTIMATE_S:
        log(f"[ua-book] estimate: {est['embeddings_bytes'] / 1e9:.1f} GB of hidden states, extraction up to "
            f"~{est['extraction_s'] / 60:.0f} min on the CPU")


def _clear_leftovers(target: Path, staging: Path, log: Callable[[str], None]) -> None:
    """Remove staging folders of earlier runs into ``target`` that stopped without cleaning up (the claim on
    ``target`` is held, so none of them belongs to a live run)."""
    for old in target.parent.glob(f".{target.name}.staging-*"):
        if old != staging and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            log(f"[ua-book] removed {old}, the staging folder of an earlier run into {target} that stopped")


def _leave_failed(staging: Path, target: Path, manifest: dict[str, Any]) -> str:
    """Mark ``staging`` failed or interrupted; move it to ``target`` unless that holds a complete run."""
    manifest = {**manifest, "finished": now()}
    manifest.pop("staging", None)
    try:
        manifest["files"] = run_files(staging)
        write_manifest(staging, manifest)
    except OSError as exc:  # a full disk, a vanished folder: leave no staging folder that says "running"
        shutil.rmtree(staging, ignore_errors=True)
        return f"the unfinished run could not be kept ({_os_error(exc, staging)}); its staging folder was removed"
    if (read_manifest(target) or {}).get("status") == "complete":
        kept = target.parent / f".{target.name}.failed-{stamp()}-{os.getpid()}"
        os.rename(staging, kept)
        return f"the unfinished run is in {kept}; the previous complete run in {target} is untouched"
    replace_run(staging, target)
    return f"the unfinished run is in {target} ({MANIFEST} says {manifest['status']!r})"


def _versions() -> dict[str, str]:
    from ..report.results import environment

    return environment()


#: The notebook during which this process reads :func:`_versions` on a thread (importing torch, ~2 s of CPU): one
#: that leaves a core free (notebook 5 draws figures on one), so the reading costs the run no time.
VERSIONS_DURING = "05_visualization"


class _Background:
    """``fn()`` on a daemon thread, started by :meth:`start` or by :meth:`result`, which waits for its value.

    The manifest's ``versions`` are read this way, while the notebooks run; they are written with the manifest
    that ends the run (complete, failed or interrupted), which the running manifest's ``null`` stands for until
    then.
    """

    def __init__(self, fn: Callable[[], Any]):
        self._fn = fn
        self._thread: threading.Thread | None = None
        self._outcome: tuple[bool, Any] | None = None

    def _run(self) -> None:
        try:
            self._outcome = (True, self._fn())
        except BaseException as exc:  # noqa: BLE001 - raised again by result()
            self._outcome = (False, exc)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ua-book versions", daemon=True)
            self._thread.start()

    def result(self) -> Any:
        self.start()
        self._thread.join()
        ok, value = self._outcome
        if not ok:
            raise value
        return value


def git_commit(path: str | os.PathLike) -> str | None:
    """Return the commit of the git checkout holding ``path`` (``+dirty`` with uncommitted changes), or None."""
    import subprocess

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
