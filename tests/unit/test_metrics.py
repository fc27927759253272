"""The five pair-level metrics against the seed's plain-loop implementation (scikit-learn NearestNeighbors)."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import seed_reference as seed
from ua_helpers.analysis import metrics
from ua_helpers.inputs.extraction import extract
from ua_helpers.analysis.metrics import METRIC_NAMES, compute_all_layers, compute_pair_metrics

EPS32, EPS64 = float(np.finfo(np.float32).eps), float(np.finfo(np.float64).eps)


def metric_tolerance(name: str, emb_a, emb_b, eps: float) -> float:
    """Absolute tolerance for one metric computed twice at machine epsilon ``eps``, from its magnitudes.

    Every metric is a difference of two quantities, each built from dot products / norms of ``d_model`` terms
    and centroids that average ``n_pairs`` rows, so each carries a rounding error of at most about
    ``(d_model + n_pairs) * eps`` times its scale (the textbook bound gamma_m = m u for m accumulated terms,
    with a factor 2 for the two computations compared and 2 for the two sides of the difference):

    - cosines (centroid_asymmetry, cross_centroid, within_pair_sim): scale 1;
    - margin_asymmetry: scale = the largest distance to the centroids' midpoint (a difference of norms of size
      ~17 on random 300-d data is why a fixed 1e-6 failed against the float32 seed on another CPU);
    - knn_density_asymmetry: a cosine-distance error delta moves density D = 1 / mean(dist) by D^2 delta and
      the z-score divides by std(D), so scale = max(D)^2 / std(D) (the largest over the two sides).
    """
    a, b = np.asarray(emb_a, np.float64), np.asarray(emb_b, np.float64)
    n_pairs, d_model = a.shape
    terms = d_model + n_pairs
    if name == "margin_asymmetry":
        mid = (a.mean(0) + b.mean(0)) / 2
        scale = max(np.linalg.norm(a - mid, axis=1).max(), np.linalg.norm(b - mid, axis=1).max())
    elif name == "knn_density_asymmetry":
        k = min(10, n_pairs - 1)
        scale = 0.0
        for x in (a, b):
            dens = metrics.knn_density(x, k)
            scale = max(scale, dens.max() ** 2 / max(dens.std(), np.finfo(np.float64).tiny))
    else:
        scale = 1.0
    return 4 * terms * eps * scale


def assert_equals_seed(emb_a, emb_b):
    """Ours equals the seed run on float64 copies to float64 rounding, and the float32 seed to float32 rounding."""
    ours = compute_pair_metrics(emb_a, emb_b)
    ref = seed.compute_pair_metrics(emb_a, emb_b)
    ref64 = seed.compute_pair_metrics(np.asarray(emb_a, np.float64), np.asarray(emb_b, np.float64))
    assert list(ours) == list(ref) == list(METRIC_NAMES)  # same names, same order
    input_eps = EPS32 if np.asarray(emb_a).dtype == np.float32 else EPS64
    for name in METRIC_NAMES:
        assert ours[name].shape == (len(emb_a),)
        assert_allclose(ours[name], ref64[name], rtol=0, atol=metric_tolerance(name, emb_a, emb_b, EPS64),
                        err_msg=f"{name} vs the float64 seed")
        assert_allclose(ours[name], ref[name], rtol=0, atol=metric_tolerance(name, emb_a, emb_b, input_eps),
                        err_msg=f"{name} vs the seed at the input's precision")
    return ours, ref


def _random_embeddings(seed_, n, d, offset=0.0):
    rng = np.random.default_rng(seed_)
    shared = rng.normal(size=d)  # a common direction, as real hidden states have
    emb_a = (offset * shared + rng.normal(size=(n, d))).astype(np.float32)
    emb_b = (offset * shared + rng.normal(size=(n, d)) + 0.3).astype(np.float32)
    return emb_a, emb_b


@pytest.mark.parametrize("n, d, offset", [(230, 64, 0.0), (50, 16, 3.0), (12, 300, 1.0), (4, 8, 0.0)])
def test_equals_seed_on_random_data(n, d, offset):
    assert_equals_seed(*_random_embeddings(n * d, n, d, offset))


def test_equals_seed_on_tiny_model_extractions(tiny_lm, replication_pairs):
    ext = extract(tiny_lm, replication_pairs, layers="all", batch_size=64, cache=True, progress=False)
    for layer in ext.layers:
        assert_equals_seed(*ext.layer(layer))


def test_equals_seed_on_float64_input():
    emb_a, emb_b = _random_embeddings(7, 40, 32, 2.0)
    ours = compute_pair_metrics(emb_a.astype(np.float64), emb_b.astype(np.float64))
    ref = seed.compute_pair_metrics(emb_a.astype(np.float64), emb_b.astype(np.float64))
    for name in METRIC_NAMES:
        assert_allclose(ours[name], ref[name], rtol=0, atol=metric_tolerance(name, emb_a, emb_b, EPS64),
                        err_msg=name)


def test_metric_definitions_by_an_independent_route():
    """Identities the definitions imply, checked without the seed's code."""
    emb_a, emb_b = _random_embeddings(3, 30, 10, 1.0)
    m = compute_pair_metrics(emb_a, emb_b)
    # swapping A and B negates every asymmetry and leaves the within-pair similarity alone -- exactly: the
    # swapped run performs the same floating-point operations (+ and * commute in IEEE arithmetic)
    s = compute_pair_metrics(emb_b, emb_a)
    for name in ("centroid_asymmetry", "cross_centroid", "knn_density_asymmetry", "margin_asymmetry"):
        assert_allclose(s[name], -m[name], rtol=0, atol=0, err_msg=name)
    assert_allclose(s["within_pair_sim"], m["within_pair_sim"], rtol=0, atol=0)
    # cosine metrics are scale-invariant per row; within_pair_sim is the cosine of the two rows
    a64, b64 = emb_a.astype(np.float64), emb_b.astype(np.float64)
    cos = np.sum(a64 * b64, 1) / np.linalg.norm(a64, axis=1) / np.linalg.norm(b64, axis=1)
    # |cos| <= 1: the two routes differ by the 1e-10 guard over |a||b| and the rounding of d-term dot products
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    d = a64.shape[1]
    assert_allclose(m["within_pair_sim"], cos, rtol=0, atol=metrics.EPS / norms.min() + 4 * d * EPS64)
    # identical sides: every asymmetry is zero and within-pair similarity is 1
    same = compute_pair_metrics(emb_a, emb_a)
    for name in ("centroid_asymmetry", "cross_centroid", "knn_density_asymmetry", "margin_asymmetry"):
        assert_allclose(same[name], 0.0, rtol=0, atol=0, err_msg=name)  # x - x is exactly 0
    # cos(a, a) = |a|^2 / (|a|^2 + 1e-10), rounded over d terms
    sq = np.linalg.norm(a64, axis=1) ** 2
    assert_allclose(same["within_pair_sim"], 1.0, rtol=0, atol=metrics.EPS / sq.min() + 4 * d * EPS64)


