"""The seed notebook's functions, copied verbatim, as the reference path the engine is tested against.

Source: ``shared/seed/option_b_pair_level_notebook.txt`` (sections 2 and 4). Two adaptations, both marked
``# ADAPTED``, and nothing else changed:

- ``compute_pair_metrics`` takes the two embedding arrays of one layer instead of the notebook's ``pair_data``
  list and a layer index (the first two lines of its body built exactly these arrays from ``pair_data``);
  its per-row loops and scikit-learn ``NearestNeighbors`` are kept.
- ``bootstrap_correlation`` takes an explicit resample index matrix ``indices`` of shape (n_bootstrap, n)
  instead of drawing ``np.random.choice(n, size=n, replace=True)`` inside its loop, so that it can be compared
  with ``ua_helpers.analysis.stats`` on the same resamples. :func:`seed_indices` draws the matrix the way the seed did.

``get_layer_embedding`` and ``get_output_preference`` are the seed's unbatched extraction, used by the
equivalence tests and the benchmark.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import torch
from scipy import stats
from sklearn.neighbors import NearestNeighbors


# --------------------------------------------------------------------------- seed section 2: core functions
def get_layer_embedding(text: str, model, tokenizer, layer_idx: int) -> np.ndarray:
    """Get mean-pooled embedding from a specific layer."""
    inputs = tokenizer(text, return_tensors="pt").to(model.device)

    with torch.no_grad():
        outputs = model(**inputs, output_hidden_states=True)
        hidden_states = outputs.hidden_states

    layer_hidden = hidden_states[layer_idx]
    embedding = layer_hidden[0, 1:, :].mean(dim=0).cpu().numpy().astype(np.float32)

    return embedding


def get_output_preference(text_a: str, text_b: str, model, tokenizer) -> float:
    """Calculate output preference as NLL(B) - NLL(A)."""
    def get_nll(text):
        inputs = tokenizer(text, return_tensors="pt").to(model.device)
        with torch.no_grad():
            outputs = model(**inputs, labels=inputs["input_ids"])
            return outputs.loss.item()

    return get_nll(text_b) - get_nll(text_a)


def get_nll(text: str, model, tokenizer) -> float:
    """The seed's inner ``get_nll`` of :func:`get_output_preference`, lifted out so tests can call it alone."""
    inputs = tokenizer(text, return_tensors="pt").to(model.device)
    with torch.no_grad():
        outputs = model(**inputs, labels=inputs["input_ids"])
        return outputs.loss.item()


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Compute cosine similarity between two vectors."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-10))


def seed_indices(n: int, n_bootstrap: int, seed: int = 42) -> np.ndarray:
    """Draw the resample indices as the seed's loop did (``np.random.seed(seed)``, then ``np.random.choice``).

    A private ``RandomState(seed)`` yields the same stream as the seeded global state, without touching it.
    """
    rng = np.random.RandomState(seed)
    return np.stack([rng.choice(n, size=n, replace=True) for _ in range(n_bootstrap)])


