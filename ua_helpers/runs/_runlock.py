"""Claiming a run directory (an atomic, flock-held lock file beside it) and replacing it by a finished one.

See :mod:`ua_helpers.runs.rundir` for the protocol; this module holds its file-system mechanics.
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping


class RunDirError(RuntimeError):
    """A run directory that cannot be used: refused, claimed by another run, stale, or not writable."""


def now() -> str:
    """The local time with its UTC offset, as a manifest records when a run started or finished."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def stamp() -> str:
    """The local time as a compact stamp for the names of staging and set-aside folders."""
    return time.strftime("%Y%m%dT%H%M%S")


# --------------------------------------------------------------------------- claiming
@dataclass
class Claim:
    """A held lock on a run directory; :meth:`release` gives it up."""

    run_dir: Path
    lock: Path
    holder: dict[str, Any]
    fd: int

    def release(self) -> None:
        try:
            if os.stat(self.lock).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.lock)
        except FileNotFoundError:
            pass
        finally:
            os.close(self.fd)


def lock_path(run_dir: str | os.PathLike) -> Path:
    """Return the lock file of ``run_dir``: ``.NAME.lock`` beside it (it survives the directory's replacement)."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"


def _holder_text(holder: Mapping[str, Any]) -> str:
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"


def _lock_is_free(lock: Path) -> bool | None:
    """True if nobody holds ``lock``'s flock, False if someone does, None if the lock vanished."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def claim(run_dir: Path, staging: Path, take_over: bool = False, log: Callable[[str], None] = print) -> Claim:
    """Claim ``run_dir`` for this process, or raise :class:`RunDirError` naming the holder.

    Parameters
    ----------
    run_dir : Path
        The run directory (absolute); its parent must exist.
    staging : Path
        Where this run stages; recorded in the lock.
    take_over : bool, default=False
        Take over a stale lock (its process is gone) and remove that process's unfinished staging directory.
    """
    lock = lock_path(run_dir)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": now(), "run_dir": str(run_dir),
              "staging": str(staging)}
    payload = json.dumps(holder).encode()
    for _ in range(5):
        fd, tmp = tempfile.mkstemp(prefix=f".{run_dir.name}.lock-", dir=run_dir.parent)
        try:
            os.write(fd, payload)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new inode: nobody else can hold it
            os.link(tmp, lock)  # atomic, and fails if a lock exists
            return Claim(run_dir, lock, holder, fd)
        except FileExistsError:
            os.close(fd)
        finally:
            os.unlink(tmp)
        try:
            other = json.loads(lock.read_text(encoding="utf-8") or "{}")
        except FileNotFoundError:
            continue  # released meanwhile: try again
        except ValueError:
            other = {}
        free = _lock_is_free(lock)
        if free is None:
            continue
        if not free or other.get("host") != holder["host"]:
            where = "" if free is False else " (on another host: it cannot be checked from here; delete the " \
                                             "lock if no run is going on there)"
            raise RunDirError(f"{run_dir} is being written by another run: {_holder_text(other)}{where} "
                              f"(lock {lock})")
        if not take_over:
            raise RunDirError(f"{run_dir} has a stale lock {lock}: {_holder_text(other)}, which is no longer "
                              "running. Run again with --take-over to take the directory over")
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(lock).st_ino != os.fstat(fd).st_ino:
                raise BlockingIOError  # replaced meanwhile
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, payload, 0)
        message = f"[ua-book] took over the stale lock of {_holder_text(other)}"
        old = Path(other["staging"]) if other.get("staging") else None
        if old is not None and old.parent == run_dir.parent and old.name.startswith(f".{run_dir.name}.staging-") \
                and old.is_dir():
            shutil.rmtree(old)
            message += f"; removed its unfinished staging directory {old}"
        log(message)
        return Claim(run_dir, lock, holder, fd)
    raise RunDirError(f"could not claim {run_dir}: its lock {lock} kept changing (another run is starting?)")


# --------------------------------------------------------------------------- replacing
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically (Linux renameat2); return False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def replace_run(staging: Path, target: Path) -> None:
    """Put the finished ``staging`` directory in place of ``target`` and remove what ``target`` held."""
    if not target.exists():
        os.rename(staging, target)
        return
    if _exchange(staging, target):
        shutil.rmtree(staging)  # now the previous run
        return
    aside = target.parent / f".{target.name}.previous-{stamp()}"
    os.rename(target, aside)
    os.rename(staging, target)
    shutil.rmtree(aside)
