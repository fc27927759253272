"""Tests of ua_helpers.analysis.redundancy: centroid coincidence and groups of metrics that are one test."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from inference_data import make_embeddings

from ua_helpers.analysis import metrics
from ua_helpers.analysis.redundancy import redundancy

EPS = np.finfo(np.float64).eps
LAYERS = [0, 4, 8]
NAMES = list(metrics.METRIC_NAMES)



# --------------------------------------------------------------------------------------------------- redundancy
def test_redundancy_centroid_metrics_collapse_when_centroids_coincide():
    a, b = make_embeddings(seed=5, n=50, offset=0.0)
    b = b - b.mean(axis=1, keepdims=True) + a.mean(axis=1, keepdims=True)  # mu_B = mu_A
    vals = metrics.compute_all_layers(a, b)
    red = redundancy(a, b, vals, LAYERS, NAMES)
    assert_allclose(red.per_layer["cos_centroids"], 1.0, atol=100 * EPS)
    assert (red.per_layer["distance_ratio"] < 1e-12).all()
    mu_a, mu_b = a.mean(axis=1), b.mean(axis=1)
    spread = (np.linalg.norm(a - mu_a[:, None], axis=2).mean(axis=1)
              + np.linalg.norm(b - mu_b[:, None], axis=2).mean(axis=1)) / 2
    assert_allclose(red.per_layer["distance_ratio"], np.linalg.norm(mu_a - mu_b, axis=1) / spread, rtol=1e3 * EPS)
    for li in range(3):
        assert_allclose(red.metric_corr[li], np.corrcoef(vals[li]), atol=1e3 * EPS)
    grouped = {(g["layer"], tuple(g["metrics"])) for g in red.groups}
    for layer in LAYERS:
        assert (layer, ("centroid_asymmetry", "cross_centroid")) in grouped


def test_redundancy_separated_centroids_keep_metrics_apart():
    a, b = make_embeddings(seed=6, n=50, offset=3.0)
    vals = metrics.compute_all_layers(a, b)
    red = redundancy(a, b, vals, LAYERS, NAMES)
    assert (red.per_layer["distance_ratio"] > 1).all()
    assert not any(set(g["metrics"]) >= {"centroid_asymmetry", "cross_centroid"} for g in red.groups)


def test_redundancy_groups_are_connected_components_with_signs():
    rng = np.random.default_rng(7)
    base = rng.normal(size=100)
    vals = np.stack([base, -base + 1e-3 * rng.normal(size=100), rng.normal(size=100), np.full(100, 1.0)])[None]
    a, b = make_embeddings(n=100, n_layers=1)
    red = redundancy(a, b, vals, [3], ["p", "q", "r", "c"])
    assert red.groups == [{"layer": 3, "metrics": ["p", "q"], "min_abs_corr": pytest.approx(1, abs=1e-5),
                           "signs": [1, -1]}]
    assert np.isnan(red.metric_corr[0, 3]).all()
    with pytest.raises(ValueError, match="metric_values"):
        redundancy(a, b, vals[:, :2], [3], ["p", "q", "r", "c"])
