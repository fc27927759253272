"""Time ua_helpers.analysis.inference.extended_analysis and its parts on the paper's shape: 9 layers x 5 metrics x 230 pairs.

Prints the time of each component (run alone, on the same data and seed) and of the whole entry point, the
median of ``--repeats`` runs. Synthetic data: metrics that random-walk across layers, six categories of the
ua-230 sizes, token counts and character lengths.

    python benchmarks/bench_inference.py [--n-bootstrap 10000] [--n-permutations 10000] [--blas-threads 1]

``--blas-threads`` caps the BLAS thread pool (through threadpoolctl, which scikit-learn installs); on a busy
two-core machine a multi-threaded BLAS can be several times slower on these tall, thin matrix products.
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time

import numpy as np

from ua_helpers.analysis import bootstrap, confounds, inference, multiplicity

LAYERS = [0, 4, 8, 12, 16, 20, 24, 28, 32]
METRICS = ["centroid_asymmetry", "cross_centroid", "within_pair_sim", "knn_density_asymmetry",
           "margin_asymmetry"]
CATEGORY_SIZES = (30, 20, 50, 50, 50, 30)


def make_data(seed: int = 0, n: int = 230):
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.normal(scale=0.35, size=(len(LAYERS), len(METRICS), n)), axis=0)  # [L, M, N]
    values += rng.normal(size=(1, len(METRICS), n))
    categories = np.repeat([f"cat{i}" for i in range(len(CATEGORY_SIZES))], CATEGORY_SIZES).tolist()
    tok_a = rng.integers(6, 25, n)
    tok_b = tok_a + rng.integers(-4, 5, n)
    preference = 0.25 * values[4, 0] + 0.08 * (tok_b - tok_a) + rng.normal(size=n)
    return dict(values=values, preference=preference, categories=categories, n_tokens_a=tok_a,
                n_tokens_b=tok_b, len_a=5 * tok_a + rng.integers(0, 8, n), len_b=5 * tok_b + rng.integers(0, 8, n))


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-bootstrap", type=int, default=10_000)
    parser.add_argument("--n-permutations", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--blas-threads", type=int, default=None)
    args = parser.parse_args()

    limit = contextlib.nullcontext()
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=args.blas_threads, user_api="blas")

    d = make_data()
    x, y = d["values"].reshape(-1, d["values"].shape[-1]), d["preference"]
    n, nb, npm, seed = x.shape[1], args.n_bootstrap, args.n_permutations, 42
    cov = confounds.confound_covariates(d["n_tokens_a"], d["n_tokens_b"], d["len_a"], d["len_b"], d["categories"])
    common = dict(n_tokens_a=d["n_tokens_a"], n_tokens_b=d["n_tokens_b"], len_a=d["len_a"], len_b=d["len_b"],
                  categories=d["categories"], n_bootstrap=nb, n_permutations=npm, seed=seed)

    with limit:
        idx = bootstrap.bootstrap_indices(n, nb, seed)
        boot = bootstrap.bootstrap_pearson(x, y, idx)
        r = np.array([np.corrcoef(row, y)[0, 1] for row in x])  # [tests]
        components = [
            ("bootstrap indices", lambda: bootstrap.bootstrap_indices(n, nb, seed)),
            ("Pearson bootstrap + percentile CI",
             lambda: bootstrap.percentile_interval(bootstrap.bootstrap_pearson(x, y, idx))),
            ("BCa (jackknife + z0 + quantiles)",
             lambda: bootstrap.bca_interval(r, boot, bootstrap.jackknife_pearson(x, y))),
            ("permutations: per-test + max-stat", lambda: multiplicity.max_stat_permutation(d["values"], y, npm, seed)),
            ("Spearman bootstrap", lambda: bootstrap.bootstrap_spearman(x, y, idx)),
            *[(f"partial bootstrap: {name} (k={c.shape[1]})", lambda c=c: confounds.bootstrap_partial(x, y, c, idx))
              for name, c in cov.items()],
            ("per-category table (6 categories)", lambda: confounds.per_category_table(
                d["values"], y, LAYERS, METRICS, d["categories"], n_bootstrap=nb, seed=seed)),
        ]
        print(f"ua_helpers.analysis.inference benchmark: {len(LAYERS)} layers x {len(METRICS)} metrics x {n} pairs, "
              f"{nb} resamples, {npm} permutations; {platform.processor() or platform.machine()}, "
              f"BLAS threads: {args.blas_threads or 'default'}; median of {args.repeats}")
        for name, fn in components:
            print(f"  {name:<42s} {timed(fn, args.repeats):7.3f} s")
        for bca in (False, True):
            t = timed(lambda: inference.extended_analysis(d["values"], y, LAYERS, METRICS, bca=bca, **common),
                      args.repeats)
            print(f"  {'extended_analysis(bca=' + str(bca) + ')':<42s} {t:7.3f} s")


if __name__ == "__main__":
    main()
