"""Run parameters: the names every notebook's ``parameters`` cell and ``ua-book run -p`` share, with validation."""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from ..options import DTYPES, POOLINGS, PREFIXES, REPRESENTATIONS


class ParameterError(ValueError):
    """A run parameter with an unknown name, a wrong type or an impossible value."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. Defaults: the embedded model on the bundled dataset, offline, on CPU.

    Attributes
    ----------
    model : str
        Hub id, local directory, ``.gguf`` file or ``"smollm2-135m"``.
    revision : str or None
        Hub revision (e.g. Pythia's ``"step143000"``).
    dtype, device : str
        ``"auto"``: float16 on CUDA, float32 on CPU.
    dataset : str
        ``"replication-230"``, ``"neutral-60"`` (the bundled control set), ``"ua-230"``, a path or a URL.
    layers : "paper", "all" or tuple of int
    pooling : {"mean", "last"}
    representation : {"hidden-states", "token-embeddings", "random-tokens"}
        What the geometry is made of: the model's hidden states (the seed); its input embedding table, pooled the
        same way; or a seeded Gaussian vector per token id (``seed``; no model). The preference always comes from
        the model, so the last two are control runs of the same question.
    prefix : {"none", "bos"}
        ``"bos"`` puts the tokenizer's BOS (or end-of-text) token before every statement, so pooling over tokens
        1..T-1 skips a non-word and the NLL scores every word; ``"none"`` is the seed's tokenization.
    batch_size, n_bootstrap, n_permutations, seed, knn_k : int
        ``n_permutations``: permutations of the preference for the permutation and max-statistic tests.
    ci_level : float
    orientation : {"as-given", "by-role"}
        ``"by-role"`` swaps the sides of a pair where needed so that, within a category, side A always holds the
        same framing (needs a dataset that records each side's role); the preference's sign follows the swap.
    n_bins, n_binnings : int
        Option A (random bins): bins of the seeded binning, and random binnings per bin count.
    allow_low_precision : bool
        Accept ``n_bootstrap`` or ``n_permutations`` below 1,000 (their CIs and p-values are then too coarse to
        mean much; the run records that it was asked for).
    run_dir : str
        Where the run's results, figures and executed notebooks go.
    reference_results : str or None
        A results file in the seed's schema (path, URL or ``"published"``) to compare against.
    repo_url : str or None
        Git URL that the setup notebook installs ``ua_helpers`` from where it is missing (Colab).
    """

    model: str = "smollm2-135m"
    revision: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    dataset: str = "replication-230"
    layers: Any = "paper"
    pooling: str = "mean"
    representation: str = "hidden-states"
    prefix: str = "none"
    batch_size: int = 32
    n_bootstrap: int = 10000
    n_permutations: int = 10000
    ci_level: float = 0.95
    seed: int = 42
    knn_k: int = 10
    orientation: str = "as-given"
    n_bins: int = 20
    n_binnings: int = 200
    allow_low_precision: bool = False
    run_dir: str = "runs/default"
    reference_results: str | None = None
    repo_url: str | None = None

    def __post_init__(self) -> None:
        for name in ("n_bootstrap", "n_permutations"):
            value = getattr(self, name)
            if isinstance(value, int) and value > MAX_RESAMPLES:
                raise ParameterError(f"{name} must be at most {MAX_RESAMPLES:,}; got {value:,} (the analysis runs "
                                     "in chunks, but time still grows with the count)")
            if isinstance(value, int) and value < MIN_RESAMPLES and not self.allow_low_precision:
                raise ParameterError(
                    f"{name} must be at least {MIN_RESAMPLES:,}; got {value:,} (percentile intervals and "
                    "p-values from so few resamples are too coarse to mean much). Set allow_low_precision true "
                    "to run anyway; the run records that it was asked for")

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """Return the parameter names, in field order (those of every notebook's ``parameters`` cell)."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> "RunConfig":
        """Validate parameters (unknown names, types, ranges) and return a RunConfig."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = {name: _coerce(name, value) for name, value in params.items()}
        return cls(**values)

    def to_parameters(self) -> dict[str, Any]:
        """Plain values for papermill and the manifest (layers as a list or a string)."""
        out = asdict(self)
        if isinstance(self.layers, tuple):
            out["layers"] = list(self.layers)
        return out

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir).expanduser()


#: Bounds of ``n_bootstrap`` and ``n_permutations`` (below the minimum only with ``allow_low_precision``).
MIN_RESAMPLES = 1_000
MAX_RESAMPLES = 1_000_000
#: Fewest pairs a run can analyse (the inference needs 4: a correlation with 2 degrees of freedom).
MIN_RUN_PAIRS = 4
#: How the two sides of each pair are oriented (see RunConfig.orientation).
ORIENTATIONS = ("as-given", "by-role")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda|cuda:[0-9]+)$")


