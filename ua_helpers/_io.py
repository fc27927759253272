"""Atomic writes, the cache directory, hashing and bounded downloads: the small I/O layer every stage shares."""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import numpy as np

CACHE_ENV = "UA_CACHE_DIR"


def resolve_cache_env() -> str | None:
    """Make a relative ``$UA_CACHE_DIR`` absolute, once, in this process's environment; return its value.

    A relative path is resolved against the current working directory at the first call and written back to
    ``os.environ``, so that later calls (after a ``chdir``) and child processes started afterwards (notebook
    kernels, whose working directory is ``notebooks/``) all use the same folder. Call it before starting
    subprocesses; :func:`cache_dir` calls it too.
    """
    root = os.environ.get(CACHE_ENV)
    if root and not os.path.isabs(os.path.expanduser(root)):
        root = os.path.abspath(os.path.expanduser(root))
        os.environ[CACHE_ENV] = root
    return root or None


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder under the user cache directory.

    The root is ``$UA_CACHE_DIR`` if set (a relative value is made absolute once, see
    :func:`resolve_cache_env`), else ``$XDG_CACHE_HOME/ua-helpers``, else ``~/.cache/ua-helpers``.
    """
    root = resolve_cache_env()
    if root:
        root = os.path.expanduser(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "ua-helpers")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def stable_hash(obj: Any) -> str:
    """Hash a JSON-serialisable object independently of key order."""
    return sha256_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write a file through ``write(fileobj)`` into a temporary sibling, then rename it into place.

    A crash half-way leaves only a ``.tmp-*`` file that no reader ever opens; the target is either the old
    file or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0o022)  # the only way to read it; restored at once
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600: give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:  # name the file
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert NumPy scalars and arrays to plain Python, and non-finite floats to ``None`` (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        obj = float(obj)
        return obj if math.isfinite(obj) else None
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Save arrays and a JSON metadata record to one ``.npz`` file, atomically and without pickle."""
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["__meta__"] = np.array(json.dumps(to_jsonable(meta)))
    return atomic_write(path, lambda f: np.savez(f, **payload))


def load_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Load what :func:`save_arrays` wrote (``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(str(z["__meta__"]))
    return arrays, meta


# --------------------------------------------------------------------------- bounded downloads
#: Largest download accepted (datasets and results files are kilobytes to a few megabytes).
MAX_DOWNLOAD_BYTES = 50 * 2**20
#: Overall time allowed for one download, headers and body together, however slowly the server answers.
DOWNLOAD_DEADLINE_S = 60.0


class DownloadError(OSError):
    """A download that failed, was larger than allowed, or did not finish in time; the message says which."""


def _stream(url: str, max_bytes: int, socket_timeout: float, abort: threading.Event, chunk: int) -> bytes:
    with urllib.request.urlopen(url, timeout=socket_timeout) as resp:
        length = resp.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > max_bytes:
            raise DownloadError(f"the server announces {int(length)} bytes, more than the limit of "
                                f"{max_bytes} bytes")
        buf = bytearray()
        while not abort.is_set():
            block = resp.read1(chunk)  # at most one read from the socket: a dripping server cannot hold it
            if not block:
                return bytes(buf)
            buf += block
            if len(buf) > max_bytes:
                raise DownloadError(f"the answer exceeds the limit of {max_bytes} bytes; refused")
        raise DownloadError("aborted after the deadline")


def download(url: str, *, max_bytes: int = MAX_DOWNLOAD_BYTES, deadline_s: float = DOWNLOAD_DEADLINE_S,
             chunk: int = 1 << 16) -> bytes:
    """Download ``url`` into memory, refusing more than ``max_bytes`` or more than ``deadline_s`` overall.

    The body is streamed and counted, so memory never exceeds ``max_bytes`` (plus one chunk) whatever the
    server announces. The deadline covers the whole exchange: the transfer runs in a daemon thread and the
    caller stops waiting at the deadline (a socket timeout alone lets a server that sends one byte per
    timeout hold a run forever); the abandoned thread stops at its next chunk or socket timeout.

    Parameters
    ----------
    url : str
        An ``http(s)://`` address.
    max_bytes : int, default=MAX_DOWNLOAD_BYTES
        Largest body accepted, in bytes.
    deadline_s : float, default=DOWNLOAD_DEADLINE_S
        Seconds allowed for the whole download.

    Returns
    -------
    bytes
        The body.

    Raises
    ------
    DownloadError
        On any network error, a body over ``max_bytes``, or a download that does not finish by the deadline.
    """
    if not (isinstance(max_bytes, int) and max_bytes > 0):
        raise ValueError(f"max_bytes must be a positive integer; got {max_bytes!r}")
    if not deadline_s > 0:
        raise ValueError(f"deadline_s must be positive; got {deadline_s!r}")
    outcome: dict[str, Any] = {}
    abort = threading.Event()

    def work():
        try:
            outcome["data"] = _stream(url, max_bytes, min(deadline_s, 30.0), abort, chunk)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    start = time.monotonic()
    worker = threading.Thread(target=work, name=f"download {url}", daemon=True)
    worker.start()
    worker.join(deadline_s)
    if worker.is_alive():
        abort.set()
        raise DownloadError(f"no complete answer within the deadline of {deadline_s:g} s "
                            f"({time.monotonic() - start:.1f} s elapsed); the server is too slow or stalled")
    error = outcome.get("error")
    if isinstance(error, DownloadError):
        raise error
    if isinstance(error, OSError):
        raise DownloadError(str(error)) from error
    if error is not None:
        raise error
    return outcome["data"]
