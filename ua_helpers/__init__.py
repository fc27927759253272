"""ua_helpers: pair-level Uniformity Asymmetry of causal language models.

Does where a statement pair sits in a model's hidden-state geometry, layer by layer, predict which of the two
statements the model prefers at its output? The modules follow the data flow:

``data.load_pairs`` -> ``models.load_model`` -> ``extraction.extract`` -> ``metrics.compute_all_layers`` (pair
level) and ``levels.analyse_levels`` (category level, random bins) -> ``stats.correlation_table`` and
``inference.extended_analysis`` and ``controls.compute_controls`` (random tokens, shuffled pairing, lexical
covariates) -> ``evidence.evidence_block`` -> ``results.build_run_results`` ->
``findings`` (sentences) and ``plots``.
"""
from ._version import __version__  # noqa: F401 (the package version)
from . import controls, data, evidence, extraction, findings, inference, levels, metrics, models, results, stats
from .data import PairSet, load_pairs
from .extraction import Extraction, extract, get_layer_embedding, get_output_preference
from .metrics import METRIC_NAMES, compute_all_layers, compute_pair_metrics
from .models import LoadedModel, load_model
from .stats import bootstrap_correlation, correlation_table

__all__ = [
    "data", "models", "extraction", "metrics", "stats", "inference", "controls", "levels", "evidence", "findings",
    "results",
    "PairSet", "load_pairs", "LoadedModel", "load_model", "Extraction", "extract",
    "get_layer_embedding", "get_output_preference", "METRIC_NAMES", "compute_pair_metrics", "compute_all_layers",
    "bootstrap_correlation", "correlation_table",
]