def test_knn_density_counts_the_point_itself():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 5))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    dist = 1 - xn @ xn.T
    k = 4
    expected = 1 / (np.sort(dist, axis=1)[:, :k].mean(axis=1) + 1e-10)  # the k nearest include distance 0
    # the routes differ by clipping (the self-distance may round to -eps) and by the rounding of the d-term dot
    # products: a distance error delta moves the density D by D^2 delta
    delta = 4 * (x.shape[1] + k) * EPS64
    assert_allclose(metrics.knn_density(x, k), expected, rtol=0, atol=expected.max() ** 2 * delta)


def full_matrix_knn_density(x, k):
    """kNN density as computed before the blocks: the full (n_pairs, n_pairs) distance matrix at once."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    dist = np.clip(1.0 - xn @ xn.T, 0.0, 2.0)
    return 1.0 / (np.partition(dist, k - 1, axis=1)[:, :k].mean(axis=1) + 1e-10)


@pytest.mark.parametrize("tile", [2, 7, 64, 299, 1000, None])
def test_knn_density_by_tiles_equals_the_full_matrix(tile):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 24)) + 0.5
    ref = full_matrix_knn_density(x, 10)
    ours = metrics.knn_density(x, 10, tile=tile)
    # The same dot products (those below the diagonal read from the tile above it, transposed), the k smallest
    # of each row: equal unless BLAS rounds a tile's d-term dot products differently from the whole matrix's,
    # and a distance error delta moves D by D^2 delta; the k kept distances are summed in another order,
    # 2 (k - 1) eps relative.
    delta = 4 * x.shape[1] * EPS64
    assert_allclose(ours, ref, rtol=2 * 9 * EPS64, atol=ref.max() ** 2 * delta)


def distance_matrix_knn_density(x, k, block_rows):
    """kNN density by the route before the negated products: distances formed, clipped and partitioned (a copy)."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], block_rows):
        dist = np.clip(1.0 - xn[start:start + block_rows] @ xn.T, 0.0, 2.0)
        out[start:start + block_rows] = 1.0 / (np.partition(dist, k - 1, axis=1)[:, :k].mean(axis=1) + 1e-10)
    return out


