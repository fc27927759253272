"""The seed's five pair-level geometry proxies, as array operations (seed section 4)."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: The seed's metric names, in the seed's order.
METRIC_NAMES = (
    "centroid_asymmetry",
    "cross_centroid",
    "within_pair_sim",
    "knn_density_asymmetry",
    "margin_asymmetry",
)
EPS = 1e-10  # the seed's guard against division by zero
#: Distances held at once by :func:`knn_density` (2**22 float64 = 32 MiB per block).
KNN_BLOCK_ELEMENTS = 2**22
#: Threads that partition a block's rows (the products themselves use BLAS's threads). Results do not depend on
#: it: every row is partitioned alone.
KNN_THREADS = max(1, min(2, os.cpu_count() or 1))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Compute cosine similarity between two vectors (the seed's definition, with its 1e-10 guard)."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + EPS))


def cos_to(x: np.ndarray, v: np.ndarray, x_norm: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of every row of ``x`` ``[n, d]`` with the vector ``v`` ``[d]``; ``x_norm`` ``[n]``, if
    given, is ``np.linalg.norm(x, axis=1)`` computed once by the caller."""
    if x_norm is None:
        x_norm = np.linalg.norm(x, axis=1)
    return x @ v / (x_norm * np.linalg.norm(v) + EPS)


