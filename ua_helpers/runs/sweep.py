"""Sweeps: one ``ua-book run`` per model or training checkpoint, one after another or as Ray tasks.

:func:`run_sweep` runs each entry of a validated sweep file (:mod:`ua_helpers.runs.sweepfile`) with
:func:`ua_helpers.runs.rundir.execute` into ``<root>/<name>``, skips entries whose run is already complete with the same
parameters and weights, records each entry's status in ``<root>/sweep.json`` after every entry, and claims the root
as a run folder is claimed. The user's guide (file format, engines, requirements, models larger than one GPU) is
the book's page ``book/sweeps.md``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import rundir
from ._runlock import RunDirError, claim
from .._io import atomic_write_json, to_jsonable
from .sweepfile import Sweep, SweepEntry, SweepError, default_root, load_sweep, unmet_requirement

SWEEP_FILE = "sweep.json"
ENGINES = ("local", "ray")
#: Environment variables passed on to Ray tasks where they are set in the driver.
FORWARDED_ENV = ("UA_CACHE_DIR", "UA_230_PATH")
RAY_INSTALL = 'pip install "ua-helpers[sweep]"   (or: pip install "ray>=2.9")'


class EngineError(RuntimeError):
    """The requested engine is not available (e.g. Ray is not installed); the message says what to install."""


# --------------------------------------------------------------------------- one entry
def _comparable(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as JSON would give them back, without ``run_dir`` (moving a sweep's root reruns nothing)."""
    out = json.loads(json.dumps(to_jsonable(dict(params))))
    out.pop("run_dir", None)
    return out