@pytest.mark.parametrize("k", [1, 10, 57])
def test_knn_density_by_negated_products_equals_the_distance_route(k):
    """Products against -x are exactly the negated products and clipping commutes with taking the k smallest,
    so both routes select the same k distances; the order in which ``mean`` adds them may differ: k non-negative
    terms summed in two orders differ by at most 2 (k - 1) eps relative, as then 1 / (mean + EPS). The tiles read
    the distances below the diagonal from the transposed products: the same d-term dot products unless BLAS
    rounds the two tiles differently, and a distance error delta moves D by D^2 delta."""
    x = np.random.default_rng(5).normal(size=(700, 48)) + 0.2
    x[3] = x[2]  # a duplicate row: a self-distance and a twin distance that round to or below 0 (clipped)
    ref = distance_matrix_knn_density(x, k, 64)
    assert_allclose(metrics.knn_density(x, k, tile=64), ref, rtol=2 * max(k - 1, 1) * EPS64,
                    atol=ref.max() ** 2 * 4 * x.shape[1] * EPS64)


def test_knn_density_memory_is_bounded_by_tiles():
    """6,000 rows: the full distance matrix would take 288 MB; the tiles hold two KNN_TILE^2 arrays at a time."""
    import tracemalloc

    x = np.random.default_rng(0).normal(size=(6000, 8))
    tracemalloc.start()
    try:
        metrics.knn_density(x, 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # a tile's products and their transpose, the k kept distances per row (and a tile's rows of them while
    # merging), plus x, its unit rows and their negation
    n, k, tile = x.shape[0], 10, metrics.KNN_TILE
    assert peak < 2 * tile**2 * 8 + 2 * n * k * 8 + 4 * tile * 2 * k * 8 + 4 * x.nbytes < 6000**2 * 8 / 20


@pytest.mark.parametrize("k, tile", [(0, None), (301, None), (2.5, None), (10, 0)])
def test_knn_density_rejects_bad_arguments(k, tile):
    with pytest.raises(ValueError, match="k must be|tile must be"):
        metrics.knn_density(np.ones((300, 3)), k, tile=tile)


@pytest.mark.parametrize("k", [10, 50, 10**6])
def test_k_larger_than_n_minus_1_is_clipped(k):
    emb_a, emb_b = _random_embeddings(11, 6, 8)
    ours = compute_pair_metrics(emb_a, emb_b, k=k)
    clipped = compute_pair_metrics(emb_a, emb_b, k=5)
    for name in METRIC_NAMES:
        assert_allclose(ours[name], clipped[name], rtol=0, atol=0, err_msg=name)
    ref = seed.compute_pair_metrics(emb_a, emb_b)  # the seed's k = min(10, n_pairs - 1)
    name = "knn_density_asymmetry"
    assert_allclose(ours[name], ref[name], rtol=0, atol=metric_tolerance(name, emb_a, emb_b, EPS32))


def test_k_changes_the_density():
    emb_a, emb_b = _random_embeddings(12, 40, 8)
    assert not np.allclose(compute_pair_metrics(emb_a, emb_b, k=3)["knn_density_asymmetry"],
                           compute_pair_metrics(emb_a, emb_b, k=10)["knn_density_asymmetry"])


@pytest.mark.parametrize("shape_a, shape_b, match", [
    ((10, 4), (10, 5), "must both be"),
    ((10, 4), (9, 4), "must both be"),
    ((10,), (10,), "must both be"),
    ((2, 10, 4), (2, 10, 4), "must both be"),
    ((2, 4), (2, 4), "at least 3 pairs"),
])
def test_shape_errors(shape_a, shape_b, match):
    with pytest.raises(ValueError, match=match):
        compute_pair_metrics(np.ones(shape_a), np.ones(shape_b))


@pytest.mark.parametrize("k", [0, -1, 2.5, "10"])
def test_bad_k(k):
    emb_a, emb_b = _random_embeddings(1, 5, 3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        compute_pair_metrics(emb_a, emb_b, k=k)


def test_compute_all_layers():
    rng = np.random.default_rng(5)
    emb_a = rng.normal(size=(3, 25, 6)).astype(np.float32)  # [n_layers, n_pairs, d_model]
    emb_b = rng.normal(size=(3, 25, 6)).astype(np.float32)
    values = compute_all_layers(emb_a, emb_b)
    assert values.shape == (3, len(METRIC_NAMES), 25)
    for layer in range(3):
        ref = seed.compute_pair_metrics(emb_a[layer], emb_b[layer])
        for j, name in enumerate(METRIC_NAMES):
            atol = metric_tolerance(name, emb_a[layer], emb_b[layer], EPS32)
            assert_allclose(values[layer, j], ref[name], rtol=0, atol=atol, err_msg=f"{layer} {name}")
    with pytest.raises(ValueError, match=r"\(n_layers, n_pairs, d_model\)"):
        compute_all_layers(emb_a[0], emb_b[0])


def test_cosine_similarity_is_the_seeds():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5, 2.0])
    assert metrics.cosine_similarity(a, b) == seed.cosine_similarity(a, b)
    assert metrics.cosine_similarity(np.zeros(3), b) == 0.0  # the 1e-10 guard
