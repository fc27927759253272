"""Run parameters: the names every notebook's ``parameters`` cell and ``ua-book run -p`` share, with validation."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from .extraction import POOLINGS
from .models import DTYPES


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
        ``"replication-230"``, ``"ua-230"``, a path or a URL.
    layers : "paper", "all" or tuple of int
    pooling : {"mean", "last"}
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


_STR = ("model", "dataset", "run_dir")
_OPT_STR = ("revision", "reference_results", "repo_url")
_POS_INT = ("batch_size", "n_bootstrap", "n_permutations", "knn_k", "n_bins", "n_binnings")
_BOOL = ("allow_low_precision",)
#: How the two sides of each pair are oriented (see RunConfig.orientation).
ORIENTATIONS = ("as-given", "by-role")


def _coerce(name: str, value: Any) -> Any:
    """Turn a notebook value or a command-line string into the parameter's type, or raise ParameterError."""
    if name in _OPT_STR:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        if not isinstance(value, str):
            raise ParameterError(f"{name} must be a string or None; got {value!r}")
        return value
    if name in _STR:
        if not isinstance(value, str) or not value.strip():
            raise ParameterError(f"{name} must be a non-empty string; got {value!r}")
        return value
    if name in _POS_INT or name == "seed":
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ParameterError(f"{name} must be an integer; got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"{name} must be an integer; got {value!r}")
        if name in _POS_INT and value < 1:
            raise ParameterError(f"{name} must be at least 1; got {value}")
        if name == "seed" and value < 0:
            raise ParameterError(f"seed must be non-negative; got {value}")
        return value
    if name == "ci_level":
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"ci_level must be a number in (0, 1); got {value!r}") from None
        if not 0 < value < 1:
            raise ParameterError(f"ci_level must be in (0, 1); got {value}")
        return value
    if name == "dtype":
        if value not in DTYPES:
            raise ParameterError(f"dtype must be one of {', '.join(DTYPES)}; got {value!r}")
        return value
    if name == "device":
        if not isinstance(value, str) or not (value in ("auto", "cpu", "mps") or value.startswith("cuda")):
            raise ParameterError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {value!r}")
        return value
    if name in _BOOL:
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise ParameterError(f"{name} must be true or false; got {value!r}")
        return value
    if name == "orientation":
        if value not in ORIENTATIONS:
            raise ParameterError(f"orientation must be one of {', '.join(ORIENTATIONS)}; got {value!r}")
        return value
    if name == "pooling":
        if value not in POOLINGS:
            raise ParameterError(f"pooling must be one of {', '.join(POOLINGS)}; got {value!r}")
        return value
    if name == "layers":
        return _coerce_layers(value)
    raise ParameterError(f"unknown parameter {name}")  # pragma: no cover - from_mapping checks names


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
