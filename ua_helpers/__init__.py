"""ua_helpers: pair-level Uniformity Asymmetry of causal language models.

Does where a statement pair sits in a model's hidden-state geometry, layer by layer, predict which of the two
statements the model prefers at its output? The folders follow the data flow, each importing only from those
before it (a test asserts it):

``inputs`` (pairs, models, extraction) -> ``analysis`` (metrics, statistics, controls, evidence) -> ``report``
(``results.json``, sentences, tables, figures) -> ``runs`` (configuration, run folders, sweeps) -> ``book`` ->
``cli``; ``_io``, ``_checks`` and ``options`` are leaves every folder may use.

The seed notebook's public names are kept here for its users (``from ua_helpers import data, load_pairs``); they
load on first use, so that ``import ua_helpers`` imports neither torch nor the analysis.
"""
from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__  # noqa: F401 (the package version)

#: The seed's public names and the module that defines each (modules map to themselves).
_PUBLIC = {
    "data": "inputs.data", "models": "inputs.models", "extraction": "inputs.extraction",
    "metrics": "analysis.metrics", "stats": "analysis.stats",
    "PairSet": "inputs.data", "load_pairs": "inputs.data", "LoadedModel": "inputs.models",
    "load_model": "inputs.models", "Extraction": "inputs.extraction", "extract": "inputs.extraction",
    "get_layer_embedding": "inputs.extraction", "get_output_preference": "inputs.extraction",
    "METRIC_NAMES": "analysis.metrics", "compute_pair_metrics": "analysis.metrics",
    "compute_all_layers": "analysis.metrics", "bootstrap_correlation": "analysis.stats",
    "correlation_table": "analysis.stats",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_PUBLIC[name]}")
    return module if _PUBLIC[name].endswith(f".{name}") else getattr(module, name)