def rerun_reason(entry: SweepEntry, run_dir: str | os.PathLike) -> str | None:
    """Why ``entry`` must run into ``run_dir``, or None when the directory already holds its complete run.

    A run counts as done when it is complete (:func:`ua_helpers.runs.rundir.completeness`), the manifest's
    parameters equal the entry's (``run_dir`` aside) and the model's weights are those the run used
    (:func:`ua_helpers.inputs.models.model_fingerprint`: a local directory whose files changed is run again).
    """
    run_dir = Path(run_dir)
    if not (run_dir / rundir.MANIFEST).exists():
        return "no earlier run"
    reason = rundir.completeness(run_dir)
    if reason is not None:
        return reason
    manifest = rundir.read_manifest(run_dir) or {}
    before, now = _comparable(manifest.get("parameters") or {}), _comparable(entry.params)
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if changed:
        return "parameters changed: " + ", ".join(f"{k} {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
    recorded = (manifest.get("model") or {}).get("fingerprint")
    if recorded:
        from ..inputs.models import model_fingerprint

        try:
            current = model_fingerprint(entry.model, entry.revision)
        except Exception:  # the weights cannot be identified now (e.g. moved away): trust the parameters
            current = recorded
        if current != recorded:
            return "the model's weights changed since the earlier run"
    return None


def run_entry(entry: SweepEntry, run_dir: str | os.PathLike, log: Callable[[str], None] = print,
              take_over: bool = False) -> dict[str, Any]:
    """Run one entry with :func:`ua_helpers.runs.rundir.execute`; return its record (never raises for a failed run).

    Returns
    -------
    dict
        ``status`` (``"complete"`` or ``"failed"``), ``error`` (None or the message), ``elapsed_s``,
        ``started``, ``finished``.
    """
    start = time.perf_counter()
    record: dict[str, Any] = {"started": _now()}
    try:
        rundir.execute(dict(entry.params), run_dir=Path(run_dir), take_over=take_over,
                       log=lambda msg: log(f"[{entry.name}] {msg}"))
    except rundir.RunInterrupted:
        raise  # SIGINT / SIGTERM stop the sweep too
    except Exception as exc:  # recorded, not raised: the other entries go on
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        log(f"[{entry.name}] failed: {type(exc).__name__}: {exc}")
    else:
        record.update(status="complete", error=None)
    record.update(finished=_now(), elapsed_s=round(time.perf_counter() - start, 2))
    return record


def _run_entry_task(entry: SweepEntry, run_dir: str, env: dict[str, str], take_over: bool) -> dict[str, Any]:
    """:func:`run_entry` inside a Ray worker, with the driver's cache settings (kernels inherit them)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return run_entry(entry, run_dir, log=lambda msg: print(msg, flush=True), take_over=take_over)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- the sweep
def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise EngineError(f"--engine ray needs Ray, which is not installed here. Install it with:\n"
                          f"  {RAY_INSTALL}") from None
    return ray


def run_sweep(sweep: Sweep, root: str | os.PathLike | None = None, engine: str = "local",
              address: str | None = None, log: Callable[[str], None] = print,
              take_over: bool = False) -> dict[str, Any]:
    """Run every entry of ``sweep`` that is not done yet into ``<root>/<name>``; write ``<root>/sweep.json``.

    Parameters
    ----------
    sweep : Sweep
        From :func:`load_sweep` or :func:`parse_sweep`.
    root : path, optional
        Overrides ``sweep.root``; one of the two is required.
    engine : {"local", "ray"}, default="local"
        ``"local"`` runs entries one after another here; ``"ray"`` submits each as a Ray task.
    address : str, optional
        The Ray cluster (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``); None or ``"local"`` starts a local
        Ray instance for the sweep. Only with ``engine="ray"``.
    log : callable, default=print
    take_over : bool, default=False
        Take over stale locks (of the root and of the entries' run directories) left by a process that is gone.

    Returns
    -------
    dict
        The content of ``sweep.json``: ``status`` (``"complete"``, ``"failed"`` if an entry failed, or
        ``"interrupted"``), ``counts`` and ``entries`` (one record per entry, in file order; a skipped entry's
        ``run_finished`` is when its run completed).

    Raises
    ------
    ua_helpers.runs._runlock.RunDirError
        Another sweep is running into the same root (one sweep per root at a time: the root is claimed as a run
        directory is, see :func:`ua_helpers.runs._runlock.claim`).
    """
    if engine not in ENGINES:
        raise SweepError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if address is not None and engine != "ray":
        raise SweepError("--address applies to --engine ray only")
    ray = _import_ray() if engine == "ray" else None
    if root is None and sweep.root is None:
        raise SweepError("no root for the run directories: give --root or set 'root:' in the sweep file")
    root_path = Path(root if root is not None else sweep.root).expanduser().resolve()
    if rundir.read_manifest(root_path) is not None:  # a run would later replace the folder and the sweep in it
        raise RunDirError(f"the sweep root {root_path} holds a run ({rundir.MANIFEST}); a sweep needs a "
                                 "folder of its own: choose another root")
    root_path.mkdir(parents=True, exist_ok=True)
    try:  # one sweep per root at a time
        held = claim(root_path, root_path, take_over=take_over, log=log)
    except OSError as exc:
        raise RunDirError(f"cannot write beside the sweep root {root_path}: {exc.strerror or exc}") from None
    try:
        return _run_claimed(sweep, root_path, engine, ray, address, log, take_over)
    finally:
        held.release()


def _run_claimed(sweep: Sweep, root_path: Path, engine: str, ray, address: str | None,
                 log: Callable[[str], None], take_over: bool) -> dict[str, Any]:
    state: dict[str, Any] = {
        "status": "running",
        "sweep_file": str(Path(sweep.source).resolve()) if sweep.source and Path(sweep.source).is_file()
        else sweep.source,
        "root": str(root_path), "engine": engine,
        "address": address, "started": _now(), "finished": None, "counts": {},
        "entries": [{"name": e.name, "status": "pending", "run_dir": e.name, "model": e.model,
                     "revision": e.revision, "gpus": e.gpus, "error": None} for e in sweep.entries],
    }
    records = {rec["name"]: rec for rec in state["entries"]}

    def write() -> None:
        state["counts"] = {s: sum(r["status"] == s for r in state["entries"])
                           for s in ("complete", "skipped", "unavailable", "failed", "pending", "running") if
                           any(r["status"] == s for r in state["entries"])}
        atomic_write_json(root_path / SWEEP_FILE, state)

    to_run = []
    unmet: dict[str, str | None] = {}  # each requirement checked once per sweep
    for entry in sweep.entries:
        reason = rerun_reason(entry, root_path / entry.name)
        if reason is None:
            finished = (rundir.read_manifest(root_path / entry.name) or {}).get("finished")
            records[entry.name].update(status="skipped", reason="complete run with the same parameters",
                                       run_finished=finished)
            log(f"[sweep] {entry.name}: skipped (complete run with the same parameters)")
            continue
        for name in entry.requires:
            if name not in unmet:
                unmet[name] = unmet_requirement(name)
        missing = [name for name in entry.requires if unmet[name] is not None]
        if missing:
            note = "; ".join(f"requires {name}: {unmet[name]}" for name in missing)
            records[entry.name].update(status="unavailable", reason=note)
            log(f"[sweep] {entry.name}: unavailable here, not run ({note.splitlines()[0]})")
        else:
            to_run.append(entry)
            log(f"[sweep] {entry.name}: to run ({reason})")
    write()
    try:
        if to_run and engine == "local":
            for entry in to_run:
                records[entry.name]["status"] = "running"
                write()
                records[entry.name].update(run_entry(entry, root_path / entry.name, log=log, take_over=take_over))
                write()
        elif to_run:
            _run_on_ray(ray, to_run, root_path, address, records, write, log, take_over)
    finally:
        interrupted = any(r["status"] in ("pending", "running") for r in state["entries"])
        failed = any(r["status"] == "failed" for r in state["entries"])
        state.update(status="interrupted" if interrupted else "failed" if failed else "complete",
                     finished=_now())
        write()
    return state


def _run_on_ray(ray, entries: Sequence[SweepEntry], root: Path, address: str | None,
                records: dict[str, dict[str, Any]], write: Callable[[], None], log: Callable[[str], None],
                take_over: bool = False) -> None:
    """Submit each entry as a Ray task and record results as they arrive."""
    from ray.exceptions import RayError

    started_here = not ray.is_initialized()
    if started_here:
        if address in (None, "", "local"):
            ray.init(address="local", include_dashboard=False)
        else:
            ray.init(address=address)
    try:
        task = ray.remote(_run_entry_task)
        # Absolute here: a worker's current directory is not the driver's.
        base_env = {k: str(Path(os.environ[k]).expanduser().absolute())
                    for k in FORWARDED_ENV if os.environ.get(k)}
        pending = {}
        for entry in entries:
            # An entry without GPUs sees none (rather than sharing those Ray gave to other tasks).
            env = {**base_env, **({"CUDA_VISIBLE_DEVICES": ""} if not entry.gpus else {})}
            ref = task.options(num_cpus=entry.cpus, num_gpus=entry.gpus, max_retries=0,
                               name=f"ua-sweep:{entry.name}").remote(entry, str(root / entry.name), env,
                                                                     take_over)
            pending[ref] = entry
            records[entry.name]["status"] = "running"
            log(f"[sweep] {entry.name}: submitted (num_gpus={entry.gpus}, num_cpus={entry.cpus})")
        write()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            entry = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except RayError as exc:  # the worker died, the task could not be scheduled, ...
                result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "finished": _now()}
            records[entry.name].update(result)
            log(f"[sweep] {entry.name}: {result['status']}"
                + (f" in {result['elapsed_s']} s" if "elapsed_s" in result else ""))
            write()
    finally:
        if started_here:
            ray.shutdown()


def format_summary(state: Mapping[str, Any]) -> str:
    """One line per entry: name, status, time, and the first line of its error (or why it is unavailable)."""
    width = max([len(r["name"]) for r in state["entries"]] + [4])
    lines = [f"{'name':<{width}}  {'status':<11}  {'time':>8}  note"]
    for r in state["entries"]:
        elapsed = f"{r['elapsed_s']:.1f} s" if r.get("elapsed_s") is not None else ""
        note = r.get("error") or (r.get("reason") if r["status"] == "unavailable" else None) or ""
        lines.append(f"{r['name']:<{width}}  {r['status']:<11}  {elapsed:>8}  {note.splitlines()[0] if note else ''}")
    return "\n".join(lines)


def sweep_command(sweep_file: str | os.PathLike, engine: str = "local", address: str | None = None,
                  root: str | os.PathLike | None = None, take_over: bool = False) -> int:
    """``ua-book sweep``: run a sweep file; return the exit code (0 all done, 1 an entry failed, 2 bad input)."""
    try:
        sweep = load_sweep(sweep_file)
        if root is None and sweep.root is None:
            root = default_root(sweep_file)
        state = run_sweep(sweep, root=root, engine=engine, address=address, take_over=take_over)
    except (SweepError, EngineError) as exc:
        print(f"ua-book: error: {exc}", file=sys.stderr)
        return 2
    except rundir.RunInterrupted as exc:
        print(f"ua-book: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except RunDirError as exc:
        print(f"ua-book: error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(state))
    print(f"[ua-book] sweep {state['status']}: {Path(state['root']) / SWEEP_FILE}")
    return 0 if state["status"] == "complete" else 1
