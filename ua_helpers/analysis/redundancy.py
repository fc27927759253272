"""Redundancy and degeneracy: how far apart the A and B centroids lie, and which metrics are one test.

On a dataset whose A and B statements share a centroid (cos(mu_A, mu_B) near 1), cos(x, mu_A) ~ cos(x, mu_B) for
every statement, so ``centroid_asymmetry`` and ``cross_centroid`` become the same number: two names for one
finding. :func:`redundancy` measures that per layer and groups the metrics that coincide.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .bootstrap import pearson

if TYPE_CHECKING:
    import pandas as pd

#: Two metrics coincide at a layer when their values across pairs correlate beyond this |corr|.
COINCIDE_CORR = 0.98


def check_emb(emb_a, emb_b) -> tuple[np.ndarray, np.ndarray]:
    """Return ``emb_a``, ``emb_b`` as arrays after checking they are finite, (n_layers, n_pairs, d_model) alike."""
    a, b = np.asarray(emb_a), np.asarray(emb_b)
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(f"emb_a and emb_b must both be (n_layers, n_pairs, d_model); got {a.shape} and {b.shape}")
    if a.shape[1] < 2:
        raise ValueError(f"need at least 2 pairs; got {a.shape[1]}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("emb_a / emb_b have non-finite values")
    return a, b


def check_layers(layers, n_layers: int) -> list[int]:
    """Return ``layers`` as a list of int after checking there is one per layer of data."""
    layers = [int(l) for l in layers]
    if len(layers) != n_layers:
        raise ValueError(f"{len(layers)} layers given for {n_layers} layers of data")
    return layers


# --------------------------------------------------------------------------------------------------------------

@dataclass
class Redundancy:
    """Result of :func:`redundancy`.

    Attributes
    ----------
    per_layer : pandas.DataFrame
        One row per layer: layer, cos_centroids (cos(mu_A, mu_B)), centroid_distance (||mu_A - mu_B||),
        spread (mean distance of a statement to its own side's centroid, over all 2 * n_pairs statements),
        distance_ratio (centroid_distance / spread).
    metric_corr : ndarray of shape (n_layers, n_metrics, n_metrics)
        Pearson correlation between metric vectors across pairs (NaN where a metric is constant).
    groups : list of dict
        Per layer, each set of two or more metrics linked by |corr| > threshold (connected components):
        ``{"layer", "metrics" (in metric order), "min_abs_corr", "signs"}`` where signs[j] = sign of the
        correlation of metrics[j] with metrics[0].
    threshold : float
    """

    per_layer: pd.DataFrame
    metric_corr: np.ndarray
    groups: list
    threshold: float


def redundancy(emb_a, emb_b, metric_values, layers: Sequence[int], metric_names: Sequence[str], *,
               threshold: float = COINCIDE_CORR) -> Redundancy:
    """Measure how far the A and B centroids lie apart and which metrics coincide, per layer.

    When mu_A and mu_B nearly coincide, cos(x, mu_A) ~ cos(x, mu_B) for every statement, so
    ``centroid_asymmetry`` and ``cross_centroid`` become the same number and carry one finding, not two.

    Parameters
    ----------
    emb_a, emb_b, metric_values, layers, metric_names : the standard arrays of :mod:`ua_helpers.analysis`
    threshold : float, default=0.98
        |corr| above which two metrics coincide.

    Returns
    -------
    Redundancy
    """
    import pandas as pd

    a, b = check_emb(emb_a, emb_b)
    layers = check_layers(layers, a.shape[0])
    values = np.asarray(metric_values, dtype=np.float64)
    if values.shape != (a.shape[0], len(metric_names), a.shape[1]):
        raise ValueError(f"metric_values must be {(a.shape[0], len(metric_names), a.shape[1])}; "
                         f"got {values.shape}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1); got {threshold}")
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = a.mean(axis=1), b.mean(axis=1)  # [layer, d_model]
    na, nb = np.linalg.norm(mu_a, axis=1), np.linalg.norm(mu_b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("ld,ld->l", mu_a, mu_b) / (na * nb)
    dist = np.linalg.norm(mu_a - mu_b, axis=1)
    spread = (np.linalg.norm(a - mu_a[:, None], axis=2).sum(axis=1)
              + np.linalg.norm(b - mu_b[:, None], axis=2).sum(axis=1)) / (2 * a.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = dist / spread
    per_layer = pd.DataFrame({"layer": layers, "cos_centroids": cos, "centroid_distance": dist, "spread": spread,
                              "distance_ratio": ratio})

    # corr[l, m, k]: every metric with metric k at layer l (NaN where either is constant)
    corr = np.stack([np.stack([pearson(v, v[k])[:, 0] for k in range(len(v))], axis=1) for v in values])

    groups = []
    names = list(metric_names)
    for li, layer in enumerate(layers):
        linked = np.abs(np.nan_to_num(corr[li])) > threshold
        seen: set[int] = set()
        for i in range(len(names)):
            if i in seen:
                continue
            comp, stack = {i}, [i]
            while stack:
                j = stack.pop()
                for k in np.flatnonzero(linked[j]):
                    if k not in comp:
                        comp.add(int(k))
                        stack.append(int(k))
            seen |= comp
            if len(comp) > 1:
                members = sorted(comp)
                sub = np.abs(corr[li][np.ix_(members, members)])
                groups.append({"layer": layer, "metrics": [names[m] for m in members],
                               "min_abs_corr": float(sub.min()),
                               "signs": [int(np.sign(corr[li, members[0], m])) for m in members]})
    return Redundancy(per_layer, corr, groups, float(threshold))
