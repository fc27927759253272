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
#: Rows (and columns) per tile of :func:`knn_density`'s products: 512 x 512 float64 is 2 MiB, which stays in cache
#: while it is transposed and partitioned (measured at 9,200 rows of 576: tiles of 384, 512 and 768 took 0.65, 0.62
#: and 0.70 s on one thread).
KNN_TILE = 512
#: Threads that select the nearest distances of a tile (the products themselves use BLAS's threads): with two, a
#: tile's columns are handled beside its rows. Results do not depend on it.
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


def knn_density(x: np.ndarray, k: int, *, tile: int | None = None) -> np.ndarray:
    """Compute the seed's kNN density: 1 / mean cosine distance to the ``k`` nearest rows, the row itself included.

    The cosines are symmetric, so only the tiles on and above the diagonal are computed (half the products of
    the full ``n_pairs x n_pairs`` matrix): a tile's rows keep their ``k`` smallest distances, and so do its
    columns, from the same products transposed. Memory stays at two tiles and ``n_pairs x k`` kept distances;
    time at half of O(n_pairs^2 d_model). Every distance is one dot product of two rows, as in the full matrix,
    and each row keeps the ``k`` smallest of all of its distances.

    Parameters
    ----------
    x : ndarray of shape (n_pairs, d_model)
    k : int
        Neighbours, counting the point itself (as ``NearestNeighbors.kneighbors(x)`` on its own fit data).
    tile : int, optional
        Rows and columns per tile; default :data:`KNN_TILE`.

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
    if tile is not None and (not isinstance(tile, (int, np.integer)) or tile < 1):
        raise ValueError(f"tile must be a positive integer; got {tile!r}")
    return _knn_density_of_unit_rows(x / np.linalg.norm(x, axis=1, keepdims=True), k, tile)


def _knn_density_of_unit_rows(xn: np.ndarray, k: int, tile: int | None = None) -> np.ndarray:
    """:func:`knn_density` of rows already divided by their norms, ``xn`` (n_pairs, d_model) float64; arguments
    checked by the caller (:func:`compute_pair_metrics` has the norms already)."""
    n_pairs = xn.shape[0]
    tile = min(tile or KNN_TILE, n_pairs)
    neg_xn = -xn  # [n_pairs, d_model]: products with it come out negated, exactly
    # Per row, the k smallest negated cosines seen so far (unordered). Rounding is sign-symmetric, so a product
    # with neg_xn is exactly -cos, and 1 + it exactly the cosine distance 1 - cos.
    nearest = np.full((n_pairs, k), np.inf)
    # One buffer for every tile's products and one for their transpose: no fresh pages to map per tile.
    products, transposed = np.empty(tile * tile), np.empty(tile * tile)
    pool = ThreadPoolExecutor(1) if KNN_THREADS > 1 else None
    try:
        for i0 in range(0, n_pairs, tile):
            rows = slice(i0, min(i0 + tile, n_pairs))
            for j0 in range(i0, n_pairs, tile):
                cols = slice(j0, min(j0 + tile, n_pairs))
                shape = (rows.stop - rows.start, cols.stop - cols.start)
                # The transposed view, as xn @ xn.T: BLAS's fast layout.
                neg_cos = np.matmul(xn[rows], neg_xn[cols].T, out=products[:shape[0] * shape[1]].reshape(shape))
                job = None
                if j0 != i0:  # off the diagonal: the same products are the columns' distances to the rows
                    by_col = transposed[:neg_cos.size].reshape(shape[::-1])
                    _transpose_into(neg_cos, by_col)
                    if pool is None:
                        _keep_k_smallest(by_col, nearest[cols], k)
                    else:  # partitions release the interpreter lock; rows and columns are distinct rows
                        job = pool.submit(_keep_k_smallest, by_col, nearest[cols], k)
                _keep_k_smallest(neg_cos, nearest[rows], k)
                if job is not None:
                    job.result()  # before the next tile overwrites the buffers
    finally:
        if pool is not None:
            pool.shutdown()
    # Clipping (as scikit-learn does) is monotone, so only the k nearest need it.
    return 1.0 / (np.clip(1.0 + nearest, 0.0, 2.0).mean(axis=1) + EPS)


def _transpose_into(a: np.ndarray, out: np.ndarray, strip: int = 64) -> None:
    """``out[:] = a.T``, in strips of ``strip`` rows of ``a``: twice as fast as one strided copy of a 512 x 512
    tile (measured), since each strip's writes stay in cache."""
    for s in range(0, a.shape[0], strip):
        out[:, s:s + strip] = a[s:s + strip].T


def _keep_k_smallest(candidates: np.ndarray, nearest: np.ndarray, k: int) -> None:
    """Merge into ``nearest`` [rows, k] the ``k`` smallest of each row of ``candidates`` [rows, m], which it
    partitions in place."""
    if candidates.shape[1] > k:
        candidates.partition(k - 1, axis=1)
    both = np.concatenate((nearest, candidates[:, :k]), axis=1)  # [rows, k + min(m, k)]
    both.partition(k - 1, axis=1)
    nearest[:] = both[:, :k]


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