def _as_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ParameterError(f"{name} must be an integer; got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        bound = f"at least {minimum}" if minimum else "non-negative"
        raise ParameterError(f"{name} must be {bound}; got {value}")
    return value


def _as_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ParameterError(f"{name} must be a non-empty string; got {value!r}")
    return value


def _as_opt_str(name: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    if not isinstance(value, str):
        raise ParameterError(f"{name} must be a string or None; got {value!r}")
    return value


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise ParameterError(f"{name} must be true or false; got {value!r}")
    return value


def _as_ci_level(name: str, value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"ci_level must be a number in (0, 1); got {value!r}") from None
    if not 0 < value < 1:
        raise ParameterError(f"ci_level must be in (0, 1); got {value}")
    return value


def _as_device(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE.match(value.strip()):
        raise ParameterError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' (N a non-negative integer) or "
                             f"'mps'; got {value!r}")
    return value.strip()


def _one_of(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ParameterError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        return value
    return check


#: How each RunConfig field is read from a notebook value or a command-line string: one entry per field
#: (checked at import below, and by tests/test_config.py), so a new field cannot be forgotten here.
_COERCE: dict[str, Callable[[str, Any], Any]] = {
    "model": _as_str, "revision": _as_opt_str, "dtype": _one_of(tuple(DTYPES)), "device": _as_device,
    "dataset": _as_str, "layers": lambda name, value: _coerce_layers(value), "pooling": _one_of(tuple(POOLINGS)),
    "representation": _one_of(tuple(REPRESENTATIONS)), "prefix": _one_of(tuple(PREFIXES)),
    "batch_size": lambda n, v: _as_int(n, v, 1), "n_bootstrap": lambda n, v: _as_int(n, v, 1),
    "n_permutations": lambda n, v: _as_int(n, v, 1), "ci_level": _as_ci_level,
    "seed": lambda n, v: _as_int(n, v, 0), "knn_k": lambda n, v: _as_int(n, v, 1),
    "orientation": _one_of(ORIENTATIONS), "n_bins": lambda n, v: _as_int(n, v, 1),
    "n_binnings": lambda n, v: _as_int(n, v, 1), "allow_low_precision": _as_bool, "run_dir": _as_str,
    "reference_results": _as_opt_str, "repo_url": _as_opt_str,
}
#: The comment beside each parameter in the notebooks' ``parameters`` cell (see :func:`parameters_cell`).
PARAMETER_HELP: dict[str, str] = {
    "model": 'hub id, local directory, .gguf file, or the embedded "smollm2-135m"',
    "revision": 'hub revision, e.g. Pythia\'s "step143000"',
    "dtype": "auto: float16 on CUDA (as the paper), float32 on CPU",
    "device": "auto, cpu, cuda, cuda:N or mps",
    "dataset": '"replication-230" or "neutral-60" (bundled), "ua-230" (the paper\'s pairs), a path or a URL',
    "layers": '"paper" (0, 4, 8, ... and the last block), "all", or a list such as [0, 8, 16]',
    "pooling": '"mean" over tokens 1..T-1 (original notebook), or "last"',
    "representation": '"hidden-states" (original notebook), "token-embeddings" or "random-tokens" (controls)',
    "prefix": '"none" (original notebook), or "bos": a BOS token before every statement',
    "batch_size": "statements per forward pass (at most; batches also respect a memory budget)",
    "n_bootstrap": "bootstrap resamples (1,000 to 1,000,000)",
    "n_permutations": "permutations of the preference (1,000 to 1,000,000)",
    "ci_level": "confidence level of every interval",
    "seed": "seeds every resample, permutation and random binning",
    "knn_k": "kNN neighbours (the point itself included; at most n_pairs - 1)",
    "orientation": '"as-given", or "by-role": side A holds the same framing within a category',
    "n_bins": "random bins of the seeded binning (Option A)",
    "n_binnings": "random binnings per bin count (Option A's distribution of r)",
    "allow_low_precision": "accept fewer than 1,000 resamples or permutations",
    "run_dir": "results, figures and executed notebooks go here",
    "reference_results": "a results file in the original notebook's schema to compare with (path or URL)",
    "repo_url": "git URL to install ua_helpers from where it is missing (Colab)",
}
_FIELDS = {f.name for f in fields(RunConfig)}
for _table in (_COERCE, PARAMETER_HELP):
    if set(_table) != _FIELDS:  # pragma: no cover - a developer error, caught at import
        raise ImportError(f"config tables and RunConfig disagree on {sorted(set(_table) ^ _FIELDS)}")


def parameters_cell() -> str:
    """Return the source of the ``parameters`` cell all six notebooks carry: every field, its default and help."""
    lines = ["# Parameters (papermill / `ua-book run -p NAME VALUE` override these)"]
    for name, default in RunConfig().to_parameters().items():
        value = json.dumps(default) if isinstance(default, str) else repr(default)
        lines.append(f"{f'{name} = {value}':<30}  # {PARAMETER_HELP[name]}")
    return "\n".join(lines)


def _coerce(name: str, value: Any) -> Any:
    """Turn a notebook value or a command-line string into the parameter's type, or raise ParameterError."""
    return _COERCE[name](name, value)


def _coerce_layers(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("paper", "all"):
            return text.lower()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ParameterError(f"layers: cannot parse {value!r}") from None
        else:
            value = text.split(",")
        try:
            value = [int(str(v).strip()) for v in value if str(v).strip()]
        except ValueError:
            raise ParameterError(
                f"layers must be 'paper', 'all' or a list of integers like '0,4,8'; got {text!r}"
            ) from None
    if isinstance(value, (list, tuple)):
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ParameterError(f"layers must be a non-empty list of integers; got {value!r}")
        if min(value) < 0:
            raise ParameterError(f"layers must be non-negative indices into hidden_states; got {value!r}")
        return tuple(sorted(set(value)))
    raise ParameterError(f"layers must be 'paper', 'all' or a list of integers; got {value!r}")


def effective_knn_k(knn_k: int, n_pairs: int) -> int:
    """Return the kNN neighbour count the metrics use: ``min(knn_k, n_pairs - 1)`` (the seed's clamp)."""
    return min(int(knn_k), int(n_pairs) - 1)


#: Bytes per value of the hidden states kept for every pair (emb_a, emb_b are float32).
EMBEDDING_BYTES = 4
#: Floating-point operations per second assumed per CPU core for the time estimate: an order of magnitude for
#: float32 matrix products on one core of a current CPU (a GPU is far faster, so the estimate is an upper bound).
NOMINAL_FLOPS_PER_CORE = 2e10


def resource_estimate(n_pairs: int, n_layers: int, d_model: int, num_layers: int, n_tokens: int,
                      cores: int | None = None) -> dict[str, float]:
    """Estimate the extraction's memory and CPU time before it runs.

    Memory is that of the hidden states kept for every pair, ``emb_a`` and ``emb_b`` (2 x n_layers x n_pairs x
    d_model float32); the metrics, bootstraps and kNN work in blocks and need far less. Time is the forward
    passes' ~2 x 12 x num_layers x d_model**2 floating-point operations per token (the blocks' weights, which
    dominate below a few thousand tokens per statement) at :data:`NOMINAL_FLOPS_PER_CORE` per core.

    Returns
    -------
    dict
        ``embeddings_bytes``, ``extraction_flops`` and ``extraction_s`` (on ``cores`` cores, default all).
    """
    import os

    emb = 2 * n_layers * n_pairs * d_model * EMBEDDING_BYTES
    flops = 2 * 12 * num_layers * d_model ** 2 * n_tokens
    cores = cores or os.cpu_count() or 1
    return {"embeddings_bytes": float(emb), "extraction_flops": float(flops),
            "extraction_s": flops / (NOMINAL_FLOPS_PER_CORE * cores)}


def machine_memory() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


#: The format of :func:`token_check_key`'s records; raised when what the check computes or records changes.
TOKEN_CHECK_FORMAT = 1


def token_check_key(cfg: RunConfig, pairs) -> dict[str, Any] | None:
    """Everything that decides the statements' token check of :func:`preflight`; None where it cannot be recorded.

    The tokenizer's files (a GGUF model's verified conversion, each file hashed now:
    :func:`ua_helpers.inputs.models.tokenizer_files`), the model's name and revision, every statement, category and
    the orientation, the prefix, the versions of ``transformers``, ``tokenizers`` and ``ua_helpers``, and the
    source of the modules that load the tokenizer and check the statements. A hub id or a local directory gives
    None: its tokenizer may read files that are not hashed here, so it is loaded every time.
    """
    import hashlib
    import importlib.metadata as md
    import sys

    from ..inputs import batching, models
    from .._io import stable_hash
    from .._version import __version__

    tokenizer = models.tokenizer_files(cfg.model)
    if tokenizer is None:
        return None
    versions = {"ua_helpers": __version__}
    for dist in ("transformers", "tokenizers"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "not installed"
    code = {Path(m.__file__).name: hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest()
            for m in (batching, models, sys.modules[__name__])}
    return {"format": TOKEN_CHECK_FORMAT, "model": cfg.model, "revision": cfg.revision, "tokenizer": tokenizer,
            "statements": stable_hash([list(pairs.stmt_a), list(pairs.stmt_b), list(pairs.category)]),
            "n_pairs": pairs.n_pairs, "orientation": cfg.orientation, "prefix": cfg.prefix, "versions": versions,
            "code": code}


def _token_check_path(key: dict[str, Any]) -> Path:
    from .._io import cache_dir, stable_hash

    return cache_dir("checks") / f"tokens-{stable_hash(key)[:32]}.json"


def _check_statements(cfg: RunConfig, pairs, batching, models) -> int:
    """Tokenize every statement as the extraction will, refusing what it would refuse; return the token count.

    A passed check is recorded under the cache's ``checks`` folder, keyed by :func:`token_check_key`; a record
    whose key equals the present one stands for the check (the tokenizer is then not loaded). A failed check is
    never recorded, and a changed input (any part of the key) loads the tokenizer and checks again.
    """
    key = token_check_key(cfg, pairs)
    if key is not None:
        try:
            record = json.loads(_token_check_path(key).read_text(encoding="utf-8"))
            if record.get("key") == key and isinstance(record.get("n_tokens"), int) and record["n_tokens"] > 0:
                return record["n_tokens"]
        except (OSError, ValueError, AttributeError):
            pass  # no record (or an unreadable one): check
    try:  # statements of fewer than 2 tokens, or longer than the tokenizer's limit (the model's is checked in 02)
        tokenizer = models.load_tokenizer(cfg.model, cfg.revision)
        try:
            prefix_id = batching.prefix_token_id(tokenizer, cfg.prefix)
        except ValueError as exc:
            raise ParameterError(f"prefix: {exc}") from None
        ids = batching.tokenize_statements(tokenizer, pairs, batching.tokenizer_limit(tokenizer), cfg.model,
                                           prefix_id)
    except ParameterError:
        raise
    except ValueError as exc:
        raise ParameterError(f"dataset: {exc}") from None
    n_tokens = sum(len(t) for t in ids)
    key = token_check_key(cfg, pairs)  # again: loading the tokenizer may have converted the model (first run)
    if key is not None:
        from .._io import atomic_write_json

        atomic_write_json(_token_check_path(key), {"key": key, "n_tokens": n_tokens})
    return n_tokens


def preflight(cfg: RunConfig, *, check_memory: bool = True) -> dict[str, Any]:
    """Check what can fail later before any notebook starts: the dataset, the model, the layers, the pair count.

    Parameters
    ----------
    cfg : RunConfig

    Returns
    -------
    dict
        The values the run will really use: ``n_pairs``, ``num_layers``, ``layers`` (list of int) and
        ``knn_k`` (:func:`effective_knn_k`).

    Raises
    ------
    ParameterError
        Naming the parameter (``dataset: ...``, ``model: ...``, ``layers: ...``); with ``check_memory``, also
        where the embeddings alone would not fit in this machine's memory (:func:`resource_estimate`).
    """
    from ..inputs import batching, data, extraction, models

    try:
        pairs = data.load_pairs(cfg.dataset, orientation=cfg.orientation)
    except data.DatasetError as exc:
        raise ParameterError(f"dataset: {exc}") from None
    if pairs.n_pairs < MIN_RUN_PAIRS:
        raise ParameterError(f"dataset: {pairs.n_pairs} pairs; the analysis needs at least {MIN_RUN_PAIRS}")
    try:
        num_layers, d_model = models.model_shape(cfg.model, cfg.revision)
    except models.ModelLoadError as exc:
        raise ParameterError(f"model: {exc}") from None
    try:
        layers = extraction.resolve_layers(cfg.layers if isinstance(cfg.layers, str) else list(cfg.layers),
                                           num_layers)
    except ValueError as exc:
        raise ParameterError(f"layers: {exc}") from None
    n_tokens = _check_statements(cfg, pairs, batching, models)
    estimate = resource_estimate(pairs.n_pairs, len(layers), d_model, num_layers, n_tokens)
    memory = machine_memory()
    if check_memory and memory is not None and estimate["embeddings_bytes"] > memory:
        raise ParameterError(
            f"dataset: {pairs.n_pairs} pairs x {len(layers)} layers x d_model {d_model} need "
            f"{estimate['embeddings_bytes'] / 1e9:.1f} GB for the hidden states alone, more than this machine's "
            f"{memory / 1e9:.1f} GB: use fewer layers or pairs, or pass --allow-large to try anyway")
    return {"n_pairs": pairs.n_pairs, "num_layers": num_layers, "layers": [int(v) for v in layers],
            "knn_k": effective_knn_k(cfg.knn_k, pairs.n_pairs), "d_model": d_model,
            "estimate": estimate,
            "duplicate_pairs": [list(d) for d in pairs.duplicates()]}
