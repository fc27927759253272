"""Content-verified cache directories, published atomically and safely under concurrent writers.

A cache directory (e.g. a GGUF model converted to safetensors) is built in a unique temporary sibling
``.tmp-<name>-<random>`` and published with one ``rename``; its completion record ``complete.json`` carries the
size and SHA-256 of every file. Readers verify the record before trusting the directory, so a flipped bit in the
weights is found (and the directory rebuilt) rather than used. Protocol:

1. The target verifies: use it (each file hashed once per process per path, size and modification time).
2. Otherwise build into a fresh temporary directory, write the record, ``rename`` it onto the target.
3. The rename fails because the target exists: another process published first (its target verifies: discard
   ours and use theirs), or the target is damaged or of an older format. Under a lock file, the damaged target is
   renamed aside and ours renamed in, so a reader sees the old directory, none, or the new one, never a
   half-removed one.
4. Temporary directories left by killed builds are removed when their owner process is dead (same host) or
   they are older than :data:`STALE_AFTER_S`.
"""
from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import socket
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from .._io import atomic_write_json, sha256_file, stable_hash

RECORD = "complete.json"
RECORD_FORMAT = 2
#: A temporary directory whose owner cannot be checked is removed after this many seconds.
STALE_AFTER_S = 3600.0
_OWNER = ".owner.json"
_TMP = ".tmp-"


class CacheMismatch(ValueError):
    """A cache directory whose files do not match its completion record (or that has no usable record)."""


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def file_sha256(path: str | os.PathLike) -> str:
    """Return the SHA-256 of a file, computed once per process for an unchanged path, size and mtime."""
    st = os.stat(path)
    return _file_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def content_files(directory: Path) -> list[str]:
    """Relative paths of the regular files under ``directory``, except the record and dot-files."""
    names = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if path.is_file() and rel.as_posix() != RECORD and not any(p.startswith(".") for p in rel.parts):
            names.append(rel.as_posix())
    return names


def describe_files(directory: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Return ``{relative path: {"size", "sha256"}}`` for the content files of ``directory``."""
    directory = Path(directory)
    return {name: {"size": (directory / name).stat().st_size, "sha256": file_sha256(directory / name)}
            for name in content_files(directory)}


def content_digest(record: dict[str, Any]) -> str:
    """Short digest of a directory's content, from its verified record (the files' names and SHA-256s)."""
    return stable_hash({name: f["sha256"] for name, f in record["files"].items()})[:16]


def verify_dir(directory: str | os.PathLike) -> dict[str, Any]:
    """Check every file of ``directory`` against its completion record; return the record.

    Raises
    ------
    FileNotFoundError
        The directory or its record does not exist (nothing was published there).
    CacheMismatch
        The record is unreadable or of an older format without digests, a file is missing or unexpected, or
        a file's size or SHA-256 differs from the record; the message names the file.
    """
    directory = Path(directory)
    path = directory / RECORD
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no completion record {RECORD}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheMismatch(f"{path} is unreadable: {exc}") from exc
    files = record.get("files") if isinstance(record, dict) else None
    if record.get("format") != RECORD_FORMAT or not isinstance(files, dict) or not files:
        raise CacheMismatch(f"{path} records no file digests (an older cache format): its files cannot be "
                            "verified")
    present = set(content_files(directory))
    for name in sorted(set(files) - present):
        raise CacheMismatch(f"{directory / name} is missing")
    for name in sorted(present - set(files)):
        raise CacheMismatch(f"{directory / name} is not in the completion record")
    for name, expected in files.items():
        size = (directory / name).stat().st_size
        if size != expected.get("size"):
            raise CacheMismatch(f"{directory / name} has {size} bytes; the record says {expected.get('size')}")
        if file_sha256(directory / name) != expected.get("sha256"):
            raise CacheMismatch(f"{directory / name} does not match the SHA-256 in its completion record")
    return record


# --------------------------------------------------------------------------- temporary directories
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _is_stale(tmp: Path, now: float, max_age_s: float) -> bool:
    try:
        owner = json.loads((tmp / _OWNER).read_text(encoding="utf-8"))
        if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
            return not _pid_alive(owner["pid"])
    except (OSError, ValueError, AttributeError):
        pass  # no owner to ask (being renamed, written by an older version, or another host): go by age
    try:
        return now - tmp.stat().st_mtime > max_age_s
    except FileNotFoundError:
        return False


def clean_stale(parent: str | os.PathLike, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove ``.tmp-*`` directories under ``parent`` left by dead builds; return those removed.

    A directory is stale when its owner process (recorded in it) ran on this host and is gone, or, where the
    owner cannot be checked, when it is older than ``max_age_s`` seconds.
    """
    removed, now = [], time.time()
    for tmp in Path(parent).glob(f"{_TMP}*"):
        if tmp.is_dir() and not tmp.is_symlink() and _is_stale(tmp, now, max_age_s):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _new_temporary(target: Path) -> Path:
    tmp = target.parent / f"{_TMP}{target.name}-{uuid.uuid4().hex[:12]}"
    tmp.mkdir(parents=True)
    (tmp / _OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                          "created": time.time()}), encoding="utf-8")
    return tmp