def bootstrap_rs(x: np.ndarray, y: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The seed's resample loop: ``pearsonr`` on each resample, NaN where the seed skips it (zero std)."""
    out = np.full(len(indices), np.nan)
    for b, idx in enumerate(indices):
        x_boot = x[idx]
        y_boot = y[idx]

        if np.std(x_boot) > 0 and np.std(y_boot) > 0:
            r_boot, _ = stats.pearsonr(x_boot, y_boot)
            out[b] = r_boot
    return out


def bootstrap_correlation(x: np.ndarray, y: np.ndarray, indices: np.ndarray,  # ADAPTED: indices given
                          ci_level: float = 0.95) -> Tuple[float, float, float, float]:
    """Compute bootstrap CI for Pearson correlation."""
    n = len(x)  # noqa: F841  (kept from the seed)
    r_observed, p_value = stats.pearsonr(x, y)

    bootstrap_rs = []
    for idx in indices:  # ADAPTED: was `for _ in range(n_bootstrap): idx = np.random.choice(n, size=n, ...)`
        x_boot = x[idx]
        y_boot = y[idx]

        if np.std(x_boot) > 0 and np.std(y_boot) > 0:
            r_boot, _ = stats.pearsonr(x_boot, y_boot)
            bootstrap_rs.append(r_boot)

    bootstrap_rs = np.array(bootstrap_rs)
    alpha = 1 - ci_level
    ci_lower = np.percentile(bootstrap_rs, alpha/2 * 100)
    ci_upper = np.percentile(bootstrap_rs, (1 - alpha/2) * 100)

    return float(r_observed), float(ci_lower), float(ci_upper), float(p_value)


# --------------------------------------------------------------------------- seed section 4: the metrics
def compute_pair_metrics(all_embs_a: np.ndarray, all_embs_b: np.ndarray) -> Dict[str, np.ndarray]:  # ADAPTED
    """
    Compute multiple pair-level UA proxies.

    Returns dict with different metric arrays (one value per pair).
    """
    n_pairs = len(all_embs_a)  # ADAPTED: was len(pair_data)

    # Collect all embeddings
    # ADAPTED: the seed built all_embs_a / all_embs_b here from pair_data[i]['layer_embeddings'][layer_idx]
    all_embs_a = np.array(all_embs_a)
    all_embs_b = np.array(all_embs_b)

    # Compute centroids
    centroid_a = all_embs_a.mean(axis=0)
    centroid_b = all_embs_b.mean(axis=0)

    metrics = {}

    # ----- Metric 1: Centroid Distance Asymmetry -----
    # How far is this A from all A's centroid vs this B from all B's centroid?
    # High value = A is more "typical" of its side than B is of its side
    centroid_dist_a = np.array([cosine_similarity(emb, centroid_a) for emb in all_embs_a])
    centroid_dist_b = np.array([cosine_similarity(emb, centroid_b) for emb in all_embs_b])
    metrics['centroid_asymmetry'] = centroid_dist_a - centroid_dist_b

    # ----- Metric 2: Cross-Centroid Distance -----
    # How far is A from B's centroid vs B from A's centroid?
    cross_dist_a = np.array([cosine_similarity(emb, centroid_b) for emb in all_embs_a])
    cross_dist_b = np.array([cosine_similarity(emb, centroid_a) for emb in all_embs_b])
    metrics['cross_centroid'] = cross_dist_a - cross_dist_b

    # ----- Metric 3: Within-Pair Similarity -----
    # How similar is A to B within this pair?
    # Low similarity might indicate more "distinctive" pairs
    within_pair_sim = np.array([cosine_similarity(all_embs_a[i], all_embs_b[i])
                                 for i in range(n_pairs)])
    metrics['within_pair_sim'] = within_pair_sim

    # ----- Metric 4: kNN Density Asymmetry -----
    # Is A in a denser region than B?
    k = min(10, n_pairs - 1)

    nn_a = NearestNeighbors(n_neighbors=k, metric='cosine')
    nn_a.fit(all_embs_a)
    distances_a, _ = nn_a.kneighbors(all_embs_a)
    density_a = 1 / (distances_a.mean(axis=1) + 1e-10)

    nn_b = NearestNeighbors(n_neighbors=k, metric='cosine')
    nn_b.fit(all_embs_b)
    distances_b, _ = nn_b.kneighbors(all_embs_b)
    density_b = 1 / (distances_b.mean(axis=1) + 1e-10)

    # Normalize densities
    density_a_norm = (density_a - density_a.mean()) / (density_a.std() + 1e-10)
    density_b_norm = (density_b - density_b.mean()) / (density_b.std() + 1e-10)

    metrics['knn_density_asymmetry'] = density_a_norm - density_b_norm

    # ----- Metric 5: Margin to Decision Boundary -----
    # Conceptual: How far is each embedding from the "middle" between centroids?
    midpoint = (centroid_a + centroid_b) / 2
    dist_to_mid_a = np.array([np.linalg.norm(emb - midpoint) for emb in all_embs_a])
    dist_to_mid_b = np.array([np.linalg.norm(emb - midpoint) for emb in all_embs_b])
    metrics['margin_asymmetry'] = dist_to_mid_a - dist_to_mid_b

    return metrics


# --------------------------------------------------------------------------- seed section 6: best metric
def best_per_layer(results: dict, layers_to_test) -> list:
    """The seed's section-6 loop over ``results[layer_idx][metric_name]`` dicts, without its printing."""
    best_metrics_summary = []

    for layer_idx in layers_to_test:
        layer_results = results[layer_idx]

        # Find best (highest |r| with CI excluding 0)
        best_metric = None
        best_r = 0
        best_excludes_zero = False

        for metric_name, res in layer_results.items():
            if abs(res['r']) > abs(best_r):
                best_r = res['r']
                best_metric = metric_name
                best_excludes_zero = not res['includes_zero']

        best_metrics_summary.append({
            'layer': layer_idx,
            'best_metric': best_metric,
            'r': best_r,
            'excludes_zero': best_excludes_zero
        })
    return best_metrics_summary
