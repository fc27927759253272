"""Synthetic data of the paper's shape for the statistics tests: 9 layers x 5 metrics x 230 pairs, with metrics
that random-walk across layers (neighbouring layers are strongly correlated, so the multiplicity story is real).
"""
from __future__ import annotations

import numpy as np

LAYERS = [0, 4, 8, 12, 16, 20, 24, 28, 32]
METRICS = ["centroid_asymmetry", "cross_centroid", "within_pair_sim", "knn_density_asymmetry",
           "margin_asymmetry"]
CATEGORY_SIZES = {"ground_truth_numeric": 30, "ground_truth_nonnumeric": 20, "tech_philosophy": 50,
                  "lifestyle": 50, "business": 50, "scientific_facts": 30}
N = 230


def make_data(seed: int = 0, n_layers: int = 9, n_metrics: int = 5, n: int = N, effect: float = 0.25):
    """Metric values that random-walk across layers, a preference tied to one metric, and confounders."""
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.normal(scale=0.35, size=(n_layers, n_metrics, n)), axis=0)
    values += rng.normal(size=(1, n_metrics, n))
    cats = np.repeat(list(CATEGORY_SIZES), list(CATEGORY_SIZES.values()))[:n].tolist()
    cat_effect = {c: rng.normal(scale=0.5) for c in CATEGORY_SIZES}
    tok_a = rng.integers(6, 25, n)
    tok_b = tok_a + rng.integers(-4, 5, n)
    len_a = 5 * tok_a + rng.integers(0, 8, n)
    len_b = 5 * tok_b + rng.integers(0, 8, n)
    preference = (effect * values[n_layers // 2, 0] + 0.08 * (tok_b - tok_a)
                  + np.array([cat_effect[c] for c in cats]) + rng.normal(size=n))
    return dict(values=values, preference=preference, categories=cats, n_tokens_a=tok_a, n_tokens_b=tok_b,
                len_a=len_a, len_b=len_b)



def flat_tests(values):
    return values.reshape(-1, values.shape[-1])


def run_extended(data, **kwargs):
    """The extended analysis of the test data at 2,000 resamples and permutations, seed 7, BCa on."""
    from ua_helpers import inference

    return inference.extended_analysis(
        data["values"], data["preference"], LAYERS, METRICS, n_tokens_a=data["n_tokens_a"],
        n_tokens_b=data["n_tokens_b"], len_a=data["len_a"], len_b=data["len_b"], categories=data["categories"],
        **{**dict(n_bootstrap=2000, n_permutations=2000, seed=7, bca=True), **kwargs})