@contextmanager
def _lock(target: Path):
    """Hold an exclusive lock on ``target``'s lock file (advisory; a no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: the rename protocol alone still never shows a half-removed directory
        yield
        return
    with open(target.parent / f".{target.name}.lock", "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _publish(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target``; if the target exists, keep it when it verifies, else replace it."""
    for _ in range(5):
        try:
            os.rename(tmp, target)  # atomic; refuses a non-empty existing directory
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        with _lock(target):
            try:
                verify_dir(target)
                return  # another process published a good one first: ours is discarded by the caller
            except (FileNotFoundError, CacheMismatch):
                pass
            trash = target.parent / f"{_TMP}old-{target.name}-{uuid.uuid4().hex[:12]}"
            try:
                os.rename(target, trash)  # aside in one step: readers see the old directory or none
            except FileNotFoundError:
                continue
            try:
                os.rename(tmp, target)
            finally:
                shutil.rmtree(trash, ignore_errors=True)
            return
    raise RuntimeError(f"could not publish {target}: it kept changing under concurrent writers")


def materialize_dir(target: str | os.PathLike, build: Callable[[Path], dict[str, Any]], *,
                    what: str = "cache directory") -> tuple[Path, dict[str, Any]]:
    """Return ``target`` and its verified record, building and publishing it first where needed.

    Parameters
    ----------
    target : path
        The cache directory.
    build : callable
        ``build(tmp)`` writes the directory's files into the empty folder ``tmp`` and returns extra fields for
        the completion record (JSON-serialisable).
    what : str
        How warnings name the directory.

    Returns
    -------
    (Path, dict)
        The verified directory and its completion record (``record["files"]`` holds each file's SHA-256).
    """
    target = Path(target)
    if target.parent.is_dir():
        clean_stale(target.parent)  # also when the target is good: a killed build may have lost a race
    try:
        return target, verify_dir(target)
    except FileNotFoundError:
        pass
    except CacheMismatch as exc:
        warnings.warn(f"rebuilding the {what}: {exc}", stacklevel=2)
    tmp = _new_temporary(target)
    try:
        try:
            extra = build(tmp)
        except Exception as exc:  # a library's own error for a full disk (safetensors, torch) names no folder
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "No space left" in str(exc) \
                    or "os error 28" in str(exc):
                free = shutil.disk_usage(target.parent).free / 2**20
                raise OSError(errno.ENOSPC, f"no space left for the {what} in {target.parent} ({free:.0f} MiB "
                                            "free there; point $UA_CACHE_DIR at a folder with room)",
                              str(target)) from None
            raise
        (tmp / _OWNER).unlink()
        record = {**(extra or {}), "format": RECORD_FORMAT, "files": describe_files(tmp)}
        atomic_write_json(tmp / RECORD, record)
        _publish(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target, verify_dir(target)
