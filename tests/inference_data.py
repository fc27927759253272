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
    from ua_helpers.analysis import inference

    return inference.extended_analysis(
        data["values"], data["preference"], LAYERS, METRICS, n_tokens_a=data["n_tokens_a"],
        n_tokens_b=data["n_tokens_b"], len_a=data["len_a"], len_b=data["len_b"], categories=data["categories"],
        **{**dict(n_bootstrap=2000, n_permutations=2000, seed=7, bca=True), **kwargs})


EPS64 = float(np.finfo(np.float64).eps)


def resample_r_tolerance(x, y, indices) -> float:
    """Absolute tolerance for two float64 computations of Pearson r on the same resamples.

    On a resample, r = cov / sqrt(var_x var_y) from weighted sums of n terms of z-scored values, each term at
    most ``zmax^2``: a sum carries at most ``n eps zmax^2`` (gamma_n), cov and both variances carry about two
    such errors, and dividing by ``sqrt(var_x var_y)`` of the resample (in units of the full sample's
    variance) amplifies them. The bound, doubled for the two computations compared:
    ``8 n eps zmax^2 / min over resamples of sqrt(var_x var_y)``; degenerate resamples (NaN in both) excluded.
    """
    x = np.atleast_2d(np.asarray(x, np.float64))
    y = np.asarray(y, np.float64)
    zx = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    zy = (y - y.mean()) / y.std()
    idx = np.asarray(indices)
    spread = np.sqrt(zx[:, idx].var(axis=-1) * zy[idx].var(axis=-1)[None])  # [tests, resamples]
    spread = spread[spread > 1e-6]
    zmax2 = max(float(np.max(zx**2)), float(np.max(zy**2)))
    return 8 * x.shape[1] * EPS64 * zmax2 / float(spread.min())


def count_matrix_rs(x, y, indices) -> np.ndarray:
    """The bootstrap r of every resample as ``bootstrap.bootstrap_pearson`` computed it before resampling went by chunks:
    one full (n_bootstrap, n) count matrix. The reference that the chunked engine must reproduce."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.asarray(y, dtype=np.float64)
    n_boot, n = indices.shape
    xz = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)  # [tests, n]
    yz = (y - y.mean()) / y.std()  # [n]
    counts = np.zeros((n_boot, n))  # [resample, n]
    np.add.at(counts, (np.repeat(np.arange(n_boot), n), indices.ravel()), 1.0)
    counts /= n
    mx, my = counts @ xz.T, counts @ yz
    vx = counts @ (xz**2).T - mx**2
    vy = counts @ yz**2 - my**2
    cxy = counts @ (xz * yz).T - mx * my[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cxy / np.sqrt(vx * vy[:, None])
    r[(vx <= 1e-12) | (vy[:, None] <= 1e-12)] = np.nan
    return np.clip(r, -1.0, 1.0).T


def peak_bytes(fn) -> int:
    """Peak memory traced by tracemalloc (NumPy reports its buffers to it) while ``fn()`` runs."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def corr_tolerance(*arrays) -> float:
    """Absolute tolerance for two float64 routes to a Pearson-type r of the rows of ``arrays`` (last axis n).

    r is a dot product of n z-scored terms over n, each term at most ``zmax^2``: each route carries at most
    ``n eps zmax^2`` (gamma_n) in the sums behind r, and the compared routes are two, with a margin of 4.
    """
    zmax2, n = 0.0, 0
    for a in arrays:
        a = np.atleast_2d(np.asarray(a, np.float64))
        z = (a - a.mean(axis=-1, keepdims=True)) / a.std(axis=-1, keepdims=True)
        zmax2, n = max(zmax2, float(np.max(z**2))), max(n, a.shape[-1])
    return 8 * n * EPS64 * zmax2


def partial_tolerance(x, y, covariates) -> float:
    """Absolute tolerance for two float64 routes to the partial r of x and y given covariates (one resample).

    :func:`corr_tolerance`, amplified by the squared condition number of the design (intercept + z-scored
    non-constant covariates: least squares, or the normal equations used inside each resample, multiply rounding
    errors by up to cond^2) and by the residuals' shrinkage (r divides by the residual standard deviations,
    a fraction ``sqrt(1 - R^2)`` of the raw ones).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    z = np.asarray(covariates, np.float64).reshape(len(y), -1)
    sd = z.std(axis=0)
    design = np.column_stack([np.ones(len(y)), (z[:, sd > 0] - z[:, sd > 0].mean(axis=0)) / sd[sd > 0]])
    both = np.column_stack([x, y])
    resid = both - design @ np.linalg.lstsq(design, both, rcond=None)[0]
    shrink = float(np.sqrt(np.prod(resid.var(axis=0) / both.var(axis=0))))
    return corr_tolerance(x, y) * float(np.linalg.cond(design)) ** 2 / shrink


def p_value_rtol(r, n_pairs: int, dr: float, n_covariates: int = 0) -> float:
    """Relative tolerance for two-sided t-test p-values of correlations ``r`` known to within ``dr``.

    ``p = 2 sf(t)`` with ``t = r sqrt(df / (1 - r^2))``, df = n - 2 - k: ``|d log p / dr| = 2 pdf(t) / p x
    sqrt(df) / (1 - r^2)^1.5``, times ``dr``; plus 64 eps for the evaluation of sf itself.
    """
    from scipy import stats as sps

    r = np.abs(np.atleast_1d(np.asarray(r, np.float64)))
    df = n_pairs - 2 - n_covariates
    t = r * np.sqrt(df / (1 - r**2))
    p = 2 * sps.t.sf(t, df)
    sensitivity = 2 * sps.t.pdf(t, df) / p * np.sqrt(df) / (1 - r**2) ** 1.5
    return float(np.max(sensitivity) * dr + 64 * EPS64)


def make_embeddings(seed: int = 0, n_layers: int = 3, n: int = 40, d: int = 16, offset: float = 0.0):
    """Pooled states of shape (n_layers, n, d) for both sides, away from the origin; side B shifted by ``offset``."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n_layers, n, d)) + 3.0
    b = rng.normal(size=(n_layers, n, d)) + 3.0 + offset
    return a, b


def evidence_of(values, preference, emb_a, emb_b, layers, names, tests, *, controls, **kwargs):
    """The evidence block as notebook 4 builds it: diagnostics and redundancy computed, then handed to the ladder."""
    from ua_helpers.analysis import evidence, redundancy, robustness

    diagnostics = robustness.diagnose(values, preference, emb_a, emb_b, layers, names, tests,
                                      alpha=kwargs.get("alpha", 0.05))
    coinciding = redundancy.redundancy(emb_a, emb_b, values, layers, names)
    return evidence.evidence_block(tests, diagnostics, coinciding, controls=controls, **kwargs)