def knn_density(x: np.ndarray, k: int, *, block_rows: int | None = None) -> np.ndarray:
    """Compute the seed's kNN density: 1 / mean cosine distance to the ``k`` nearest rows, the row itself included.

    Rows are processed in blocks: each block's cosine distances to all rows ``[block_rows, n_pairs]`` are
    computed, partitioned to their ``k`` smallest and dropped, so memory stays at ``block_rows x n_pairs``
    floats instead of the full ``n_pairs x n_pairs`` matrix (time stays O(n_pairs^2 d_model)). Every row's
    numbers are those of the full matrix: its distances come from the same dot products and are partitioned
    alone.

    Parameters
    ----------
    x : ndarray of shape (n_pairs, d_model)
    k : int
        Neighbours, counting the point itself (as ``NearestNeighbors.kneighbors(x)`` on its own fit data).
    block_rows : int, optional
        Rows per block; default ``KNN_BLOCK_ELEMENTS // n_pairs`` (at least 1).

    Returns
    -------
    ndarray of shape (n_pairs,)
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be (n_pairs, d_model); got shape {x.shape}")
    n_pairs = x.shape[0]
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n_pairs:
        raise ValueError(f"k must be an integer in [1, n_pairs={n_pairs}]; got {k!r}")
    if block_rows is not None and (not isinstance(block_rows, (int, np.integer)) or block_rows < 1):
        raise ValueError(f"block_rows must be a positive integer; got {block_rows!r}")
    return _knn_density_of_unit_rows(x / np.linalg.norm(x, axis=1, keepdims=True), k, block_rows)


def _knn_density_of_unit_rows(xn: np.ndarray, k: int, block_rows: int | None = None) -> np.ndarray:
    """:func:`knn_density` of rows already divided by their norms, ``xn`` (n_pairs, d_model) float64; arguments
    checked by the caller (:func:`compute_pair_metrics` has the norms already)."""
    n_pairs = xn.shape[0]
    if block_rows is None:
        block_rows = max(1, KNN_BLOCK_ELEMENTS // n_pairs)
    neg_xn = -xn  # [n_pairs, d_model]: products with it come out negated, exactly
    density = np.empty(n_pairs)
    # One buffer for every block's products: a fresh 32 MiB array per block is fresh pages for the kernel to map
    # and zero, every block.
    buffer = np.empty((min(block_rows, n_pairs), n_pairs))
    n_threads = max(1, min(KNN_THREADS, block_rows))
    pool = ThreadPoolExecutor(n_threads - 1) if n_threads > 1 else None
    try:
        for start in range(0, n_pairs, block_rows):
            stop = min(start + block_rows, n_pairs)
            # -cos for each row of the block against all rows, [block, n_pairs]. Rounding is sign-symmetric, so
            # this is exactly -(xn[start:stop] @ xn.T) and 1 + it exactly the cosine distance 1 - cos.
            # The transposed view, as xn @ xn.T: BLAS's fast layout.
            neg_cos = np.matmul(xn[start:stop], neg_xn.T, out=buffer[:stop - start])
            # Rows are independent: the block's rows are split between threads (NumPy's partition releases the
            # interpreter lock), each row partitioned exactly as alone.
            bounds = np.linspace(0, stop - start, n_threads + 1).astype(int)
            parts = [(neg_cos[lo:hi], density[start + lo:start + hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
            futures = [pool.submit(_k_nearest_density, part, out, k) for part, out in parts[1:]] if pool else []
            _k_nearest_density(*parts[0], k)
            for future in futures:
                future.result()
    finally:
        if pool is not None:
            pool.shutdown()
    return density


def _k_nearest_density(neg_cos: np.ndarray, out: np.ndarray, k: int) -> None:
    """Write into ``out`` [rows] the density of each row of ``neg_cos`` [rows, n_pairs] (negated cosines, which
    it partitions in place).

    Partitioning in place puts the k smallest distances first (no copy, no pass to form distances); clipping (as
    scikit-learn does) is monotone, so only those k need it.
    """
    if neg_cos.shape[0] == 0:
        return
    neg_cos.partition(k - 1, axis=1)
    nearest = np.clip(1.0 + neg_cos[:, :k], 0.0, 2.0)  # the k smallest distances, unordered
    out[:] = 1.0 / (nearest.mean(axis=1) + EPS)


def zscore(v: np.ndarray) -> np.ndarray:
    """Standardize a vector ``[n]`` to mean 0 and population sd 1 (the seed's z-score, with its EPS guard)."""
    return (v - v.mean()) / (v.std() + EPS)


def compute_pair_metrics(emb_a: np.ndarray, emb_b: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """Compute the five pair-level proxies of one layer.

    Parameters
    ----------
    emb_a, emb_b : ndarray of shape (n_pairs, d_model)
        Pooled hidden states of the A and B statements of one layer.
    k : int, default=10
        kNN neighbours; the seed uses ``min(10, n_pairs - 1)``, the point itself included.

    Returns
    -------
    dict of str to ndarray of shape (n_pairs,)
        ``centroid_asymmetry``: cos(A_i, centroid_A) - cos(B_i, centroid_B);
        ``cross_centroid``: cos(A_i, centroid_B) - cos(B_i, centroid_A);
        ``within_pair_sim``: cos(A_i, B_i);
        ``knn_density_asymmetry``: z(density_A) - z(density_B);
        ``margin_asymmetry``: ||A_i - m|| - ||B_i - m|| with m the midpoint of the two centroids.
    """
    a = np.asarray(emb_a, dtype=np.float64)
    b = np.asarray(emb_b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"emb_a and emb_b must both be (n_pairs, d_model); got {a.shape} and {b.shape}")
    n_pairs = a.shape[0]
    if n_pairs < 3:
        raise ValueError(f"need at least 3 pairs for centroids and kNN; got {n_pairs}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    k = min(int(k), n_pairs - 1)
    centroid_a, centroid_b = a.mean(axis=0), b.mean(axis=0)
    midpoint = (centroid_a + centroid_b) / 2
    # Row norms once per side (the same expression as every use had: np.linalg.norm along rows), not five times.
    norm_a, norm_b = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)  # [n_pairs] each
    within = np.einsum("nd,nd->n", a, b) / (norm_a * norm_b + EPS)
    density_a = _knn_density_of_unit_rows(a / norm_a[:, None], k)
    density_b = _knn_density_of_unit_rows(b / norm_b[:, None], k)
    return {
        "centroid_asymmetry": cos_to(a, centroid_a, norm_a) - cos_to(b, centroid_b, norm_b),
        "cross_centroid": cos_to(a, centroid_b, norm_a) - cos_to(b, centroid_a, norm_b),
        "within_pair_sim": within,
        "knn_density_asymmetry": zscore(density_a) - zscore(density_b),
        "margin_asymmetry": np.linalg.norm(a - midpoint, axis=1) - np.linalg.norm(b - midpoint, axis=1),
    }


def compute_all_layers(emb_a: np.ndarray, emb_b: np.ndarray, k: int = 10) -> np.ndarray:
    """Compute every metric for every layer.

    Parameters
    ----------
    emb_a, emb_b : ndarray of shape (n_layers, n_pairs, d_model)

    Returns
    -------
    ndarray of shape (n_layers, n_metrics, n_pairs)
        Metrics in the order of :data:`METRIC_NAMES`.
    """
    if np.ndim(emb_a) != 3:
        raise ValueError(f"emb_a must be (n_layers, n_pairs, d_model); got shape {np.shape(emb_a)}")
    out = []
    for layer_a, layer_b in zip(emb_a, emb_b):
        m = compute_pair_metrics(layer_a, layer_b, k)
        out.append([m[name] for name in METRIC_NAMES])
    return np.asarray(out)
